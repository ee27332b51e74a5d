//! Per-client token buckets. A client is its peer IP address, or its /64 for IPv6 (one host
//! usually owns a whole /64, so counting addresses would be no limit at all). Forwarded-for
//! headers are not trusted: put the limit in the proxy when there is one.
//!
//! Memory stays bounded: each shard holds at most `MAX_CLIENTS / SHARDS` buckets. When a shard
//! is full, buckets that have refilled completely are dropped (they are indistinguishable from
//! a new client), and if every client is active a sixteenth of them, chosen arbitrarily, go.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

const SHARDS: usize = 16;
const MAX_CLIENTS: usize = 64 * 1024;

#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<IpAddr, Bucket>>>,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Refused; a token is back after this many seconds.
    Deny {
        retry_after_secs: u64,
    },
}

impl RateLimiter {
    /// `None` when either value is zero: rate limiting is off.
    pub fn new(requests_per_second: f64, burst: u32) -> Option<Self> {
        if requests_per_second <= 0.0 || !requests_per_second.is_finite() || burst == 0 {
            return None;
        }
        Some(Self {
            rate: requests_per_second,
            burst: f64::from(burst),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        })
    }

    pub fn check(&self, ip: IpAddr, now: Instant) -> Decision {
        let client = client_of(ip);
        let shard = (self.hasher.hash_one(client) as usize) % SHARDS;
        // A poisoned lock only means another request panicked mid-update of a bucket; the
        // numbers are still usable.
        let mut map = match self.shards[shard].lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if !map.contains_key(&client) && map.len() >= MAX_CLIENTS / SHARDS {
            self.evict(&mut map, now);
        }
        let b = map.entry(client).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Decision::Allow
        } else {
            let wait = ((1.0 - b.tokens) / self.rate).ceil();
            Decision::Deny {
                retry_after_secs: (wait as u64).max(1),
            }
        }
    }

    fn evict(&self, map: &mut HashMap<IpAddr, Bucket>, now: Instant) {
        map.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * self.rate < self.burst
        });
        if map.len() >= MAX_CLIENTS / SHARDS {
            // Every client is active (many addresses at once): drop a sixteenth, in the map's
            // randomised order, so the full scan above runs once per many new clients.
            let victims: Vec<IpAddr> = map.keys().take(map.len() / 16 + 1).copied().collect();
            for v in victims {
                map.remove(&v);
            }
        }
    }

    #[cfg(test)]
    fn clients(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap().len()).sum()
    }
}

fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::Duration;

    #[test]
    fn bucket() {
        let rl = RateLimiter::new(2.0, 3).unwrap();
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(rl.check(ip, t), Decision::Allow);
        }
        assert_eq!(
            rl.check(ip, t),
            Decision::Deny {
                retry_after_secs: 1
            }
        );
        // Another client is unaffected.
        assert_eq!(
            rl.check(IpAddr::V4(Ipv4Addr::LOCALHOST), t),
            Decision::Allow
        );
        // Half a second at 2/s gives one token back.
        assert_eq!(
            rl.check(ip, t + Duration::from_millis(500)),
            Decision::Allow
        );
        assert!(RateLimiter::new(0.0, 5).is_none());
        assert!(RateLimiter::new(5.0, 0).is_none());
    }

    #[test]
    fn slow_rate_gives_long_retry_after() {
        let rl = RateLimiter::new(0.1, 1).unwrap();
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let t = Instant::now();
        assert_eq!(rl.check(ip, t), Decision::Allow);
        assert_eq!(
            rl.check(ip, t),
            Decision::Deny {
                retry_after_secs: 10
            }
        );
    }

    #[test]
    fn ipv6_counts_by_slash_64() {
        let rl = RateLimiter::new(1.0, 1).unwrap();
        let t = Instant::now();
        let a: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8:1:2::ffff".parse().unwrap();
        assert_eq!(rl.check(IpAddr::V6(a), t), Decision::Allow);
        assert!(matches!(rl.check(IpAddr::V6(b), t), Decision::Deny { .. }));
    }

    #[test]
    fn memory_is_bounded() {
        let rl = RateLimiter::new(1.0, 5).unwrap();
        let t = Instant::now();
        for i in 0..(MAX_CLIENTS as u32 * 2) {
            rl.check(IpAddr::V4(Ipv4Addr::from(i)), t);
        }
        assert!(rl.clients() <= MAX_CLIENTS, "{}", rl.clients());
    }
}
