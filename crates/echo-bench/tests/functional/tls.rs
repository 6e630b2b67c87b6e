//! TLS: the scenarios over TLS against an in-test rustls echo server, their
//! usage errors, and `tls-floor`'s figures.

use super::util::{echo_bench, show};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_floor_reports_positive_figures_for_the_pinned_suite() {
    let output = echo_bench(&[
        "tls-floor",
        "--handshakes",
        "20",
        "--runs",
        "3",
        "--gib",
        "0.01",
        "--idle",
        "50",
        "--json",
    ])
    .await;
    assert!(output.status.success(), "{}", show(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.lines().count(), 1, "{}", show(&output));
    let floor: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    assert_eq!(floor["protocol"], "TLSv1.3");
    assert_eq!(floor["cipher_suite"], "TLS13_AES_128_GCM_SHA256");
    assert_eq!(floor["group"], "X25519");
    assert_eq!(floor["certificate"], "ECDSA P-256");
    assert_eq!(floor["handshakes"], 20);
    assert_eq!(floor["runs"], 3);
    assert_eq!(floor["bytes"], 10_737_418);
    assert_eq!(floor["record_size"], 16_384);
    assert_eq!(floor["idle_connections"], 50);
    assert_eq!(
        floor["server_handshake_us_runs"].as_array().map(Vec::len),
        Some(3)
    );
    for key in [
        "server_handshake_us",
        "server_resumed_handshake_us",
        "client_handshake_us",
        "seal_s_per_gib",
        "open_s_per_gib",
        "echo_s_per_gib",
        "idle_connection_bytes",
    ] {
        assert!(
            floor[key].as_f64().is_some_and(|v| v > 0.0),
            "{key}: {stdout}"
        );
    }
    let table = echo_bench(&[
        "tls-floor",
        "--handshakes",
        "5",
        "--runs",
        "1",
        "--gib",
        "0.001",
        "--idle",
        "5",
    ])
    .await;
    assert!(table.status.success(), "{}", show(&table));
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.starts_with(
            "TLS crypto floor: TLSv1.3, TLS13_AES_128_GCM_SHA256, X25519, ECDSA P-256 certificate"
        ),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_floor_refuses_empty_measurements() {
    for args in [
        &["tls-floor", "--handshakes", "0"][..],
        &["tls-floor", "--runs", "0"],
        &["tls-floor", "--gib", "0"],
        &["tls-floor", "--gib", "lots"],
    ] {
        let output = echo_bench(args).await;
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", show(&output));
        assert!(output.stdout.is_empty(), "{args:?}: {}", show(&output));
    }
}
