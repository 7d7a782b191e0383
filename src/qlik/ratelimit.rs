//! The client-side rate limiter: one per tenant and user, with Qlik's two tiers.
//!
//! Qlik counts requests per user and tier over a sliding window and answers 429 once a tier
//! is exhausted, blocking the whole tier until the retry time. A token bucket would let a
//! burst of `capacity + rate × window` through in one window and earn 429s, so this limiter
//! reserves send slots on the same sliding window the service counts on: the k-th request
//! may go no earlier than one window after the (k − limit)-th. Slots are handed out in call
//! order, so many waiting reconciles converge at exactly the tier's rate with no 429 storm.
//!
//! Qlik counts each tier over a 5-minute window "to support bursts" (the per-minute limits
//! times five), so the default window here is 300 s too: a first apply that fits the window
//! goes out at once, then paces.
//!
//! The limiter knows only its own requests; the tenant counts everyone's who uses the same
//! user (another tool sharing a bot or key). So every answer's `Ratelimit-*` headers correct
//! it ([`RateLimiter::record_reported`]): when the tenant says less is left than the limiter
//! believes, the difference is booked as requests made by someone else just now (they leave
//! the window a window later, which is never sooner than the real ones), and when the tenant
//! says nothing is left the tier waits for the reset. A report of more than the limiter
//! believes is never taken: the configured limit is the ceiling. The last report per tier is
//! also kept for people and tools ([`RateLimiter::reported`], `kubectl qlik status`).

use std::{collections::VecDeque, sync::Mutex, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use tokio::time::Instant;

use super::endpoint::Tier;

/// The precision of `Ratelimit-Reset` (epoch seconds).
const RESET_PRECISION: Duration = Duration::from_secs(1);

/// The longest a 429 may block a tier.
const MAX_BLOCK: Duration = Duration::from_secs(3600);

/// The window Qlik counts its tiers over: five minutes.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);

/// Per-minute limits of the two tiers and the window they are counted over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Tier 1 (reads) requests per minute.
    pub tier1_per_minute: u32,
    /// Tier 2 (writes) requests per minute.
    pub tier2_per_minute: u32,
    /// The window the limits are counted over ([`DEFAULT_WINDOW`] on the live service);
    /// each tier may send its per-minute limit times the window's minutes within any window.
    pub window: Duration,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            tier1_per_minute: Tier::Tier1.default_per_minute(),
            tier2_per_minute: Tier::Tier2.default_per_minute(),
            window: DEFAULT_WINDOW,
        }
    }
}

impl RateLimits {
    /// The requests one tier may send within any window: the per-minute limit scaled to the
    /// window (at least one).
    pub fn per_window(&self, tier: Tier) -> u32 {
        let per_minute = match tier {
            Tier::Tier1 => self.tier1_per_minute,
            Tier::Tier2 => self.tier2_per_minute,
        };
        scaled_to_window(per_minute, self.window)
    }
}

/// `per_minute` scaled to `window` (rounded down, at least one): what Qlik allows in a window.
pub fn scaled_to_window(per_minute: u32, window: Duration) -> u32 {
    let scaled = u128::from(per_minute) * window.as_millis() / 60_000;
    u32::try_from(scaled).unwrap_or(u32::MAX).max(1)
}

/// How far from the time of the answer a `Ratelimit-Reset` may be and still be believed.
const MAX_RESET_DISTANCE: TimeDelta = TimeDelta::days(1);

/// What the tenant said about one tier's budget in the `Ratelimit-Limit`,
/// `Ratelimit-Remaining` and `Ratelimit-Reset` headers of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportedBudget {
    /// `Ratelimit-Limit`: requests allowed per window.
    pub limit: u32,
    /// `Ratelimit-Remaining`: requests left in the current window (never above `limit`).
    pub remaining: u32,
    /// `Ratelimit-Reset`: when the window frees up, as the tenant's clock says (the header
    /// carries epoch seconds).
    pub reset_at: DateTime<Utc>,
    /// When the answer carrying the headers arrived, by our clock.
    pub seen_at: DateTime<Utc>,
}

