//! What a new user meets first: the line that says the load has started
//! (and no progress line when stderr is not a terminal), `-a`, the plot on
//! stdout, and the hint when a default echo-server's UDP limit loses datagrams.

use std::process::Command;

use super::util::{
    Behaviour, Server, TempDir, binary, echo_bench, json_report, run_bounded, show, tcp_server,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_is_announced_on_stderr_and_a_pipe_gets_no_progress_line() {
    let addr = tcp_server(Behaviour::Faithful).await.to_string();
    let cases: [(&[&str], String); 3] = [
        (
            &["persistent", "-a", &addr, "-c", "2", "-n", "20"],
            format!("running persistent test of 20 exchanges (at most 1m) @ {addr}, 2 workers\n"),
        ),
        (
            &["conn", "-a", &addr, "-c", "1", "-d", "200ms"],
            format!("running 200ms conn test @ {addr}, 1 worker\n"),
        ),
        (
            &["bulk", "-a", &addr, "--total", "1MiB", "-d", "5s"],
            format!("running bulk test of 1 MiB (at most 5s) @ {addr}, 1 worker\n"),
        ),
    ];
    for (args, expected) in cases {
        let output = echo_bench(args).await;
        assert_eq!(output.status.code(), Some(0), "{args:?}: {}", show(&output));
        // Exactly the one line: a progress bar drawn to a pipe would show here.
        assert_eq!(
            String::from_utf8_lossy(&output.stderr),
            expected,
            "{args:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plot_out_dash_writes_the_svg_to_stdout() {
    let addr = tcp_server(Behaviour::Faithful).await.to_string();
    let run = echo_bench(&["persistent", "-a", &addr, "-n", "10", "--json"]).await;
    assert_eq!(run.status.code(), Some(0), "{}", show(&run));
    let dir = TempDir::new("plot-dash");
    let reports = dir.path().join("reports.jsonl");
    std::fs::write(&reports, &run.stdout).expect("write the report");
    let output = run_bounded(
        Command::new(binary())
            .current_dir(dir.path())
            .args(["plot", "--out", "-"])
            .arg(&reports),
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let svg = String::from_utf8_lossy(&output.stdout);
    assert!(svg.starts_with("<svg "), "{}", show(&output));
    assert!(svg.trim_end().ends_with("</svg>"), "{}", show(&output));
    assert!(!dir.path().join("-").exists(), "no file named -");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_datagrams_bring_a_hint_naming_udp_rate() {
    let server = Server::start_with(&["--listen", "127.0.0.1:0", "--udp", "--udp-rate", "10"], 2);
    let udp = server.listener_addr("udp", 0).to_string();
    // One source, 30 datagrams, 10 answered a second: the rest are lost.
    let args = [
        "udp",
        "-a",
        &udp,
        "-c",
        "1",
        "-n",
        "30",
        "--timeout",
        "50ms",
        "--json",
    ];
    let output = echo_bench(&args).await;
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let report = json_report(&output);
    let lost = report["lost"].as_u64().expect("lost");
    assert!(lost >= 10, "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let hint = format!(
        "hint: {lost} datagrams were lost; an echo-server answers each source at most \
         --udp-rate times a second (1000 by default): start it with --udp-rate 0 to \
         measure it unlimited\n"
    );
    assert!(stderr.contains(&hint), "{}", show(&output));

    let unlimited = Server::start_with(&["--listen", "127.0.0.1:0", "--udp", "--udp-rate", "0"], 2);
    let udp = unlimited.listener_addr("udp", 0).to_string();
    let output = echo_bench(&["udp", "-a", &udp, "-c", "1", "-n", "30", "--json"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    assert_eq!(json_report(&output)["lost"], 0, "{}", show(&output));
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("hint:"),
        "{}",
        show(&output)
    );
}
