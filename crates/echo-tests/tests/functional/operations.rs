//! Running the server under a service manager and a log shipper: systemd's
//! notify protocol on a stand-in socket, and JSON log lines.

use std::ffi::OsStr;
use std::io::ErrorKind;
use std::net::TcpStream;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::process::{Command, Stdio};

use echo_client::Client;
use echo_tests::{Server, TempDir, WAIT, binary};
use nix::sys::signal::Signal;

/// Waits for the next datagram on `socket`, as text.
fn next_message(socket: &UnixDatagram) -> String {
    let mut buffer = [0u8; 4096];
    let n = socket
        .recv(&mut buffer)
        .expect("a notification within the wait");
    String::from_utf8_lossy(&buffer[..n]).into_owned()
}

/// SIGTERM: the manager hears `STOPPING=1`, and the server exits with 0.
fn assert_stops_telling_the_manager(server: &mut Server, manager: &UnixDatagram) {
    server.signal(Signal::SIGTERM);
    let stopping = next_message(manager);
    assert!(
        stopping.lines().any(|line| line == "STOPPING=1"),
        "{stopping:?}"
    );
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
}

#[test]
fn a_service_manager_hears_ready_once_serving_and_stopping_at_the_drain() {
    let dir = TempDir::new("notify");
    let path = dir.path().join("notify.sock");
    let manager = UnixDatagram::bind(&path).expect("a stand-in for systemd's socket");
    manager.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut command = Command::new(binary("echo-server"));
    command
        .args(["--listen", "127.0.0.1:0"])
        .env("NOTIFY_SOCKET", &path)
        .stdin(Stdio::null());
    let mut server = Server::start_command(&mut command, 1);

    let ready = next_message(&manager);
    assert!(ready.lines().any(|line| line == "READY=1"), "{ready:?}");
    // Ready means serving: the address accepts and echoes now.
    TcpStream::connect(server.addr()).expect("the address accepts once READY=1 is sent");
    let reply = Client::new(server.addr())
        .timeout(Some(WAIT))
        .echo_text("ready")
        .expect("served");
    assert_eq!(reply, "ready");

    server.signal(Signal::SIGUSR1);
    let status = next_message(&manager);
    assert!(
        status.starts_with("STATUS=accepted=2 "),
        "the totals as a status line: {status:?}"
    );

    assert_stops_telling_the_manager(&mut server, &manager);
}

/// What fills a stalled manager's queue before the server says anything.
const FILLER: &[u8] = b"filler";

/// Far longer than any test waits, so a stop that waited it out, or waited
/// for a notification at all, fails the test instead of passing late.
const LONG_GRACE: &str = "60s";

/// Starts the server on 127.0.0.1:0 with `NOTIFY_SOCKET` set to `socket`
/// and a grace period of [`LONG_GRACE`].
fn start_notifying(socket: impl AsRef<OsStr>) -> Server {
    let mut command = Command::new(binary("echo-server"));
    command
        .args(["--listen", "127.0.0.1:0", "--grace", LONG_GRACE])
        .env("NOTIFY_SOCKET", socket)
        .stdin(Stdio::null());
    Server::start_command(&mut command, 1)
}

/// Sends [`FILLER`] datagrams to `path` until its queue is full, as a
/// service manager that stopped reading would have it; returns how many went.
fn fill_queue(path: &std::path::Path) -> usize {
    let sender = UnixDatagram::unbound().expect("socket");
    sender.set_nonblocking(true).expect("non-blocking");
    for sent in 0..10_000 {
        match sender.send_to(FILLER, path) {
            Ok(_) => {}
            Err(err) if err.kind() == ErrorKind::WouldBlock => return sent,
            Err(err) => panic!("cannot fill the queue: {err}"),
        }
    }
    panic!("the queue took 10000 datagrams and was still not full");
}

