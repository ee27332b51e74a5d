//! One check-in per client id per interval. Many hosts behind one NAT share an address, so the
//! per-address bucket for check-ins is generous, and this is what stops a single client (or
//! a replayed body) from writing more often than it should.
//!
//! Memory is bounded like the address limiter's: at most [`MAX_IDS`] ids; when a shard is
//! full, ids whose interval has passed are dropped (they would be admitted anyway), and if all
//! are recent, an arbitrary sixteenth goes.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SHARDS: usize = 16;
pub const MAX_IDS: usize = 256 * 1024;

#[derive(Debug)]
pub struct PerClient {
    interval: Duration,
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<String, Instant>>>,
}

impl PerClient {
    /// `None` for 0: no per-client limit.
    pub fn new(interval_secs: u64) -> Option<Self> {
        (interval_secs > 0).then(|| Self {
            interval: Duration::from_secs(interval_secs),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        })
    }

    /// `Ok` and remembered, or `Err(seconds until this id may check in again)`.
    pub fn check(&self, id: &str, now: Instant) -> Result<(), u64> {
        let shard = (self.hasher.hash_one(id) as usize) % SHARDS;
        let mut map = match self.shards[shard].lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if let Some(last) = map.get(id) {
            let since = now.saturating_duration_since(*last);
            if since < self.interval {
                let wait = (self.interval - since).as_secs_f64().ceil() as u64;
                return Err(wait.max(1));
            }
        } else if map.len() >= MAX_IDS / SHARDS {
            let interval = self.interval;
            map.retain(|_, last| now.saturating_duration_since(*last) < interval);
            if map.len() >= MAX_IDS / SHARDS {
                let victims: Vec<String> = map.keys().take(map.len() / 16 + 1).cloned().collect();
                for v in victims {
                    map.remove(&v);
                }
            }
        }
        map.insert(id.to_owned(), now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_interval_per_id() {
        let l = PerClient::new(10).unwrap();
        let t = Instant::now();
        assert_eq!(l.check("a", t), Ok(()));
        assert_eq!(l.check("a", t + Duration::from_secs(3)), Err(7));
        assert_eq!(l.check("b", t), Ok(()), "another id is not affected");
        assert_eq!(l.check("a", t + Duration::from_secs(10)), Ok(()));
        assert!(PerClient::new(0).is_none());
    }

    #[test]
    fn memory_is_bounded() {
        let l = PerClient::new(60).unwrap();
        let t = Instant::now();
        for i in 0..(MAX_IDS * 2) {
            let _ = l.check(&i.to_string(), t);
        }
        let n: usize = l.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(n <= MAX_IDS, "{n}");
    }
}
