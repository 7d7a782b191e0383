//! The client-side rate limiter: one per tenant and user, with Qlik's two tiers.
//!
//! Qlik counts requests per user and tier over a sliding window and answers 429 once a tier
//! is exhausted, blocking the whole tier until the retry time. A token bucket would let a
//! burst of `capacity + rate × window` through in one window and earn 429s, so this limiter
//! reserves send slots on the same sliding window the service counts on: the k-th request
//! may go no earlier than one window after the (k − limit)-th. Slots are handed out in call
//! order, so many waiting reconciles converge at exactly the tier's rate with no 429 storm.

use std::{collections::VecDeque, sync::Mutex, time::Duration};

use tokio::time::Instant;

use super::endpoint::Tier;

/// The longest a 429 may block a tier.
const MAX_BLOCK: Duration = Duration::from_secs(3600);

/// Per-minute limits of the two tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Tier 1 (reads) requests per window.
    pub tier1_per_minute: u32,
    /// Tier 2 (writes) requests per window.
    pub tier2_per_minute: u32,
    /// The window the limits apply to; one minute on the live service.
    pub window: Duration,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            tier1_per_minute: Tier::Tier1.default_per_minute(),
            tier2_per_minute: Tier::Tier2.default_per_minute(),
            window: Duration::from_secs(60),
        }
    }
}

impl RateLimits {
    /// The limit of one tier.
    pub fn per_window(&self, tier: Tier) -> u32 {
        match tier {
            Tier::Tier1 => self.tier1_per_minute,
            Tier::Tier2 => self.tier2_per_minute,
        }
    }
}

/// Send-slot bookkeeping of one tier.
#[derive(Debug)]
struct TierSlots {
    limit: usize,
    /// The last `limit` reserved send times, oldest first.
    reserved: VecDeque<Instant>,
    /// Set after a 429: nothing in this tier goes out before it.
    blocked_until: Option<Instant>,
}

impl TierSlots {
    fn new(limit: u32) -> TierSlots {
        TierSlots {
            limit: limit.max(1) as usize,
            reserved: VecDeque::new(),
            blocked_until: None,
        }
    }

    fn reserve(&mut self, now: Instant, window: Duration) -> Instant {
        let mut at = now;
        if self.reserved.len() >= self.limit
            && let Some(oldest) = self.reserved.front()
        {
            at = at.max(*oldest + window);
        }
        if let Some(blocked) = self.blocked_until {
            at = at.max(blocked);
        }
        self.reserved.push_back(at);
        while self.reserved.len() > self.limit {
            self.reserved.pop_front();
        }
        at
    }
}

/// A two-tier sliding-window limiter shared by every caller of one tenant and user.
#[derive(Debug)]
pub struct RateLimiter {
    limits: RateLimits,
    /// A margin added to the window so that network jitter between our clock and the
    /// service's cannot make a full window look like one request too many.
    margin: Duration,
    tiers: Mutex<[TierSlots; 2]>,
}

impl RateLimiter {
    /// A limiter with the given limits.
    pub fn new(limits: RateLimits) -> RateLimiter {
        RateLimiter {
            limits,
            margin: (limits.window / 100).min(Duration::from_millis(500)),
            tiers: Mutex::new([
                TierSlots::new(limits.tier1_per_minute),
                TierSlots::new(limits.tier2_per_minute),
            ]),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> RateLimits {
        self.limits
    }

    fn index(tier: Tier) -> usize {
        match tier {
            Tier::Tier1 => 0,
            Tier::Tier2 => 1,
        }
    }

    /// Reserves the next send slot of `tier` and returns when it may be used.
    pub fn reserve(&self, tier: Tier) -> Instant {
        let now = Instant::now();
        let mut tiers = self.tiers.lock().unwrap_or_else(|e| e.into_inner());
        tiers[Self::index(tier)].reserve(now, self.limits.window + self.margin)
    }

    /// Waits until a request of `tier` may be sent.
    pub async fn acquire(&self, tier: Tier) {
        let at = self.reserve(tier);
        tokio::time::sleep_until(at).await;
    }

    /// Blocks the whole tier for `wait` (at most an hour), as the service does after a 429.
    pub fn block(&self, tier: Tier, wait: Duration) {
        // An absurd wait must not overflow the clock (a panic) or block the tier for good.
        let until = Instant::now() + wait.min(MAX_BLOCK);
        let mut tiers = self.tiers.lock().unwrap_or_else(|e| e.into_inner());
        let slots = &mut tiers[Self::index(tier)];
        slots.blocked_until = Some(slots.blocked_until.map_or(until, |b| b.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(t1: u32, t2: u32, window_ms: u64) -> RateLimiter {
        RateLimiter::new(RateLimits {
            tier1_per_minute: t1,
            tier2_per_minute: t2,
            window: Duration::from_millis(window_ms),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_window_goes_at_once_then_waits_a_window() {
        let l = limiter(100, 3, 60_000);
        let start = Instant::now();
        let slots: Vec<Duration> = (0..7).map(|_| l.reserve(Tier::Tier2) - start).collect();
        let window = Duration::from_millis(60_000) + l.margin;
        assert_eq!(&slots[..3], &[Duration::ZERO; 3]);
        assert_eq!(&slots[3..6], &[window; 3]);
        assert_eq!(slots[6], window * 2);
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_limit_in_any_window() {
        let l = limiter(100, 10, 1_000);
        let start = Instant::now();
        let mut sent = Vec::new();
        for i in 0..55u64 {
            // Callers arrive irregularly.
            tokio::time::advance(Duration::from_millis(i % 7 * 13)).await;
            l.acquire(Tier::Tier2).await;
            sent.push(Instant::now() - start);
        }
        for (i, t) in sent.iter().enumerate() {
            let in_window = sent[i..]
                .iter()
                .take_while(|u| **u < *t + Duration::from_millis(1_000))
                .count();
            assert!(
                in_window <= 10,
                "{in_window} requests in the window from {t:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn tiers_are_independent() {
        let l = limiter(2, 1, 60_000);
        let start = Instant::now();
        assert_eq!(l.reserve(Tier::Tier2), start);
        assert!(l.reserve(Tier::Tier2) > start);
        assert_eq!(l.reserve(Tier::Tier1), start);
        assert_eq!(l.reserve(Tier::Tier1), start);
    }

    #[tokio::test(start_paused = true)]
    async fn a_block_holds_the_whole_tier() {
        let l = limiter(1000, 100, 60_000);
        let start = Instant::now();
        l.block(Tier::Tier2, Duration::from_secs(13));
        assert_eq!(l.reserve(Tier::Tier2) - start, Duration::from_secs(13));
        assert_eq!(l.reserve(Tier::Tier1), start);
        // A shorter block later does not shorten the first.
        l.block(Tier::Tier2, Duration::from_secs(1));
        assert_eq!(l.reserve(Tier::Tier2) - start, Duration::from_secs(13));
    }
}

#[cfg(test)]
mod absurd_waits {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_absurd_retry_after_neither_panics_nor_blocks_for_more_than_an_hour() {
        let l = RateLimiter::new(RateLimits::default());
        let start = Instant::now();
        // `Retry-After: 18446744073709551615` once overflowed the clock and panicked.
        l.block(Tier::Tier1, Duration::MAX);
        l.block(Tier::Tier2, Duration::from_secs(86_400 * 365 * 1000));
        assert_eq!(l.reserve(Tier::Tier1) - start, MAX_BLOCK);
        assert_eq!(l.reserve(Tier::Tier2) - start, MAX_BLOCK);
    }
}
