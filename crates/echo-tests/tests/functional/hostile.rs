//! The server in a hostile environment: a broken, full or stuck stderr, a
//! client that never reads, spoofed UDP sources, a shared socket
//! directory, hang-ups and urgent data.

use std::io::Write;
use std::net::{Shutdown, SocketAddr, SocketAddrV4, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use assert_cmd::Command as Cmd;
use echo_client::Client;
use echo_proto::{Endpoint, pattern};
use echo_tests::{Server, TempDir, WAIT, binary, eventually, open_fds, read_all};
use nix::sys::signal::Signal;

/// A stderr for the server that fails every write: a full device, or a pipe
/// whose reader is gone.
fn broken_stderr(kind: &str) -> Stdio {
    match kind {
        "full" => Stdio::from(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .expect("/dev/full"),
        ),
        _ => {
            let (reader, writer) = nix::unistd::pipe().expect("pipe");
            drop(reader);
            Stdio::from(writer)
        }
    }
}

fn assert_echoes(addr: SocketAddr, message: &[u8]) {
    let reply = Client::new(addr)
        .timeout(Some(WAIT))
        .echo(message)
        .expect("the server serves");
    assert!(
        reply == message,
        "{} bytes came back different",
        reply.len()
    );
}

/// Runs the server under a 64-descriptor limit with stderr at `kind`, makes
/// it run out of descriptors, and checks that it serves again once they come
/// back, then stops with 0 on SIGTERM.
fn survives_with_stderr(kind: &str, log_level: &str) {
    let mut command = Command::new("prlimit");
    command
        .args(["--nofile=64", "--"])
        .arg(binary("echo-server"))
        .args(["--listen", "127.0.0.1:0", "--max-connections", "1000"])
        .env("RUST_LOG", log_level)
        .stdin(Stdio::null());
    let mut server = Server::start_command_with_stderr(&mut command, 1, broken_stderr(kind));
    let addr = server.addr();
    assert_echoes(addr, &pattern(1, 200_000));

    // More clients than descriptors: the server accepts until it has none
    // left, and its accept loop then fails with EMFILE (and logs it).
    let flood: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(addr).expect("the kernel queues"))
        .collect();
    let pid = server.pid();
    assert!(
        eventually(WAIT, || open_fds(pid) >= 60),
        "the server never ran out of descriptors ({} open)",
        open_fds(pid)
    );
    drop(flood);
    assert_echoes(addr, &pattern(2, 200_000));

    server.signal(Signal::SIGTERM);
    let status = server.wait_exit(WAIT);
    assert_eq!(
        status.code(),
        Some(0),
        "stderr {kind}, RUST_LOG={log_level}"
    );
}

#[test]
fn a_full_stderr_never_stops_the_server() {
    survives_with_stderr("full", "info");
}

#[test]
fn a_closed_stderr_pipe_never_stops_the_server() {
    survives_with_stderr("closed", "info");
}

#[test]
fn a_closed_stderr_pipe_with_debug_logs_never_stops_the_server() {
    survives_with_stderr("closed", "debug");
}

#[test]
fn a_stderr_nobody_reads_stalls_no_connection() {
    // The read end stays open and unread, like a stuck log shipper's: the
    // pipe fills after a few hundred debug lines and every write would block.
    let (_unread, writer) = nix::unistd::pipe().expect("pipe");
    let mut command = Command::new(binary("echo-server"));
    command
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null());
    let mut server = Server::start_command_with_stderr(&mut command, 1, Stdio::from(writer));
    let client = Client::new(server.addr()).timeout(Some(WAIT));
    for n in 0..1000u32 {
        let message = format!("message {n}");
        let reply = client
            .echo_text(&message)
            .unwrap_or_else(|err| panic!("message {n}: {err}"));
        assert_eq!(reply, message);
    }
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
}

#[test]
fn bytes_still_queued_when_a_connection_is_cut_are_not_counted_as_echoed() {
    let server = Server::start(&["--idle-timeout", "1s"]);
    let mut hog = TcpStream::connect(server.addr()).expect("connect");
    hog.set_write_timeout(Some(WAIT)).expect("timeout");
    let chunk = pattern(5, 1 << 20);
    let mut sent = 0usize;
    // It never reads: once the server stops reading from it too, its writes
    // block until the idle timeout resets the connection, which ends this
    // loop after the server has counted the close.
    while sent < 64 << 20 && hog.write_all(&chunk).is_ok() {
        sent += chunk.len();
    }
    assert_eq!(
        server.total("idle_closed"),
        1,
        "the client that never reads was not closed"
    );
    let (bytes, unsent) = (server.total("bytes"), server.total("bytes_unsent"));
    assert!(unsent > 0, "bytes={bytes} bytes_unsent={unsent}");
    assert!(
        bytes + unsent <= (sent + chunk.len()) as u64,
        "more counted than was sent: bytes={bytes} bytes_unsent={unsent}, sent {sent}"
    );
}

