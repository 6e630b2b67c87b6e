//! `--server-pid`: the server's CPU time per exchange and per GiB, with the
//! resolution its clock ticks give, and no figure when the run is too short;
//! and the client's own CPU time, which every run reports.
//!
//! The servers here run inside the test process, so its pid is theirs; its
//! CPU time includes the other tests running beside them, which makes the
//! figures larger but not absent, and the checks are about their presence,
//! consistency and rounding, not their size.

use std::process::{Command, Stdio};

use super::util::{Behaviour, echo_bench, json_report, show, tcp_server};

/// Checks the CPU fields of a report measured well above ten ticks.
fn assert_measured(report: &serde_json::Value, output: &std::process::Output) {
    let cpu = report["server_cpu_s"].as_f64().expect("server_cpu_s");
    let resolution = report["server_cpu_resolution_pct"]
        .as_f64()
        .expect("server_cpu_resolution_pct");
    let per_op = report["server_cpu_per_op_us"]
        .as_f64()
        .expect("server_cpu_per_op_us");
    let per_gib = report["server_cpu_per_gib_s"]
        .as_f64()
        .expect("server_cpu_per_gib_s");
    eprintln!(
        "{}: server CPU {cpu} s (±{resolution:.2}%), {per_op} µs per exchange, {per_gib} s per GiB",
        report["scenario"]
    );
    assert!(cpu >= 0.1, "{}", show(output));
    assert!(
        (resolution - 1.0 / cpu).abs() < 1e-6,
        "one 10 ms tick of {cpu} s: {}",
        show(output)
    );
    let exchanges = report["exchanges"].as_f64().expect("exchanges");
    let exact = cpu * 1e6 / exchanges;
    assert!(
        (per_op - exact).abs() <= exact * resolution / 100.0,
        "{per_op} rounds {exact}: {}",
        show(output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conn_and_bulk_report_the_servers_cpu_time_with_its_resolution() {
    let addr = tcp_server(Behaviour::Faithful).await.to_string();
    let pid = std::process::id().to_string();
    let conn = [
        "conn",
        "--addr",
        &addr,
        "-c",
        "8",
        "-d",
        "2s",
        "--server-pid",
        &pid,
    ];
    let output = echo_bench(&[&conn[..], &["--json"]].concat()).await;
    assert!(output.status.success(), "{}", show(&output));
    assert_measured(&json_report(&output), &output);

    let bulk = [
        "bulk",
        "--addr",
        &addr,
        "--total",
        "1GiB",
        "-c",
        "2",
        "-d",
        "2s",
        "--server-pid",
        &pid,
    ];
    let output = echo_bench(&[&bulk[..], &["--json"]].concat()).await;
    assert!(output.status.success(), "{}", show(&output));
    let bulk_report = json_report(&output);
    assert_measured(&bulk_report, &output);

    // The table says what the figure is worth.
    let output = echo_bench(&bulk).await;
    assert!(output.status.success(), "{}", show(&output));
    let table = String::from_utf8_lossy(&output.stdout);
    let line = table
        .lines()
        .find(|line| line.trim_start().starts_with("server CPU"))
        .unwrap_or_else(|| panic!("no server CPU line: {}", show(&output)));
    assert!(
        line.contains(" s/GiB, ")
            && line.contains(" µs/write (±")
            && line.ends_with(" in 10 ms ticks)"),
        "{line}"
    );
}

/// A process that uses no CPU stands for a server whose share of a run is
/// below what ticks can tell: the figures are left out, and the table says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_too_short_to_measure_says_so() {
    let addr = tcp_server(Behaviour::Faithful).await.to_string();
    let mut idle = Command::new("sleep")
        .arg("30")
        .stdin(Stdio::null())
        .spawn()
        .expect("start sleep");
    let pid = idle.id().to_string();
    let args = ["conn", "--addr", &addr, "-n", "20", "--server-pid", &pid];
    let json = echo_bench(&[&args[..], &["--json"]].concat()).await;
    let table = echo_bench(&args).await;
    let _ = idle.kill();
    let _ = idle.wait();

    assert!(json.status.success(), "{}", show(&json));
    let report = json_report(&json);
    assert_eq!(report["server_cpu_s"], 0.0, "{}", show(&json));
    for field in [
        "server_cpu_per_op_us",
        "server_cpu_per_gib_s",
        "server_cpu_resolution_pct",
    ] {
        assert!(report.get(field).is_none(), "{field}: {}", show(&json));
    }
    assert!(table.status.success(), "{}", show(&table));
    let stdout = String::from_utf8_lossy(&table.stdout);
    assert!(
        stdout.contains(
            "server CPU    0.00 s, too little to measure per connection: under 10 clock ticks"
        ),
        "{}",
        show(&table)
    );
}

/// The load generator's own cost comes with every run, asked for or not:
/// on a machine it shares with the server it is often what sets the rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_reports_the_clients_own_cpu_time() {
    let addr = tcp_server(Behaviour::Faithful).await.to_string();
    let args = [
        "bulk", "--addr", &addr, "--total", "256MiB", "-c", "2", "-d", "5s",
    ];
    let output = echo_bench(&[&args[..], &["--json"]].concat()).await;
    assert!(output.status.success(), "{}", show(&output));
    let report = json_report(&output);
    let field = |name: &str| {
        report[name]
            .as_f64()
            .unwrap_or_else(|| panic!("no {name}: {}", show(&output)))
    };
    let used = field("client_cpu_s");
    let elapsed = field("elapsed_s");
    let bytes = field("bytes");
    // Checking every byte of 256 MiB takes CPU; far more than a tick's worth.
    assert!(used > 0.01, "{used} s: {}", show(&output));
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    assert!(
        field("client_cores") > 0.0 && field("client_cores") <= cores + 0.05,
        "{} cores busy of {cores}: {}",
        field("client_cores"),
        show(&output)
    );
    let per_gib = used / (bytes / f64::from(1u32 << 30));
    assert!(
        (field("client_cpu_per_gib_s") - per_gib).abs() <= per_gib * 0.006,
        "{per_gib} s/GiB: {}",
        show(&output)
    );
    assert!(
        (field("client_cores") - used / elapsed).abs() <= 0.0051,
        "{}",
        show(&output)
    );
    assert!(report.get("server_cpu_s").is_none(), "no --server-pid");

    let output = echo_bench(&args).await;
    assert!(output.status.success(), "{}", show(&output));
    let table = String::from_utf8_lossy(&output.stdout);
    let line = table
        .lines()
        .find(|line| line.trim_start().starts_with("client CPU"))
        .unwrap_or_else(|| panic!("no client CPU line: {}", show(&output)));
    assert!(
        line.contains(" s/GiB, ") && line.ends_with(" cores busy on average"),
        "{line}"
    );
}