/// Every datagram already queued on `socket`, without waiting for more.
fn queued_messages(socket: &UnixDatagram) -> Vec<String> {
    socket.set_nonblocking(true).expect("non-blocking");
    let mut buffer = [0u8; 4096];
    let mut messages = Vec::new();
    loop {
        match socket.recv(&mut buffer) {
            Ok(n) => messages.push(String::from_utf8_lossy(&buffer[..n]).into_owned()),
            Err(err) if err.kind() == ErrorKind::WouldBlock => return messages,
            Err(err) => panic!("cannot read the queue: {err}"),
        }
    }
}

/// The number `name=` carries in a totals line.
fn field(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(&format!("{name}=")))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

/// Has the server echo `text`, which proves it serves.
fn echo(server: &Server, text: &str) {
    let reply = Client::new(server.addr())
        .timeout(Some(WAIT))
        .echo_text(text)
        .expect("served");
    assert_eq!(reply, text);
}

#[test]
fn a_service_manager_that_never_reads_stalls_neither_serving_nor_the_stop() {
    let dir = TempDir::new("notify-stalled");
    let path = dir.path().join("notify.sock");
    let manager = UnixDatagram::bind(&path).expect("a stand-in for systemd's socket");
    let filled = fill_queue(&path);
    let mut server = start_notifying(&path);

    // READY=1 found no room: the server serves all the same.
    echo(&server, "served anyway");
    server.wait_for_log("retried until it goes");

    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
    let stopped = server.wait_for_log("echo-server stopped");
    assert_eq!(field(&stopped, "notify_dropped"), 0, "{stopped}");
    // Neither READY=1 nor STOPPING=1 ever found room, and nothing waited for them.
    let queued = queued_messages(&manager);
    assert_eq!(queued.len(), filled, "{queued:?}");
    assert!(
        queued.iter().all(|message| message.as_bytes() == FILLER),
        "{queued:?}"
    );
}

#[test]
fn after_a_hundred_status_lines_nobody_reads_one_sigterm_still_stops_the_server() {
    let dir = TempDir::new("notify-status");
    let path = dir.path().join("notify.sock");
    let manager = UnixDatagram::bind(&path).expect("a stand-in for systemd's socket");
    let mut server = start_notifying(&path);
    echo(&server, "first");

    // One at a time, each after the last one's totals line: signals sent
    // together may arrive as one, and each must try a STATUS= line of its own.
    let mut last_totals = String::new();
    for _ in 0..100 {
        server.signal(Signal::SIGUSR1);
        last_totals = server.wait_for_log("totals");
    }
    echo(&server, "still served");

    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
    let stopped = server.wait_for_log("echo-server stopped");
    let dropped = field(&stopped, "notify_dropped");
    // The queue was full long before the hundredth, which was dropped too;
    // the totals line before it could not count it yet.
    assert_eq!(
        dropped,
        field(&last_totals, "notify_dropped") + 1,
        "{last_totals}\n{stopped}"
    );
    let queued = queued_messages(&manager);
    assert_eq!(
        queued.first().map(String::as_str),
        Some("READY=1\nSTATUS=serving on 1 listeners\n"),
        "{queued:?}"
    );
    let statuses = queued[1..]
        .iter()
        .filter(|message| message.starts_with("STATUS=accepted=1 "))
        .count();
    assert_eq!(
        statuses,
        queued.len() - 1,
        "only totals after READY=1: {queued:?}"
    );
    assert!(statuses > 0, "{queued:?}");
    assert_eq!(dropped + statuses as u64, 100, "{queued:?}");
    let warnings = server
        .stderr()
        .lines()
        .filter(|line| line.contains("STATUS= lines that cannot go are dropped"))
        .count();
    assert_eq!(
        warnings,
        1,
        "one warning, not one per drop:\n{}",
        server.stderr()
    );
}

