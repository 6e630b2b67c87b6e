//! The outcome of a run: [`Report`] gathers what was measured, as programs
//! read it (one JSON object per run, via serde); `verdict` judges it,
//! `table` writes it as people read it, and `merge` joins the reports of
//! generators that ran together into one.

use std::time::{Duration, UNIX_EPOCH};

use echo_proto::Target;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::plan::{Plan, Scenario};
use crate::size::{format_size, group_thousands};
use crate::tally::{ErrorCounts, Outcome};

mod merge;
mod table;
mod verdict;

pub use merge::{MergeError, Part, merge};

/// The latency percentiles a report lists for plotting; 100 is the maximum.
pub const PERCENTILES: [f64; 10] = [
    50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0,
];

/// Everything a run found out.
///
/// The JSON form has one key per field; scenario-specific fields are left out
/// when they do not apply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The run's name, such as the server's, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// `conn`, `persistent`, `bulk`, `idle` or `udp`.
    pub scenario: String,
    /// The scenario with its shape, as in `persistent 64 B × 50`; plots group runs by it.
    pub title: String,
    /// The server's address: where the load went (`IP:PORT` or `unix:PATH`).
    pub addr: String,
    /// The host name the address was resolved from, as given, when one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Whether the load left this machine: the address is neither loopback,
    /// nor one of this machine's own, nor a Unix socket.
    #[serde(default)]
    pub leaves_host: bool,
    /// Concurrent workers.
    pub workers: usize,
    /// Bytes per message (per write for `bulk`).
    pub size: u64,
    /// Seconds from start to the last worker's end.
    pub elapsed_s: f64,
    /// Exchanges that came back intact (`bulk`: writes whose bytes all came back;
    /// `idle`: connections opened).
    pub exchanges: u64,
    /// Bytes echoed back and verified (one direction).
    pub bytes: u64,
    /// Exchanges per second achieved (idle: connections opened per second of
    /// the opening); for a run ended by its count, up to the end of its last
    /// exchange, since closing its connections after that exchanges nothing.
    pub rate: f64,
    /// Exchanges per second asked for with `--rate`; `None` for a closed loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_asked: Option<f64>,
    /// Verified bytes per second (one direction), over the same time as `rate`.
    pub bytes_per_s: f64,
    /// Whether the run stopped because `--count` was used up rather than the time.
    pub count_reached: bool,
    /// Median latency, microseconds.
    pub p50_us: f64,
    /// 90th percentile latency, microseconds.
    pub p90_us: f64,
    /// 99th percentile latency, microseconds.
    pub p99_us: f64,
    /// 99.9th percentile latency, microseconds.
    pub p999_us: f64,
    /// Longest latency, microseconds.
    pub max_us: f64,
    /// Mean latency, microseconds.
    pub mean_us: f64,
    /// `[percentile, microseconds]` at each of [`PERCENTILES`].
    pub percentiles: Vec<[f64; 2]>,
    /// Failed exchanges (`udp`: and replies to datagrams already answered).
    pub errors: u64,
    /// Failed exchanges by kind (`udp`: with `duplicate`, the replies to
    /// datagrams already answered).
    pub error_counts: ErrorCounts,
    /// The first few failures' messages.
    pub error_samples: Vec<String>,
    /// `udp`: datagrams with no reply within the timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
    /// `udp`: replies that came after their datagram was given up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late: Option<u64>,
    /// `udp`: lost datagrams as a percentage of those sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_pct: Option<f64>,
    /// `udp`: the loss percentage allowed before the run fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_loss_pct: Option<f64>,
    /// `bulk`: bytes the run meant to stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// `idle`: connections asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u64>,
    /// `idle`: connections that still echoed after the hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<u64>,
    /// `idle`: seconds the connections were held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_s: Option<f64>,
    /// `idle`: local addresses the connections came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_addresses: Option<usize>,
    /// The server process measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_pid: Option<u32>,
    /// The server's resident memory before the run, KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_before_kib: Option<u64>,
    /// The server's resident memory after the run (`idle`: with every connection open), KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_after_kib: Option<u64>,
    /// `idle`: the growth of the server's resident memory per connection opened, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_per_connection: Option<f64>,
    /// CPU seconds (user and system) the server used during the load, in
    /// whole clock ticks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpu_s: Option<f64>,
    /// Microseconds of server CPU per exchange (`bulk`: per write timed), to
    /// the digits the resolution allows; `None` under ten ticks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpu_per_op_us: Option<f64>,
    /// Seconds of server CPU per GiB echoed, to the digits the resolution
    /// allows; `None` under ten ticks or with no bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpu_per_gib_s: Option<f64>,
    /// The relative resolution of the CPU figures: one clock tick over the
    /// CPU time measured, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpu_resolution_pct: Option<f64>,
    /// CPU seconds (user and system, all threads) this load generator used
    /// during the load, to the microsecond.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cpu_s: Option<f64>,
    /// Microseconds of the client's own CPU per exchange (`bulk`: per write
    /// timed), three significant digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cpu_per_op_us: Option<f64>,
    /// Seconds of the client's own CPU per GiB echoed, three significant digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cpu_per_gib_s: Option<f64>,
    /// Cores the client kept busy on average over the run: near the
    /// machine's count, the rate measured the client rather than the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cores: Option<f64>,
    /// When the load began, in seconds since the Unix epoch by the
    /// generator's clock (a merge: the first generator's start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_unix_s: Option<f64>,
    /// A merge: how many generators' runs it joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generators: Option<usize>,
    /// A merge: seconds from the first generator's start to the last's, by
    /// their own clocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_skew_s: Option<f64>,
    /// A run over TLS: what was negotiated and how the handshakes went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFigures>,
    /// Whether the run passed: no errors, loss within its limit, something exchanged.
    pub ok: bool,
    /// Why the run did not pass, one reason each.
    pub failures: Vec<String>,
}

