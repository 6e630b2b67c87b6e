//! A run as a whole: the target reached once before the load, its scenario driven, the server's memory and CPU time and the
//! client's own CPU time read around it, and what was measured turned into a
//! [`Report`].
//!
//! This is the one module that knows both how scenarios run and how runs are
//! reported; neither of those knows the other.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;

use crate::cost::{ClientCpu, ServerCpu};
use crate::error::BenchError;
use crate::limits;
use crate::plan::{Scenario, ValidPlan};
use crate::report::Report;
use crate::scenario::{Shared, bulk, conn, connect, idle, persistent, udp};
use crate::tally::Live;
use crate::tls::Connector;

/// Finds the first of the plan's addresses where an echo server answers, and
/// returns the plan with that address alone.
///
/// Each address in turn gets one connection (for udp, one datagram and a
/// moment's wait for an answer), within the plan's timeout; a refusal moves
/// on at once. So a target where nothing listens costs one attempt per
/// address instead of a run of failures, and a name whose first address
/// has no server (`localhost` as `::1`, say) still reaches the one that has.
///
/// # Errors
/// [`BenchError::Unreachable`], naming every address and what it said, when
/// none answers.
pub async fn reach(plan: &ValidPlan) -> Result<ValidPlan, BenchError> {
    let mut attempts = Vec::new();
    for destination in &plan.addrs {
        let endpoint = &destination.endpoint;
        let answered = match plan.scenario {
            Scenario::Udp { .. } => udp::probe(endpoint, plan.size, plan.timeout).await,
            _ => connect::probe(endpoint, plan.timeout).await,
        };
        match answered {
            Ok(()) => return Ok(plan.narrowed_to(destination)),
            Err(unanswered) => attempts.push(unanswered),
        }
    }
    Err(BenchError::Unreachable {
        target: plan.target.to_string(),
        attempts,
    })
}

/// Runs `plan` to its end against its first address and reports on it,
/// feeding `live` as it goes.
///
/// It does not check first that anything listens there: a refusing target
/// is counted, exchange by exchange, as connect errors (with each worker
/// backing off between attempts). Call [`reach`] first to fail fast, as the
/// command does.
///
/// Must be called within a tokio runtime with I/O and time enabled.
///
/// # Errors
/// A [`BenchError`] when the run cannot start (a plan with no address, an
/// unreadable server process); failures of exchanges are counted in the
/// report instead.
pub async fn run(plan: &ValidPlan, live: Arc<Live>) -> Result<Report, BenchError> {
    // Built once, its files read once, before anything is measured.
    let tls = plan
        .tls
        .as_ref()
        .map(|tls| Connector::new(tls, &tls.server_name(&plan.target)))
        .transpose()?;
    let rss_before = plan.server_pid.map(limits::resident_kib).transpose()?;
    let cpu_before = plan.server_pid.map(limits::cpu_time).transpose()?;
    let own_before = limits::own_cpu_time();
    let started = Instant::now();
    let started_at = SystemTime::now();
    let mut outcome = match &plan.scenario {
        Scenario::Conn => conn::run(Shared::new(plan, live, tls, started)?).await,
        Scenario::Persistent => persistent::run(Shared::new(plan, live, tls, started)?).await,
        Scenario::Bulk { total } => bulk::run(Shared::new(plan, live, tls, started)?, *total).await,
        Scenario::Idle { connections } => idle::run(plan, live, tls, *connections).await?,
        Scenario::Udp { .. } => udp::run(Shared::new(plan, live, None, started)?).await,
    };
    let elapsed = started.elapsed();
    // Read at once, before the server does anything more, such as closing.
    let cpu_after = plan.server_pid.map(limits::cpu_time).transpose()?;
    if let (Some(before), Some(after)) = (own_before, limits::own_cpu_time()) {
        outcome.client_cpu = Some(ClientCpu {
            used: after.saturating_sub(before),
        });
    }
    outcome.started_at = Some(started_at);
    outcome.rss_before_kib = rss_before;
    if outcome.rss_after_kib.is_none() {
        outcome.rss_after_kib = plan.server_pid.map(limits::resident_kib).transpose()?;
    }
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        outcome.server_cpu = Some(ServerCpu {
            used: after.saturating_sub(before),
            tick: limits::clock_tick(),
        });
    }
    Ok(Report::new(plan, &outcome, elapsed))
}
