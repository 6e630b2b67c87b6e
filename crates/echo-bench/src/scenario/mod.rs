//! The scenarios, one module each, and what the workers of one run share.
//!
//! The machinery beneath them has a module per concern: `budget` bounds the
//! run by time and count, `workers` runs the pool of workers up to its hard
//! deadline, and `connect` makes the client side of a TCP connection.
//! Which scenario a plan runs is decided above, in `run`, so that no module
//! here depends on one that depends on it.

pub(crate) mod bulk;
pub(crate) mod conn;
pub(crate) mod idle;
pub(crate) mod persistent;
pub(crate) mod udp;

mod budget;
mod connect;
mod workers;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use self::budget::Budget;
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
    pub budget: Budget,
    pub live: Arc<Live>,
}

impl Shared {
    /// The shared state of `plan`'s run, started at `started`, feeding `live`.
    pub(crate) fn new(plan: &Plan, live: Arc<Live>, started: Instant) -> Arc<Self> {
        Arc::new(Shared {
            plan: plan.clone(),
            budget: Budget::new(started + plan.duration, plan.count),
            live,
        })
    }

    /// The moment after which workers still running are abandoned: the end of
    /// the run, plus one timeout for the exchange in flight and one for a clean close.
    fn hard_deadline(&self) -> Instant {
        self.budget.end + self.plan.timeout * 2 + HARD_GRACE
    }
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
