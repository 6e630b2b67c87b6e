//! The growing pause of a worker whose exchanges fail, so that a dead
//! target, or one that accepts and resets, costs almost nothing and the
//! error counts say how often it was tried, not how fast the machine can be
//! refused.

use std::time::Duration;

use tokio::time::Instant;

use crate::tally::{ExchangeError, FailureKind};

/// The pause after a first failure.
pub(crate) const FIRST_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause, however many failures in a row.
pub(crate) const MAX_PAUSE: Duration = Duration::from_secs(1);

/// Pauses that double with each failure in a row, from [`FIRST_PAUSE`] to
/// [`MAX_PAUSE`], and start over after a success.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    /// A backoff that has seen no failure.
    pub(crate) fn new() -> Self {
        Backoff { next: FIRST_PAUSE }
    }

    /// The pause to take after one more failure in a row.
    pub(crate) fn failed(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(MAX_PAUSE);
        pause
    }

    /// Forgets the failures: the next one pauses [`FIRST_PAUSE`] again.
    pub(crate) fn succeeded(&mut self) {
        self.next = FIRST_PAUSE;
    }
}

/// Whether `err` makes its worker pause before the next exchange: every
/// failure of the target to answer does (refused, reset, timed out, any
/// other I/O error); a wrong answer or one too many does not, since the
/// target is there and answering, and the run fails on it anyway.
pub(crate) fn pauses_after(err: &ExchangeError) -> bool {
    !matches!(err.kind(), FailureKind::Mismatch | FailureKind::Duplicate)
}

/// Sleeps for `pause`, or until `end` if that comes first.
pub(crate) async fn pause_until(pause: Duration, end: Instant) {
    tokio::time::sleep_until((Instant::now() + pause).min(end)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_a_second_and_start_over_after_a_success() {
        let mut backoff = Backoff::new();
        let pauses: Vec<u128> = (0..10).map(|_| backoff.failed().as_millis()).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        backoff.succeeded();
        assert_eq!(backoff.failed(), FIRST_PAUSE);
        assert_eq!(backoff.failed(), FIRST_PAUSE * 2);
    }

    #[test]
    fn a_dead_target_costs_a_few_attempts_a_second() {
        // The attempts a worker makes in the first ten seconds against a
        // target that refuses every one, each failing at once.
        let mut backoff = Backoff::new();
        let mut elapsed = Duration::ZERO;
        let mut attempts = 0;
        while elapsed < Duration::from_secs(10) {
            attempts += 1;
            elapsed += backoff.failed();
        }
        assert!(attempts <= 20, "{attempts}");
    }
}
