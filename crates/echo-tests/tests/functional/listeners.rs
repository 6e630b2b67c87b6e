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

/// A TCP socket that systemd names `tls` (`FileDescriptorName=tls`) is
/// served over TLS, beside a plain one, with the certificate of --tls-cert.
#[test]
fn an_inherited_socket_named_tls_is_served_over_tls() {
    let dir = TempDir::new("activation-tls");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("a certificate");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).expect("write");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write");
    let plain = TcpListener::bind("127.0.0.1:0").expect("bind tcp");
    let plain_addr = plain.local_addr().expect("address");
    let tls = TcpListener::bind("127.0.0.1:0").expect("bind tls");
    let tls_addr = tls.local_addr().expect("address");
    let mut command = Command::new("sh");
    command
        .args(["-c", "LISTEN_PID=$$ exec \"$0\" \"$@\""])
        .arg(binary("echo-server"))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env("LISTEN_FDS", "2")
        .env("LISTEN_FDNAMES", "echo:tls")
        .stdin(Stdio::null())
        .fd_mappings(vec![
            FdMapping {
                parent_fd: plain.into(),
                child_fd: 3,
            },
            FdMapping {
                parent_fd: tls.into(),
                child_fd: 4,
            },
        ])
        .expect("descriptors map");
    let server = Server::start_command(&mut command, 2);
    assert_eq!(
        server.listeners(),
        [format!("tcp {plain_addr}"), format!("tls {tls_addr}")]
    );
    assert_echoes(plain_addr);
    // A TLS server answers a plaintext message with an alert record
    // (content type 21), never with the message.
    let mut raw = std::net::TcpStream::connect(tls_addr).expect("connects");
    raw.set_read_timeout(Some(WAIT)).expect("timeout");
    std::io::Write::write_all(&mut raw, b"plain words\n").expect("sent");
    let reply = echo_tests::read_all(&mut raw, 64).expect("answered");
    assert_eq!(reply.first(), Some(&21), "{reply:?}");
    assert!(
        echo_tests::eventually(WAIT, || server.total("tls_handshake_failed_protocol") == 1),
        "not counted as a TLS handshake failure"
    );
}

/// Whether another socket of this user can bind `addr` with `SO_REUSEPORT`,
/// and so take a share of the listener's new connections.
fn port_can_be_joined(addr: SocketAddr) -> bool {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_reuse_address(true).expect("SO_REUSEADDR");
    socket.set_reuse_port(true).expect("SO_REUSEPORT");
    match socket.bind(&addr.into()) {
        Ok(()) => true,
        Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => false,
        Err(err) => panic!("binding {addr}: {err}"),
    }
}

#[test]
fn only_several_event_loops_let_another_process_join_the_port() {
    let one_loop = Server::start(&[]);
    assert!(
        !port_can_be_joined(one_loop.addr()),
        "with one event loop, another process could bind the port"
    );
    let two_loops = Server::start(&["--threads", "2"]);
    assert!(port_can_be_joined(two_loops.addr()));
}

#[test]
fn too_few_descriptors_for_every_loop_asked_for_gives_some_up() {
    let server = Server::start_command(
        Command::new("prlimit")
            .args(["--nofile=1024", "--"])
            .arg(binary("echo-server"))
            .args(["--listen", "127.0.0.1:0", "--threads", "8"])
            .stdin(Stdio::null()),
        1,
    );
    // 1,024 - 32 kept back - 5 loops of 130 = 342; 6 loops would leave 212.
    let warning = server.wait_for_log("event loops");
    assert!(
        warning.contains("the open-files limit of 1024 allows 5 event loops, not the 8 asked for, with 342 connections at once"),
        "{warning}"
    );
    let started = server.wait_for_log("echo-server started");
    assert!(started.contains("max_connections=342"), "{started}");
    assert_echoes(server.addr());
}

#[test]
fn too_few_descriptors_for_one_loop_is_refused_with_the_figure_needed() {
    Cmd::new("prlimit")
        .args(["--nofile=300", "--"])
        .arg(binary("echo-server"))
        .args(["--listen", "127.0.0.1:0"])
        .timeout(WAIT)
        .assert()
        .code(1)
        .stdout("")
        .stderr(
            "error: the open-files limit of 300 is too low: the default connection limit needs \
             at least 418 descriptors to serve 256 connections; raise it (ulimit -n) or set \
             --max-connections\n",
        );
}

#[test]
fn a_udp_port_taken_beside_a_free_tcp_one_is_named_with_the_way_out() {
    // An address of loopback's own that no other test uses: on 127.0.0.1 the
    // TCP side of the port may be some client's ephemeral port at the time.
    let taken = UdpSocket::bind("127.31.41.59:0").expect("bind udp");
    let addr = taken.local_addr().expect("address");
    Cmd::new(binary("echo-server"))
        .args(["--listen", &addr.to_string(), "--udp"])
        .timeout(WAIT)
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::starts_with(format!(
            "error: cannot listen on udp {addr} (--udp echoes UDP on the port of each TCP \
             address: free that UDP port, pick another port, or leave out --udp): "
        )))
        .stderr(predicate::str::contains("in use"))
        .stderr(predicate::function(|err: &str| err.lines().count() == 1));
}

#[test]
fn udp_with_only_unix_listeners_says_it_serves_no_udp() {
    let dir = TempDir::new("udp-unix");
    let path = dir.path().join("echo.sock");
    let listen = format!("unix:{}", path.display());
    let server = Server::start_with(&["--listen", &listen, "--udp"], 1);
    let warning = server.wait_for_log("--udp");
    assert!(warning.contains("no UDP is served"), "{warning}");
}
