//! `cargo xtask bench`: our echo-server against the canonical tokio echo (the
//! `reference` example of echo-bench), scenario by scenario, as medians of
//! short interleaved rounds, with a latency plot; and the one-second smoke run
//! of every scenario that `cargo xtask ci` makes.
//!
//! Both servers run for the whole benchmark and take turns, round after round,
//! so that a slow moment of the machine (two cores, shared) falls on both
//! rather than on one.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::{cargo, run_step, show, target_dir};

/// Rounds of every case against every server; the table shows their medians.
const ROUNDS: usize = 5;
/// How long a server may take to print its `listening on` line.
const ANNOUNCE_WITHIN: Duration = Duration::from_secs(10);

/// What a case's headline figure is read from, and how it is shown.
#[derive(Debug, Clone, Copy)]
enum Metric {
    /// Exchanges per second, under this unit name.
    Rate(&'static str),
    /// Verified bytes per second, in MB/s.
    Megabytes,
    /// Verified bytes per second, in GB/s.
    Gigabytes,
    /// Growth of the server's resident memory per idle connection, in bytes.
    BytesPerConnection,
}

impl Metric {
    fn unit(self) -> &'static str {
        match self {
            Metric::Rate(unit) => unit,
            Metric::Megabytes => "MB/s",
            Metric::Gigabytes => "GB/s",
            Metric::BytesPerConnection => "B/conn (lower is better)",
        }
    }

    /// The figure in a JSON report of echo-bench.
    fn read(self, report: &str) -> Option<f64> {
        match self {
            Metric::Rate(_) => json_number(report, "rate"),
            Metric::Megabytes => json_number(report, "bytes_per_s").map(|b| b / 1e6),
            Metric::Gigabytes => json_number(report, "bytes_per_s").map(|b| b / 1e9),
            Metric::BytesPerConnection => json_number(report, "rss_per_connection"),
        }
    }

    fn show(self, value: f64) -> String {
        match self {
            Metric::Gigabytes => format!("{value:.2}"),
            Metric::Megabytes => format!("{value:.1}"),
            Metric::Rate(_) | Metric::BytesPerConnection => grouped(value),
        }
    }
}

/// One line of the table: an echo-bench command line and its headline figure.
#[derive(Debug)]
struct Case {
    name: &'static str,
    args: &'static [&'static str],
    metric: Metric,
    /// Whether the case runs against a server started just for it, whose
    /// pid echo-bench is given to measure its memory.
    fresh_server: bool,
}

/// The standard set, each short enough that the whole benchmark stays within
/// about three minutes on two cores.
const CASES: [Case; 5] = [
    Case {
        name: "conn 64 B × 50",
        args: &["conn", "-s", "64", "-c", "50", "-d", "2s"],
        metric: Metric::Rate("conn/s"),
        fresh_server: false,
    },
    Case {
        name: "persistent 64 B × 50",
        args: &["persistent", "-s", "64", "-c", "50", "-d", "2s"],
        metric: Metric::Rate("msg/s"),
        fresh_server: false,
    },
    Case {
        name: "persistent 16 KiB × 8",
        args: &["persistent", "-s", "16KiB", "-c", "8", "-d", "2s"],
        metric: Metric::Megabytes,
        fresh_server: false,
    },
    Case {
        name: "bulk 1 GiB × 1",
        args: &["bulk", "--total", "1GiB", "-c", "1", "-d", "20s"],
        metric: Metric::Gigabytes,
        fresh_server: false,
    },
    Case {
        name: "idle 10,000",
        args: &["idle", "--connections", "10000", "-c", "50", "-d", "1s"],
        metric: Metric::BytesPerConnection,
        fresh_server: true,
    },
];

/// One echo-bench run's figures.
#[derive(Debug, Clone)]
struct Measurement {
    value: f64,
    p99_us: f64,
    /// The JSON report, for the plot.
    report: String,
}