#[test]
fn urgent_data_comes_back_inline() {
    let server = Server::start(&[]);
    let mut stream = TcpStream::connect(server.addr()).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    stream.write_all(b"abc").expect("write");
    socket2::SockRef::from(&stream)
        .send_out_of_band(b"D")
        .expect("urgent byte");
    stream.write_all(b"ef").expect("write");
    stream.shutdown(Shutdown::Write).expect("half-close");
    assert_eq!(read_all(&mut stream, 100).expect("reply"), b"abcDef");
}

#[test]
fn sighup_drains_and_exits_like_sigterm() {
    let dir = TempDir::new("hup");
    let path = dir.path().join("echo.sock");
    let listen = format!("unix:{}", path.display());
    let mut server = Server::start_with(&["--listen", "127.0.0.1:0", "--listen", &listen], 2);
    assert_echoes(server.addr(), b"before");
    server.signal(Signal::SIGHUP);
    assert_eq!(
        server.wait_exit(WAIT).code(),
        Some(0),
        "{}",
        server.stderr()
    );
    assert!(
        server.stderr().contains("reason=\"SIGHUP\""),
        "{}",
        server.stderr()
    );
    assert!(!path.exists(), "the socket file outlived the server");
}

#[test]
fn an_inherited_ignore_of_sighup_is_kept() {
    // `nohup` and `trap '' HUP` leave SIGHUP ignored for the program they start.
    let mut command = Command::new("sh");
    command
        .args(["-c", "trap '' HUP; exec \"$0\" \"$@\""])
        .arg(binary("echo-server"))
        .args(["--listen", "127.0.0.1:0"])
        .stdin(Stdio::null());
    let mut server = Server::start_command(&mut command, 1);
    server.signal(Signal::SIGHUP);
    assert_echoes(server.addr(), b"still here after the hang-up");
    assert!(server.is_running());
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
    assert!(!server.stderr().contains("SIGHUP"), "{}", server.stderr());
}

/// Builds an IPv4 UDP packet from `source` to `destination` and sends it
/// through a raw socket, which lets the source be anything; `false` when raw
/// sockets are not allowed (not root).
fn spoof(source: SocketAddrV4, destination: SocketAddrV4, payload: &[u8]) -> bool {
    let Ok(raw) = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::RAW,
        Some(socket2::Protocol::from(libc::IPPROTO_RAW)),
    ) else {
        return false;
    };
    let udp_len = u16::try_from(8 + payload.len()).expect("small payload");
    let mut packet = Vec::with_capacity(20 + usize::from(udp_len));
    // Version 4, 5 words of header; the kernel fills in length, id and checksum.
    packet.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0]);
    packet.extend_from_slice(&source.ip().octets());
    packet.extend_from_slice(&destination.ip().octets());
    packet.extend_from_slice(&source.port().to_be_bytes());
    packet.extend_from_slice(&destination.port().to_be_bytes());
    packet.extend_from_slice(&udp_len.to_be_bytes());
    // No checksum, which IPv4 allows.
    packet.extend_from_slice(&[0, 0]);
    packet.extend_from_slice(payload);
    raw.send_to(&packet, &SocketAddr::V4(destination).into())
        .expect("send the spoofed packet");
    true
}

fn v4(addr: SocketAddr) -> SocketAddrV4 {
    match addr {
        SocketAddr::V4(v4) => v4,
        SocketAddr::V6(_) => panic!("an IPv4 listener was asked for"),
    }
}

/// Makes two echo servers answer each other: one datagram to `first`, spoofed
/// from `second`'s UDP listener; then waits until one of them has cut the
/// loop. `false` (the test is skipped, as it says) without root.
fn bounce(first: &Server, second: &Server) -> bool {
    let first_addr = v4(first.listener_addr("udp", 0));
    let second_addr = v4(second.listener_addr("udp", 0));
    if !spoof(second_addr, first_addr, b"ping-pong") {
        eprintln!("skipped: spoofing a UDP source needs a raw socket, so root");
        return false;
    }
    assert!(
        eventually(WAIT, || first.total("udp_loops")
            + second.total("udp_loops")
            == 1),
        "the loop was not cut"
    );
    true
}

