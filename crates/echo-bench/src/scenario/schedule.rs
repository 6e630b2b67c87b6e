//! The fixed-rate schedule of `--rate`: exchange k of the run is due at
//! start + k/N, whichever worker is free takes it, and its latency counts
//! from when it was due, so a server that stalls the senders shows in the
//! percentiles instead of hiding behind the exchanges it held back
//! (coordinated omission, as wrk2 corrects it). A run bounded by a count has
//! that many exchanges on its timetable and no more, so no worker waits for
//! one beyond the count and the run ends with its last exchange.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// The run's timetable: a start and a rate, perhaps a length, and the next
/// exchange to hand out.
#[derive(Debug)]
pub(crate) struct Schedule {
    start: Instant,
    /// Exchanges per second, over all workers.
    rate: f64,
    /// How many exchanges the timetable has, when the run is bounded by count.
    count: Option<u64>,
    /// The number of the next exchange to hand out, counted from 0.
    next: AtomicU64,
}

impl Schedule {
    /// A schedule of `rate` exchanges per second from `start`, `count` of
    /// them if given; `rate` is positive and finite, as the plan's validation
    /// makes sure.
    pub(crate) fn new(start: Instant, rate: f64, count: Option<u64>) -> Self {
        Schedule {
            start,
            rate,
            count,
            next: AtomicU64::new(0),
        }
    }

    /// When exchange `k` is due; `None` past any time a run can reach.
    pub(crate) fn due(&self, k: u64) -> Option<Instant> {
        let offset = Duration::try_from_secs_f64(k as f64 / self.rate).ok()?;
        self.start.checked_add(offset)
    }

    /// Hands out the next exchange of the run, to the worker that asks first,
    /// and tells when it is due; `None` once the count's last is handed out.
    ///
    /// A worker told `None` stops at once instead of sleeping until a due
    /// time past the count, which would hold the run's end back by up to
    /// one exchange per worker.
    pub(crate) fn take(&self) -> Option<Instant> {
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        if self.count.is_some_and(|count| k >= count) {
            return None;
        }
        self.due(k)
    }
}

/// The moment an exchange's latency counts from: when it was due, unless its
/// worker was idle then and waited for it, in which case from when the wait
/// ended.
///
/// A worker still busy with an earlier exchange when the next falls due was
/// held up by the server, and that wait belongs in the latency: this is the
/// correction for coordinated omission. A worker that was idle waits on
/// tokio's timer, which fires up to a millisecond late; that lateness is the
/// tool's own, and counting it would lift every percentile of a fast server
/// by about a millisecond.
pub(crate) fn counted_from(due: Instant, ready: Instant, woke: Instant) -> Instant {
    if ready < due { woke.max(due) } else { due }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::task::JoinSet;

    use super::*;

    #[test]
    fn exchange_k_is_due_at_k_over_the_rate() {
        let start = Instant::now();
        let schedule = Schedule::new(start, 2000.0, None);
        assert_eq!(schedule.take(), Some(start));
        assert_eq!(schedule.take(), Some(start + Duration::from_micros(500)));
        assert_eq!(schedule.due(6000), Some(start + Duration::from_secs(3)));
        let slow = Schedule::new(start, 0.5, None);
        assert_eq!(slow.due(3), Some(start + Duration::from_secs(6)));
        let absurd = Schedule::new(start, 1e-300, None);
        assert_eq!(absurd.due(1), None, "beyond any run's end");
    }

    #[tokio::test]
    async fn every_exchange_goes_to_exactly_one_worker() {
        let start = Instant::now();
        let schedule = Arc::new(Schedule::new(start, 1000.0, None));
        let mut workers = JoinSet::new();
        for _ in 0..8 {
            let schedule = Arc::clone(&schedule);
            workers.spawn(async move {
                let mut taken = Vec::new();
                for _ in 0..250 {
                    taken.push(schedule.take().expect("due"));
                    tokio::task::yield_now().await;
                }
                taken
            });
        }
        let mut all: Vec<Instant> = workers.join_all().await.into_iter().flatten().collect();
        all.sort();
        let expected: Vec<Instant> = (0..2000)
            .map(|k| start + Duration::from_secs_f64(k as f64 / 1000.0))
            .collect();
        assert_eq!(all, expected);
    }

    #[test]
    fn a_counted_timetable_ends_at_its_count() {
        let start = Instant::now();
        let schedule = Schedule::new(start, 100.0, Some(3));
        let taken: Vec<Option<Instant>> = (0..5).map(|_| schedule.take()).collect();
        assert_eq!(
            taken,
            [
                Some(start),
                Some(start + Duration::from_millis(10)),
                Some(start + Duration::from_millis(20)),
                None,
                None
            ]
        );
    }

    #[test]
    fn a_held_up_exchange_counts_from_when_it_was_due() {
        let due = Instant::now();
        let ms = Duration::from_millis;
        // Busy until 500 ms after it was due (the server stalled): all of it counts.
        assert_eq!(counted_from(due, due + ms(500), due + ms(500)), due);
        // Free exactly when due: nothing to wait for, counted from then.
        assert_eq!(counted_from(due, due, due), due);
        // Idle and waiting: the timer's lateness is the tool's, not the server's.
        assert_eq!(counted_from(due, due - ms(20), due + ms(1)), due + ms(1));
        assert_eq!(counted_from(due, due - ms(20), due - ms(1)), due);
    }
}