/// Builds release binaries, benchmarks our server against the reference, prints
/// the table and writes the latency plot to `<target>/bench/latency.svg`.
///
/// # Errors
/// Any failed build, server start or echo-bench run (including a run with
/// errors: a server that corrupts data has no speed worth reporting).
pub fn run(root: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    run_step(cargo().current_dir(root).args([
        "build",
        "--release",
        "-p",
        "echo-server",
        "-p",
        "echo-bench",
        "--examples",
        "--bins",
    ]))?;
    let target = target_dir(root);
    let release = target.join("release");
    let out = target.join("bench");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let bench = release.join("echo-bench");

    let mut servers = [
        start_contender(0, &release, &out, "")?,
        start_contender(1, &release, &out, "")?,
    ];

    let mut results: Vec<[Vec<Measurement>; 2]> = CASES.iter().map(|_| [vec![], vec![]]).collect();
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
                    fresh.insert(start_contender(which, &release, &out, "-fresh")?)
                } else {
                    &mut servers[which]
                };
                let measurement = measure(&bench, case, server)?;
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
    drop(servers);

    print_table(&results);
    let mut medians = String::new();
    let mut all = String::new();
    for runs in &results {
        for server_runs in runs {
            if let Some(middle) = median_run(server_runs) {
                medians.push_str(&middle.report);
                medians.push('\n');
            }
            for run in server_runs {
                all.push_str(&run.report);
                all.push('\n');
            }
        }
    }
    let median_file = out.join("medians.jsonl");
    write(&median_file, &medians)?;
    write(&out.join("runs.jsonl"), &all)?;
    let plot = out.join("latency.svg");
    run_step(
        Command::new(&bench)
            .arg("plot")
            .arg("--out")
            .arg(&plot)
            .arg(&median_file),
    )?;
    println!(
        "\nmedians of {ROUNDS} rounds; latency plot: {}; reports: {}; took {:.0}s",
        plot.display(),
        median_file.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs every echo-bench scenario for about a second against the
/// `echo-server` in `profile_dir` (started with UDP and no UDP rate limit),
/// using the `echo-bench` beside it, and fails on any error.
///
/// # Errors
/// The server does not start, or any scenario fails.
pub fn smoke(root: &Path, profile_dir: &Path) -> anyhow::Result<()> {
    let bench = profile_dir.join("echo-bench");
    let out = target_dir(root).join("bench");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let server = Server::start(
        "smoke",
        Command::new(profile_dir.join("echo-server")).args([
            "--listen",
            "127.0.0.1:0",
            "--udp",
            "--udp-rate",
            "0",
        ]),
        &out.join("smoke.log"),
        &["tcp", "udp"],
    )?;
    let tcp = server.addr("tcp");
    let udp = server.addr("udp");
    let pid = server.pid();
    let runs: [&[&str]; 5] = [
        &["conn", "--addr", tcp, "-c", "4", "-d", "1s"],
        &["persistent", "--addr", tcp, "-c", "4", "-d", "1s"],
        &[
            "bulk", "--addr", tcp, "--total", "64MiB", "-c", "2", "-d", "1s",
        ],
        &[
            "idle",
            "--addr",
            tcp,
            "--connections",
            "100",
            "-c",
            "10",
            "-d",
            "1s",
            "--server-pid",
            pid.as_str(),
        ],
        &["udp", "--addr", udp, "-c", "4", "-d", "1s"],
    ];
    for args in runs {
        run_step(Command::new(&bench).args(args).stdin(Stdio::null()))?;
    }
    Ok(())
}

/// The names of the two servers compared, in table order.
const CONTENDERS: [&str; 2] = ["ours", "reference"];

/// Starts `CONTENDERS[which]` from the release binaries, on a free loopback
/// port, logging to `<out>/<name><log_suffix>.log`.
fn start_contender(
    which: usize,
    release: &Path,
    out: &Path,
    log_suffix: &str,
) -> anyhow::Result<Server> {
    let program = match which {
        0 => release.join("echo-server"),
        _ => release.join("examples").join("reference"),
    };
    Server::start(
        CONTENDERS[which],
        Command::new(program).args(["--listen", "127.0.0.1:0"]),
        &out.join(format!("{}{log_suffix}.log", CONTENDERS[which])),
        &["tcp"],
    )
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
    let report = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    server.check_alive()?;
    if !output.status.success() {
        bail!("`{shown}` failed ({}): {report}", output.status);
    }
    let value = case.metric.read(&report).with_context(|| {
        format!(
            "`{shown}` printed no {} figure: {report}",
            case.metric.unit()
        )
    })?;
    Ok(Measurement {
        value,
        p99_us: json_number(&report, "p99_us").unwrap_or(f64::NAN),
        report,
    })
}

fn print_table(results: &[[Vec<Measurement>; 2]]) {
    println!(
        "\n{:<24} {:<26} {:>12} {:>12} {:>9} {:>12} {:>12}",
        "scenario", "metric", "ours", "reference", "ours/ref", "p99 µs ours", "p99 µs ref"
    );
    for (case, runs) in CASES.iter().zip(results) {
        let value = |which: usize| median(runs[which].iter().map(|m| m.value));
        let p99 = |which: usize| median(runs[which].iter().map(|m| m.p99_us));
        let (ours, reference) = (value(0), value(1));
        // Runs of one round were made back to back, so their ratio is taken
        // before the median: the machine's drift between rounds cancels out.
        let ratio = median(
            runs[0]
                .iter()
                .zip(&runs[1])
                .filter(|(_, theirs)| theirs.value.abs() > f64::EPSILON)
                .map(|(mine, theirs)| mine.value / theirs.value),
        );
        let ratio = if ratio.is_nan() {
            "-".to_owned()
        } else {
            format!("{ratio:.2}")
        };
        println!(
            "{:<24} {:<26} {:>12} {:>12} {:>9} {:>12} {:>12}",
            case.name,
            case.metric.unit(),
            case.metric.show(ours),
            case.metric.show(reference),
            ratio,
            grouped(p99(0)),
            grouped(p99(1))
        );
    }
    println!(
        "\nours/ref is the median over rounds of each round's ratio; the other columns are medians."
    );
    println!(
        "\nThe reference is the canonical tokio echo: a 4 KiB buffer and Nagle's algorithm on,\n\
         so messages longer than 4 KiB come back in pieces that may wait for a delayed ACK\n\
         (about 40 ms); that, not speed, is what a large ratio on such messages measures."
    );
}

/// The middle value (the mean of the two middle ones for an even count); NaN for none.
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.filter(|v| !v.is_nan()).collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The run whose headline figure is the median (the lower middle for an even count).
fn median_run(runs: &[Measurement]) -> Option<&Measurement> {
    let mut sorted: Vec<&Measurement> = runs.iter().collect();
    sorted.sort_by(|a, b| a.value.total_cmp(&b.value));
    sorted.get(sorted.len().saturating_sub(1) / 2).copied()
}

/// A number rounded to a whole, with thousands separators.
fn grouped(value: f64) -> String {
    if !value.is_finite() {
        return "-".to_owned();
    }
    let digits = format!("{:.0}", value.abs());
    let mut text = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            text.push(',');
        }
        text.push(digit);
    }
    if value < -0.5 {
        format!("-{text}")
    } else {
        text
    }
}

