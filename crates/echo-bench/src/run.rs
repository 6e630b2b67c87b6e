//! A run as a whole: the plan checked, its scenario driven, the server's
//! memory read around it, and what was measured turned into a [`Report`].
//!
//! This is the one module that knows both how scenarios run and how runs are
//! reported; neither of those knows the other.

use std::sync::Arc;

use tokio::time::Instant;

use crate::error::BenchError;
use crate::limits;
use crate::plan::{Plan, Scenario};
use crate::report::Report;
use crate::scenario::{Shared, bulk, conn, idle, persistent, udp};
use crate::tally::Live;

/// Runs `plan` to its end and reports on it, feeding `live` as it goes.
///
/// Must be called within a tokio runtime with I/O and time enabled.
///
/// # Errors
/// A [`BenchError`] when the run cannot start (an invalid plan, an unreadable
/// server process); failures of exchanges are counted in the report instead.
pub async fn run(plan: &Plan, live: Arc<Live>) -> Result<Report, BenchError> {
    plan.validate()?;
    let rss_before = plan.server_pid.map(limits::resident_kib).transpose()?;
    let started = Instant::now();
    let mut outcome = match &plan.scenario {
        Scenario::Conn => conn::run(Shared::new(plan, live, started)).await,
        Scenario::Persistent => persistent::run(Shared::new(plan, live, started)).await,
        Scenario::Bulk { total } => bulk::run(Shared::new(plan, live, started), *total).await,
        Scenario::Idle { connections } => idle::run(plan, live, *connections).await?,
        Scenario::Udp { .. } => udp::run(Shared::new(plan, live, started)).await,
    };
    outcome.rss_before_kib = rss_before;
    if outcome.rss_after_kib.is_none() {
        outcome.rss_after_kib = plan.server_pid.map(limits::resident_kib).transpose()?;
    }
    Ok(Report::new(plan, &outcome, started.elapsed()))
}
