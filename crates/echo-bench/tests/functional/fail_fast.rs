//! A target where nothing listens: the command stops at once with one
//! `error:` line, and a run that meets refusals anyway, or a target that
//! accepts and resets, backs off instead of hammering the target.

use std::sync::Arc;
use std::time::{Duration, Instant};

use echo_bench::{Live, Plan, Scenario};

use super::util::{Behaviour, TempDir, echo_bench, refusing_address, show, tcp_server};

/// What the error of a target where nothing listens says to do.
pub const NEXT_STEP: &str = "is a server running there? start one with \
    `cargo run -p echo-server` (add `-- --udp` for udp), or pick another address with --addr";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_ends_the_run_at_once_with_one_error_line() {
    let (_socket, addr) = refusing_address();
    let addr = addr.to_string();
    for scenario in ["conn", "persistent", "bulk", "idle", "udp"] {
        let started = Instant::now();
        let output = echo_bench(&[scenario, "--addr", &addr, "-d", "5s"]).await;
        let took = started.elapsed();
        eprintln!("{scenario} against a refusing {addr} ended after {took:?}");
        assert_eq!(
            output.status.code(),
            Some(1),
            "{scenario}: {}",
            show(&output)
        );
        assert!(
            took < Duration::from_secs(5),
            "{scenario} took {took:?}, its whole duration"
        );
        assert!(output.stdout.is_empty(), "{scenario}: {}", show(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr,
            format!("error: nothing listens at {addr} (connection refused): {NEXT_STEP}\n"),
            "{scenario}: {}",
            show(&output)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_socket_file_is_named_as_such() {
    let dir = TempDir::new("missing");
    let path = dir.path().join("nobody.sock");
    let addr = format!("unix:{}", path.display());
    let output = echo_bench(&["persistent", "--addr", &addr, "-d", "5s"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!("error: nothing listens at {addr} (no such socket file): {NEXT_STEP}\n")
    );
}

/// A one-second run of `scenario` by four workers against `addr`, through
/// the library's `run` alone (without the first connection's check), which
/// must fail.
async fn failing_run(scenario: &Scenario, addr: std::net::SocketAddr) -> echo_bench::Report {
    let plan = Plan {
        workers: 4,
        duration: Duration::from_secs(1),
        ..Plan::local(scenario.clone(), addr)
    };
    let plan = plan.validate().expect("a valid plan");
    let report = echo_bench::run(&plan, Arc::new(Live::default()))
        .await
        .expect("the run starts");
    assert!(!report.ok, "{report}");
    report
}

/// Without the first connection's check (the library's `run` alone), every
/// attempt is refused; the backoff keeps them to a few per worker and second
/// (10 ms doubling: 0, 10, 30, 70, 150, 310, 630 ms), where a worker that
/// retried at once made some 3,000 per second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_workers_back_off_instead_of_hammering() {
    let (_socket, addr) = refusing_address();
    for scenario in [
        Scenario::Conn,
        Scenario::Persistent,
        Scenario::Udp { max_loss: 1.0 },
    ] {
        let started = Instant::now();
        let report = failing_run(&scenario, addr).await;
        let refused = report.error_counts.connect;
        eprintln!(
            "{}: {refused} refusals in {:?}",
            scenario.name(),
            started.elapsed()
        );
        assert!(
            (4..=4 * 10).contains(&refused),
            "{} refusals: {report}",
            scenario.name()
        );
        assert_eq!(report.errors, refused, "{report}");
    }
}

/// A target that accepts every connection and resets it at once (an
/// overloaded proxy, say) gets the same pauses as one that refuses: a
/// connection made is no success until an echo comes back over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_reset_at_once_back_off_too() {
    let addr = tcp_server(Behaviour::Resets).await;
    for scenario in [Scenario::Conn, Scenario::Persistent] {
        let started = Instant::now();
        let report = failing_run(&scenario, addr).await;
        eprintln!(
            "{}: {} failed exchanges in {:?}: {:?}",
            scenario.name(),
            report.errors,
            started.elapsed(),
            report.error_counts
        );
        assert_eq!(report.exchanges, 0, "{report}");
        assert!(
            (4..=4 * 10).contains(&report.errors),
            "{} failed exchanges: {report}",
            scenario.name()
        );
    }
}
