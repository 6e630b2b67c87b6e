//! A progress bar on stderr while a run goes on, drawn only for a person at a
//! terminal: redirected or piped, stderr gets nothing of the kind. With a
//! histogram log, each interval it takes shows there too: its rate and its
//! median and 99th percentile latencies.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::plan::{Plan, Scenario, format_rate};
use crate::size::group_thousands;
use crate::tally::Live;

/// How often the bar is redrawn.
const REDRAW_EVERY: Duration = Duration::from_millis(100);

/// A live progress bar; dropping it stops and clears it.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    redraw: JoinHandle<()>,
}

/// What the bar's position counts.
#[derive(Debug, Clone, Copy)]
enum Measure {
    Milliseconds,
    Exchanges,
    Bytes,
}

impl Progress {
    /// Starts a bar for `plan`, fed from `live`, when stderr is a terminal;
    /// `None` otherwise. Must be called within a tokio runtime.
    pub fn start(plan: &Plan, live: Arc<Live>) -> Option<Progress> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let millis = u64::try_from(plan.duration.as_millis()).unwrap_or(u64::MAX);
        let (length, measure) = match (&plan.scenario, plan.count) {
            (Scenario::Bulk { total }, _) => (*total, Measure::Bytes),
            (Scenario::Idle { connections }, _) => (*connections, Measure::Exchanges),
            (_, Some(count)) => (count, Measure::Exchanges),
            (_, None) => (millis, Measure::Milliseconds),
        };
        let style = ProgressStyle::with_template("{prefix:>10} [{bar:32}] {percent:>3}% {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr())
            .with_style(style)
            .with_prefix(plan.scenario.name());
        let shown = bar.clone();
        let redraw = tokio::spawn(async move {
            let started = Instant::now();
            let mut ticks = tokio::time::interval(REDRAW_EVERY);
            loop {
                ticks.tick().await;
                let exchanges = live.exchanges.load(Ordering::Relaxed);
                let bytes = live.bytes.load(Ordering::Relaxed);
                let errors = live.errors.load(Ordering::Relaxed);
                shown.set_position(match measure {
                    Measure::Milliseconds => {
                        u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
                    }
                    Measure::Exchanges => exchanges,
                    Measure::Bytes => bytes,
                });
                let errors = if errors == 0 {
                    String::new()
                } else {
                    format!(", {} ERRORS", group_thousands(errors))
                };
                let interval = live
                    .intervals
                    .as_ref()
                    .and_then(|intervals| intervals.last())
                    .map(|last| {
                        let micros = |nanos: u64| group_thousands(nanos.div_ceil(1_000));
                        let rate = last.count as f64 / last.length.as_secs_f64().max(1e-9);
                        format!(
                            "; last {}: {}/s, p50 {} µs, p99 {} µs",
                            echo_proto::Human(last.length),
                            format_rate(rate),
                            micros(last.p50_ns),
                            micros(last.p99_ns)
                        )
                    })
                    .unwrap_or_default();
                shown.set_message(format!(
                    "{} exchanges{errors}{interval}",
                    group_thousands(exchanges)
                ));
            }
        });
        Some(Progress { bar, redraw })
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.redraw.abort();
        self.bar.finish_and_clear();
    }
}
