//! `--log-format json` as a log shipper takes it: every line echo-server
//! writes, stdout and stderr, start-up error included, is one JSON object,
//! and no field carries Rust's `Debug` text.

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Stdio};

use echo_client::Client;
use echo_proto::Target;
use echo_tests::{Server, TempDir, WAIT, binary, read_all, server_accepts};
use serde_json::{Map, Value};

/// The event loops asked for, and an open-files limit that allows only two
/// of them: the server starts with a warning naming both.
const THREADS_ASKED: &str = "4";
const NOFILE: &str = "--nofile=600:600";

/// One JSON object, or the test fails naming the line.
fn object(line: &str) -> Map<String, Value> {
    match serde_json::from_str(line) {
        Ok(Value::Object(fields)) => fields,
        Ok(other) => panic!("a JSON line that is not an object: {other}"),
        Err(err) => panic!("not JSON ({err}): {line}"),
    }
}

/// What Rust's `Debug` writes and no log field should: a type or variant
/// name before its parenthesis or brace (`Some(60s)`, `OwnPort(7007)`,
/// `Duration { secs: 1, .. }`), or a string in quotes of its own (`"\"/x\""`).
fn debug_text(value: &str) -> Option<&str> {
    if value.starts_with('"') {
        return Some(value);
    }
    value.split_whitespace().find(|word| {
        let name = word.split(['(', '{']).next().unwrap_or_default();
        let typed = name.starts_with(|c: char| c.is_ascii_uppercase())
            && name.chars().all(|c| c.is_ascii_alphanumeric());
        typed && (word.len() > name.len() || value.contains(&format!("{name} {{")))
    })
}

/// Every string in `fields`, `Debug`-free, or the test fails naming the field.
fn assert_no_debug_text(fields: &Map<String, Value>) {
    for (name, value) in fields {
        if let Some(text) = value.as_str() {
            assert_eq!(debug_text(text), None, "Debug text in {name}: {fields:?}");
        }
    }
}

#[test]
fn the_debug_text_check_catches_what_debug_writes() {
    for debug in [
        "Some(60s)",
        "OwnPort(7007)",
        "Duration { secs: 1, nanos: 0 }",
        "\"/run/notify\"",
        "idle Some(1s) left",
    ] {
        assert!(debug_text(debug).is_some(), "{debug}");
    }
    for plain in [
        "1m",
        "127.0.0.1:7007",
        "Connection reset by peer (os error 104)",
        "source port 7007 is this server's own",
        "SIGTERM",
        "echo-server started",
    ] {
        assert_eq!(debug_text(plain), None, "{plain}");
    }
}