impl ReportedBudget {
    /// Requests counted against the window: the limit minus what remains.
    pub fn used(&self) -> u32 {
        self.limit - self.remaining
    }

    /// Reads the three header values of an answer that arrived at `seen_at`. `None` unless
    /// all three are there and believable: whole numbers (surrounding blanks allowed), a
    /// limit of at least 1, no more remaining than the limit, and a reset (epoch seconds)
    /// within a day of `seen_at` either way. A tenant or proxy sending something else is
    /// ignored rather than shown.
    pub fn parse(
        limit: Option<&str>,
        remaining: Option<&str>,
        reset: Option<&str>,
        seen_at: DateTime<Utc>,
    ) -> Option<ReportedBudget> {
        let number = |v: Option<&str>| v?.trim().parse::<u64>().ok();
        let limit = u32::try_from(number(limit)?).ok().filter(|l| *l > 0)?;
        let remaining = u32::try_from(number(remaining)?)
            .ok()
            .filter(|r| *r <= limit)?;
        let reset_at = i64::try_from(number(reset)?)
            .ok()
            .and_then(|secs| DateTime::from_timestamp(secs, 0))
            .filter(|at| (*at - seen_at).abs() <= MAX_RESET_DISTANCE)?;
        Some(ReportedBudget {
            limit,
            remaining,
            reset_at,
            seen_at,
        })
    }
}

/// Send-slot bookkeeping of one tier.
#[derive(Debug)]
struct TierSlots {
    limit: usize,
    /// The reserved send times that may still count in the window, oldest first.
    reserved: VecDeque<Instant>,
    /// Set after a 429: nothing in this tier goes out before it.
    blocked_until: Option<Instant>,
    /// How late our own requests were answered after their slots, over the last window.
    lag: SlidingMax,
}

impl TierSlots {
    fn new(limit: u32) -> TierSlots {
        TierSlots {
            limit: limit.max(1) as usize,
            reserved: VecDeque::new(),
            blocked_until: None,
            lag: SlidingMax::default(),
        }
    }

    /// The window as the tenant may apply it to our slots: `window` plus the longest
    /// slot-to-answer lag of the last window (at most a tenth of the window).
    ///
    /// The tenant counts a request when it arrives, which can be well after its slot on a
    /// loaded machine or network, and frees it a window after that. Each request arrived no
    /// later than its answer, so a slot aged by this longer window is surely free on the
    /// tenant's side too. Aged by `window` alone, a slot whose request arrived late was
    /// reused while the tenant still counted it (a 429), and answers then said less was
    /// left than believed, so our own late requests were booked as someone else's made
    /// just now and held slots a whole extra window.
    fn window(&self, now: Instant, window: Duration) -> Duration {
        window + self.lag.max(now, window).min(window / 10)
    }

    /// Books requests the tenant counted and this limiter did not make: `remaining` is what
    /// the tenant says is left now, `reset_in` when its window frees a slot. Only ever
    /// lowers the belief.
    fn correct(&mut self, now: Instant, window: Duration, remaining: u32, reset_in: Duration) {
        let window = self.window(now, window);
        // What the tenant can have counted of ours: slots taken in the window up to now
        // (those reserved for later are not sent yet).
        let counted = self
            .reserved
            .iter()
            .filter(|at| **at <= now && **at + window > now)
            .count();
        let believed = self.limit.saturating_sub(counted);
        let unseen = believed.saturating_sub(remaining as usize);
        if unseen > 0 {
            // The tenant frees its oldest counted request at the reset: the first unseen one
            // leaves then; the others are taken as made just now (never sooner than real).
            let oldest = now
                .checked_sub(window.saturating_sub(reset_in))
                .unwrap_or(now);
            self.reserved.push_back(oldest);
            for _ in 1..unseen {
                self.reserved.push_back(now);
            }
            self.reserved.make_contiguous().sort();
        }
        if remaining == 0 {
            let until = now + reset_in.min(window);
            self.blocked_until = Some(self.blocked_until.map_or(until, |b| b.max(until)));
        }
    }

