//! Any target: Unix sockets, host names, and addresses off this machine,
//! which are loaded after a note on stderr rather than refused.
//!
//! Nothing here sends a byte off loopback: off-host addresses are only
//! planned (`--dry-run`), or tried inside a network namespace of the test's
//! own, where nothing can leave; names come from `/etc/hosts` (`localhost`),
//! or from a private one in a mount namespace of their own.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Command, Output};

use super::util::{
    Behaviour, TempDir, after_start_line, binary, echo_bench, json_report, refusing_address,
    run_bounded, show, tcp_server, unix_server,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stream_scenario_runs_over_a_unix_socket() {
    let dir = TempDir::new("unix");
    let path = unix_server(&dir);
    let addr = format!("unix:{}", path.display());
    for args in [
        &["conn", "-n", "200"][..],
        &["persistent", "-n", "500", "-s", "1KiB"],
        &["bulk", "--total", "8MiB"],
        &["idle", "--connections", "20", "-d", "100ms"],
    ] {
        let output = echo_bench(&[args, &["--addr", &addr, "-c", "2", "--json"]].concat()).await;
        assert!(output.status.success(), "{args:?}: {}", show(&output));
        let report = json_report(&output);
        assert_eq!(report["addr"], addr.as_str(), "{args:?}");
        assert_eq!(report["leaves_host"], false, "{args:?}");
        assert!(
            report["exchanges"].as_u64().is_some_and(|n| n > 0),
            "{args:?}"
        );
        assert_eq!(after_start_line(&output), "", "{args:?}: {}", show(&output));
    }
    let output = echo_bench(&["udp", "--addr", &addr, "-n", "1"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("is a Unix stream socket"),
        "{}",
        show(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_name_from_etc_hosts_is_resolved_and_loaded() {
    let addr = tcp_server(Behaviour::Faithful).await;
    let target = format!("localhost:{}", addr.port());
    let output = echo_bench(&[
        "persistent",
        "--addr",
        &target,
        "-c",
        "2",
        "-n",
        "100",
        "--json",
    ])
    .await;
    assert!(output.status.success(), "{}", show(&output));
    let report = json_report(&output);
    assert_eq!(report["target"], target.as_str());
    assert_eq!(report["addr"], addr.to_string().as_str());
    assert_eq!(report["leaves_host"], false);
    assert_eq!(report["exchanges"], 100);
    assert_eq!(
        after_start_line(&output),
        "",
        "no note for this machine: {}",
        show(&output)
    );
}

/// A plan to an address off this machine is printed, with the note, and
/// nothing is sent: the command never opens a socket towards it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_off_this_machine_is_planned_with_a_note_not_refused() {
    for (scenario, addr) in [
        ("conn", "10.0.0.1:7"),
        ("udp", "10.0.0.1:7"),
        ("persistent", "[2001:db8::1]:7"),
    ] {
        let ip: SocketAddr = addr.parse().expect("literal");
        if echo_bench::host::own_addresses().contains(&ip.ip()) {
            eprintln!("skipped {addr}: it is this machine's own address here");
            continue;
        }
        let output = echo_bench(&[scenario, "--dry-run", "--addr", addr, "--rate", "100"]).await;
        assert_eq!(output.status.code(), Some(0), "{}", show(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr,
            format!("echo-bench: note: the load goes to {addr}, off this machine\n"),
            "{}",
            show(&output)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        for needle in [
            "dry run, nothing sent".to_owned(),
            format!("target        {addr}"),
            format!("addresses     {addr} (off this machine)"),
            format!("scenario      {scenario}"),
            "workers       ".to_owned(),
            "size          64 B per message".to_owned(),
            "duration      5s".to_owned(),
            "rate          100 exchanges/s".to_owned(),
            format!("leaves host   yes, to {addr}"),
        ] {
            assert!(stdout.contains(&needle), "{needle:?}: {}", show(&output));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_sends_nothing() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
    listener.set_nonblocking(true).expect("non-blocking");
    let tcp = listener.local_addr().expect("addr").to_string();
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    socket.set_nonblocking(true).expect("non-blocking");
    let udp = socket.local_addr().expect("addr").to_string();
    for (scenario, addr) in [("conn", &tcp), ("idle", &tcp), ("udp", &udp)] {
        let output = echo_bench(&[scenario, "--dry-run", "--addr", addr]).await;
        assert!(output.status.success(), "{}", show(&output));
        assert!(output.stderr.is_empty(), "{}", show(&output));
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("leaves host   no"),
            "{}",
            show(&output)
        );
    }
    // The command has exited: any connection it made would wait in the
    // accept queue, any datagram in the socket's buffer.
    assert_eq!(
        listener.accept().map(|_| ()).map_err(|err| err.kind()),
        Err(ErrorKind::WouldBlock)
    );
    let mut buffer = [0u8; 64];
    assert_eq!(
        socket
            .recv(&mut buffer)
            .map(|_| ())
            .map_err(|err| err.kind()),
        Err(ErrorKind::WouldBlock)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_in_json_is_the_plan_as_one_object() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
    listener.set_nonblocking(true).expect("non-blocking");
    let tcp = listener.local_addr().expect("addr").to_string();
    let args = [
        "bulk",
        "--dry-run",
        "--json",
        "--addr",
        &tcp,
        "-c",
        "2",
        "--total",
        "1MiB",
        "-d",
        "3s",
        "--label",
        "ours",
    ];
    let output = echo_bench(&args).await;
    assert!(output.status.success(), "{}", show(&output));
    assert!(
        output.stderr.is_empty(),
        "a dry run starts nothing: {}",
        show(&output)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.lines().count(), 1, "{}", show(&output));
    let plan = json_report(&output);
    assert_eq!(
        plan,
        serde_json::json!({
            "dry_run": true,
            "scenario": "bulk",
            "target": tcp,
            "addresses": [{"addr": tcp, "on_this_host": true}],
            "leaves_host": false,
            "workers": 2,
            "size": 65536,
            "total": 1048576,
            "duration_s": 3.0,
            "timeout_s": 5.0,
            "label": "ours",
        }),
        "{}",
        show(&output)
    );
    let udp = [
        "udp",
        "--dry-run",
        "--json",
        "--addr",
        &tcp,
        "--rate",
        "100",
    ];
    let output = echo_bench(&udp).await;
    assert!(output.status.success(), "{}", show(&output));
    let plan = json_report(&output);
    assert_eq!(plan["rate_asked"], 100.0, "{}", show(&output));
    assert!(plan["max_loss_pct"].is_number(), "{}", show(&output));
    assert!(plan.get("total").is_none(), "{}", show(&output));
    assert_eq!(
        listener.accept().map(|_| ()).map_err(|err| err.kind()),
        Err(ErrorKind::WouldBlock),
        "a dry run connected"
    );
}

/// Whether util-linux's `unshare` can make the namespaces named by `flags` here.
fn can_unshare(flags: &[&str]) -> bool {
    Command::new("unshare")
        .args(flags)
        .arg("true")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Inside a network namespace of its own nothing can leave the machine, so
/// an off-host run fails there on the network, never on a refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_off_host_run_fails_on_the_network_not_on_a_refusal() {
    if !can_unshare(&["--net"]) {
        eprintln!("skipped: a network namespace needs root and unshare (util-linux)");
        return;
    }
    for scenario in ["conn", "persistent", "udp"] {
        let output = run_bounded(Command::new("unshare").args([
            "--net",
            binary(),
            scenario,
            "--addr",
            "10.0.0.1:7",
            "-d",
            "2s",
        ]))
        .await;
        assert_eq!(
            output.status.code(),
            Some(1),
            "{scenario}: {}",
            show(&output)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(
            lines,
            [
                "echo-bench: note: the load goes to 10.0.0.1:7, off this machine",
                "error: cannot connect to 10.0.0.1:7: Network is unreachable (os error 101)",
            ],
            "{scenario}: {}",
            show(&output)
        );
    }
}

/// Runs `echo-bench args` in a mount namespace of its own where names come
/// from `hosts` alone (`/etc/hosts` and `/etc/nsswitch.conf` replaced), and,
/// with `offline`, in a network namespace of its own too.
async fn with_hosts(hosts: &str, offline: bool, args: &[&str]) -> Option<Output> {
    let namespaces: &[&str] = if offline {
        &["--mount", "--net"]
    } else {
        &["--mount"]
    };
    if !can_unshare(namespaces) {
        eprintln!("skipped: a private /etc/hosts needs root and unshare (util-linux)");
        return None;
    }
    let dir = TempDir::new("hosts");
    let hosts_file = dir.path().join("hosts");
    std::fs::write(&hosts_file, hosts).expect("write hosts");
    let nsswitch = dir.path().join("nsswitch.conf");
    std::fs::write(&nsswitch, "hosts: files\n").expect("write nsswitch.conf");
    let output = run_bounded(
        Command::new("unshare")
            .args(namespaces)
            .args([
                "sh",
                "-c",
                r#"mount --bind "$0" /etc/hosts && mount --bind "$1" /etc/nsswitch.conf && shift && exec "$@""#,
            ])
            .arg(&hosts_file)
            .arg(&nsswitch)
            .arg(binary())
            .args(args),
    )
    .await;
    Some(output)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_does_not_resolve_is_one_error_line() {
    let Some(output) = with_hosts(
        "127.0.0.1 localhost\n",
        true,
        &["conn", "--addr", "no-such-host.invalid:7", "-n", "1"],
    )
    .await
    else {
        return;
    };
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: cannot resolve host name 'no-such-host.invalid': "),
        "{}",
        show(&output)
    );
    assert_eq!(stderr.lines().count(), 1, "{}", show(&output));
}

/// A name whose first address has no server (`::1` here, held bound and
/// refusing) gets its load at the next, where one listens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_loads_its_first_address_that_answers() {
    let addr = tcp_server(Behaviour::Faithful).await;
    let refusing_v6 = {
        let socket = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None);
        let v6: SocketAddr = format!("[::1]:{}", addr.port()).parse().expect("literal");
        socket.ok().filter(|socket| socket.bind(&v6.into()).is_ok())
    };
    if refusing_v6.is_none() {
        eprintln!("skipped: cannot hold [::1]:{} here", addr.port());
        return;
    }
    let hosts = "::1 dual-stack.invalid\n127.0.0.1 dual-stack.invalid\n";
    let target = format!("dual-stack.invalid:{}", addr.port());
    let Some(output) = with_hosts(
        hosts,
        false,
        &["conn", "--addr", &target, "-n", "20", "--json"],
    )
    .await
    else {
        return;
    };
    assert!(output.status.success(), "{}", show(&output));
    let report = json_report(&output);
    assert_eq!(
        report["addr"],
        addr.to_string().as_str(),
        "{}",
        show(&output)
    );
    assert_eq!(report["target"], target.as_str());
    assert_eq!(report["exchanges"], 20);

    // With neither address answering, both are named.
    let (_socket, refusing) = refusing_address();
    let hosts = format!("::1 nobody.invalid\n{} nobody.invalid\n", refusing.ip());
    let port = refusing.port();
    let target = format!("nobody.invalid:{port}");
    let v6: SocketAddr = format!("[::1]:{port}").parse().expect("literal");
    let _held = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::STREAM, None)
        .ok()
        .filter(|socket| socket.bind(&v6.into()).is_ok());
    let Some(output) = with_hosts(&hosts, false, &["conn", "--addr", &target, "-n", "1"]).await
    else {
        return;
    };
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{}", show(&output));
    assert!(
        stderr.starts_with(&format!("error: no address of {target} answers: ")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "nothing listens at 127.0.0.1:{port} (connection refused)"
        )),
        "{stderr}"
    );
}
