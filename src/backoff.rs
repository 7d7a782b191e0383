//! The one exponential backoff of the process: the Qlik client's retries, per-object
//! requeues, the tenant view's refresh retries, the watches and the wait for the apiserver
//! all wait by it.
//!
//! Why not `backon` (already in the tree through kube-runtime): every caller here counts
//! its own failures (per object, per view, per request) and asks for the wait after the
//! n-th, and kube's watch backoff needs its own `Backoff` trait; backon's builders hand out
//! stateful iterators, so each caller would need an adapter larger than this module.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff with jitter: `base × 2^(attempt)`, capped at `cap`, plus up to
/// `jitter` of the capped delay at random. Stateless, so any caller that counts its own
/// attempts can ask for the next wait.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The wait after the first failure (attempt 0), before jitter.
    pub base: Duration,
    /// No wait is longer than this before jitter.
    pub cap: Duration,
    /// The share of the capped delay added at random (0.25 = up to 25 % longer).
    pub jitter: f64,
}

impl Backoff {
    /// A backoff from `base` doubling up to `cap`, with up to 25 % jitter.
    pub const fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap,
            jitter: 0.25,
        }
    }

    /// The delay before jitter after `attempt` failures in a row (0 for the first).
    pub fn delay(&self, attempt: u32) -> Duration {
        self.base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.cap)
    }

    /// The jittered wait after `attempt` failures in a row (0 for the first).
    pub fn wait(&self, attempt: u32) -> Duration {
        let d = self.delay(attempt);
        d + random_up_to(d.mul_f64(self.jitter.clamp(0.0, 1.0)))
    }
}

/// A random duration in `[0, max)` (zero for a zero `max`).
pub fn random_up_to(max: Duration) -> Duration {
    let millis = max.as_millis() as u64;
    if millis == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(rand::rng().random_range(0..millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_are_capped_and_jitter_only_lengthens() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        assert_eq!(b.delay(0), Duration::from_secs(1));
        assert_eq!(b.delay(1), Duration::from_secs(2));
        assert_eq!(b.delay(3), Duration::from_secs(8));
        assert_eq!(b.delay(4), Duration::from_secs(10));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(10));
        for attempt in 0..40 {
            let w = b.wait(attempt);
            let d = b.delay(attempt);
            assert!(w >= d && w <= d.mul_f64(1.25), "{attempt}: {w:?} vs {d:?}");
        }
    }

    #[test]
    fn random_up_to_stays_below_its_bound() {
        assert_eq!(random_up_to(Duration::ZERO), Duration::ZERO);
        for _ in 0..100 {
            assert!(random_up_to(Duration::from_millis(10)) < Duration::from_millis(10));
        }
    }
}
