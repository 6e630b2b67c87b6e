//! The scenarios, one module each, and what the workers of one run share.
//!
//! The machinery beneath them has a module per concern: `budget` bounds the
//! run by time and count, `schedule` paces it at a fixed rate, `backoff`
//! spaces out retries after the failures `backoff::pauses_after` names,
//! `workers` runs the pool of workers up to its hard deadline, `connect`
//! makes the client side of a stream connection (and the one connection
//! that proves a server is there before the load starts), and `stream`
//! hides TCP versus Unix sockets.
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
mod conn_tls;
mod schedule;
mod stream;
mod workers;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use echo_proto::Endpoint;
use tokio::time::Instant;

use self::budget::Budget;
use self::schedule::Schedule;
use crate::error::{BenchError, PlanError};
use crate::plan::Plan;
use crate::tally::Live;
use crate::tls::Connector;

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
    /// The TLS client of a run over TLS, built once for the run.
    pub tls: Option<Connector>,
    /// When the run started: what `last_end` counts from.
    started: Instant,
    /// When the latest exchange to end so far ended, in nanoseconds since
    /// `started`; 0 before any has.
    last_end: AtomicU64,
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
        tls: Option<Connector>,
        started: Instant,
    ) -> Result<Arc<Self>, BenchError> {
        Ok(Arc::new(Shared {
            plan: plan.clone(),
            addr: first_address(plan)?,
            budget: Budget::new(started + plan.duration, plan.count),
            schedule: plan
                .rate
                .map(|rate| Schedule::new(started, rate, plan.count)),
            live,
            tls,
            started,
            last_end: AtomicU64::new(0),
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

    /// Sleeps for `pause`, or until the run's end if that comes first; not
    /// at all once the count is handed out, since no exchange is left to
    /// space out and the wait would only hold the run's end back.
    pub(crate) async fn pause(&self, pause: Duration) {
        if self.budget.count_reached() {
            return;
        }
        backoff::pause_until(pause, self.budget.end).await;
    }

    /// Notes that an exchange has just ended, well or not (its reply checked,
    /// its failure known, its datagram given up), so that a run ended by its
    /// count can be timed to its last exchange rather than to its workers'
    /// closing connections.
    pub(crate) fn exchange_ended(&self) {
        let since_start = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        // At least a nanosecond, so that 0 keeps meaning "none yet".
        self.last_end
            .fetch_max(since_start.max(1), Ordering::Relaxed);
    }

    /// The time the run's rate is to be taken over, asked once its workers
    /// are done: from the start to the end of its last exchange when the
    /// count ended the run; `None`, the whole run, when its time did (or
    /// when no exchange ended at all).
    ///
    /// The workers' wind-down after the count (closing persistent
    /// connections) exchanges nothing, and counting it would put the rate
    /// below the one the run kept to.
    pub(crate) fn rate_window(&self) -> Option<Duration> {
        if !self.budget.count_reached() {
            return None;
        }
        match self.last_end.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }
}

/// The address a plan's load goes to.
///
/// # Errors
/// [`BenchError::InvalidPlan`] when the plan has none.
pub(crate) fn first_address(plan: &Plan) -> Result<Endpoint, BenchError> {
    plan.destination()
        .map(|destination| destination.endpoint.clone())
        .ok_or_else(|| {
            BenchError::InvalidPlan(PlanError::NoAddress {
                target: plan.target.to_string(),
            })
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Scenario;

    #[tokio::test(start_paused = true)]
    async fn a_run_ended_by_its_count_is_timed_to_its_last_exchange() {
        let addr: std::net::SocketAddr = "127.0.0.1:7".parse().expect("literal");
        let plan = Plan {
            count: Some(2),
            rate: Some(100.0),
            duration: Duration::from_secs(60),
            ..Plan::local(Scenario::Persistent, addr)
        };
        let started = Instant::now();
        let shared = Shared::new(&plan, Arc::new(Live::default()), None, started).expect("plan");
        assert!(shared.next_slot().await.is_some());
        shared.exchange_ended();
        assert!(shared.next_slot().await.is_some());
        assert_eq!(Instant::now() - started, Duration::from_millis(10));
        tokio::time::advance(Duration::from_millis(3)).await;
        shared.exchange_ended();
        // Past the count no worker waits: the next is refused at once.
        assert!(shared.next_slot().await.is_none());
        assert_eq!(Instant::now() - started, Duration::from_millis(13));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(shared.rate_window(), Some(Duration::from_millis(13)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_ended_by_its_time_is_timed_whole() {
        let addr: std::net::SocketAddr = "127.0.0.1:7".parse().expect("literal");
        let plan = Plan {
            count: Some(1000),
            duration: Duration::from_millis(50),
            ..Plan::local(Scenario::Conn, addr)
        };
        let shared =
            Shared::new(&plan, Arc::new(Live::default()), None, Instant::now()).expect("plan");
        assert!(shared.next_slot().await.is_some());
        shared.exchange_ended();
        tokio::time::advance(Duration::from_millis(50)).await;
        assert!(shared.next_slot().await.is_none());
        assert_eq!(shared.rate_window(), None);
    }
}
