//! The scenarios, one module each, and what the workers of one run share.
//!
//! The machinery beneath them has a module per concern: `budget` bounds the
//! run by time and count, `schedule` paces it at a fixed rate, `backoff`
//! spaces out retries against a target that refuses, `workers` runs the pool
//! of workers up to its hard deadline, `connect` makes the client side of a
//! stream connection (and the one connection that proves a server is there
//! before the load starts), and `stream` hides TCP versus Unix sockets.
//! Which scenario a plan runs is decided above, in `run`, so that no module
//! here depends on one that depends on it.

pub(crate) mod bulk;
pub(crate) mod conn;
pub(crate) mod connect;
pub(crate) mod idle;
pub(crate) mod persistent;
pub(crate) mod udp;

mod backoff;
mod budget;
mod schedule;
mod stream;
mod workers;

use std::sync::Arc;
use std::time::Duration;

use echo_proto::Endpoint;
use tokio::time::Instant;

use self::budget::Budget;
use self::schedule::Schedule;
use crate::error::BenchError;
use crate::plan::Plan;
use crate::tally::Live;

/// Time past the end of the run (and past one timeout for the exchange in
/// flight, and one for the clean close) after which workers still running are
/// abandoned and counted as failed.
const HARD_GRACE: Duration = Duration::from_secs(1);

/// What the workers of one run share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub plan: Plan,
    /// Where the load goes: the plan's first address.
    pub addr: Endpoint,
    pub budget: Budget,
    /// The timetable of a fixed-rate run; `None` for a closed loop.
    schedule: Option<Schedule>,
    pub live: Arc<Live>,
}

/// The right to start one exchange, and when its latency counts from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    /// `None` in a closed loop: the latency counts from when the exchange starts.
    from: Option<Instant>,
}

impl Slot {
    /// The moment the exchange's latency counts from, where `now` is when it starts.
    pub(crate) fn counted_from(self, now: Instant) -> Instant {
        self.from.unwrap_or(now)
    }
}

impl Shared {
    /// The shared state of `plan`'s run, started at `started`, feeding `live`.
    ///
    /// # Errors
    /// [`BenchError::InvalidPlan`] when the plan has no address.
    pub(crate) fn new(
        plan: &Plan,
        live: Arc<Live>,
        started: Instant,
    ) -> Result<Arc<Self>, BenchError> {
        Ok(Arc::new(Shared {
            plan: plan.clone(),
            addr: first_address(plan)?,
            budget: Budget::new(started + plan.duration, plan.count),
            schedule: plan.rate.map(|rate| Schedule::new(started, rate)),
            live,
        }))
    }

    /// The moment after which workers still running are abandoned: the end of
    /// the run, plus one timeout for the exchange in flight and one for a clean close.
    fn hard_deadline(&self) -> Instant {
        self.budget.end + self.plan.timeout * 2 + HARD_GRACE
    }

    /// Waits until the next exchange may start and hands out the right to
    /// start it; `None` once the run's time or count is spent.
    ///
    /// In a closed loop that is at once; at a fixed rate it is when the
    /// schedule's next exchange falls due, or at once if that has passed.
    pub(crate) async fn next_slot(&self) -> Option<Slot> {
        let Some(schedule) = &self.schedule else {
            return self.budget.take().then_some(Slot { from: None });
        };
        let ready = Instant::now();
        let due = schedule.take().filter(|&due| due < self.budget.end)?;
        tokio::time::sleep_until(due).await;
        let woke = Instant::now();
        // No exchange starts at or after the end, however far behind the
        // workers have fallen: what was due and not sent shows as a rate short of the asked.
        self.budget.take().then_some(Slot {
            from: Some(schedule::counted_from(due, ready, woke)),
        })
    }

    /// Sleeps for `pause`, or until the run's end if that comes first.
    pub(crate) async fn pause(&self, pause: Duration) {
        backoff::pause_until(pause, self.budget.end).await;
    }
}

/// The address a plan's load goes to.
///
/// # Errors
/// [`BenchError::InvalidPlan`] when the plan has none.
pub(crate) fn first_address(plan: &Plan) -> Result<Endpoint, BenchError> {
    plan.destination()
        .map(|destination| destination.endpoint.clone())
        .ok_or_else(|| BenchError::InvalidPlan(format!("{} resolved to no address", plan.target)))
}

/// Worker `worker`'s two messages of `size` bytes, sent in turn so that a
/// stale or replayed reply fails the check against the current one.
pub(crate) fn alternating_messages(worker: usize, size: usize) -> [Vec<u8>; 2] {
    [
        echo_proto::pattern(seed(worker, 0), size),
        echo_proto::pattern(seed(worker, 1), size),
    ]
}

/// The payload seed of worker `worker`'s `n`th distinct message, so no two
/// workers send the same bytes and a reply that went to the wrong connection fails.
pub(crate) fn seed(worker: usize, n: u64) -> u64 {
    ((worker as u64) << 32) | n
}
