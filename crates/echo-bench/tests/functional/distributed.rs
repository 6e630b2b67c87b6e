//! Load from many generators: `--start-at` starts them together (or refuses
//! a late one), `--histogram-log` writes each one's latencies as an
//! HdrHistogram interval log that another implementation reads alike, and
//! `merge` adds the logs up to what the server itself counted.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use echo_bench::start_at::{parse_start_at, show as show_instant};

use super::util::{
    Behaviour, Server, TempDir, binary, echo_bench, json_report, on_a_terminal, run_bounded, show,
    tcp_server,
};

/// How far ahead the common start is set: time enough for three processes
/// to start, resolve and connect on a busy two-core machine.
const START_AHEAD: Duration = Duration::from_secs(4);
/// How long after the start instant a generator may begin its load: its
/// timer's lateness and a busy machine's scheduling, far below a second.
const START_SLACK: f64 = 1.0;

/// `instant` in Unix seconds, as `--start-at` takes it, to the millisecond.
fn unix_seconds(instant: SystemTime) -> String {
    let since = instant.duration_since(UNIX_EPOCH).expect("after the epoch");
    format!("{}.{:03}", since.as_secs(), since.subsec_millis())
}

fn started(report: &serde_json::Value) -> f64 {
    report["started_unix_s"].as_f64().expect("started_unix_s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_generators_started_together_add_up_to_the_servers_own_totals() {
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    let dir = TempDir::new("three-generators");
    let start = SystemTime::now() + START_AHEAD;
    let start_at = unix_seconds(start);
    let logs: Vec<String> = (0..3)
        .map(|n| dir.path().join(format!("g{n}.hlog")).display().to_string())
        .collect();
    let generator = |log: &str| {
        let args: Vec<String> = [
            "conn",
            "--addr",
            &addr,
            "-n",
            "300",
            "-c",
            "4",
            "--start-at",
            &start_at,
            "--histogram-log",
            log,
            "--json",
        ]
        .map(str::to_owned)
        .into();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            echo_bench(&args).await
        }
    };
    let (first, second, third) = tokio::join!(
        generator(&logs[0]),
        generator(&logs[1]),
        generator(&logs[2])
    );
    let start_s: f64 = start_at.parse().expect("seconds");
    let mut runs = Vec::new();
    for output in [first, second, third] {
        assert_eq!(output.status.code(), Some(0), "{}", show(&output));
        let report = json_report(&output);
        assert_eq!(report["exchanges"], 300, "{}", show(&output));
        assert_eq!(report["errors"], 0, "{}", show(&output));
        let began = started(&report);
        assert!(
            (start_s..start_s + START_SLACK).contains(&began),
            "began at {began}, asked {start_s}: {}",
            show(&output)
        );
        runs.push(report);
    }

    let mut args = vec!["merge", "--json"];
    args.extend(logs.iter().map(String::as_str));
    let output = echo_bench(&args).await;
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let merged = json_report(&output);
    let sum = |key: &str| {
        runs.iter()
            .map(|run| run[key].as_u64().expect("a count"))
            .sum::<u64>()
    };
    assert_eq!(merged["generators"], 3);
    assert_eq!(merged["exchanges"], 900);
    assert_eq!(merged["exchanges"], sum("exchanges"));
    assert_eq!(merged["bytes"], 900 * 64);
    assert_eq!(merged["bytes"], sum("bytes"));
    assert_eq!(merged["workers"], 12);
    assert_eq!(merged["title"], "conn 64 B × 12");
    assert_eq!(merged["ok"], true);
    let skew = merged["start_skew_s"].as_f64().expect("a skew");
    assert!((0.0..START_SLACK).contains(&skew), "{}", show(&output));
    // The largest latency of all is the largest of each's, exactly.
    let largest = runs
        .iter()
        .map(|run| run["max_us"].as_f64().expect("max_us"))
        .fold(0.0, f64::max);
    assert_eq!(merged["max_us"].as_f64(), Some(largest));
    let p50s: Vec<f64> = runs
        .iter()
        .map(|run| run["p50_us"].as_f64().expect("p50_us"))
        .collect();
    let p50 = merged["p50_us"].as_f64().expect("p50_us");
    assert!(
        p50s.iter().any(|&low| low <= p50) && p50s.iter().any(|&high| p50 <= high),
        "the median of all lies among the medians of each: {p50} {p50s:?}"
    );

    // One connection each before the load, that proved the server there, and one per exchange.
    assert_eq!(server.total("accepted"), 900 + 3);
    assert_eq!(server.total("bytes"), 900 * 64);

    let mut table_args = vec!["merge"];
    table_args.extend(logs.iter().map(String::as_str));
    let table = echo_bench(&table_args).await;
    assert_eq!(table.status.code(), Some(0), "{}", show(&table));
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.starts_with(&format!("conn 64 B × 12 → {addr}, ")),
        "{table}"
    );
    assert!(
        table.contains("\n  generators    3 merged, started within "),
        "{table}"
    );
    assert!(table.contains("\n  connections   900   "), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_waits_for_its_start_and_a_late_generator_fails_unless_told() {
    let addr = tcp_server(Behaviour::Faithful).await.to_string();
    let start = SystemTime::now() + Duration::from_millis(1500);
    let start_at = unix_seconds(start);
    let output = echo_bench(&[
        "persistent",
        "--addr",
        &addr,
        "-n",
        "10",
        "--start-at",
        &start_at,
        "--json",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let start_s: f64 = start_at.parse().expect("seconds");
    let began = started(&json_report(&output));
    assert!(
        (start_s..start_s + START_SLACK).contains(&began),
        "began at {began}, asked {start_s}: {}",
        show(&output)
    );
    let instant = parse_start_at(&start_at, SystemTime::now()).expect("a start time");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "running persistent test of 10 exchanges (at most 1m) @ {addr}, 50 workers, at {}\n",
            show_instant(instant)
        ),
        "{}",
        show(&output)
    );

    let past = [
        "persistent",
        "--addr",
        &addr,
        "-n",
        "10",
        "--start-at",
        "2001-09-09T01:46:40Z",
    ];
    let late = echo_bench(&past).await;
    assert_eq!(late.status.code(), Some(1), "{}", show(&late));
    assert!(late.stdout.is_empty(), "{}", show(&late));
    let stderr = String::from_utf8_lossy(&late.stderr);
    assert_eq!(
        stderr.lines().count(),
        1,
        "no load announced: {}",
        show(&late)
    );
    assert!(
        stderr.starts_with("error: ready ")
            && stderr.ends_with(
                " after the start time 2001-09-09T01:46:40Z: the load would begin late, out of \
                 step with the other generators; start them all earlier, or pass --late-ok to \
                 run anyway\n"
            ),
        "{}",
        show(&late)
    );

    let mut late_ok = past.to_vec();
    late_ok.push("--late-ok");
    let output = echo_bench(&late_ok).await;
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", show(&output));
    assert!(
        lines[0].starts_with("echo-bench: note: the load begins ")
            && lines[0].ends_with(
                " after the start time 2001-09-09T01:46:40Z (--late-ok), out of step with the \
                 other generators"
            ),
        "{}",
        show(&output)
    );
    assert!(lines[1].starts_with("running "), "{}", show(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_times_that_cannot_be_meant_are_usage_errors() {
    let two_days = unix_seconds(SystemTime::now() + Duration::from_secs(2 * 24 * 3600));
    let cases: [(&[&str], &str); 4] = [
        (
            &["conn", "--start-at", "tomorrow"],
            "invalid start time 'tomorrow': use RFC 3339",
        ),
        (
            &["udp", "--start-at", "2030-06-01T12:00:00"],
            "invalid start time '2030-06-01T12:00:00'",
        ),
        (&["conn", "--start-at", &two_days], "ahead, more than a day"),
        (&["persistent", "--late-ok"], "--start-at <TIME>"),
    ];
    for (args, expected) in cases {
        let output = echo_bench(args).await;
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", show(&output));
        assert!(output.stdout.is_empty(), "{args:?}: {}", show(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    // Every pod of a Job gets it from its environment.
    let output = run_bounded(
        Command::new(binary())
            .args(["conn", "-n", "1"])
            .env("ECHO_BENCH_START_AT", "at noon"),
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("invalid start time 'at noon'"),
        "{}",
        show(&output)
    );
}

/// Runs `echo-bench merge --json -` with `log` as its stdin.
async fn merge_from_stdin(log: &Path) -> std::process::Output {
    run_bounded(
        Command::new("sh")
            .args(["-c", "exec \"$0\" merge --json - < \"$1\""])
            .arg(binary())
            .arg(log),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_on_stdout_is_all_there_is_on_stdout_and_merges_from_stdin() {
    let addr = tcp_server(Behaviour::Faithful).await.to_string();
    let to_stdout = ["persistent", "--addr", &addr, "--histogram-log", "-"];
    let mut args = to_stdout.to_vec();
    args.extend([
        "-n",
        "500",
        "-c",
        "4",
        "--rate",
        "2000",
        "--histogram-interval",
        "100ms",
    ]);
    let output = echo_bench(&args).await;
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    assert!(
        output.stderr.is_empty(),
        "people's lines go into the log: {}",
        show(&output)
    );
    let log = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines[0].starts_with("#[echo-bench "), "{log}");
    assert!(
        lines.contains(
            &format!("#running persistent test of 500 exchanges (at most 1m) @ {addr}, 4 workers")
                .as_str()
        ),
        "{log}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("#  latency µs    p50 ")),
        "{log}"
    );
    let intervals = lines
        .iter()
        .filter(|line| line.starts_with(|c: char| c.is_ascii_digit()))
        .count();
    // 500 exchanges at 2,000/s take a quarter second: three intervals of 100 ms.
    assert!((3..=5).contains(&intervals), "{log}");
    for line in &lines {
        assert!(
            line.starts_with('#')
                || line.starts_with("\"StartTimestamp\",")
                || line.starts_with(|c: char| c.is_ascii_digit()),
            "a line no log reader expects: {line:?}"
        );
    }
    assert!(
        lines
            .last()
            .is_some_and(|line| line.starts_with("#[echo-bench report: {")),
        "{log}"
    );

    let dir = TempDir::new("stdout-log");
    let path = dir.path().join("run.hlog");
    std::fs::write(&path, &output.stdout).expect("write the log");
    let merged = merge_from_stdin(&path).await;
    assert_eq!(merged.status.code(), Some(0), "{}", show(&merged));
    let report = json_report(&merged);
    assert_eq!(report["exchanges"], 500);
    assert_eq!(report["generators"], 1);
    assert_eq!(report["rate_asked"], 2000.0);

    let mut both = to_stdout.to_vec();
    both.push("--json");
    let both = echo_bench(&both).await;
    assert_eq!(both.status.code(), Some(2), "{}", show(&both));
    assert!(
        String::from_utf8_lossy(&both.stderr)
            .starts_with("error: --json and --histogram-log - both want stdout"),
        "{}",
        show(&both)
    );
}

/// Runs `persistent` against a faithful in-test server with `args`, its
/// histogram log written to a fresh directory: returns the directory, which
/// keeps the log while it lives, and the log's path.
async fn logged_run(tag: &str, args: &[&str]) -> (TempDir, String) {
    let addr = tcp_server(Behaviour::Faithful).await.to_string();
    let dir = TempDir::new(tag);
    let log = dir.path().join("run.hlog").display().to_string();
    let mut all = vec!["persistent", "--addr", &addr, "--histogram-log", &log];
    all.extend_from_slice(args);
    let output = echo_bench(&all).await;
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    (dir, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_or_cut_log_is_an_error_naming_the_file_and_line() {
    let (dir, good_name) = logged_run("corrupt-log", &["-n", "100"]).await;
    let text = std::fs::read_to_string(&good_name).expect("the log");
    let lines: Vec<&str> = text.lines().collect();
    let interval = lines
        .iter()
        .position(|line| line.starts_with("0.000,"))
        .expect("an interval");
    let write = |name: &str, lines: &[&str]| {
        let path = dir.path().join(name);
        std::fs::write(&path, lines.join("\n") + "\n").expect("write");
        path.display().to_string()
    };

    let mut foreign = lines.clone();
    foreign.insert(interval, "error: nothing listens at 10.0.0.1:7");
    let foreign = write("foreign.hlog", &foreign);
    let mut cut_histogram = lines.clone();
    let shortened = &lines[interval][..lines[interval].len() - 12];
    cut_histogram[interval] = shortened;
    let cut_histogram = write("cut-histogram.hlog", &cut_histogram);
    let cut_short = write("cut-short.hlog", &lines[..lines.len() - 1]);
    let missing = dir.path().join("missing.hlog").display().to_string();
    let number = interval + 1;
    let cases = [
        (
            &foreign,
            format!(
                "error: {foreign} line {number}: not a line of a histogram log: \
                 \"error: nothing listens at 10.0.0.1:7\"\n"
            ),
        ),
        (
            &cut_histogram,
            format!("error: {cut_histogram} line {number}: its histogram "),
        ),
        (
            &cut_short,
            format!(
                "error: {cut_short} ends without an echo-bench report: its run did not \
                 finish, or the log was cut short\n"
            ),
        ),
        (
            &missing,
            format!("error: cannot read the histogram log {missing}: No such file or directory"),
        ),
    ];
    for (log, expected) in cases {
        // Each after a good log, so that the one at fault is the one named.
        let output = echo_bench(&["merge", &good_name, log]).await;
        assert_eq!(output.status.code(), Some(1), "{log}: {}", show(&output));
        assert!(output.stdout.is_empty(), "{log}: {}", show(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with(&expected), "{log}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{log}: {stderr}");
    }
    let output = echo_bench(&["merge"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_each_interval_of_the_log_shows_as_it_is_taken() {
    let addr = tcp_server(Behaviour::Faithful).await.to_string();
    let dir = TempDir::new("terminal-intervals");
    let log = dir.path().join("run.hlog").display().to_string();
    // Paced, so as not to take the CPU from the tests that run beside it.
    let (status, text) = on_a_terminal(&[
        "persistent",
        "--addr",
        &addr,
        "-c",
        "2",
        "--rate",
        "1000",
        "-d",
        "1500ms",
        "--histogram-log",
        &log,
        "--histogram-interval",
        "200ms",
    ])
    .await;
    assert!(status.success(), "{text}");
    assert!(text.contains(" exchanges; last 200ms: "), "{text:?}");
    assert!(text.contains(" µs, p99 "), "{text:?}");
}

/// Whether python3 can import PyPI's `hdrhistogram` (module `hdrh`).
fn python_hdrh() -> bool {
    Command::new("python3")
        .args(["-c", "import hdrh.log"])
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Reads a histogram log with PyPI's `hdrhistogram`, adding up every
/// interval, and prints the intervals, the count, p50, p90, p99 and max.
const PYTHON_READER: &str = r#"
import sys
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader
total = HdrHistogram(1, 100 * 10**9, 3)
reader = HistogramLogReader(sys.argv[1], total)
intervals = 0
while True:
    interval = reader.get_next_interval_histogram()
    if interval is None:
        break
    total.add(interval)
    intervals += 1
print(intervals, total.get_total_count(), *(total.get_value_at_percentile(p) for p in (50, 90, 99)), total.get_max_value())
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_hdrhistogram_reads_our_log_with_the_same_percentiles() {
    if !python_hdrh() {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 cannot import hdrh: `pip install hdrhistogram` is part of CI's setup"
        );
        eprintln!(
            "SKIPPED: python3 cannot import hdrh (PyPI's hdrhistogram); \
             `pip install hdrhistogram` to run this test"
        );
        return;
    }
    // 2,000 exchanges, so that each percentile asked falls on a whole count
    // and both implementations' rounding of it agree.
    let (_dir, log_name) = logged_run(
        "python-hdrh",
        &[
            "-n",
            "2000",
            "-c",
            "8",
            "--rate",
            "4000",
            "--histogram-interval",
            "100ms",
        ],
    )
    .await;
    let log = Path::new(&log_name);
    let python = run_bounded(Command::new("python3").args(["-c", PYTHON_READER]).arg(log)).await;
    assert_eq!(python.status.code(), Some(0), "{}", show(&python));
    let read: Vec<u64> = String::from_utf8_lossy(&python.stdout)
        .split_whitespace()
        .map(|word| word.parse().expect("a number"))
        .collect();
    let [intervals, count, p50, p90, p99, max] = read[..] else {
        panic!("{}", show(&python));
    };
    let merged = echo_bench(&["merge", "--json", &log_name]).await;
    assert_eq!(merged.status.code(), Some(0), "{}", show(&merged));
    let report = json_report(&merged);
    let micros = |nanos: u64| Some(nanos as f64 / 1_000.0);
    assert_eq!(count, 2000, "{}", show(&python));
    assert!(intervals >= 3, "500 ms at 100 ms each: {}", show(&python));
    assert_eq!(report["exchanges"], count);
    assert_eq!(report["p50_us"].as_f64(), micros(p50));
    assert_eq!(report["p90_us"].as_f64(), micros(p90));
    assert_eq!(report["p99_us"].as_f64(), micros(p99));
    assert_eq!(report["max_us"].as_f64(), micros(max));
    let run = std::fs::read_to_string(log).expect("the log");
    eprintln!(
        "python's hdrh read {intervals} intervals of {} bytes of log: p50 {p50} ns, p99 {p99} ns, max {max} ns",
        run.len()
    );
}