    /// The k-th request may go no earlier than a window after the (k − limit)-th.
    fn reserve(&mut self, now: Instant, window: Duration) -> Instant {
        let window = self.window(now, window);
        // Slots are kept while the tenant may count them, not just the last `limit`: slots
        // reserved ahead (callers waiting for the window) would otherwise push out slots
        // already used and still counted, and answers would then seem to count more than
        // ours.
        while self.reserved.front().is_some_and(|at| *at + window <= now) {
            self.reserved.pop_front();
        }
        let mut at = now;
        if let Some(kth) = self
            .reserved
            .len()
            .checked_sub(self.limit)
            .and_then(|i| self.reserved.get(i))
        {
            at = at.max(*kth + window);
        }
        if let Some(blocked) = self.blocked_until {
            at = at.max(blocked);
        }
        self.reserved.push_back(at);
        at
    }

    /// Notes that the request sent in slot `slot` was answered (or failed) at `now`.
    fn answered(&mut self, now: Instant, window: Duration, slot: Instant) {
        self.lag
            .push(now, now.saturating_duration_since(slot), window);
    }

    /// The limit minus the slots reserved within the window before `now` (slots reserved
    /// for later count as taken); 0 while a 429 blocks the tier.
    fn remaining(&self, now: Instant, window: Duration) -> u32 {
        if self.blocked_until.is_some_and(|b| b > now) {
            return 0;
        }
        let window = self.window(now, window);
        let taken = self
            .reserved
            .iter()
            .filter(|at| **at + window > now)
            .count();
        u32::try_from(self.limit.saturating_sub(taken)).unwrap_or(u32::MAX)
    }
}

/// The largest of the values pushed within the last window, kept as a monotonic queue: each
/// push and query is amortised O(1), which matters at tens of thousands of requests a window.
#[derive(Debug, Default)]
struct SlidingMax {
    /// (when, value), values strictly decreasing from the front.
    entries: VecDeque<(Instant, Duration)>,
}

impl SlidingMax {
    fn push(&mut self, now: Instant, value: Duration, window: Duration) {
        while self
            .entries
            .front()
            .is_some_and(|(at, _)| *at + window <= now)
        {
            self.entries.pop_front();
        }
        while self.entries.back().is_some_and(|(_, v)| *v <= value) {
            self.entries.pop_back();
        }
        self.entries.push_back((now, value));
    }

