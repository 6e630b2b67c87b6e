//! A server that corrupts one byte must fail the run: the command exits
//! non-zero and says so on stdout and stderr, whatever the scenario; and so
//! must a UDP server that answers every datagram twice.

use super::util::{
    Behaviour, TwiceAnswering, after_start_line, echo_bench, json_report, show, tcp_server,
    udp_server,
};

async fn assert_caught(scenario: &str, addr: std::net::SocketAddr, extra: &[&str]) {
    let addr = addr.to_string();
    let mut args = vec![scenario, "--addr", &addr, "-c", "2", "-d", "300ms"];
    args.extend_from_slice(extra);
    let output = echo_bench(&args).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = after_start_line(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{scenario}: {}",
        show(&output)
    );
    assert!(stdout.contains("FAILED"), "{scenario}: {}", show(&output));
    assert!(stdout.contains("mismatch"), "{scenario}: {}", show(&output));
    assert!(stdout.contains("differs"), "{scenario}: {}", show(&output));
    assert!(
        stderr.starts_with("error: ") && stderr.contains("FAILED"),
        "{scenario}: {}",
        show(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_fails_every_tcp_scenario() {
    let addr = tcp_server(Behaviour::FlipByte).await;
    assert_caught("conn", addr, &[]).await;
    assert_caught("persistent", addr, &[]).await;
    assert_caught("bulk", addr, &["--total", "4MiB"]).await;
    assert_caught("idle", addr, &["--connections", "10"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_fails_the_udp_scenario() {
    let addr = udp_server(Behaviour::FlipByte).await;
    assert_caught("udp", addr, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_line_says_so_too() {
    let addr = tcp_server(Behaviour::FlipByte).await.to_string();
    let output = echo_bench(&["persistent", "--addr", &addr, "-n", "10", "--json"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.lines().count(), 1, "{}", show(&output));
    let report = json_report(&output);
    assert_eq!(report["ok"], false);
    assert_eq!(report["error_counts"]["mismatch"], 10);
}

/// One socket sends 20 datagrams, one at a time, to a server that answers
/// each twice: the second answer to each of the first 19 comes while the
/// next is awaited and is counted as a duplicate; that to the 20th comes
/// after the run has ended with its count, and is not waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datagram_answered_twice_fails_the_udp_scenario() {
    let server = TwiceAnswering::start();
    let addr = server.addr().to_string();
    let output = echo_bench(&[
        "udp", "--addr", &addr, "-c", "1", "-n", "20", "-d", "20s", "--json",
    ])
    .await;
    // The datagram before the load, that proves a server is there, and the 20.
    assert_eq!(server.stop(), 21, "{}", show(&output));
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let report = json_report(&output);
    assert_eq!(report["ok"], false, "{}", show(&output));
    assert_eq!(report["exchanges"], 20, "{}", show(&output));
    assert_eq!(report["error_counts"]["duplicate"], 19, "{}", show(&output));
    assert_eq!(report["errors"], 19, "{}", show(&output));
    assert_eq!(report["lost"], 0, "{}", show(&output));
    assert_eq!(report["late"], 0, "{}", show(&output));
    assert_eq!(report["loss_pct"], 0.0, "{}", show(&output));
    assert_eq!(
        report["failures"],
        serde_json::json!(["19 errors (duplicate 19)"]),
        "{}",
        show(&output)
    );
    assert_eq!(
        report["error_samples"][0],
        "worker 0: another reply to datagram 1, already answered"
    );
    let stderr = after_start_line(&output);
    assert!(
        stderr.starts_with("error: udp run against") && stderr.contains("duplicate 19"),
        "{}",
        show(&output)
    );
}
