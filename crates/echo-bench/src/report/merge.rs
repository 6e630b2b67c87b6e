//! One report from the reports of generators that loaded one server
//! together: counts, bytes, errors and the client's CPU added up, latency
//! figures taken from the sum of their histograms (never from averaging
//! their percentiles, which would be wrong), and how many generators joined
//! and how far apart they started.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::cost::{ClientCpu, ServerCpu};
use crate::size::format_size;
use crate::tally::{ErrorCounts, MAX_SAMPLES};

use super::{Report, shape, verdict};

/// One generator's report, and the name (its log's file) that its error
/// samples and a refusal to merge are given under.
#[derive(Debug, Clone, Copy)]
pub struct Part<'a> {
    /// Where the report came from, as the user named it.
    pub name: &'a str,
    /// The generator's own report.
    pub report: &'a Report,
}

/// Why reports cannot be merged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// No report was given.
    #[error("nothing to merge")]
    Nothing,
    /// Two runs of different scenarios or message sizes: their latencies
    /// measure different things, and their sum would mean nothing.
    #[error(
        "{other} ran {other_load} but {first} ran {first_load}: only runs of one scenario \
         and size merge"
    )]
    Unlike {
        /// The first report's name.
        first: String,
        /// Its scenario and size, as `persistent 64 B`.
        first_load: String,
        /// The name of the report that differs.
        other: String,
        /// Its scenario and size.
        other_load: String,
    },
}

