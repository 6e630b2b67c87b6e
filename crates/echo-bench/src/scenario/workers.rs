//! The pool of workers a run is made of: every worker spawned, their tallies
//! merged, and those still running at the hard deadline abandoned and counted,
//! so that no wait that is not bounded as it should be can hang the run.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Shared;
use crate::tally::{ExchangeError, Outcome, Tally};

/// Runs `worker(id, shared)` for every worker of the plan, bounded by the
/// plan's budget and hard deadline, and reports what they counted.
pub(crate) async fn run_budgeted<F, Fut>(shared: Arc<Shared>, worker: F) -> Outcome
where
    F: Fn(usize, Arc<Shared>) -> Fut,
    Fut: Future<Output = Tally> + Send + 'static,
{
    let tally = run_workers(shared.plan.workers, shared.hard_deadline(), |id| {
        worker(id, Arc::clone(&shared))
    })
    .await;
    Outcome {
        tally,
        count_reached: shared.budget.count_reached(),
        rate_window: shared.rate_window(),
        ..Outcome::default()
    }
}

/// Runs `worker(id)` for every worker of the plan and merges their tallies.
pub(crate) async fn run_workers<F, Fut>(workers: usize, deadline: Instant, worker: F) -> Tally
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Tally> + Send + 'static,
{
    let (tally, _) = run_workers_with(workers, deadline, |id| {
        let work = worker(id);
        async move { (work.await, ()) }
    })
    .await;
    tally
}

/// Runs `worker(id)` for every worker, merges their tallies and collects
/// what else they hand back, in no particular order.
///
/// Workers still running at `deadline` are aborted and each counted as a
/// timeout, so the run ends even if some wait is not bounded as it should be.
pub(crate) async fn run_workers_with<F, Fut, T>(
    workers: usize,
    deadline: Instant,
    worker: F,
) -> (Tally, Vec<T>)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = (Tally, T)> + Send + 'static,
    T: Send + 'static,
{
    let mut set = JoinSet::new();
    for id in 0..workers {
        set.spawn(worker(id));
    }
    let mut total = Tally::new();
    let mut results = Vec::with_capacity(workers);
    loop {
        match tokio::time::timeout_at(deadline, set.join_next()).await {
            Ok(None) => break,
            Ok(Some(Ok((tally, result)))) => {
                total.merge(&tally);
                results.push(result);
            }
            Ok(Some(Err(join_error))) => total.failed(
                None,
                &ExchangeError::Io {
                    during: "running a worker",
                    source: std::io::Error::other(join_error.to_string()),
                },
            ),
            Err(_) => {
                let stuck = set.len();
                set.abort_all();
                for _ in 0..stuck {
                    total.failed(
                        None,
                        &ExchangeError::Timeout {
                            during: "for a worker to finish by the run's hard deadline",
                            after: Duration::ZERO,
                        },
                    );
                }
                break;
            }
        }
    }
    (total, results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn workers_stuck_past_the_deadline_are_abandoned_and_counted() {
        let deadline = Instant::now() + Duration::from_secs(1);
        let tally = run_workers(3, deadline, |id| async move {
            let mut tally = Tally::new();
            if id == 0 {
                tally.succeeded(1, Duration::from_micros(1));
            } else {
                std::future::pending::<()>().await;
            }
            tally
        })
        .await;
        assert_eq!(tally.exchanges, 1);
        assert_eq!(tally.errors.timeout, 2);
    }
}
