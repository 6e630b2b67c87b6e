//! The command as a user meets it: output forms, exit codes, usage errors, plots.

use super::util::{
    Behaviour, after_start_line, echo_bench, json_report, on_a_terminal, show, tcp_server,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_run_prints_a_table_and_nothing_on_stderr() {
    let addr = tcp_server(Behaviour::Faithful).await.to_string();
    let output = echo_bench(&["persistent", "--addr", &addr, "-c", "4", "-d", "300ms"]).await;
    assert!(output.status.success(), "{}", show(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with("persistent 64 B × 4 → "),
        "{}",
        show(&output)
    );
    assert!(
        stdout.contains("messages") && stdout.contains("MB/s"),
        "{}",
        show(&output)
    );
    assert!(stdout.contains("p99.9"), "{}", show(&output));
    assert!(stdout.contains("errors        none"), "{}", show(&output));
    // No progress bar, nor anything else, when stderr is not a terminal.
    assert_eq!(after_start_line(&output), "", "{}", show(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_is_one_parseable_line_per_run() {
    let addr = tcp_server(Behaviour::Faithful).await.to_string();
    let output = echo_bench(&[
        "conn", "--addr", &addr, "-n", "50", "-s", "1KiB", "--json", "--label", "test",
    ])
    .await;
    assert!(output.status.success(), "{}", show(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.lines().count(), 1, "{}", show(&output));
    let report = json_report(&output);
    assert_eq!(report["ok"], true);
    assert_eq!(report["exchanges"], 50);
    assert_eq!(report["bytes"], 50 * 1024);
    assert_eq!(report["label"], "test");
    assert_eq!(report["title"], "conn 1 KiB × 50");
    for key in ["p50_us", "p90_us", "p99_us", "p999_us", "max_us", "rate"] {
        assert!(
            report[key].as_f64().is_some_and(|v| v > 0.0),
            "{key}: {stdout}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flags_are_a_usage_error() {
    for args in [
        &["conn", "-s", "12 parsecs"][..],
        &["conn", "-d", "5"],
        &["bulk", "-n", "3"],
        &["udp", "-s", "4"],
        &["frobnicate"],
        &["bulk", "--rate", "100"],
        &["conn", "--rate", "0"],
        &["conn", "--addr", "localhost"],
        &["conn", "--addr", "::1:7007"],
    ] {
        let output = echo_bench(args).await;
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", show(&output));
        assert!(output.stdout.is_empty(), "{args:?}: {}", show(&output));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_a_progress_line_is_drawn_as_the_run_goes() {
    let addr = tcp_server(Behaviour::Faithful).await.to_string();
    let (status, text) =
        on_a_terminal(&["persistent", "--addr", &addr, "-c", "2", "-d", "1500ms"]).await;
    assert!(status.success(), "{text}");
    assert!(
        text.starts_with("running 1s500ms persistent test @ "),
        "{text:?}"
    );
    // Redrawn as the run goes, not once at its end.
    assert!(
        text.matches(" exchanges").count() >= 2,
        "no progress line redrawn: {text:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_are_coloured_as_color_says() {
    // Before the scenario or after it: the flag is global.
    for args in [
        &["--color", "always", "conn", "--bogus"][..],
        &["conn", "--bogus", "--color=always"],
    ] {
        let output = echo_bench(args).await;
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", show(&output));
        assert!(output.stderr.contains(&0x1b), "{args:?}: {}", show(&output));
    }
    // Into a pipe, as here, auto colours nothing.
    let output = echo_bench(&["conn", "--bogus"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(!output.stderr.contains(&0x1b), "{}", show(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_become_a_latency_plot() {
    let addr = tcp_server(Behaviour::Faithful).await.to_string();
    let dir = std::env::temp_dir().join(format!("echo-bench-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut lines = String::new();
    for label in ["one", "two"] {
        let output = echo_bench(&[
            "persistent",
            "--addr",
            &addr,
            "-c",
            "2",
            "-n",
            "200",
            "--json",
            "--label",
            label,
        ])
        .await;
        assert!(output.status.success(), "{}", show(&output));
        lines.push_str(&String::from_utf8_lossy(&output.stdout));
    }
    let reports = dir.join("reports.jsonl");
    std::fs::write(&reports, lines).expect("write reports");
    let svg = dir.join("latency.svg");
    let output = echo_bench(&[
        "plot",
        "--out",
        svg.to_str().expect("utf-8 path"),
        reports.to_str().expect("utf-8 path"),
    ])
    .await;
    assert!(output.status.success(), "{}", show(&output));
    let text = std::fs::read_to_string(&svg).expect("svg written");
    assert!(text.starts_with("<svg"), "{}", &text[..text.len().min(200)]);
    for needle in ["persistent 64 B × 2", "\none\n", "\ntwo\n", "99.9%"] {
        assert!(text.contains(needle), "{needle:?} not in the plot");
    }
    let _ = std::fs::remove_dir_all(&dir);

    let output = echo_bench(&["plot", "--out", "/dev/null", "/nonexistent/reports.jsonl"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    assert!(String::from_utf8_lossy(&output.stderr).starts_with("error: cannot open"));
}
