//! A server that corrupts one byte must fail the run: the command exits
//! non-zero and says so on stdout and stderr, whatever the scenario.

use super::util::{Behaviour, echo_bench, json_report, show, tcp_server, udp_server};

async fn assert_caught(scenario: &str, addr: std::net::SocketAddr, extra: &[&str]) {
    let addr = addr.to_string();
    let mut args = vec![scenario, "--addr", &addr, "-c", "2", "-d", "300ms"];
    args.extend_from_slice(extra);
    let output = echo_bench(&args).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
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
