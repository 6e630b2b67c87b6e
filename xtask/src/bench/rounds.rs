//! The rounds of the benchmark: every case against every server, round after
//! round, and the medians and spreads of what they measured.
//!
//! All servers run for the whole benchmark and take turns, so that a slow
//! moment of the machine (two cores, shared) falls on all rather than on one.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use echo_bench::Report;

use super::cases::{CASES, Case};
use super::servers::{Contender, Server};
use crate::show;

/// Rounds of every case against every server, unless `--rounds` says otherwise.
pub(super) const DEFAULT_ROUNDS: usize = 5;

/// One echo-bench run: its report, and the JSON line it came as, for the plot.
#[derive(Debug, Clone)]
pub(super) struct Measurement {
    /// The report, read through echo-bench's own type.
    pub(super) report: Report,
    /// The JSON line as echo-bench printed it.
    pub(super) line: String,
}

/// What every server measured in every case: `[case][server]`, one
/// measurement per round, servers in the contenders' order.
pub(super) type Results = Vec<Vec<Vec<Measurement>>>;

/// Runs `rounds` rounds of every case against every contender, from the
/// binaries in `release`, with `bench` as echo-bench and logs in `out`.
pub(super) fn interleaved(
    bench: &Path,
    contenders: &[Contender],
    rounds: usize,
    release: &Path,
    out: &Path,
) -> anyhow::Result<Results> {
    let mut servers = contenders
        .iter()
        .map(|contender| contender.start(release, out, ""))
        .collect::<anyhow::Result<Vec<Server>>>()?;
    let mut results: Results = CASES
        .iter()
        .map(|_| contenders.iter().map(|_| Vec::new()).collect())
        .collect();
    for round in 0..rounds {
        for (index, case) in CASES.iter().enumerate() {
            // Who goes first rotates, so no server always meets a machine
            // still busy with another's run.
            for turn in 0..contenders.len() {
                let which = (round + index + turn) % contenders.len();
                let mut fresh = None;
                let server = if case.fresh_server {
                    fresh.insert(contenders[which].start(release, out, "-fresh")?)
                } else {
                    &mut servers[which]
                };
                let measurement = measure(bench, case, server)?;
                let headline = case.figures[0];
                let value = headline.read(&measurement.report).unwrap_or(f64::NAN);
                eprintln!(
                    "round {}/{rounds}  {:<22} {:<10} {:>12} {}",
                    round + 1,
                    case.name,
                    server.name,
                    headline.show(value),
                    headline.unit()
                );
                results[index][which].push(measurement);
            }
        }
    }
    Ok(results)
}

/// Runs one case against one server and reads its report.
fn measure(bench: &Path, case: &Case, server: &mut Server) -> anyhow::Result<Measurement> {
    let mut command = Command::new(bench);
    command.args(case.args).args([
        "--addr",
        server.addr("tcp"),
        "--json",
        "--label",
        &server.name,
        "--server-pid",
        &server.pid(),
    ]);
    let (report, line) = json_run(&mut command, Some(server), "echo-bench report", |line| {
        serde_json::from_str::<Report>(line)
    })?;
    Ok(Measurement { report, line })
}

/// Runs `command`, an echo-bench run that prints one JSON line, and reads
/// that line with `parse` as `what`; the run failing, or `server` (when
/// given) not outliving it, is an error naming the command.
pub(super) fn json_run<T>(
    command: &mut Command,
    server: Option<&mut Server>,
    what: &str,
    parse: impl FnOnce(&str) -> serde_json::Result<T>,
) -> anyhow::Result<(T, String)> {
    let shown = show(command);
    let output = command
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run `{shown}`"))?;
    let line = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if let Some(server) = server {
        server.check_alive()?;
    }
    if !output.status.success() {
        bail!("`{shown}` failed ({}): {line}", output.status);
    }
    let parsed = parse(&line).with_context(|| format!("`{shown}` printed no {what}: {line}"))?;
    Ok((parsed, line))
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

/// The smallest and the largest value, the spread over rounds; NaNs for none.
pub(super) fn spread(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values
        .filter(|v| !v.is_nan())
        .fold((f64::NAN, f64::NAN), |(low, high), v| {
            (low.min(v), high.max(v))
        })
}

/// The run whose headline figure is the median (the lower middle for an even count).
pub(super) fn median_run<'a>(case: &Case, runs: &'a [Measurement]) -> Option<&'a Measurement> {
    let headline = |run: &Measurement| case.figures[0].read(&run.report).unwrap_or(f64::NAN);
    let mut sorted: Vec<&Measurement> = runs.iter().collect();
    sorted.sort_by(|a, b| headline(a).total_cmp(&headline(b)));
    sorted.get(sorted.len().saturating_sub(1) / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_take_the_middle_and_spreads_the_ends() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0].into_iter()), 2.5);
        assert!(median(std::iter::empty()).is_nan());
        assert_eq!(spread([3.0, f64::NAN, 1.0, 2.0].into_iter()), (1.0, 3.0));
        let (low, high) = spread(std::iter::empty());
        assert!(low.is_nan() && high.is_nan());
    }
}