/// The TLS side of a run over TLS.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TlsFigures {
    /// The protocol version of the first handshake, as `TLSv1.3`; `None` when none completed.
    pub version: Option<String>,
    /// The cipher suite of the first handshake, as `TLS13_AES_128_GCM_SHA256`.
    pub cipher_suite: Option<String>,
    /// Handshakes completed.
    pub handshakes: u64,
    /// Of them, those the server resumed a session for.
    pub resumed: u64,
    /// Whether `--tls-resume` asked for resumption.
    pub resume_asked: bool,
    /// Handshake latency, from the TCP connection made to the handshake's
    /// end, in microseconds: median, 99th percentile and maximum; `None`
    /// with no handshake.
    pub handshake_p50_us: Option<f64>,
    /// The 99th percentile, in microseconds.
    pub handshake_p99_us: Option<f64>,
    /// The longest, in microseconds.
    pub handshake_max_us: Option<f64>,
}

impl Report {
    /// Builds the report of `plan`'s run, which took `elapsed`.
    pub fn new(plan: &Plan, outcome: &Outcome, elapsed: Duration) -> Report {
        let tally = &outcome.tally;
        let window = outcome
            .rate_window
            .unwrap_or(elapsed)
            .as_secs_f64()
            .max(1e-9);

        let mut report = Report {
            label: plan.label.clone(),
            scenario: plan.scenario.name().to_owned(),
            title: title(plan),
            addr: plan
                .destination()
                .map(|destination| destination.endpoint.to_string())
                .unwrap_or_else(|| plan.target.to_string()),
            target: match &plan.target {
                Target::Name { .. } => Some(plan.target.to_string()),
                Target::Endpoint(_) => None,
            },
            leaves_host: plan
                .destination()
                .is_some_and(|destination| !destination.on_this_host),
            workers: plan.workers,
            size: plan.size as u64,
            elapsed_s: elapsed.as_secs_f64(),
            exchanges: tally.exchanges,
            bytes: tally.bytes,
            rate: tally.exchanges as f64 / window,
            rate_asked: plan.rate,
            bytes_per_s: tally.bytes as f64 / window,
            count_reached: outcome.count_reached,
            errors: tally.errors.total(),
            error_counts: tally.errors,
            error_samples: tally.samples.clone(),
            lost: None,
            late: None,
            loss_pct: None,
            max_loss_pct: None,
            total: None,
            connections: None,
            held: outcome.held,
            hold_s: None,
            source_addresses: outcome.source_addresses,
            server_pid: plan.server_pid,
            rss_before_kib: outcome.rss_before_kib,
            rss_after_kib: outcome.rss_after_kib,
            rss_per_connection: None,
            server_cpu_s: outcome.server_cpu.map(|cpu| cpu.used.as_secs_f64()),
            server_cpu_per_op_us: outcome
                .server_cpu
                .and_then(|cpu| cpu.per_exchange_us(tally.exchanges)),
            server_cpu_per_gib_s: outcome
                .server_cpu
                .and_then(|cpu| cpu.per_gib_s(tally.bytes)),
            server_cpu_resolution_pct: outcome
                .server_cpu
                .and_then(|cpu| cpu.resolution())
                .map(|resolution| resolution * 100.0),
            client_cpu_s: outcome.client_cpu.map(|cpu| cpu.used.as_secs_f64()),
            client_cpu_per_op_us: outcome
                .client_cpu
                .and_then(|cpu| cpu.per_exchange_us(tally.exchanges)),
            client_cpu_per_gib_s: outcome
                .client_cpu
                .and_then(|cpu| cpu.per_gib_s(tally.bytes)),
            client_cores: outcome.client_cpu.and_then(|cpu| cpu.cores(elapsed)),
            started_unix_s: outcome.started_at.and_then(|started| {
                started
                    .duration_since(UNIX_EPOCH)
                    .ok()
                    .map(|since| since.as_secs_f64())
            }),
            generators: None,
            start_skew_s: None,
            ok: true,
            failures: Vec::new(),
            // The latency figures, set just below from the histogram.
            ..Report::default()
        };
        report.set_latency(tally.latency());
        report.tls = plan.tls.as_ref().map(|tls| {
            let handshakes = &tally.handshakes;
            let latency = handshakes.latency();
            let micros = |nanos: u64| (handshakes.count > 0).then(|| nanos as f64 / 1_000.0);
            TlsFigures {
                version: handshakes
                    .negotiated
                    .as_ref()
                    .map(|(version, _)| version.clone()),
                cipher_suite: handshakes
                    .negotiated
                    .as_ref()
                    .map(|(_, suite)| suite.clone()),
                handshakes: handshakes.count,
                resumed: handshakes.resumed,
                resume_asked: tls.resume,
                handshake_p50_us: micros(latency.value_at_quantile(0.5)),
                handshake_p99_us: micros(latency.value_at_quantile(0.99)),
                handshake_max_us: micros(latency.max()),
            }
        });
        match plan.scenario {
            Scenario::Udp { max_loss } => {
                // Every datagram sent ended as an echo, a loss or an error;
                // a duplicate is an error besides its datagram's echo.
                let sent =
                    tally.exchanges + tally.lost + tally.errors.total() - tally.errors.duplicate;
                let loss = if sent == 0 {
                    0.0
                } else {
                    100.0 * tally.lost as f64 / sent as f64
                };
                report.lost = Some(tally.lost);
                report.late = Some(tally.late);
                report.loss_pct = Some(loss);
                report.max_loss_pct = Some(max_loss);
            }
            Scenario::Bulk { total } => report.total = Some(total),
            Scenario::Idle { connections } => {
                report.connections = Some(connections);
                report.hold_s = Some(plan.duration.as_secs_f64());
                if let (Some(before), Some(after)) = (outcome.rss_before_kib, outcome.rss_after_kib)
                {
                    let growth = after as f64 - before as f64;
                    report.rss_per_connection =
                        Some(growth * 1024.0 / tally.exchanges.max(1) as f64);
                }
            }
            Scenario::Conn | Scenario::Persistent => {}
        }
        report.failures = verdict::failures(&report);
        report.ok = report.failures.is_empty();
        report
    }

