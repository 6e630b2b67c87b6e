//! The rounds of the benchmark: every case against both servers, round after
//! round, and the medians of what they measured.
//!
//! Both servers run for the whole benchmark and take turns, so that a slow
//! moment of the machine (two cores, shared) falls on both rather than on one.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use echo_bench::Report;

use super::cases::{CASES, Case};
use super::servers::{Server, start_contender};
use crate::show;

/// Rounds of every case against every server; the table shows their medians.
pub(super) const ROUNDS: usize = 5;

/// One echo-bench run's figures.
#[derive(Debug, Clone)]
pub(super) struct Measurement {
    /// The case's headline figure.
    pub(super) value: f64,
    /// The run's 99th percentile latency, microseconds.
    pub(super) p99_us: f64,
    /// The JSON report as echo-bench printed it, for the plot.
    pub(super) report: String,
}

/// What every server measured in every case: `[case][server]`, one
/// measurement per round, servers in table order.
pub(super) type Results = Vec<[Vec<Measurement>; 2]>;

/// Runs [`ROUNDS`] rounds of every case against both contenders, from the
/// binaries in `release`, with `bench` as echo-bench and logs in `out`.
pub(super) fn interleaved(bench: &Path, release: &Path, out: &Path) -> anyhow::Result<Results> {
    let mut servers = [
        start_contender(0, release, out, "")?,
        start_contender(1, release, out, "")?,
    ];

    let mut results: Results = CASES.iter().map(|_| [vec![], vec![]]).collect();
    for round in 0..ROUNDS {
        for (index, case) in CASES.iter().enumerate() {
            // Who goes first alternates, so neither always meets a machine
            // still busy with the other's run.
            let order = if (round + index) % 2 == 0 {
                [0, 1]
            } else {
                [1, 0]
            };
            for which in order {
                // Memory per connection is measured on a fresh server, so
                // that memory kept from earlier runs does not hide the growth.
                let mut fresh = None;
                let server = if case.fresh_server {
                    fresh.insert(start_contender(which, release, out, "-fresh")?)
                } else {
                    &mut servers[which]
                };
                let measurement = measure(bench, case, server)?;
                eprintln!(
                    "round {}/{ROUNDS}  {:<22} {:<9} {:>12} {}",
                    round + 1,
                    case.name,
                    server.name,
                    case.metric.show(measurement.value),
                    case.metric.unit()
                );
                results[index][which].push(measurement);
            }
        }
    }
    Ok(results)
}

/// Runs one case against one server and reads its figures.
fn measure(bench: &Path, case: &Case, server: &mut Server) -> anyhow::Result<Measurement> {
    let mut command = Command::new(bench);
    command.args(case.args).args([
        "--addr",
        server.addr("tcp"),
        "--json",
        "--label",
        server.name,
    ]);
    if case.fresh_server {
        command.args(["--server-pid", &server.pid()]);
    }
    let shown = show(&command);
    let output = command
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run `{shown}`"))?;
    let line = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    server.check_alive()?;
    if !output.status.success() {
        bail!("`{shown}` failed ({}): {line}", output.status);
    }
    let report: Report = serde_json::from_str(&line)
        .with_context(|| format!("`{shown}` printed no echo-bench report: {line}"))?;
    let value = case
        .metric
        .read(&report)
        .with_context(|| format!("`{shown}` printed no {} figure: {line}", case.metric.unit()))?;
    Ok(Measurement {
        value,
        p99_us: report.p99_us,
        report: line,
    })
}

/// The middle value (the mean of the two middle ones for an even count); NaN for none.
pub(super) fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.filter(|v| !v.is_nan()).collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The run whose headline figure is the median (the lower middle for an even count).
pub(super) fn median_run(runs: &[Measurement]) -> Option<&Measurement> {
    let mut sorted: Vec<&Measurement> = runs.iter().collect();
    sorted.sort_by(|a, b| a.value.total_cmp(&b.value));
    sorted.get(sorted.len().saturating_sub(1) / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_take_the_middle() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0].into_iter()), 2.5);
        assert!(median(std::iter::empty()).is_nan());
        let runs: Vec<Measurement> = [5.0, 1.0, 3.0]
            .iter()
            .map(|&value| Measurement {
                value,
                p99_us: 0.0,
                report: value.to_string(),
            })
            .collect();
        assert_eq!(median_run(&runs).map(|m| m.value), Some(3.0));
        assert!(median_run(&[]).is_none());
    }
}
