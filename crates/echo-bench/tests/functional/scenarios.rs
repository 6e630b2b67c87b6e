//! Every scenario through the library against in-test servers: what it
//! counts against a faithful server, and that faults are counted, not hung on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use echo_bench::{Live, Plan, Report, Scenario};

use super::util::{
    Behaviour, closed_port, tcp_server, tcp_server_noting_peers, tcp_server_on, udp_server,
};

fn plan(scenario: Scenario, addr: SocketAddr) -> Plan {
    Plan {
        workers: 4,
        size: 64,
        duration: Duration::from_millis(300),
        timeout: Duration::from_secs(5),
        ..Plan::local(scenario, addr)
    }
}

async fn run(plan: &Plan) -> Report {
    let plan = plan.clone().validate().expect("a valid plan");
    echo_bench::run(&plan, Arc::new(Live::default()))
        .await
        .expect("the run starts")
}

fn assert_clean(report: &Report) {
    assert!(report.ok, "{report}");
    assert_eq!(report.errors, 0, "{report}");
    assert!(report.exchanges > 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conn_stops_at_exactly_the_count() {
    let addr = tcp_server(Behaviour::Faithful).await;
    let plan = Plan {
        count: Some(200),
        duration: Duration::from_secs(60),
        ..plan(Scenario::Conn, addr)
    };
    let report = run(&plan).await;
    assert_clean(&report);
    assert_eq!(report.exchanges, 200);
    assert_eq!(report.bytes, 200 * 64);
    assert!(report.count_reached);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_counts_messages_and_latencies() {
    let addr = tcp_server(Behaviour::Faithful).await;
    let report = run(&Plan {
        count: Some(500),
        duration: Duration::from_secs(60),
        ..plan(Scenario::Persistent, addr)
    })
    .await;
    assert_clean(&report);
    assert_eq!(report.exchanges, 500);
    assert_eq!(report.bytes, 500 * 64);
    assert!(
        report.p50_us > 0.0 && report.p50_us <= report.p99_us && report.p99_us <= report.max_us
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_larger_than_socket_buffers_do_not_stall() {
    let addr = tcp_server(Behaviour::Faithful).await;
    for scenario in [Scenario::Conn, Scenario::Persistent] {
        let report = run(&Plan {
            size: 4 << 20,
            workers: 2,
            count: Some(4),
            duration: Duration::from_secs(60),
            ..plan(scenario, addr)
        })
        .await;
        assert_clean(&report);
        assert_eq!(report.bytes, 4 * (4 << 20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_conn_message_is_a_valid_exchange() {
    let addr = tcp_server(Behaviour::Faithful).await;
    let report = run(&Plan {
        size: 0,
        count: Some(20),
        duration: Duration::from_secs(60),
        ..plan(Scenario::Conn, addr)
    })
    .await;
    assert_clean(&report);
    assert_eq!(report.exchanges, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_streams_and_checks_the_whole_total() {
    let addr = tcp_server(Behaviour::Faithful).await;
    let total = (8 << 20) + 3;
    let report = run(&Plan {
        workers: 2,
        size: 64 * 1024,
        duration: Duration::from_secs(30),
        ..plan(Scenario::Bulk { total }, addr)
    })
    .await;
    assert_clean(&report);
    assert_eq!(report.bytes, total);
    assert_eq!(report.total, Some(total));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_holds_connections_and_measures_memory() {
    let addr = tcp_server(Behaviour::Faithful).await;
    let report = run(&Plan {
        workers: 8,
        duration: Duration::from_millis(100),
        server_pid: Some(std::process::id()),
        ..plan(Scenario::Idle { connections: 100 }, addr)
    })
    .await;
    assert_clean(&report);
    assert_eq!(report.exchanges, 100);
    assert_eq!(report.held, Some(100));
    assert_eq!(report.source_addresses, Some(1));
    assert!(
        report.rss_before_kib.is_some() && report.rss_after_kib.is_some(),
        "{report}"
    );
    assert!(report.rss_per_connection.is_some(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_counts_datagrams() {
    let addr = udp_server(Behaviour::Faithful).await;
    let report = run(&Plan {
        count: Some(300),
        duration: Duration::from_secs(60),
        ..plan(Scenario::Udp { max_loss: 50.0 }, addr)
    })
    .await;
    assert!(report.ok, "{report}");
    assert_eq!(report.exchanges + report.lost.unwrap_or(0), 300, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_datagrams_are_lost_not_errors_and_fail_past_the_limit() {
    let addr = udp_server(Behaviour::Silent).await;
    let report = run(&Plan {
        count: Some(8),
        timeout: Duration::from_millis(100),
        ..plan(Scenario::Udp { max_loss: 1.0 }, addr)
    })
    .await;
    assert_eq!(report.errors, 0, "{report}");
    assert_eq!(report.lost, Some(8));
    assert_eq!(report.loss_pct, Some(100.0));
    assert!(!report.ok);
    assert!(
        report
            .failures
            .iter()
            .any(|f| f.contains("more than the 1% allowed")),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_address_is_counted_as_connect_errors() {
    let addr = closed_port().await;
    let report = run(&Plan {
        count: Some(10),
        ..plan(Scenario::Conn, addr)
    })
    .await;
    assert!(!report.ok);
    assert_eq!(report.error_counts.connect, 10, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_server_costs_a_timeout_not_a_hang() {
    let addr = tcp_server(Behaviour::Silent).await;
    for scenario in [
        Scenario::Conn,
        Scenario::Persistent,
        Scenario::Bulk { total: 64 << 20 },
        Scenario::Idle { connections: 4 },
    ] {
        let started = Instant::now();
        let report = run(&Plan {
            workers: 2,
            duration: Duration::from_millis(200),
            timeout: Duration::from_millis(300),
            ..plan(scenario.clone(), addr)
        })
        .await;
        assert!(!report.ok, "{report}");
        assert!(report.error_counts.timeout > 0, "{report}");
        // The run's own bound: duration, one timeout in flight, one to close, grace.
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{scenario:?} took {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_loopback_works_where_available() {
    let Ok(listener) = tokio::net::TcpListener::bind("[::1]:0").await else {
        return;
    };
    let addr = tcp_server_on(listener, Behaviour::Faithful);
    for scenario in [
        Scenario::Conn,
        Scenario::Persistent,
        Scenario::Idle { connections: 10 },
    ] {
        let report = run(&Plan {
            duration: Duration::from_millis(100),
            ..plan(scenario, addr)
        })
        .await;
        assert_clean(&report);
    }
}

/// Runs the `setup` commands (each a program and its arguments), then
/// `load` on a current-thread runtime, on a thread of its own inside a new
/// network namespace, so that the rest of the tests stay where they are.
/// `None` when the namespace or a setup command cannot be had here (no root,
/// no iproute2), for the test to say so and pass.
fn in_own_network<T, F>(setup: &[&[&str]], load: impl FnOnce() -> F + Send + 'static) -> Option<T>
where
    F: std::future::Future<Output = T>,
    T: Send + 'static,
{
    let setup: Vec<Vec<String>> = setup
        .iter()
        .map(|command| command.iter().map(|&word| word.to_owned()).collect())
        .collect();
    std::thread::spawn(move || {
        // Namespaces belong to the thread.
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
        for command in &setup {
            let (program, args) = command.split_first()?;
            let status = std::process::Command::new(program).args(args).status();
            if !status.is_ok_and(|status| status.success()) {
                return None;
            }
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Some(runtime.block_on(load()))
    })
    .join()
    .expect("namespace thread")
}

/// Runs on a thread of its own in a new network namespace whose ephemeral port
/// range is 128 ports wide, so 400 connections must come from several source
/// addresses. Needs the right to make namespaces (root, as in CI); without it
/// the test says so and passes.
#[test]
fn idle_spreads_over_source_addresses_when_ports_run_out() {
    let setup: &[&[&str]] = &[
        &["ip", "link", "set", "lo", "up"],
        &[
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.ip_local_port_range=40000 40127",
        ],
    ];
    let outcome = in_own_network(setup, || async {
        let addr = tcp_server(Behaviour::Faithful).await;
        run(&Plan {
            workers: 8,
            duration: Duration::from_millis(50),
            ..plan(Scenario::Idle { connections: 400 }, addr)
        })
        .await
    });
    let Some(report) = outcome else {
        eprintln!("skipped: cannot make a network namespace with its own port range here");
        return;
    };
    assert_clean(&report);
    assert_eq!(report.held, Some(400), "{report}");
    assert!(report.source_addresses.is_some_and(|n| n >= 3), "{report}");
}

/// Runs on a thread of its own in a new network namespace whose loopback
/// has three IPv6 addresses besides `::1`: connections to one of them come
/// from all three, as they come from 127.0.0.1 to 127.0.0.8 towards IPv4
/// loopback. Needs the right to make namespaces (root, as in CI); without
/// it the test says so and passes.
#[test]
fn conn_spreads_over_this_machines_own_ipv6_addresses() {
    const OWN: [&str; 3] = ["fd00:e::1", "fd00:e::2", "fd00:e::3"];
    let own = |address| ["ip", "-6", "addr", "add", address, "dev", "lo", "nodad"];
    let (first, second, third) = (
        own("fd00:e::1/128"),
        own("fd00:e::2/128"),
        own("fd00:e::3/128"),
    );
    let setup: &[&[&str]] = &[&["ip", "link", "set", "lo", "up"], &first, &second, &third];
    let outcome = in_own_network(setup, || async {
        let listener = tokio::net::TcpListener::bind("[fd00:e::1]:0")
            .await
            .expect("bind an own address");
        let (addr, peers) = tcp_server_noting_peers(listener);
        let report = run(&Plan {
            workers: 6,
            count: Some(60),
            duration: Duration::from_secs(30),
            // The command looks them up once; a plan made here says them itself.
            own_addresses: echo_bench::host::own_addresses(),
            ..plan(Scenario::Conn, addr)
        })
        .await;
        let peers = peers.lock().expect("peers lock").clone();
        (report, peers)
    });
    let Some((report, peers)) = outcome else {
        eprintln!("skipped: cannot make a network namespace with IPv6 addresses of its own here");
        return;
    };
    assert_clean(&report);
    assert_eq!(report.exchanges, 60);
    let expected: std::collections::HashSet<std::net::IpAddr> = OWN
        .iter()
        .map(|own| own.parse().expect("literal"))
        .collect();
    assert_eq!(peers, expected, "{report}");
}