#[test]
fn a_datagram_from_the_servers_own_address_gets_no_answer() {
    for rate in ["1000", "0"] {
        let server =
            Server::start_with(&["--listen", "127.0.0.1:0", "--udp", "--udp-rate", rate], 2);
        let own = v4(server.listener_addr("udp", 0));
        if !spoof(own, own, b"talk to yourself") {
            eprintln!("skipped: spoofing a UDP source needs a raw socket, so root");
            return;
        }
        assert!(
            eventually(WAIT, || server.total("udp_refused") == 1),
            "the self-addressed datagram was not refused (--udp-rate {rate})"
        );
        assert_eq!(server.total("udp_datagrams"), 0, "--udp-rate {rate}");
        let reply = Client::new(SocketAddr::V4(own))
            .timeout(Some(WAIT))
            .echo_udp(b"others are served")
            .expect("answered");
        assert_eq!(reply, b"others are served");
    }
}

#[test]
fn two_echo_servers_made_to_bounce_a_datagram_stop_after_a_bounded_number() {
    let start = || Server::start_with(&["--listen", "127.0.0.1:0", "--udp"], 2);
    let (first, second) = (start(), start());
    if !bounce(&first, &second) {
        return;
    }
    let answers = first.total("udp_datagrams") + second.total("udp_datagrams");
    let bound = 2 * u64::from(echo_server::REPEATS_ANSWERED);
    assert_eq!(answers, bound, "answers in all");
}

#[test]
fn a_socket_file_is_removed_at_exit_only_if_it_is_still_ours() {
    let dir = TempDir::new("ours");
    let path = dir.path().join("echo.sock");
    let listen = format!("unix:{}", path.display());
    let mut first = Server::start_with(&["--listen", &listen], 1);
    // Someone removes the first server's file and a second server takes the path.
    std::fs::remove_file(&path).expect("remove");
    let second = Server::start_with(&["--listen", &listen], 1);
    first.signal(Signal::SIGTERM);
    assert_eq!(first.wait_exit(WAIT).code(), Some(0));
    let reply = Client::new(Endpoint::Unix(path.clone()))
        .timeout(Some(WAIT))
        .echo(b"the second server's file is still there")
        .expect("the second server still serves at the path");
    assert_eq!(reply, b"the second server's file is still there");
    drop(second);
}

#[test]
fn a_socket_file_that_cannot_be_probed_is_left_alone() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: running a second server as another user needs root");
        return;
    }
    // A world-writable directory, as /tmp would be without its sticky bit,
    // with a root server's socket in it.
    let dir = TempDir::new("shared");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let path = dir.path().join("echo.sock");
    let listen = format!("unix:{}", path.display());
    let _root_server = Server::start_with(&["--listen", &listen], 1);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    // The user `nobody` cannot connect to it, so cannot tell whether it is live.
    let copy = dir.path().join("echo-server");
    std::fs::copy(binary("echo-server"), &copy).expect("a copy nobody may run");
    Cmd::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&copy)
        .args(["--listen", &listen])
        .env("RUST_LOG", "info")
        .timeout(WAIT)
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicates::str::starts_with(format!(
            "error: cannot listen on unix:{}: a socket file is there and it cannot be told whether a server still listens on it: ",
            path.display()
        )))
        .stderr(predicates::str::contains("ermission denied"));
    let reply = Client::new(Endpoint::Unix(path.clone()))
        .timeout(Some(WAIT))
        .echo(b"untouched")
        .expect("the root server still serves");
    assert_eq!(reply, b"untouched");
}

#[test]
fn two_flooded_echo_servers_made_to_bounce_a_datagram_stop_after_8_answers_each() {
    use super::udp::{Flood, client_at, fill_the_tables};
    let start = || Server::start_with(&["--listen", "127.0.0.1:0", "--udp"], 2);
    let (first, second) = (start(), start());
    let first_addr = first.listener_addr("udp", 0);
    let second_addr = second.listener_addr("udp", 0);
    // Both servers' tables full of sources seen within the last second, so
    // that each counts the other in its shared budgets and streaks. The regular
    // clients are not on 127.0.0.1, so the servers' own address is not
    // followed either.
    let regulars = [
        client_at("127.200.0.3", first_addr),
        client_at("127.200.0.3", second_addr),
    ];
    let mut flood = Flood::new(&[first_addr, second_addr]);
    let steps = fill_the_tables(&mut flood, &[&regulars[0], &regulars[1]]);
    if !bounce(&first, &second) {
        return;
    }
    // Each answered every flood datagram and every regular one (none was
    // lost, nor a loop), and the other one 8 times.
    let others = u64::from(flood.sent + steps);
    let bound = u64::from(echo_server::REPEATS_ANSWERED);
    for (name, server) in [("first", &first), ("second", &second)] {
        assert_eq!(
            server.total("udp_datagrams"),
            others + bound,
            "answers of the {name} server"
        );
    }
}