    /// Sets every latency figure from `latency`, in nanoseconds: the
    /// percentiles, the maximum and the mean, in microseconds.
    fn set_latency(&mut self, latency: &Histogram<u64>) {
        let micros = |nanos: u64| nanos as f64 / 1_000.0;
        let at = |percentile: f64| micros(latency.value_at_quantile(percentile / 100.0));
        self.p50_us = at(50.0);
        self.p90_us = at(90.0);
        self.p99_us = at(99.0);
        self.p999_us = at(99.9);
        self.max_us = micros(latency.max());
        self.mean_us = latency.mean() / 1_000.0;
        self.percentiles = PERCENTILES.iter().map(|&p| [p, at(p)]).collect();
    }

    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        // A struct of plain fields always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A name for the run's series in plots: its label, else its address.
    pub fn series_name(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.addr)
    }
}

/// The scenario with the shape of its load, as in `persistent 64 B × 50`.
fn title(plan: &Plan) -> String {
    let (total, connections) = match plan.scenario {
        Scenario::Bulk { total } => (Some(total), None),
        Scenario::Idle { connections } => (None, Some(connections)),
        _ => (None, None),
    };
    shape(
        plan.scenario.name(),
        plan.size as u64,
        plan.workers,
        total,
        connections,
    )
}