/// The number after `"key":` in a flat JSON object, as echo-bench prints its reports.
fn json_number(json: &str, key: &str) -> Option<f64> {
    let needle = format!("\"{key}\":");
    let start = json.find(&needle)? + needle.len();
    let rest = &json[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    File::create(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// A server process started for the benchmark, killed and reaped when dropped,
/// whichever way the benchmark ends.
#[derive(Debug)]
struct Server {
    name: &'static str,
    child: Child,
    /// `(kind, address)` from each `listening on KIND ADDRESS` line.
    addrs: Vec<(String, String)>,
    log: PathBuf,
    pid: String,
}

impl Server {
    /// Starts `command` with stdout piped and stderr to `log`, and waits (at
    /// most [`ANNOUNCE_WITHIN`]) for one announcement of each of `kinds`.
    fn start(
        name: &'static str,
        command: &mut Command,
        log: &Path,
        kinds: &[&str],
    ) -> anyhow::Result<Server> {
        let log = log.to_path_buf();
        let log_file =
            File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let shown = show(command);
        eprintln!("$ {shown} &");
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot start `{shown}`"))?;
        let pid = child.id().to_string();
        let stdout = child.stdout.take().context("no stdout pipe")?;
        // The server is guarded from here on: any early return kills and reaps it.
        let mut server = Server {
            name,
            child,
            addrs: Vec::new(),
            log,
            pid,
        };
        let (lines, announcements) = mpsc::channel();
        // Reads until the server exits; the receiver going away ends it sooner.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + ANNOUNCE_WITHIN;
        while !kinds
            .iter()
            .all(|kind| server.addrs.iter().any(|(k, _)| k == kind))
        {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match announcements.recv_timeout(left) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    bail!(
                        "`{shown}` announced no {kinds:?} address within {ANNOUNCE_WITHIN:?}; see {}",
                        server.log.display()
                    )
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!(
                        "`{shown}` exited before announcing its address; see {}",
                        server.log.display()
                    )
                }
            };
            let announced = line
                .strip_prefix("listening on ")
                .and_then(|rest| rest.split_once(' '));
            if let Some((kind, addr)) = announced {
                server.addrs.push((kind.to_owned(), addr.to_owned()));
            }
        }
        Ok(server)
    }

    /// The first announced address of `kind`; `start` made sure there is one.
    fn addr(&self, kind: &str) -> &str {
        self.addrs
            .iter()
            .find(|(k, _)| k == kind)
            .map_or("127.0.0.1:0", |(_, addr)| addr)
    }

    fn pid(&self) -> String {
        self.pid.clone()
    }

    /// Fails if the server has exited, pointing at its log.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => bail!(
                "the {} server exited ({status}) during the benchmark; see {}",
                self.name,
                self.log.display()
            ),
            Err(err) => bail!("cannot check on the {} server: {err}", self.name),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Already gone is fine; either way it is reaped, never left a zombie.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_from_echo_bench_json() {
        let report = r#"{"label":"ours","rate":12916.07,"bytes_per_s":8.2e5,"p99_us":6230.015,"ok":true,"error_samples":["a \"rate\":1"]}"#;
        assert_eq!(json_number(report, "rate"), Some(12916.07));
        assert_eq!(json_number(report, "bytes_per_s"), Some(820_000.0));
        assert_eq!(json_number(report, "p99_us"), Some(6230.015));
        assert_eq!(json_number(report, "rss_per_connection"), None);
        assert_eq!(json_number(report, "label"), None);
    }

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

    #[test]
    fn figures_are_grouped() {
        assert_eq!(grouped(1_234_567.4), "1,234,567");
        assert_eq!(grouped(999.6), "1,000");
        assert_eq!(grouped(f64::NAN), "-");
        assert_eq!(grouped(-2_500.0), "-2,500");
    }
}