/// The report of `parts` run together, its latency figures from `latency`,
/// the sum of their histograms (nanoseconds).
///
/// Exchanges, bytes, errors by kind, UDP losses and the client's CPU time
/// are added up, and so are the rates, each generator's over its own run: run
/// together, their sum is the rate the server met. The elapsed time runs
/// from the first start to the last end. The server's CPU time is each
/// generator's reading of the one server over about the same time, so the
/// largest stands for all, divided by every exchange; memory readings, being
/// of a moment, are left out. The verdict is made anew from the sums.
///
/// # Errors
/// [`MergeError::Nothing`] for no part; [`MergeError::Unlike`] for parts of
/// different scenarios or sizes.
pub fn merge(parts: &[Part<'_>], latency: &Histogram<u64>) -> Result<Report, MergeError> {
    let Some(first) = parts.first() else {
        return Err(MergeError::Nothing);
    };
    let load = |report: &Report| format!("{} {}", report.scenario, format_size(report.size));
    if let Some(other) = parts
        .iter()
        .find(|part| load(part.report) != load(first.report))
    {
        return Err(MergeError::Unlike {
            first: first.name.to_owned(),
            first_load: load(first.report),
            other: other.name.to_owned(),
            other_load: load(other.report),
        });
    }
    let reports: Vec<&Report> = parts.iter().map(|part| part.report).collect();
    let sum = |field: fn(&Report) -> u64| reports.iter().map(|report| field(report)).sum::<u64>();
    let sum_present = |field: fn(&Report) -> Option<u64>| {
        reports
            .iter()
            .filter_map(|report| field(report))
            .reduce(|total, value| total + value)
    };
    let sum_all = |field: fn(&Report) -> Option<f64>| {
        reports
            .iter()
            .map(|report| field(report))
            .sum::<Option<f64>>()
    };
    let exchanges = sum(|report| report.exchanges);
    let bytes = sum(|report| report.bytes);
    let workers = reports.iter().map(|report| report.workers).sum();
    let total = sum_present(|report| report.total);
    let connections = sum_present(|report| report.connections);
    let mut error_counts = ErrorCounts::default();
    for report in &reports {
        error_counts.add(&report.error_counts);
    }
    let (started_unix_s, start_skew_s, elapsed_s) = span(&reports);
    let client_cpu = sum_all(|report| report.client_cpu_s).map(|used| ClientCpu {
        used: Duration::from_secs_f64(used.max(0.0)),
    });
    let server_cpu = largest_server_cpu(&reports);

    let mut report = Report {
        label: joined(&reports, |report| report.label.as_deref(), " + "),
        scenario: first.report.scenario.clone(),
        title: shape(
            &first.report.scenario,
            first.report.size,
            workers,
            total,
            connections,
        ),
        addr: joined(&reports, |report| Some(&report.addr), ", ").unwrap_or_default(),
        target: joined(&reports, |report| report.target.as_deref(), ", "),
        leaves_host: reports.iter().any(|report| report.leaves_host),
        workers,
        size: first.report.size,
        elapsed_s,
        exchanges,
        bytes,
        rate: reports.iter().map(|report| report.rate).sum(),
        rate_asked: sum_all(|report| report.rate_asked),
        bytes_per_s: reports.iter().map(|report| report.bytes_per_s).sum(),
        count_reached: reports.iter().all(|report| report.count_reached),
        errors: error_counts.total(),
        error_counts,
        error_samples: parts
            .iter()
            .flat_map(|part| {
                part.report
                    .error_samples
                    .iter()
                    .map(move |sample| format!("{}: {sample}", part.name))
            })
            .take(MAX_SAMPLES)
            .collect(),
        lost: sum_present(|report| report.lost),
        late: sum_present(|report| report.late),
        loss_pct: None,
        max_loss_pct: first.report.max_loss_pct,
        total,
        connections,
        held: sum_present(|report| report.held),
        hold_s: reports
            .iter()
            .filter_map(|report| report.hold_s)
            .reduce(f64::max),
        source_addresses: reports
            .iter()
            .filter_map(|report| report.source_addresses)
            .reduce(|total, value| total + value),
        server_pid: None,
        rss_before_kib: None,
        rss_after_kib: None,
        rss_per_connection: None,
        server_cpu_s: server_cpu.map(|cpu| cpu.used.as_secs_f64()),
        server_cpu_per_op_us: server_cpu.and_then(|cpu| cpu.per_exchange_us(exchanges)),
        server_cpu_per_gib_s: server_cpu.and_then(|cpu| cpu.per_gib_s(bytes)),
        server_cpu_resolution_pct: server_cpu
            .and_then(|cpu| cpu.resolution())
            .map(|resolution| resolution * 100.0),
        client_cpu_s: client_cpu.map(|cpu| cpu.used.as_secs_f64()),
        client_cpu_per_op_us: client_cpu.and_then(|cpu| cpu.per_exchange_us(exchanges)),
        client_cpu_per_gib_s: client_cpu.and_then(|cpu| cpu.per_gib_s(bytes)),
        client_cores: sum_all(|report| report.client_cores),
        started_unix_s,
        generators: Some(
            reports
                .iter()
                .map(|report| report.generators.unwrap_or(1))
                .sum(),
        ),
        start_skew_s,
        ok: true,
        failures: Vec::new(),
        // The latency figures, set just below from the histogram.
        ..Report::default()
    };
    report.set_latency(latency);
    if let Some(lost) = report.lost {
        // As for one run: every datagram sent ended as an echo, a loss or
        // an error, and a duplicate is an error besides its datagram's echo.
        let sent = exchanges + lost + report.errors - report.error_counts.duplicate;
        report.loss_pct = Some(if sent == 0 {
            0.0
        } else {
            100.0 * lost as f64 / sent as f64
        });
    }
    report.failures = verdict::failures(&report);
    report.ok = report.failures.is_empty();
    Ok(report)
}

/// The first start, the skew between the first start and the last, and
/// the time from the first start to the last end; without every start,
/// no start, no skew and the longest run.
fn span(reports: &[&Report]) -> (Option<f64>, Option<f64>, f64) {
    let longest = reports
        .iter()
        .map(|report| report.elapsed_s)
        .fold(0.0, f64::max);
    let starts: Option<Vec<f64>> = reports.iter().map(|report| report.started_unix_s).collect();
    let Some(starts) = starts.filter(|starts| !starts.is_empty()) else {
        return (None, None, longest);
    };
    let first = starts.iter().copied().fold(f64::INFINITY, f64::min);
    let last = starts.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let end = reports
        .iter()
        .zip(&starts)
        .map(|(report, start)| start + report.elapsed_s)
        .fold(f64::NEG_INFINITY, f64::max);
    (Some(first), Some(last - first), end - first)
}

/// The server's CPU time as the generator that saw the most of it read it,
/// with the clock tick it was counted in.
fn largest_server_cpu(reports: &[&Report]) -> Option<ServerCpu> {
    let (used, resolution_pct) = reports
        .iter()
        .filter_map(|report| Some((report.server_cpu_s?, report.server_cpu_resolution_pct)))
        .reduce(|largest, reading| {
            if reading.0 > largest.0 {
                reading
            } else {
                largest
            }
        })?;
    // The resolution is one tick over the time measured: the tick comes back
    // from it, and none was measured without one.
    let tick = resolution_pct.map_or(0.0, |pct| used * pct / 100.0);
    Some(ServerCpu {
        used: Duration::from_secs_f64(used.max(0.0)),
        tick: Duration::from_secs_f64(tick.max(0.0)),
    })
}

/// The distinct values of `field`, in order of first appearance, joined by
/// `separator`; `None` when no report has one.
fn joined<'a>(
    reports: &[&'a Report],
    field: impl Fn(&'a Report) -> Option<&'a str>,
    separator: &str,
) -> Option<String> {
    let mut values: Vec<&str> = Vec::new();
    for value in reports.iter().filter_map(|report| field(report)) {
        if !values.contains(&value) {
            values.push(value);
        }
    }
    (!values.is_empty()).then(|| values.join(separator))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Scenario;
    use crate::report::tests::{plan, report_of};
    use crate::tally::{ExchangeError, Mismatch, Tally, latency_histogram};

    /// The report of a `scenario` run of `exchanges` of 64 B by 50 workers,
    /// started `start` seconds after the epoch and lasting 2 s.
    fn report(scenario: Scenario, exchanges: u64, start: f64) -> Report {
        let mut tally = Tally::new();
        for n in 0..exchanges {
            tally.succeeded(64, Duration::from_micros(10 + n % 7));
        }
        Report {
            started_unix_s: Some(start),
            ..report_of(&plan(scenario), tally)
        }
    }

    fn parts<'a>(reports: &'a [Report]) -> Vec<Part<'a>> {
        const NAMES: [&str; 3] = ["a.hlog", "b.hlog", "c.hlog"];
        reports
            .iter()
            .zip(NAMES)
            .map(|(report, name)| Part { name, report })
            .collect()
    }

    #[test]
    fn counts_rates_and_the_clients_cpu_add_up_and_the_span_is_the_whole() {
        let mut reports = [
            report(Scenario::Persistent, 1000, 100.0),
            report(Scenario::Persistent, 3000, 100.004),
        ];
        reports[0].client_cpu_s = Some(1.5);
        reports[0].client_cores = Some(0.75);
        reports[1].client_cpu_s = Some(0.5);
        reports[1].client_cores = Some(0.25);
        reports[1].elapsed_s = 2.5;
        let mut latency = latency_histogram();
        latency.record(42_000).expect("in range");
        let merged = merge(&parts(&reports), &latency).expect("merges");
        assert_eq!(merged.generators, Some(2));
        assert_eq!(merged.exchanges, 4000);
        assert_eq!(merged.bytes, 4000 * 64);
        assert_eq!(merged.workers, 100);
        assert_eq!(merged.title, "persistent 64 B × 100");
        assert_eq!(merged.label.as_deref(), Some("ours"));
        assert_eq!(merged.addr, "127.0.0.1:7007");
        assert_eq!(merged.rate, 500.0 + 1500.0);
        assert_eq!(merged.started_unix_s, Some(100.0));
        let skew = merged.start_skew_s.expect("a skew");
        assert!((skew - 0.004).abs() < 1e-9, "{skew}");
        assert!(
            (merged.elapsed_s - 2.504).abs() < 1e-9,
            "{}",
            merged.elapsed_s
        );
        assert_eq!(merged.client_cpu_s, Some(2.0));
        assert_eq!(merged.client_cpu_per_op_us, Some(500.0));
        assert_eq!(merged.client_cores, Some(1.0));
        assert_eq!(
            merged.max_us,
            latency.max() as f64 / 1_000.0,
            "latency from the histogram given, not the reports'"
        );
        assert_eq!(merged.p50_us, merged.max_us);
        assert!(merged.ok, "{:?}", merged.failures);
        let table = merged.to_string();
        assert!(
            table.starts_with(
                "persistent 64 B × 100 → 127.0.0.1:7007 [ours], 2.50 s\n  generators    2 merged, \
                 started within 4.0 ms of one another\n"
            ),
            "{table}"
        );
        let json = merged.to_json();
        assert!(json.contains("\"generators\":2"), "{json}");
        let back: Report = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, merged);
    }

    #[test]
    fn errors_add_up_by_kind_with_samples_named_by_log_and_fail_the_merge() {
        let mut reports = [
            report(Scenario::Conn, 10, 1.0),
            report(Scenario::Conn, 10, 1.0),
        ];
        let mut failed = Tally::new();
        failed.failed(Some(3), &ExchangeError::Mismatch(Mismatch::AfterLastReply));
        failed.failed(Some(1), &ExchangeError::Duplicate { sequence: 2 });
        reports[1].errors = failed.errors.total();
        reports[1].error_counts = failed.errors;
        reports[1].error_samples = failed.samples;
        reports[0].error_counts.mismatch = 1;
        reports[0].errors = 1;
        let merged = merge(&parts(&reports), &latency_histogram()).expect("merges");
        assert_eq!(merged.errors, 3);
        assert_eq!(merged.error_counts.mismatch, 2);
        assert_eq!(merged.error_counts.duplicate, 1);
        assert_eq!(
            merged.error_samples,
            [
                "b.hlog: worker 3: the server sent bytes after the last reply",
                "b.hlog: worker 1: another reply to datagram 2, already answered"
            ]
        );
        assert!(!merged.ok);
        assert_eq!(merged.failures[0], "3 errors (mismatch 2, duplicate 1)");
    }

    #[test]
    fn a_rate_asked_of_each_is_asked_of_all() {
        let mut reports = [
            report(Scenario::Persistent, 1000, 1.0),
            report(Scenario::Persistent, 1000, 1.0),
        ];
        for report in &mut reports {
            report.rate_asked = Some(500.0);
        }
        let merged = merge(&parts(&reports), &latency_histogram()).expect("merges");
        assert_eq!(merged.rate_asked, Some(1000.0));
        assert!(merged.ok, "1,000/s of 1,000/s: {:?}", merged.failures);
        reports[1].rate = 100.0;
        let short = merge(&parts(&reports), &latency_histogram()).expect("merges");
        assert!(!short.ok, "600/s of 1,000/s");
        reports[1].rate_asked = None;
        let mixed = merge(&parts(&reports), &latency_histogram()).expect("merges");
        assert_eq!(mixed.rate_asked, None);
    }

    #[test]
    fn udp_losses_add_up_and_their_share_is_taken_anew() {
        let mut reports = [
            report(Scenario::Udp { max_loss: 1.0 }, 990, 1.0),
            report(Scenario::Udp { max_loss: 1.0 }, 1000, 1.0),
        ];
        reports[0].lost = Some(10);
        reports[1].lost = Some(0);
        let merged = merge(&parts(&reports), &latency_histogram()).expect("merges");
        assert_eq!(merged.lost, Some(10));
        assert_eq!(merged.loss_pct, Some(0.5));
        assert_eq!(merged.max_loss_pct, Some(1.0));
        assert!(merged.ok, "{:?}", merged.failures);
    }

    #[test]
    fn the_servers_cpu_is_the_largest_reading_over_every_exchange() {
        let mut reports = [
            report(Scenario::Persistent, 100_000, 1.0),
            report(Scenario::Persistent, 100_000, 1.0),
        ];
        reports[0].server_cpu_s = Some(1.2);
        reports[0].server_cpu_resolution_pct = Some(100.0 / 120.0);
        reports[1].server_cpu_s = Some(1.1);
        reports[1].server_cpu_resolution_pct = Some(100.0 / 110.0);
        reports[1].server_pid = Some(7);
        let merged = merge(&parts(&reports), &latency_histogram()).expect("merges");
        assert_eq!(merged.server_cpu_s, Some(1.2));
        assert_eq!(merged.server_cpu_per_op_us, Some(6.0));
        assert_eq!(merged.server_pid, None);
        let resolution = merged.server_cpu_resolution_pct.expect("a resolution");
        assert!((resolution - 100.0 / 120.0).abs() < 1e-9, "{resolution}");
    }

    #[test]
    fn only_runs_of_one_scenario_and_size_merge() {
        let mut other_size = report(Scenario::Persistent, 10, 1.0);
        other_size.size = 1024;
        let reports = [
            report(Scenario::Persistent, 10, 1.0),
            other_size,
            report(Scenario::Conn, 10, 1.0),
        ];
        let error = merge(&parts(&reports), &latency_histogram()).expect_err("unlike");
        assert_eq!(
            error.to_string(),
            "b.hlog ran persistent 1 KiB but a.hlog ran persistent 64 B: only runs of one \
             scenario and size merge"
        );
        assert_eq!(merge(&[], &latency_histogram()), Err(MergeError::Nothing));
        let bulk = [
            report(Scenario::Bulk { total: 1 << 20 }, 16, 1.0),
            report(Scenario::Bulk { total: 1 << 20 }, 16, 1.0),
        ];
        let merged = merge(&parts(&bulk), &latency_histogram()).expect("merges");
        assert_eq!(merged.title, "bulk 2 MiB × 100 (64 B writes)");
        assert_eq!(merged.total, Some(2 << 20));
    }
}