/// [`title`] from a report's figures: a `bulk` run's `total`, an `idle`
/// run's `connections`, and for the rest the size and workers.
fn shape(
    scenario: &str,
    size: u64,
    workers: usize,
    total: Option<u64>,
    connections: Option<u64>,
) -> String {
    let size = format_size(size);
    match (total, connections) {
        (Some(total), _) => format!(
            "{scenario} {} × {workers} ({size} writes)",
            format_size(total)
        ),
        (_, Some(connections)) => format!("{scenario} {}", group_thousands(connections)),
        _ => format!("{scenario} {size} × {workers}"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::cost::{ClientCpu, ServerCpu};
    use crate::tally::{ExchangeError, Mismatch, Tally};

    pub(crate) fn plan(scenario: Scenario) -> Plan {
        Plan {
            workers: 50,
            duration: Duration::from_secs(2),
            label: Some("ours".into()),
            ..Plan::local(
                scenario,
                "127.0.0.1:7007"
                    .parse::<std::net::SocketAddr>()
                    .expect("literal"),
            )
        }
    }

    /// The report of a 2 s run of `plan`'s with what `tally` counted.
    pub(crate) fn report_of(plan: &Plan, tally: Tally) -> Report {
        let outcome = Outcome {
            tally,
            ..Outcome::default()
        };
        Report::new(plan, &outcome, Duration::from_secs(2))
    }

    fn outcome(exchanges: u64) -> Outcome {
        let mut tally = Tally::new();
        for n in 0..exchanges {
            tally.succeeded(64, Duration::from_micros(10 + n % 100));
        }
        Outcome {
            tally,
            ..Outcome::default()
        }
    }

    #[test]
    fn a_clean_run_reports_rates_and_percentiles() {
        let report = Report::new(
            &plan(Scenario::Persistent),
            &outcome(1000),
            Duration::from_secs(2),
        );
        assert!(report.ok, "{:?}", report.failures);
        assert_eq!(report.title, "persistent 64 B × 50");
        assert_eq!(report.exchanges, 1000);
        assert_eq!(report.bytes, 64_000);
        assert!((report.rate - 500.0).abs() < 1e-9);
        assert!((report.bytes_per_s - 32_000.0).abs() < 1e-9);
        assert!(
            report.p50_us >= 50.0 && report.p50_us <= 70.0,
            "{}",
            report.p50_us
        );
        assert!(report.p99_us <= report.max_us && report.max_us <= 110.0);
        assert_eq!(report.percentiles.len(), PERCENTILES.len());
        assert_eq!(report.percentiles.last().map(|p| p[1]), Some(report.max_us));
        let table = report.to_string();
        assert!(table.contains("messages      1,000   500/s"), "{table}");
        assert!(table.contains("errors        none"), "{table}");
        assert!(!table.contains("FAILED"), "{table}");
    }

    #[test]
    fn errors_fail_the_run_loudly() {
        let mut result = outcome(10);
        result.tally.failed(
            Some(4),
            &ExchangeError::Mismatch(Mismatch::Stream { at: 3 }),
        );
        let report = Report::new(&plan(Scenario::Conn), &result, Duration::from_secs(1));
        assert!(!report.ok);
        assert_eq!(report.errors, 1);
        assert_eq!(report.failures, ["1 errors (mismatch 1)"]);
        let table = report.to_string();
        assert!(table.contains("ERRORS        1: mismatch 1"), "{table}");
        assert!(
            table.contains("worker 4: reply stream differs from what was sent at byte 3"),
            "{table}"
        );
        assert!(table.contains("FAILED"), "{table}");
    }

    #[test]
    fn nothing_exchanged_is_a_failure_too() {
        let report = Report::new(&plan(Scenario::Conn), &outcome(0), Duration::from_secs(1));
        assert!(!report.ok);
        assert_eq!(report.failures, ["no exchange completed"]);
    }

    #[test]
    fn udp_loss_fails_only_past_its_limit() {
        let mut result = outcome(990);
        result.tally.lost = 10;
        let report = Report::new(
            &plan(Scenario::Udp { max_loss: 1.0 }),
            &result,
            Duration::from_secs(1),
        );
        assert!(report.ok, "exactly 1% is allowed: {:?}", report.failures);
        assert_eq!(report.loss_pct, Some(1.0));
        result.tally.lost = 11;
        let report = Report::new(
            &plan(Scenario::Udp { max_loss: 1.0 }),
            &result,
            Duration::from_secs(1),
        );
        assert!(!report.ok);
        assert!(
            report.failures[0].starts_with("lost 1.10% of datagrams"),
            "{:?}",
            report.failures
        );
    }

    #[test]
    fn udp_duplicates_fail_the_run_without_counting_as_datagrams_sent() {
        let mut result = outcome(100);
        result.tally.lost = 1;
        for sequence in 1..=3 {
            result
                .tally
                .failed(Some(0), &ExchangeError::Duplicate { sequence });
        }
        let report = Report::new(
            &plan(Scenario::Udp { max_loss: 1.0 }),
            &result,
            Duration::from_secs(1),
        );
        assert!(!report.ok);
        assert_eq!(report.errors, 3);
        assert_eq!(report.error_counts.duplicate, 3);
        assert_eq!(report.loss_pct, Some(100.0 / 101.0));
        assert_eq!(report.failures, ["3 errors (duplicate 3)"]);
        let table = report.to_string();
        assert!(table.contains("ERRORS        3: duplicate 3"), "{table}");
        assert!(
            table.contains("worker 0: another reply to datagram 1, already answered"),
            "{table}"
        );
        let json = report.to_json();
        assert!(json.contains("\"duplicate\":3"), "{json}");
    }

    #[test]
    fn reports_from_before_duplicates_were_counted_still_read() {
        let report = Report::new(&plan(Scenario::Conn), &outcome(5), Duration::from_secs(1));
        let old = report.to_json().replace("\"duplicate\":0,", "");
        assert!(!old.contains("duplicate"), "{old}");
        let back: Report = serde_json::from_str(&old).expect("parse");
        assert_eq!(back, report);
    }

    #[test]
    fn a_run_ended_by_its_count_is_timed_to_its_last_exchange() {
        let paced = Plan {
            rate: Some(100.0),
            count: Some(50),
            ..plan(Scenario::Persistent)
        };
        let mut result = outcome(50);
        result.count_reached = true;
        result.rate_window = Some(Duration::from_millis(490));
        let report = Report::new(&paced, &result, Duration::from_millis(990));
        assert!(report.ok, "{:?}", report.failures);
        assert!((report.rate - 50.0 / 0.49).abs() < 1e-9, "{}", report.rate);
        assert!((report.bytes_per_s - 3200.0 / 0.49).abs() < 1e-6);
        assert_eq!(report.elapsed_s, 0.99);
    }

    #[test]
    fn idle_reports_memory_per_connection() {
        let mut result = outcome(1000);
        result.rss_before_kib = Some(10_000);
        result.rss_after_kib = Some(12_000);
        result.held = Some(1000);
        result.rate_window = Some(Duration::from_millis(500));
        let report = Report::new(
            &plan(Scenario::Idle { connections: 1000 }),
            &result,
            Duration::from_secs(3),
        );
        assert!(report.ok);
        assert_eq!(report.title, "idle 1,000");
        assert_eq!(report.rss_per_connection, Some(2048.0));
        assert!(
            (report.rate - 2000.0).abs() < 1e-9,
            "rate over the opening only"
        );
        let table = report.to_string();
        assert!(table.contains("2048 B per connection"), "{table}");
    }

    #[test]
    fn a_fixed_rate_run_short_of_its_rate_fails_saying_by_how_much() {
        let paced = Plan {
            rate: Some(1000.0),
            ..plan(Scenario::Persistent)
        };
        let report = Report::new(&paced, &outcome(1000), Duration::from_secs(2));
        assert!(!report.ok);
        assert_eq!(report.rate_asked, Some(1000.0));
        assert_eq!(
            report.failures,
            ["achieved 500/s of the 1,000/s asked, 50.0% short (at most 5% short passes)"]
        );
        let table = report.to_string();
        assert!(
            table.contains("messages      1,000   500/s (asked 1,000/s)"),
            "{table}"
        );
        let close = Report::new(&paced, &outcome(1900), Duration::from_secs(2));
        assert!(close.ok, "95% of the rate passes: {:?}", close.failures);
        let closed_loop = Report::new(
            &plan(Scenario::Persistent),
            &outcome(10),
            Duration::from_secs(2),
        );
        assert!(closed_loop.ok && closed_loop.rate_asked.is_none());
    }

    #[test]
    fn the_clients_own_cpu_is_given_per_exchange_and_as_cores() {
        let mut measured = outcome(100_000);
        measured.tally.bytes = 1 << 30;
        measured.client_cpu = Some(ClientCpu {
            used: Duration::from_micros(1_523_456),
        });
        let report = Report::new(
            &plan(Scenario::Persistent),
            &measured,
            Duration::from_secs(2),
        );
        assert_eq!(report.client_cpu_s, Some(1.523456));
        assert_eq!(report.client_cpu_per_op_us, Some(15.2));
        assert_eq!(report.client_cores, Some(0.76));
        let table = report.to_string();
        assert!(
            table.contains("  client CPU    15.2 µs/message, 1.52 s: 0.76 cores busy on average\n"),
            "{table}"
        );
        let bulk = Report::new(
            &plan(Scenario::Bulk { total: 1 << 30 }),
            &measured,
            Duration::from_secs(2),
        );
        assert!(
            bulk.to_string()
                .contains("  client CPU    1.52 s/GiB, 15.2 µs/write, 1.52 s:"),
            "{bulk}"
        );
        let unmeasured = Report::new(&plan(Scenario::Conn), &outcome(10), Duration::from_secs(1));
        assert_eq!(unmeasured.client_cpu_s, None);
        assert!(!unmeasured.to_string().contains("client CPU"));
    }

    #[test]
    fn server_cpu_is_given_to_the_digits_its_ticks_allow() {
        let mut measured = outcome(334_000);
        measured.server_cpu = Some(ServerCpu {
            used: Duration::from_millis(1210),
            tick: Duration::from_millis(10),
        });
        let report = Report::new(
            &plan(Scenario::Persistent),
            &measured,
            Duration::from_secs(2),
        );
        assert_eq!(report.server_cpu_s, Some(1.21));
        assert_eq!(report.server_cpu_per_op_us, Some(3.62));
        assert!(report.server_cpu_per_gib_s.is_some());
        let resolution = report.server_cpu_resolution_pct.expect("resolution");
        assert!((resolution - 100.0 / 121.0).abs() < 1e-9, "{resolution}");
        let table = report.to_string();
        assert!(
            table.contains("  server CPU    3.62 µs/message (±0.8%: 1.21 s in 10 ms ticks)\n"),
            "{table}"
        );

        let mut bulk = outcome(16_384);
        bulk.tally.bytes = 1 << 30;
        bulk.server_cpu = measured.server_cpu;
        let report = Report::new(
            &plan(Scenario::Bulk { total: 1 << 30 }),
            &bulk,
            Duration::from_secs(1),
        );
        assert_eq!(report.server_cpu_per_gib_s, Some(1.21));
        assert!(
            report
                .to_string()
                .contains("server CPU    1.21 s/GiB, 73.9 µs/write (±0.8%"),
            "{report}"
        );

        let mut short = outcome(100);
        short.server_cpu = Some(ServerCpu {
            used: Duration::from_millis(90),
            tick: Duration::from_millis(10),
        });
        let report = Report::new(&plan(Scenario::Conn), &short, Duration::from_secs(1));
        assert_eq!(report.server_cpu_s, Some(0.09));
        assert_eq!(report.server_cpu_per_op_us, None);
        assert_eq!(report.server_cpu_per_gib_s, None);
        let table = report.to_string();
        assert!(
            table.contains(
                "server CPU    0.09 s, too little to measure per connection: under 10 clock ticks"
            ),
            "{table}"
        );
    }

    #[test]
    fn json_is_one_line_and_round_trips() {
        let mut result = outcome(5);
        result
            .tally
            .failed(Some(1), &ExchangeError::Mismatch(Mismatch::AfterLastReply));
        let report = Report::new(
            &plan(Scenario::Bulk { total: 1 << 30 }),
            &result,
            Duration::from_secs(1),
        );
        let json = report.to_json();
        assert!(!json.contains('\n'));
        assert!(
            json.contains("\"rate\":") && json.contains("\"ok\":false"),
            "{json}"
        );
        assert!(
            !json.contains("\"lost\""),
            "udp fields are left out: {json}"
        );
        let back: Report = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, report);
    }
}
