//! Per-user, per-tier rate limits over a sliding window (five minutes by default, as the
//! live service counts; `--rate-window-seconds`).
//!
//! Like the live service, hitting the limit blocks the whole tier for that user until a slot
//! frees, and requests refused meanwhile do not count against the window (otherwise a client
//! that keeps polling would never get through).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::qlik::endpoint::Tier;

/// What the `Ratelimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quota {
    /// `Ratelimit-Limit`: requests per window.
    pub(crate) limit: u32,
    /// `Ratelimit-Remaining`: requests left in the window right now.
    pub(crate) remaining: u32,
    /// Time until the next slot frees (zero when the window is empty).
    pub(crate) reset_in: Duration,
}

/// A refusal: wait `retry_after` (whole seconds, at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limited {
    /// For `Retry-After`.
    pub(crate) retry_after: u64,
    /// For the `Ratelimit-*` headers.
    pub(crate) quota: Quota,
}

#[derive(Debug, Default)]
struct Window {
    hits: VecDeque<Instant>,
    blocked_until: Option<Instant>,
}

/// All users' windows.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    windows: HashMap<(String, Tier), Window>,
}

fn whole_seconds_ceil(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

impl RateLimiter {
    /// Counts one request of `user` in `tier` at `now` if the limit allows it.
    pub(crate) fn check(
        &mut self,
        user: &str,
        tier: Tier,
        limit: u32,
        window: Duration,
        now: Instant,
    ) -> Result<Quota, Limited> {
        let w = self.windows.entry((user.to_owned(), tier)).or_default();
        while w
            .hits
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            w.hits.pop_front();
        }
        let reset_in = |w: &Window| {
            w.hits.front().map_or(Duration::ZERO, |t| {
                (*t + window).saturating_duration_since(now)
            })
        };
        let used = u32::try_from(w.hits.len()).unwrap_or(u32::MAX);
        if let Some(until) = w.blocked_until.filter(|u| *u > now) {
            return Err(Limited {
                retry_after: whole_seconds_ceil(until - now),
                quota: Quota {
                    limit,
                    remaining: 0,
                    reset_in: until - now,
                },
            });
        }
        if used >= limit {
            // The tier stays shut until the oldest counted request leaves the window.
            let until = w.hits.front().map_or(now + window, |t| *t + window);
            w.blocked_until = Some(until);
            return Err(Limited {
                retry_after: whole_seconds_ceil(until.saturating_duration_since(now)),
                quota: Quota {
                    limit,
                    remaining: 0,
                    reset_in: until.saturating_duration_since(now),
                },
            });
        }
        w.blocked_until = None;
        w.hits.push_back(now);
        Ok(Quota {
            limit,
            remaining: limit.saturating_sub(used + 1),
            reset_in: reset_in(w),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(60);

    #[test]
    fn blocks_after_the_limit_until_the_window_frees() {
        let mut rl = RateLimiter::default();
        let t0 = Instant::now();
        for i in 0..5 {
            let q = rl
                .check("u", Tier::Tier2, 5, WINDOW, t0 + Duration::from_secs(i))
                .unwrap();
            assert_eq!(q.remaining, 4 - i as u32);
        }
        let refused = rl
            .check(
                "u",
                Tier::Tier2,
                5,
                WINDOW,
                t0 + Duration::from_millis(10_500),
            )
            .unwrap_err();
        // The first request (at t0) leaves the window at t0 + 60 s.
        assert_eq!(refused.retry_after, 50);
        // Other tiers and users are unaffected.
        assert!(rl.check("u", Tier::Tier1, 5, WINDOW, t0).is_ok());
        assert!(rl.check("v", Tier::Tier2, 5, WINDOW, t0).is_ok());
        // Still blocked shortly before, free at the instant the slot opens.
        assert!(
            rl.check("u", Tier::Tier2, 5, WINDOW, t0 + Duration::from_secs(59))
                .is_err()
        );
        assert!(
            rl.check("u", Tier::Tier2, 5, WINDOW, t0 + Duration::from_secs(60))
                .is_ok()
        );
    }

    #[test]
    fn refused_requests_do_not_count() {
        let mut rl = RateLimiter::default();
        let t0 = Instant::now();
        assert!(rl.check("u", Tier::Tier1, 1, WINDOW, t0).is_ok());
        for i in 1..100 {
            assert!(
                rl.check("u", Tier::Tier1, 1, WINDOW, t0 + Duration::from_millis(i))
                    .is_err()
            );
        }
        assert!(rl.check("u", Tier::Tier1, 1, WINDOW, t0 + WINDOW).is_ok());
    }

    #[test]
    fn retry_after_is_at_least_one_second() {
        let mut rl = RateLimiter::default();
        let t0 = Instant::now();
        rl.check("u", Tier::Tier1, 1, WINDOW, t0).unwrap();
        let e = rl
            .check(
                "u",
                Tier::Tier1,
                1,
                WINDOW,
                t0 + WINDOW - Duration::from_millis(1),
            )
            .unwrap_err();
        assert_eq!(e.retry_after, 1);
    }
}
