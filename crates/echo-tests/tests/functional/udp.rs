//! UDP echo and its protections against reflection loops and floods.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use assert_cmd::Command as Cmd;
use echo_client::{Client, Error};
use echo_proto::pattern;
use echo_proto::udp::{MAX_DATAGRAM, REFLECTING_PORTS};
use echo_tests::{Server, WAIT, binary};
use nix::sys::signal::Signal;

fn udp_server(args: &[&str]) -> Server {
    let mut all = vec!["--listen", "127.0.0.1:0", "--udp"];
    all.extend_from_slice(args);
    Server::start_with(&all, 2)
}

/// Collects replies on `socket` until none comes for a while.
fn count_replies(socket: &UdpSocket) -> usize {
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut buffer = [0u8; 64];
    let mut replies = 0;
    while socket.recv(&mut buffer).is_ok() {
        replies += 1;
    }
    replies
}

#[test]
fn datagrams_of_every_size_come_back_whole() {
    let server = udp_server(&[]);
    let addr = server.listener_addr("udp", 0);
    assert_eq!(addr.port(), server.addr().port(), "UDP shares the TCP port");
    let client = Client::new(addr).timeout(Some(WAIT));
    for len in [0, 1, 1472, 8192, MAX_DATAGRAM] {
        let message = pattern(len as u64, len);
        let reply = client
            .echo_udp(&message)
            .unwrap_or_else(|err| panic!("{len} bytes: {err}"));
        assert!(
            reply == message,
            "a {len}-byte datagram came back as {} different bytes",
            reply.len()
        );
    }
    // TCP is still served beside it.
    assert_eq!(
        Client::new(server.addr())
            .timeout(Some(WAIT))
            .echo_text("tcp")
            .expect("tcp"),
        "tcp"
    );
}

#[test]
fn the_largest_ipv6_datagram_comes_back_whole() {
    let server = Server::start_with(&["--listen", "[::1]:0", "--udp"], 2);
    let socket = UdpSocket::bind("[::1]:0").expect("bind");
    socket
        .connect(server.listener_addr("udp", 0))
        .expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    // 65,535 minus the 8-byte UDP header: IPv6 carries 20 bytes more than IPv4.
    let message = pattern(6, 65_527);
    let mut buffer = vec![0u8; 70_000];
    let deadline = Instant::now() + WAIT;
    let reply = loop {
        assert!(
            Instant::now() < deadline,
            "no reply to the largest IPv6 datagram"
        );
        socket.send(&message).expect("send");
        if let Ok(n) = socket.recv(&mut buffer) {
            break &buffer[..n];
        }
    };
    assert!(
        reply == message,
        "{} bytes came back for {}",
        reply.len(),
        message.len()
    );
}

/// `echo-client --udp --check` sends `message` to `server`'s UDP listener
/// and prints exactly what came back.
fn assert_client_echoes_over_udp(server: &Server, message: &str) {
    Cmd::new(binary("echo-client"))
        .args([
            "--udp",
            "--check",
            "--addr",
            &server.listener_addr("udp", 0).to_string(),
            message,
        ])
        .timeout(WAIT)
        .assert()
        .success()
        .stdout(format!("{message}\n"));
}

#[test]
fn the_client_command_speaks_udp() {
    assert_client_echoes_over_udp(&udp_server(&[]), "über UDP");
}

#[test]
fn the_client_command_sends_the_largest_ipv6_datagram() {
    let server = Server::start_with(&["--listen", "[::1]:0", "--udp"], 2);
    // Printable, since it goes through the command line; under the 128 KiB
    // the kernel allows one argument.
    let message = "x".repeat(echo_proto::udp::MAX_DATAGRAM_V6);
    assert_client_echoes_over_udp(&server, &message);
}

#[test]
fn a_datagram_too_large_for_udp_is_refused_by_the_client() {
    let client = Client::new("127.0.0.1:9999".parse::<SocketAddr>().expect("literal"));
    let err = client
        .echo_udp(&vec![0; MAX_DATAGRAM + 1])
        .expect_err("too large");
    assert!(
        matches!(err, Error::DatagramTooLarge { len, .. } if len == MAX_DATAGRAM + 1),
        "{err}"
    );
}

#[test]
fn datagrams_from_reflecting_ports_get_no_answer() {
    let server = udp_server(&[]);
    let addr = server.listener_addr("udp", 0);
    // Binding a port below 1024 needs privileges; CI runs as root. Any
    // reflecting port will do, in case one is taken on this machine.
    let sender = REFLECTING_PORTS
        .iter()
        .find_map(|&port| UdpSocket::bind(("127.0.0.1", port)).ok())
        .unwrap_or_else(|| panic!("cannot bind any of {REFLECTING_PORTS:?}: run as root (the rule itself is unit-tested in echo-proto)"));
    sender.connect(addr).expect("connect");
    sender.send(b"start a loop").expect("send");
    sender
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut buffer = [0u8; 64];
    let answer = sender.recv(&mut buffer);
    assert!(
        matches!(&answer, Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "a reflecting port was answered: {answer:?}"
    );
    // The server is still there for everyone else, and counted the refusal.
    assert_eq!(
        Client::new(addr)
            .timeout(Some(WAIT))
            .echo_udp(b"fine")
            .expect("answered"),
        b"fine"
    );
    server.signal(Signal::SIGUSR1);
    let totals = server.wait_for_log("totals");
    assert!(totals.contains("udp_refused=1"), "{totals}");
}

#[test]
fn a_flooding_source_is_rate_limited_while_others_are_served() {
    let server = udp_server(&["--udp-rate", "20"]);
    let addr = server.listener_addr("udp", 0);
    let flooder = UdpSocket::bind("127.0.0.1:0").expect("bind");
    flooder.connect(addr).expect("connect");
    for n in 0..300u32 {
        flooder.send(&n.to_be_bytes()).expect("send");
    }
    // Another host (127.0.0.2 is loopback too) has a budget of its own.
    let other = UdpSocket::bind("127.0.0.2:0").expect("bind a second loopback address");
    other.connect(addr).expect("connect");
    // The flood may overflow the server's receive buffer and the kernel then
    // drops any datagram, so the other source resends as a real client would.
    other
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let deadline = Instant::now() + WAIT;
    let mut buffer = [0u8; 16];
    let reply = loop {
        assert!(
            Instant::now() < deadline,
            "the other source was never answered"
        );
        other.send(b"me too").expect("send");
        if let Ok(n) = other.recv(&mut buffer) {
            break &buffer[..n];
        }
    };
    assert_eq!(reply, b"me too");

    let answered = count_replies(&flooder);
    // 20 per one-second window; the flood may straddle a window boundary or two.
    assert!(
        (1..=60).contains(&answered),
        "{answered} of 300 flood datagrams answered"
    );
    server.signal(Signal::SIGUSR1);
    let totals = server.wait_for_log("totals");
    assert!(totals.contains("udp_rate_limited="), "{totals}");
    assert!(!totals.contains("udp_rate_limited=0 "), "{totals}");
}
