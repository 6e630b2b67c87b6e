//! Every kind of listener: IPv6, several at once, Unix sockets, socket activation.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Stdio};

use assert_cmd::Command as Cmd;
use command_fds::{CommandFdExt, FdMapping};
use echo_client::Client;
use echo_proto::{Endpoint, pattern};
use echo_tests::{Server, TempDir, WAIT, binary};
use nix::sys::signal::Signal;
use predicates::prelude::*;

fn assert_echoes(endpoint: impl Into<Endpoint>) {
    let endpoint = endpoint.into();
    let message = pattern(42, 200_000);
    let reply = Client::new(endpoint.clone())
        .timeout(Some(WAIT))
        .echo(&message)
        .unwrap_or_else(|err| panic!("{endpoint}: {err}"));
    assert!(reply == message, "{endpoint} did not echo faithfully");
}

#[test]
fn ipv6_loopback_is_served() {
    let server = Server::start_with(&["--listen", "[::1]:0"], 1);
    let addr = server.addr();
    assert!(addr.is_ipv6(), "{addr}");
    assert_echoes(addr);
}

#[test]
fn several_listeners_are_served_at_once() {
    let server = Server::start_with(
        &[
            "--listen",
            "127.0.0.1:0",
            "--listen",
            "[::1]:0",
            "--listen",
            "127.0.0.2:0",
        ],
        3,
    );
    assert_eq!(server.listeners().len(), 3, "{:?}", server.listeners());
    for index in 0..3 {
        assert_echoes(server.listener_addr("tcp", index));
    }
}

#[test]
fn the_listen_addresses_can_come_from_the_environment() {
    let mut command = Command::new(binary("echo-server"));
    command
        .env("ECHO_LISTEN", "127.0.0.1:0,[::1]:0")
        .stdin(Stdio::null());
    let server = Server::start_command(&mut command, 2);
    assert_echoes(server.listener_addr("tcp", 0));
    assert_echoes(server.listener_addr("tcp", 1));
}

#[test]
fn udp_can_be_turned_on_from_the_environment_with_any_boolean_spelling() {
    for spelling in ["1", "yes", "on", "true"] {
        let mut command = Command::new(binary("echo-server"));
        command
            .args(["--listen", "127.0.0.1:0"])
            .env("ECHO_UDP", spelling)
            .stdin(Stdio::null());
        let server = Server::start_command(&mut command, 2);
        assert!(
            server.listeners()[1].starts_with("udp "),
            "ECHO_UDP={spelling}: {:?}",
            server.listeners()
        );
    }
    Cmd::new(binary("echo-server"))
        .args(["--listen", "127.0.0.1:0"])
        .env("ECHO_UDP", "maybe")
        .timeout(WAIT)
        .assert()
        .code(2);
}

fn unix_listen_arg(path: &Path) -> String {
    format!("unix:{}", path.display())
}

#[test]
fn a_unix_socket_is_served_and_removed_at_exit() {
    let dir = TempDir::new("unix");
    let path = dir.path().join("echo.sock");
    let mut server = Server::start_with(&["--listen", &unix_listen_arg(&path)], 1);
    assert_eq!(server.listeners(), [format!("unix {}", path.display())]);
    assert_echoes(Endpoint::Unix(path.clone()));
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
    assert!(!path.exists(), "the socket file outlived the server");
}

#[test]
fn a_stale_unix_socket_file_is_replaced() {
    let dir = TempDir::new("stale");
    let path = dir.path().join("echo.sock");
    // A server that died without cleaning up leaves its socket file behind.
    drop(UnixListener::bind(&path).expect("bind"));
    assert!(path.exists());
    let server = Server::start_with(&["--listen", &unix_listen_arg(&path)], 1);
    assert_echoes(Endpoint::Unix(path.clone()));
    drop(server);
}

#[test]
fn a_live_unix_socket_or_a_plain_file_is_left_alone() {
    let dir = TempDir::new("live");
    let path = dir.path().join("echo.sock");
    let _live = Server::start_with(&["--listen", &unix_listen_arg(&path)], 1);
    Cmd::new(binary("echo-server"))
        .args(["--listen", &unix_listen_arg(&path)])
        .timeout(WAIT)
        .assert()
        .code(1)
        .stderr(format!(
            "error: cannot listen on unix:{}: another server is listening there\n",
            path.display()
        ));
    assert_echoes(Endpoint::Unix(path.clone()));

    let plain = dir.path().join("notes.txt");
    std::fs::write(&plain, "precious").expect("write");
    Cmd::new(binary("echo-server"))
        .args(["--listen", &unix_listen_arg(&plain)])
        .timeout(WAIT)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "the path exists and is not a socket",
        ));
    assert_eq!(
        std::fs::read_to_string(&plain).expect("still there"),
        "precious"
    );
}

#[test]
fn inherited_sockets_are_served_under_socket_activation() {
    let tcp = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
    let tcp_addr = tcp.local_addr().expect("address");
    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let udp_addr: SocketAddr = udp.local_addr().expect("address");
    let mut command = Command::new("sh");
    // LISTEN_PID must be the server's own pid; `exec` keeps the shell's.
    command
        .args(["-c", "LISTEN_PID=$$ exec \"$0\" \"$@\""])
        .arg(binary("echo-server"))
        .args(["--listen", "127.0.0.1:1"])
        .env("LISTEN_FDS", "2")
        .stdin(Stdio::null())
        .fd_mappings(vec![
            FdMapping {
                parent_fd: tcp.into(),
                child_fd: 3,
            },
            FdMapping {
                parent_fd: udp.into(),
                child_fd: 4,
            },
        ])
        .expect("descriptors map");
    let server = Server::start_command(&mut command, 2);
    assert_eq!(
        server.listeners(),
        [format!("tcp {tcp_addr}"), format!("udp {udp_addr}")]
    );
    assert_echoes(tcp_addr);
    let reply = Client::new(udp_addr)
        .timeout(Some(WAIT))
        .echo_udp(b"activated")
        .expect("udp echo");
    assert_eq!(reply, b"activated");
}
