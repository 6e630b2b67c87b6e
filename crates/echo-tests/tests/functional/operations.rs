//! Running the server under a service manager and a log shipper: systemd's
//! notify protocol on a stand-in socket, and JSON log lines.

use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
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

    server.signal(Signal::SIGTERM);
    let stopping = next_message(&manager);
    assert!(
        stopping.lines().any(|line| line == "STOPPING=1"),
        "{stopping:?}"
    );
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
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