#[test]
fn a_whole_life_in_json_is_one_object_a_line_without_debug_text() {
    let dir = TempDir::new("json-logs");
    let socket_path = dir.path().join("echo.sock");
    let unusable_notify_socket = format!("/{}", "n".repeat(200));
    let mut command = Command::new("prlimit");
    command
        .args([NOFILE, "--"])
        .arg(binary("echo-server"))
        .args([
            "--log-format",
            "json",
            "--listen",
            "127.0.0.1:0",
            "--listen",
        ])
        .arg(format!("unix:{}", socket_path.display()))
        .args(["--udp", "--threads", THREADS_ASKED])
        .args(["--idle-timeout", "3s", "--grace", "20s"])
        .env("RUST_LOG", "debug")
        .env("NOTIFY_SOCKET", &unusable_notify_socket)
        .stdin(Stdio::null());
    // The metrics endpoint, once the server has one, is announced too.
    let metrics = server_accepts("--metrics");
    if metrics {
        command.args(["--metrics", "127.0.0.1:0"]);
    }
    let mut server = Server::start_command(&mut command, 3 + usize::from(metrics));

    // The announcements: JSON events whose kind and address name each listener.
    let tcp = server.listener_addr("tcp", 0);
    let udp = server.listener_addr("udp", 0);
    let announced: Vec<(String, String)> = server
        .announcements()
        .iter()
        .map(|line| {
            let event = object(line);
            assert_eq!(event["level"], "INFO", "{line}");
            assert!(event["timestamp"].is_string(), "{line}");
            let kind = event["kind"].as_str().expect("a kind").to_owned();
            let address = event["address"].as_str().expect("an address").to_owned();
            assert_eq!(
                event["message"],
                format!("listening on {kind} {address}"),
                "{line}"
            );
            (kind, address)
        })
        .collect();
    let mut expected = vec![
        ("tcp".to_owned(), tcp.to_string()),
        ("udp".to_owned(), udp.to_string()),
        ("unix".to_owned(), socket_path.display().to_string()),
    ];
    if metrics {
        let address = server.listener_addr("metrics", 0).to_string();
        expected.push(("metrics".to_owned(), address));
    }
    assert_eq!(announced, expected);

    // TCP and Unix echoes, each a connection opened and finished at debug level.
    let unix: Target = format!("unix:{}", socket_path.display())
        .parse()
        .expect("a Unix target");
    for (target, message) in [(Target::from(tcp), "over tcp"), (unix, "over unix")] {
        let reply = Client::new(target)
            .timeout(Some(WAIT))
            .echo_text(message)
            .expect("echoed");
        assert_eq!(reply, message);
        server.wait_for_log("connection finished");
    }

    // A datagram answered, and one from the server's own port refused: its
    // reason is a field of the debug line.
    let client = UdpSocket::bind("127.0.0.1:0").expect("udp socket");
    client.set_read_timeout(Some(WAIT)).expect("timeout");
    client.send_to(b"over udp", udp).expect("sent");
    let mut reply = [0u8; 64];
    let (len, from) = client.recv_from(&mut reply).expect("answered");
    assert_eq!((&reply[..len], from), (&b"over udp"[..], udp));
    let own_port = own_port_source(udp);
    own_port.send_to(b"loop?", udp).expect("sent");
    let refused = object(&server.wait_for_log("reflection risk"));
    assert_eq!(
        refused["refusal"],
        format!("source port {} is this server's own", udp.port()),
        "{refused:?}"
    );
    let source = own_port.local_addr().expect("bound").to_string();
    assert_eq!(refused["source"], source, "{refused:?}");

    // An idle connection closed by the sweep.
    let mut idle = TcpStream::connect(tcp).expect("tcp connects");
    idle.set_read_timeout(Some(WAIT)).expect("timeout");
    server.wait_for_log("connection closed: idle");
    assert_eq!(read_all(&mut idle, 64).expect("closed"), b"");

    // SIGUSR1's totals, read from their JSON line.
    assert_eq!(server.total("accepted"), 3);
    assert_eq!(server.total("udp_refused"), 1);

    // The drain: a connection in flight when SIGTERM comes, which then ends
    // its message. (Not one cut when the grace period is over: with two event
    // loops of which one ends in time, engine::control's Handle::finished
    // then awaits that loop's finished channel again, and the server panics.)
    assert_eq!(server.stop_during_an_exchange().code(), Some(0));

    let stderr = server.stderr();
    let events: Vec<Map<String, Value>> = stderr.lines().map(object).collect();
    for event in &events {
        assert_no_debug_text(event);
        for field in ["timestamp", "level", "message", "target"] {
            assert!(event[field].is_string(), "no {field} in {event:?}");
        }
    }
    let messages: Vec<&str> = events
        .iter()
        .filter_map(|event| event["message"].as_str())
        .collect();
    for expected in [
        "open-files limit",
        "the open-files limit of 600 allows 2 event loops, not the 4 asked for, \
         with 308 connections at once",
        "echo-server started",
        "connection opened",
        "connection finished",
        "udp datagram not answered: reflection risk",
        "connection closed: idle",
        "totals",
        "shutting down",
        "draining connections",
        "echo-server stopped",
    ] {
        assert!(
            messages.contains(&expected),
            "no {expected:?} in:\n{stderr}"
        );
    }
    let notify = events
        .iter()
        .find(|event| event["message"] == "cannot notify the service manager")
        .unwrap_or_else(|| panic!("no notify warning in:\n{stderr}"));
    assert_eq!(notify["socket"], unusable_notify_socket.as_str());
    let started = events
        .iter()
        .find(|event| event["message"] == "echo-server started")
        .expect("found above");
    assert_eq!(started["idle_timeout"], "3s");
    assert_eq!(started["grace"], "20s");
}

/// A UDP socket on another loopback address with the port of `server`, so
/// that its datagrams come from one of the server's own ports.
fn own_port_source(server: SocketAddr) -> UdpSocket {
    UdpSocket::bind(SocketAddr::new([127, 0, 0, 2].into(), server.port()))
        .expect("127.0.0.2 with the server's port is free")
}

#[test]
fn a_start_up_error_in_json_is_one_json_line_at_any_level() {
    let taken = Server::start(&[]);
    for level in ["info", "off"] {
        let output = Command::new(binary("echo-server"))
            .args(["--log-format", "json", "--listen"])
            .arg(taken.addr().to_string())
            .env("RUST_LOG", level)
            .stdin(Stdio::null())
            .output()
            .expect("echo-server runs");
        assert_eq!(output.status.code(), Some(1), "RUST_LOG={level}");
        assert_eq!(output.stdout, b"", "RUST_LOG={level}");
        let stderr = String::from_utf8(output.stderr).expect("utf-8");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "RUST_LOG={level}:\n{stderr}");
        let error = object(lines[0]);
        assert_no_debug_text(&error);
        assert_eq!(error["level"], "ERROR", "{stderr}");
        assert_eq!(
            error["message"],
            format!(
                "cannot listen on {}: the address is in use (is another server running there? \
                 stop it, or pick another port: port 0 picks a free one)",
                taken.addr()
            ),
            "{stderr}"
        );
    }
}