    /// The largest value pushed within `window` before `now`: the first one not expired,
    /// since values decrease from the front.
    fn max(&self, now: Instant, window: Duration) -> Duration {
        self.entries
            .iter()
            .find(|(at, _)| *at + window > now)
            .map_or(Duration::ZERO, |(_, v)| *v)
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
    /// Per tier, what the tenant's headers said last.
    reported: Mutex<[Option<ReportedBudget>; 2]>,
}

impl RateLimiter {
    /// A limiter with the given limits.
    pub fn new(limits: RateLimits) -> RateLimiter {
        RateLimiter {
            limits,
            margin: (limits.window / 100).min(Duration::from_millis(500)),
            tiers: Mutex::new([
                TierSlots::new(limits.per_window(Tier::Tier1)),
                TierSlots::new(limits.per_window(Tier::Tier2)),
            ]),
            reported: Mutex::new([None; 2]),
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

    /// What is left of `tier`'s budget: the limit minus the send slots reserved within the
    /// last window (including slots reserved for later, which are taken already), and 0
    /// while a 429 blocks the tier. A snapshot: the budget refills as the window slides.
    pub fn remaining(&self, tier: Tier) -> u32 {
        let now = Instant::now();
        let tiers = self.tiers.lock().unwrap_or_else(|e| e.into_inner());
        tiers[Self::index(tier)].remaining(now, self.limits.window + self.margin)
    }

    /// Waits until a request of `tier` may be sent.
    pub async fn acquire(&self, tier: Tier) {
        let at = self.reserve(tier);
        tokio::time::sleep_until(at).await;
    }

    /// Notes that the request sent in `slot` (what [`RateLimiter::reserve`] returned) was
    /// just answered, or failed: how late answers come after their slots tells how long the
    /// tenant may still count our requests after the limiter has let them leave its window.
    /// Call it for every request, before [`RateLimiter::record_reported`] of its answer.
    pub fn answered(&self, tier: Tier, slot: Instant) {
        let mut tiers = self.tiers.lock().unwrap_or_else(|e| e.into_inner());
        tiers[Self::index(tier)].answered(Instant::now(), self.limits.window + self.margin, slot);
    }

    /// Takes what the tenant said about `tier`'s budget in an answer that just arrived: the
    /// pacing books what the tenant counted beyond this limiter's own requests (see the
    /// module doc), and the report is kept — the latest answer wins; one that arrived before
    /// the record already held (by `seen_at`) is not kept.
    pub fn record_reported(&self, tier: Tier, budget: ReportedBudget) {
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut reported[Self::index(tier)];
        if slot.is_some_and(|held| held.seen_at > budget.seen_at) {
            // Older than what is known: neither kept nor believed.
            return;
        }
        *slot = Some(budget);
        // The header has whole seconds: the reset may be up to a second later than it says.
        let reset_in = (budget.reset_at - budget.seen_at)
            .to_std()
            .unwrap_or(Duration::ZERO)
            + RESET_PRECISION;
        let mut tiers = self.tiers.lock().unwrap_or_else(|e| e.into_inner());
        tiers[Self::index(tier)].correct(
            Instant::now(),
            self.limits.window + self.margin,
            budget.remaining,
            reset_in,
        );
    }

    /// What the tenant last said about `tier`'s budget, if any answer in that tier carried
    /// believable `Ratelimit-*` headers.
    pub fn reported(&self, tier: Tier) -> Option<ReportedBudget> {
        let reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        reported[Self::index(tier)]
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

    /// A limiter with `t1` reads and `t2` writes a minute over a `window_ms` window.
    pub(super) fn limiter(t1: u32, t2: u32, window_ms: u64) -> RateLimiter {
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
    async fn a_five_minute_window_allows_five_minutes_of_budget_at_once() {
        let l = limiter(1000, 100, 300_000);
        assert_eq!(l.limits().per_window(Tier::Tier2), 500);
        let start = Instant::now();
        let slots: Vec<Duration> = (0..501).map(|_| l.reserve(Tier::Tier2) - start).collect();
        assert!(slots[..500].iter().all(|d| d.is_zero()));
        assert_eq!(slots[500], Duration::from_secs(300) + l.margin);
        assert_eq!(
            scaled_to_window(7, Duration::from_secs(1)),
            1,
            "at least one"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_limit_in_any_window() {
        let l = limiter(100, 10, 60_000);
        let start = Instant::now();
        let mut sent = Vec::new();
        for i in 0..55u64 {
            // Callers arrive irregularly.
            tokio::time::advance(Duration::from_millis(i % 7 * 780)).await;
            l.acquire(Tier::Tier2).await;
            sent.push(Instant::now() - start);
        }
        for (i, t) in sent.iter().enumerate() {
            let in_window = sent[i..]
                .iter()
                .take_while(|u| **u < *t + Duration::from_millis(60_000))
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
mod remaining {
    use super::*;

    fn limiter(t1: u32, t2: u32) -> RateLimiter {
        RateLimiter::new(RateLimits {
            tier1_per_minute: t1,
            tier2_per_minute: t2,
            window: Duration::from_secs(60),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_shrinks_with_each_slot_and_refills_as_the_window_slides() {
        let l = limiter(5, 3);
        let window = Duration::from_secs(60) + l.margin;
        assert_eq!(l.remaining(Tier::Tier2), 3);
        l.reserve(Tier::Tier2);
        assert_eq!(l.remaining(Tier::Tier2), 2);
        tokio::time::advance(Duration::from_secs(10)).await;
        l.reserve(Tier::Tier2);
        l.reserve(Tier::Tier2);
        assert_eq!(l.remaining(Tier::Tier2), 0);
        // Slots reserved for later (the window is full) are taken too: never below 0.
        l.reserve(Tier::Tier2);
        assert_eq!(l.remaining(Tier::Tier2), 0);
        // The other tier is untouched.
        assert_eq!(l.remaining(Tier::Tier1), 5);
        // The two slots taken at 10 s leave the window a window later; the one reserved
        // for later stays in it.
        tokio::time::advance(window - Duration::from_secs(1)).await;
        assert_eq!(l.remaining(Tier::Tier2), 0);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(l.remaining(Tier::Tier2), 2);
        // A window after the last reservation, the whole budget is back.
        tokio::time::advance(window).await;
        assert_eq!(l.remaining(Tier::Tier2), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_empties_the_budget_until_the_block_ends() {
        let l = limiter(5, 3);
        l.reserve(Tier::Tier1);
        assert_eq!(l.remaining(Tier::Tier1), 4);
        l.block(Tier::Tier1, Duration::from_secs(13));
        assert_eq!(l.remaining(Tier::Tier1), 0);
        assert_eq!(l.remaining(Tier::Tier2), 3);
        tokio::time::advance(Duration::from_secs(13)).await;
        assert_eq!(l.remaining(Tier::Tier1), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_limit_of_zero_is_one() {
        let l = limiter(0, 3);
        assert_eq!(l.remaining(Tier::Tier1), 1);
        l.reserve(Tier::Tier1);
        assert_eq!(l.remaining(Tier::Tier1), 0);
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

#[cfg(test)]
mod reported {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    /// `Ratelimit-Limit`, `-Remaining` and `-Reset` as sent, and what is believed of them.
    type Case<'a> = (
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        Option<ReportedBudget>,
    );

    #[test]
    fn header_sets_are_believed_only_when_whole_and_sane() {
        let seen = at("2026-12-02T07:14:23Z");
        let reset = seen.timestamp() + 37;
        let (r, day) = (reset.to_string(), (seen.timestamp() + 86_400).to_string());
        let past_day = (seen.timestamp() - 86_401).to_string();
        let ok = |limit, remaining, reset_at| {
            Some(ReportedBudget {
                limit,
                remaining,
                reset_at,
                seen_at: seen,
            })
        };
        let cases: &[Case] = &[
            (
                Some("1000"),
                Some("963"),
                Some(&r),
                ok(1000, 963, at("2026-12-02T07:15:00Z")),
            ),
            // Blanks around a value are fine; the whole window may be left or used up.
            (
                Some(" 100 "),
                Some("\t100"),
                Some(&r),
                ok(100, 100, at("2026-12-02T07:15:00Z")),
            ),
            (
                Some("100"),
                Some("0"),
                Some(&r),
                ok(100, 0, at("2026-12-02T07:15:00Z")),
            ),
            // A reset a day away, or a little in the past (clocks differ), is still believed.
            (
                Some("5"),
                Some("1"),
                Some(&day),
                ok(5, 1, at("2026-12-03T07:14:23Z")),
            ),
            (
                Some("5"),
                Some("1"),
                Some("1796195600"),
                ok(5, 1, at("2026-12-02T07:13:20Z")),
            ),
            // Missing.
            (None, Some("963"), Some(&r), None),
            (Some("1000"), None, Some(&r), None),
            (Some("1000"), Some("963"), None, None),
            (None, None, None, None),
            // Not whole numbers.
            (Some("1000"), Some("-1"), Some(&r), None),
            (Some("1000.0"), Some("963"), Some(&r), None),
            (Some("1000"), Some("963"), Some("soon"), None),
            (Some("1000"), Some(""), Some(&r), None),
            (Some("100, 100;w=60"), Some("99"), Some(&r), None),
            (Some("99999999999"), Some("963"), Some(&r), None),
            // Absurd: nothing allowed, more left than allowed, a reset over a day away
            // (delta-seconds instead of epoch land in 1970), or beyond any clock.
            (Some("0"), Some("0"), Some(&r), None),
            (Some("100"), Some("101"), Some(&r), None),
            (
                Some("5"),
                Some("1"),
                Some(&(seen.timestamp() + 86_401).to_string()),
                None,
            ),
            (Some("5"), Some("1"), Some(&past_day), None),
            (Some("5"), Some("1"), Some("37"), None),
            (Some("5"), Some("1"), Some("18446744073709551615"), None),
        ];
        for (limit, remaining, reset, want) in cases {
            assert_eq!(
                ReportedBudget::parse(*limit, *remaining, *reset, seen),
                *want,
                "{limit:?} {remaining:?} {reset:?}"
            );
        }
        assert_eq!(ok(1000, 963, seen).unwrap().used(), 37);
    }

    #[tokio::test(start_paused = true)]
    async fn the_latest_answer_per_tier_is_kept() {
        let l = super::tests::limiter(2, 1, 60_000);
        assert_eq!(l.reported(Tier::Tier1), None);
        assert_eq!(l.reported(Tier::Tier2), None);
        let budget = |remaining, seen: &str| ReportedBudget {
            limit: 1000,
            remaining,
            reset_at: at("2026-12-02T07:15:00Z"),
            seen_at: at(seen),
        };
        l.record_reported(Tier::Tier1, budget(963, "2026-12-02T07:14:23Z"));
        assert_eq!(
            l.reported(Tier::Tier1),
            Some(budget(963, "2026-12-02T07:14:23Z"))
        );
        assert_eq!(l.reported(Tier::Tier2), None);
        // A later answer replaces it, even with more left (the window slid).
        l.record_reported(Tier::Tier1, budget(990, "2026-12-02T07:14:24Z"));
        assert_eq!(l.reported(Tier::Tier1).unwrap().remaining, 990);
        // An answer that arrived earlier but is recorded late does not.
        l.record_reported(Tier::Tier1, budget(1, "2026-12-02T07:14:20Z"));
        assert_eq!(l.reported(Tier::Tier1).unwrap().remaining, 990);
        // Tiers are kept apart.
        l.record_reported(Tier::Tier2, budget(0, "2026-12-02T07:14:25Z"));
        assert_eq!(l.reported(Tier::Tier2).unwrap().remaining, 0);
        assert_eq!(l.reported(Tier::Tier1).unwrap().remaining, 990);
        // Reports of more than the configured limit never raise it.
        assert_eq!(l.remaining(Tier::Tier1), 2);
        assert_eq!(l.limits().per_window(Tier::Tier1), 2);
    }

    fn reported(limit: u32, remaining: u32, reset_in_secs: i64) -> ReportedBudget {
        let seen = at("2026-12-02T07:14:23Z");
        ReportedBudget {
            limit,
            remaining,
            reset_at: seen + TimeDelta::seconds(reset_in_secs),
            seen_at: seen,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn what_someone_else_spent_is_booked_until_the_tenant_frees_it() {
        let l = super::tests::limiter(1000, 10, 60_000);
        let window = Duration::from_secs(60) + l.margin;
        let start = Instant::now();
        // Two of ours went out; the tenant says 3 are left of 10: 5 were someone else's.
        l.reserve(Tier::Tier2);
        l.reserve(Tier::Tier2);
        l.record_reported(Tier::Tier2, reported(10, 3, 40));
        assert_eq!(l.remaining(Tier::Tier2), 3);
        // The same report again books nothing more: the belief already matches.
        l.record_reported(Tier::Tier2, reported(10, 3, 40));
        assert_eq!(l.remaining(Tier::Tier2), 3);
        // So three more go at once; the fourth when the tenant said its oldest counted
        // request leaves (40 s), the fifth when the next leaves: a window after ours.
        let slots: Vec<Duration> = (0..5).map(|_| l.reserve(Tier::Tier2) - start).collect();
        assert_eq!(&slots[..3], &[Duration::ZERO; 3]);
        assert_eq!(
            slots[3],
            Duration::from_secs(41),
            "the reset, plus its precision"
        );
        assert_eq!(slots[4], window);
        // Reports of more left than believed are not taken.
        l.record_reported(Tier::Tier2, reported(10, 10, 0));
        assert_eq!(l.remaining(Tier::Tier2), 0);
    }

    /// A tenant counting every request when it arrives, over a sliding 60 s window, and
    /// answering with the `Ratelimit-*` headers the emulator sends.
    struct Tenant {
        limit: u32,
        arrivals: VecDeque<Instant>,
        refused: u32,
        epoch: DateTime<Utc>,
        start: Instant,
    }

    impl Tenant {
        fn answer(&mut self) -> ReportedBudget {
            let now = Instant::now();
            let window = Duration::from_secs(60);
            while self.arrivals.front().is_some_and(|a| *a + window <= now) {
                self.arrivals.pop_front();
            }
            if self.arrivals.len() >= self.limit as usize {
                self.refused += 1;
            } else {
                self.arrivals.push_back(now);
            }
            let used = u32::try_from(self.arrivals.len()).unwrap();
            let reset_in = self
                .arrivals
                .front()
                .map_or(Duration::ZERO, |a| (*a + window) - now);
            let seen_at = self.epoch + TimeDelta::from_std(now - self.start).unwrap();
            ReportedBudget {
                limit: self.limit,
                remaining: self.limit.saturating_sub(used),
                reset_at: seen_at + TimeDelta::from_std(reset_in).unwrap(),
                seen_at,
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn our_own_late_arrivals_are_not_taken_for_someone_elses() {
        let l = super::tests::limiter(1000, 10, 60_000);
        let start = Instant::now();
        let tenant = Tenant {
            limit: 10,
            arrivals: VecDeque::new(),
            refused: 0,
            epoch: at("2026-12-02T07:00:00Z"),
            start,
        };
        // Four workers sending forty requests between them, as the reconciles do. During
        // the first burst each request reaches the tenant (and is answered) two seconds
        // after its slot, far beyond the limiter's margin, as on a loaded machine; later
        // ones a tenth of a second after.
        let l = std::sync::Arc::new(l);
        let tenant = std::sync::Arc::new(Mutex::new(tenant));
        let sent = std::sync::Arc::new(Mutex::new(Vec::new()));
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let (l, tenant, sent) = (l.clone(), tenant.clone(), sent.clone());
                tokio::spawn(async move {
                    for _ in 0..10 {
                        let slot = l.reserve(Tier::Tier2);
                        tokio::time::sleep_until(slot).await;
                        let lag = if slot - start < Duration::from_secs(30) {
                            2000
                        } else {
                            100
                        };
                        tokio::time::sleep(Duration::from_millis(lag)).await;
                        let answer = tenant.lock().unwrap().answer();
                        l.answered(Tier::Tier2, slot);
                        l.record_reported(Tier::Tier2, answer);
                        sent.lock().unwrap().push(slot - start);
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.unwrap();
        }
        let mut sent = sent.lock().unwrap().clone();
        sent.sort();
        let tenant = tenant.lock().unwrap();
        // No 429, although every request of the first burst arrived beyond the margin.
        assert_eq!(tenant.refused, 0, "429s; sent at {sent:?}");
        // And no slot is held a whole extra window by our own late requests taken for
        // someone else's: ten a window, the fourth ten three windows (plus the margin and
        // the two-second lag each time) after the first.
        assert!(
            sent[39] <= Duration::from_secs(190),
            "the last went at {:?}; sent at {sent:?}",
            sent[39]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_left_waits_for_the_reset() {
        let l = super::tests::limiter(1000, 10, 60_000);
        let start = Instant::now();
        l.record_reported(Tier::Tier2, reported(10, 0, 17));
        assert_eq!(l.remaining(Tier::Tier2), 0);
        assert_eq!(l.reserve(Tier::Tier2) - start, Duration::from_secs(18));
        // The other tier is untouched.
        assert_eq!(l.reserve(Tier::Tier1), start);
    }
}
