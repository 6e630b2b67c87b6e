//! Starting, surviving bad clients, and stopping: signals, Ctrl-D, start-up errors.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use assert_cmd::Command as Cmd;
use echo_client::Client;
use echo_proto::pattern;
use echo_tests::{Server, WAIT, binary};
use nix::sys::signal::Signal;
use predicates::prelude::*;

fn assert_serves(addr: SocketAddr) {
    let reply = Client::new(addr)
        .timeout(Some(WAIT))
        .echo_text("still here")
        .expect("the server still serves");
    assert_eq!(reply, "still here");
}

fn assert_stops_cleanly_on(signal: Signal) {
    let mut server = Server::start(&[]);
    let addr = server.addr();
    assert_serves(addr);
    server.signal(signal);
    let status = server.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "stderr:\n{}", server.stderr());
    assert!(
        server.stderr().contains("echo-server stopped"),
        "stderr:\n{}",
        server.stderr()
    );
    // The port is free again at once.
    TcpListener::bind(addr).unwrap_or_else(|err| panic!("{addr} still taken after exit: {err}"));
}

#[test]
fn sigterm_stops_the_server_cleanly_and_frees_the_port() {
    assert_stops_cleanly_on(Signal::SIGTERM);
}

#[test]
fn sigint_stops_the_server_cleanly_and_frees_the_port() {
    assert_stops_cleanly_on(Signal::SIGINT);
}

#[test]
fn ctrl_d_on_a_terminal_stops_the_server() {
    let pty = nix::pty::openpty(None, None).expect("a pseudo-terminal");
    let mut server = Server::start_command(
        Command::new(binary("echo-server"))
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::from(pty.slave)),
        1,
    );
    assert_serves(server.addr());
    let mut terminal = std::fs::File::from(pty.master);
    // VEOF (Ctrl-D) at the start of a line: the reader sees end of input.
    terminal.write_all(b"\x04").expect("write to the terminal");
    let status = server.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "stderr:\n{}", server.stderr());
    assert!(
        server.stderr().contains("reason=\"end of input\""),
        "stderr:\n{}",
        server.stderr()
    );
}

#[test]
fn stdin_at_dev_null_or_a_closed_pipe_keeps_serving() {
    let mut server = Server::start(&[]);
    assert_serves(server.addr());
    assert!(server.is_running());

    let mut piped = Command::new(binary("echo-server"));
    piped
        .args(["--listen", "127.0.0.1:0"])
        .stdin(Stdio::piped());
    let mut server = Server::start_command(&mut piped, 1);
    // The harness closed the pipe's write end: stdin is at end of input.
    assert_serves(server.addr());
    assert_serves(server.addr());
    assert!(server.is_running(), "stderr:\n{}", server.stderr());
}

#[test]
fn an_address_in_use_is_one_line_and_exit_1() {
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    Cmd::new(binary("echo-server"))
        .args(["--listen", &addr])
        .timeout(WAIT)
        .assert()
        .code(1)
        .stdout("")
        .stderr(format!(
            "error: cannot listen on {addr}: the address is in use (is another server \
             running there? stop it, or pick another port: port 0 picks a free one)\n"
        ));
}

#[test]
fn an_unparsable_address_is_a_usage_error() {
    Cmd::new(binary("echo-server"))
        .args(["--listen", "localhost"])
        .timeout(WAIT)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid address 'localhost'"));
}

#[test]
fn help_documents_flags_defaults_and_exit_codes() {
    Cmd::new(binary("echo-server"))
        .arg("--help")
        .assert()
        .success()
        .stdout(
            predicate::str::contains("--listen")
                .and(predicate::str::contains("[default: 127.0.0.1:7007]"))
                .and(predicate::str::contains("--max-connections"))
                .and(predicate::str::contains("--idle-timeout"))
                .and(predicate::str::contains("[default: 60s]"))
                .and(predicate::str::contains("--grace"))
                .and(predicate::str::contains("[default: 5s]"))
                .and(predicate::str::contains("--udp-rate"))
                .and(predicate::str::contains("130"))
                .and(predicate::str::contains("143"))
                .and(predicate::str::contains("LISTEN_FDS")),
        );
}

