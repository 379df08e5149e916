//! How every retry loop in ferrite waits and reports: exponential backoff with jitter up to
//! a cap, and failure logging at a bounded rate.
//!
//! ```text
//!  attempt ─► failed ─► FailureLog::failure() ─► Some(n): log it (n failures since the last
//!     ▲                        │                          line) ─ None: stay quiet
//!     │                        ▼
//!     └──── sleep(Backoff::next_delay()): min, 2·min, 4·min … cap, each stretched by a
//!                                          random 0–100 % so peers don't retry in step
//!  success ─► Backoff::reset(), FailureLog::success() ─► Some(n): log the recovery
//! ```
//!
//! Invariants: a loop that retries forever costs at most one attempt per cap (plus jitter)
//! once the failure lasts, whatever the failure; and it writes at most one log line per
//! [`FailureLog`] interval however often it fails, so a dependency that stays down neither
//! burns a core nor floods the log.

use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// Exponential backoff with jitter: `min`, doubling up to `max`, each delay stretched by a
/// random factor in [1, 2). Never runs out.
#[derive(Debug)]
pub struct Backoff {
    builder: ExponentialBuilder,
    delays: ExponentialBackoff,
    max: Duration,
}

impl Backoff {
    /// Delays from `min` doubling to `max` (before jitter).
    pub fn new(min: Duration, max: Duration) -> Self {
        let builder = ExponentialBuilder::new()
            .with_min_delay(min)
            .with_max_delay(max.max(min))
            .without_max_times()
            .with_jitter();
        Self {
            builder,
            delays: builder.build(),
            max: max.max(min),
        }
    }

    /// How long to wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        // Without a limit on attempts or total delay the sequence never ends; the fallback
        // is the cap, never a busy loop.
        self.delays.next().unwrap_or(self.max)
    }

    /// Start again from the shortest delay (after a success).
    pub fn reset(&mut self) {
        self.delays = self.builder.build();
    }
}

/// Decides which failures of a repeating operation get a log line: the first of a streak,
/// then at most one per `every`, each saying how many failures it stands for.
#[derive(Debug)]
pub struct FailureLog {
    every: Duration,
    last_logged: Option<Instant>,
    /// Failures since the last line.
    unlogged: u64,
    /// Failures in the current streak.
    streak: u64,
}

impl FailureLog {
    /// At most one line per `every` while failures last.
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last_logged: None,
            unlogged: 0,
            streak: 0,
        }
    }

    /// Record a failure. `Some(n)`: log this one, standing for `n` failures (itself and the
    /// ones left unlogged since the last line); `None`: stay quiet.
    pub fn failure(&mut self) -> Option<u64> {
        self.streak += 1;
        self.unlogged += 1;
        let due = self.last_logged.is_none_or(|t| t.elapsed() >= self.every);
        if !due {
            return None;
        }
        self.last_logged = Some(Instant::now());
        Some(std::mem::take(&mut self.unlogged))
    }

    /// Record a success. `Some(n)`: a streak of `n` failures just ended (log the recovery);
    /// `None`: nothing was failing.
    pub fn success(&mut self) -> Option<u64> {
        self.last_logged = None;
        self.unlogged = 0;
        let streak = std::mem::take(&mut self.streak);
        (streak > 0).then_some(streak)
    }

    /// Failures in the current streak.
    pub fn streak(&self) -> u64 {
        self.streak
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_to_the_cap_with_jitter_and_reset() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(2));
        let mut b = Backoff::new(min, max);
        let delays: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        for (i, d) in delays.iter().enumerate() {
            let base = (min * 2u32.pow(i.min(5) as u32)).min(max);
            assert!(
                *d >= base && *d < base * 2,
                "delay {i}: {d:?} for base {base:?}"
            );
        }
        assert!(delays[11] >= max, "capped, not shrinking");
        b.reset();
        assert!(b.next_delay() < min * 2);
    }

    #[test]
    fn jitter_spreads_peers_that_fail_together() {
        let first: Vec<Duration> = (0..8)
            .map(|_| Backoff::new(Duration::from_secs(1), Duration::from_secs(1)).next_delay())
            .collect();
        assert!(
            first.iter().any(|d| *d != first[0]),
            "eight fresh backoffs all waited {:?}",
            first[0]
        );
    }

    #[test]
    fn failures_are_logged_once_per_interval_with_a_count() {
        let mut log = FailureLog::new(Duration::from_secs(3600));
        assert_eq!(
            log.failure(),
            Some(1),
            "the first failure of a streak is logged"
        );
        for _ in 0..99 {
            assert_eq!(log.failure(), None);
        }
        assert_eq!(log.streak(), 100);
        assert_eq!(log.success(), Some(100), "the recovery names the streak");
        assert_eq!(log.success(), None);
        assert_eq!(log.failure(), Some(1), "a new streak starts loud again");

        let mut often = FailureLog::new(Duration::ZERO);
        assert_eq!(often.failure(), Some(1));
        assert_eq!(often.failure(), Some(1));
    }
}
