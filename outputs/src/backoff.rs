//! Per-output retry timing: exponential back-off from 1 s doubling to 5 min, with full jitter
//! (a random wait between zero and the cap, so many agents that lost the same receiver do not
//! come back in lockstep). A receiver's Retry-After is a floor; a fatal error (bad credentials,
//! a missing endpoint) waits the longest back-off, so fixing the receiver loses nothing. Kept
//! in memory: a restarted process retries at once.

use std::time::{Duration, Instant};

pub const BASE: Duration = Duration::from_secs(1);
pub const MAX: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Backoff {
    failures: u32,
    until: Option<Instant>,
}

impl Backoff {
    /// When the output may be tried again; `None` when it may be now.
    pub(crate) fn until(&self, now: Instant) -> Option<Instant> {
        self.until.filter(|u| *u > now)
    }

    pub(crate) fn succeed(&mut self) {
        *self = Self::default();
    }

    /// Records a failure; returns how long the output now waits.
    pub(crate) fn fail(&mut self, after: Option<Duration>, fatal: bool, now: Instant) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let wait = if fatal {
            MAX
        } else {
            jitter(cap(self.failures))
        };
        let wait = after.map_or(wait, |a| wait.max(a));
        self.until = Some(now + wait);
        wait
    }
}

/// The cap after `failures` failures in a row: 1 s, 2 s, 4 s ... 5 min.
pub(crate) fn cap(failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(16);
    (BASE * (1u32 << shift)).min(MAX)
}

/// A uniformly random duration in `[0, cap]`, to the millisecond.
fn jitter(cap: Duration) -> Duration {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return cap; // No randomness: the plain exponential back-off is still correct.
    }
    let ms = cap.as_millis() as u64;
    Duration::from_millis(u64::from_le_bytes(b) % (ms + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_double_to_five_minutes_and_retry_after_is_a_floor() {
        assert_eq!(cap(1), BASE);
        assert_eq!(cap(2), 2 * BASE);
        assert_eq!(cap(9), Duration::from_secs(256));
        assert_eq!(cap(10), MAX);
        assert_eq!(cap(u32::MAX), MAX);
        let now = Instant::now();
        let mut b = Backoff::default();
        for _ in 0..20 {
            let w = b.fail(None, false, now);
            assert!(w <= MAX);
        }
        let w = b.fail(Some(Duration::from_secs(400)), false, now);
        assert!(w >= Duration::from_secs(400));
        assert_eq!(b.fail(None, true, now), MAX);
        assert!(b.until(now).is_some());
        b.succeed();
        assert!(b.until(now).is_none());
    }
}