#[test]
fn a_client_that_resets_mid_message_does_not_disturb_the_next() {
    let server = Server::start(&[]);
    let addr = server.addr();
    for _ in 0..20 {
        let stream = TcpStream::connect(addr).expect("connect");
        (&stream)
            .write_all(&pattern(1, 200_000))
            .expect("write part of a message");
        // Linger 0: closing sends a reset instead of a FIN.
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .expect("linger");
        drop(stream);
    }
    let message = pattern(2, 500_000);
    let reply = Client::new(addr)
        .timeout(Some(WAIT))
        .echo(&message)
        .expect("the next client is served");
    assert!(reply == message);
}

#[test]
fn the_server_survives_every_kind_of_client_and_still_serves() {
    let server = Server::start(&[]);
    let addr = server.addr();
    let client = Client::new(addr).timeout(Some(WAIT));
    // Connect and leave at once, without a byte.
    drop(TcpStream::connect(addr).expect("connect"));
    // Send and close both ways without reading the echo.
    let stream = TcpStream::connect(addr).expect("connect");
    (&stream).write_all(b"nobody reads this").expect("write");
    drop(stream);
    // Every byte value, the empty message, a reset.
    let all_bytes: Vec<u8> = (0..=255).collect();
    assert_eq!(client.echo(&all_bytes).expect("binary"), all_bytes);
    assert_eq!(client.echo(b"").expect("empty"), b"");
    let stream = TcpStream::connect(addr).expect("connect");
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .expect("linger");
    drop(stream);
    assert_serves(addr);
}

#[test]
fn sigusr1_logs_the_totals_and_keeps_serving() {
    let mut server = Server::start(&[]);
    assert_serves(server.addr());
    server.signal(Signal::SIGUSR1);
    let line = server.wait_for_log("totals");
    assert!(
        line.contains("accepted=1") && line.contains("bytes=10"),
        "{line}"
    );
    assert_serves(server.addr());
    assert!(server.is_running());
}

#[test]
fn durations_are_logged_as_they_are_typed() {
    let server = Server::start(&[]);
    let started = server.wait_for_log("echo-server started");
    assert!(started.ends_with("idle_timeout=1m grace=5s"), "{started}");
    let server = Server::start(&["--idle-timeout", "0s", "--grace", "1500ms"]);
    let started = server.wait_for_log("echo-server started");
    assert!(
        started.ends_with("idle_timeout=never grace=1s500ms"),
        "{started}"
    );
    let server = Server::start(&["--log-format", "json"]);
    let started = server.wait_for_log("echo-server started");
    assert!(
        started.contains(r#""idle_timeout":"1m","grace":"5s""#),
        "{started}"
    );
}

#[test]
fn a_port_alone_or_a_name_is_shown_the_address_meant() {
    for (given, port, why) in [
        ("7008", 7008, "a port needs an address before it, as in"),
        (":7008", 7008, "a port needs an address before it, as in"),
        ("localhost:0", 0, "a listener takes addresses, not names:"),
    ] {
        Cmd::new(binary("echo-server"))
            .args(["--listen", given])
            .timeout(WAIT)
            .assert()
            .code(2)
            .stdout("")
            .stderr(predicate::str::contains(format!(
                "invalid value '{given}' for '--listen <ADDR>': invalid address '{given}': \
                 {why} 127.0.0.1:{port} (this machine) or 0.0.0.0:{port} (every IPv4 address)\n"
            )));
    }
}

#[test]
fn log_colours_follow_the_color_flag() {
    let coloured = Server::start(&["--color", "always"]);
    let started = coloured.wait_for_log("echo-server started");
    assert!(started.contains('\u{1b}'), "{started:?}");
    // Auto into a pipe, as a test's stderr is: no colour, NO_COLOR or not.
    let plain = Server::start(&[]);
    let started = plain.wait_for_log("echo-server started");
    assert!(!started.contains('\u{1b}'), "{started:?}");
}