#[test]
fn a_ready_kept_while_the_manager_was_not_reading_goes_once_it_reads() {
    let dir = TempDir::new("notify-late");
    let path = dir.path().join("notify.sock");
    let manager = UnixDatagram::bind(&path).expect("a stand-in for systemd's socket");
    manager.set_read_timeout(Some(WAIT)).expect("timeout");
    let filled = fill_queue(&path);
    let mut server = start_notifying(&path);
    echo(&server, "before the manager reads");

    for _ in 0..filled {
        assert_eq!(next_message(&manager).as_bytes(), FILLER);
    }
    assert_eq!(
        next_message(&manager),
        "READY=1\nSTATUS=serving on 1 listeners\n"
    );
    server.signal(Signal::SIGUSR1);
    let status = next_message(&manager);
    assert!(
        status.starts_with("STATUS=accepted=1 ") && status.ends_with(" notify_dropped=0\n"),
        "{status:?}"
    );
    assert_stops_telling_the_manager(&mut server, &manager);
}

#[test]
fn a_notify_socket_named_with_an_at_sign_is_in_the_abstract_namespace() {
    let dir = TempDir::new("notify-abstract");
    // The temporary directory's path is unique, which is all an abstract name needs.
    let name = dir.path().join("notify").display().to_string();
    let address = SocketAddr::from_abstract_name(name.as_bytes()).expect("an abstract name");
    let manager = UnixDatagram::bind_addr(&address).expect("a stand-in for systemd's socket");
    manager.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut server = start_notifying(format!("@{name}"));

    assert_eq!(
        next_message(&manager),
        "READY=1\nSTATUS=serving on 1 listeners\n"
    );
    server.signal(Signal::SIGTERM);
    assert_eq!(
        next_message(&manager),
        "STOPPING=1\nSTATUS=stopping: draining 0 connections\n"
    );
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
}

#[test]
fn a_notify_socket_nobody_bound_is_logged_and_the_server_serves_on() {
    let dir = TempDir::new("notify-nobody");
    let mut server = start_notifying(dir.path().join("nobody.sock"));
    echo(&server, "served");
    server.signal(Signal::SIGUSR1);
    server.wait_for_log("totals");
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
    let stderr = server.stderr();
    // READY=1, the totals and STOPPING=1: each failure said once, none retried.
    let failures = stderr
        .lines()
        .filter(|line| line.contains("cannot notify the service manager"))
        .count();
    assert_eq!(failures, 3, "{stderr}");
    assert!(!stderr.contains("retried until it goes"), "{stderr}");
}

#[test]
fn json_logs_are_one_object_a_line_with_the_totals_as_numbers() {
    let mut command = Command::new(binary("echo-server"));
    command
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .stdin(Stdio::null());
    let mut server = Server::start_command(&mut command, 1);
    let reply = Client::new(server.addr())
        .timeout(Some(WAIT))
        .echo_text("logged")
        .expect("served");
    assert_eq!(reply, "logged");
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));

    let stderr = server.stderr();
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"))
        })
        .collect();
    let stopped = lines
        .iter()
        .find(|line| line["message"] == "echo-server stopped")
        .unwrap_or_else(|| panic!("no stop line in:\n{stderr}"));
    assert_eq!(stopped["accepted"], 1, "{stopped}");
    assert_eq!(stopped["bytes"], 6, "{stopped}");
    assert_eq!(stopped["failed"], 0, "{stopped}");

    // A start-up failure is a JSON line too.
    let taken = Server::start(&[]);
    let output = Command::new(binary("echo-server"))
        .args([
            "--listen",
            &taken.addr().to_string(),
            "--log-format",
            "json",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("echo-server runs");
    assert_eq!(output.status.code(), Some(1));
    let failure = String::from_utf8_lossy(&output.stderr);
    let last: serde_json::Value = serde_json::from_str(failure.lines().last().unwrap_or_default())
        .unwrap_or_else(|err| panic!("not JSON ({err}): {failure}"));
    assert_eq!(last["level"], "ERROR", "{last}");
    assert!(
        last["message"]
            .as_str()
            .is_some_and(|message| message.starts_with("cannot listen on ")),
        "{last}"
    );
}
