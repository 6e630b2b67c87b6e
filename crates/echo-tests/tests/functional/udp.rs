//! UDP echo and its protections against reflection loops and floods.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use assert_cmd::Command as Cmd;
use echo_client::{Client, Error};
use echo_proto::pattern;
use echo_proto::udp::{MAX_DATAGRAM, REFLECTING_PORTS};
use echo_tests::{Server, WAIT, binary, eventually};
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

/// Sources the server follows one by one: a flood of more new sources than
/// this within a second fills its tables.
const TRACKED_SOURCES: u32 = echo_server::TRACKED_SOURCES as u32;
/// Flood datagrams sent between two datagrams that wait for their answer.
///
/// The server's receive queue holds about 250 small datagrams by default;
/// with at most this many in it, the kernel drops none, so which datagrams
/// the server saw, and in what order, is known exactly.
const FLOOD_STEP: u32 = 64;
/// Flood datagrams in all, each from a source of its own.
const FLOOD_DATAGRAMS: u32 = 40_000;

/// A flood of spoofed sources, made without privileges: every datagram comes
/// from a fresh loopback address (all of 127.0.0.0/8 is local, so any of it
/// can be bound), through a socket used once.
pub(crate) struct Flood {
    /// The servers flooded: each datagram goes to every one of them.
    targets: Vec<SocketAddr>,
    /// Sources used so far, and datagrams sent to each target.
    pub(crate) sent: u32,
}

impl Flood {
    pub(crate) fn new(targets: &[SocketAddr]) -> Flood {
        Flood {
            targets: targets.to_vec(),
            sent: 0,
        }
    }

    /// The `n`th source: 127.1.1.1, 127.1.1.2 and on, never an address
    /// ending in 0 or 255, and never in 127.200.0.0/16, kept for the tests'
    /// own clients.
    fn source(n: u32) -> Ipv4Addr {
        let first = u8::try_from(n / (254 * 254) + 1)
            .ok()
            .filter(|&first| first < 200)
            .expect("fewer flood sources");
        Ipv4Addr::new(127, first, (n / 254 % 254 + 1) as u8, (n % 254 + 1) as u8)
    }

    /// Sends one datagram from each of the next `count` sources.
    pub(crate) fn send(&mut self, count: u32) {
        let ports: Vec<u16> = self.targets.iter().map(SocketAddr::port).collect();
        for _ in 0..count {
            let socket = bound_apart(Flood::source(self.sent), &ports);
            for target in &self.targets {
                socket
                    .send_to(&self.sent.to_be_bytes(), target)
                    .expect("send a flood datagram");
            }
            self.sent += 1;
        }
    }
}

/// A UDP socket on `ip` whose port is none of `ports`.
///
/// The kernel may pick a port a server listens on at another address, and
/// the server refuses whatever comes from its own port (as a reflection
/// risk): with tens of thousands of sockets that happens in many runs.
fn bound_apart(ip: Ipv4Addr, ports: &[u16]) -> UdpSocket {
    loop {
        let socket =
            UdpSocket::bind((ip, 0)).unwrap_or_else(|err| panic!("bind a socket on {ip}: {err}"));
        let port = socket.local_addr().expect("bound").port();
        if !ports.contains(&port) {
            return socket;
        }
    }
}

/// A client of `server` on loopback address `ip`, with every wait bounded.
pub(crate) fn client_at(ip: &str, server: SocketAddr) -> UdpSocket {
    let ip: Ipv4Addr = ip.parse().expect("an IPv4 address");
    let socket = bound_apart(ip, &[server.port()]);
    socket.connect(server).expect("connect");
    socket.set_read_timeout(Some(WAIT)).expect("timeout");
    socket
}

/// Sends `payload` on `socket` and says whether exactly it came back. Nothing
/// is resent: with the flood paced by [`FLOOD_STEP`] no datagram is lost, so a
/// datagram without an answer was refused.
pub(crate) fn answered(socket: &UdpSocket, payload: &[u8]) -> bool {
    socket.send(payload).expect("send");
    let mut buffer = [0u8; 64];
    match socket.recv(&mut buffer) {
        Ok(n) => {
            assert_eq!(&buffer[..n], payload, "an answer to another datagram");
            true
        }
        Err(_) => false,
    }
}

/// Fills the tables of the servers behind `regulars` (one client of each,
/// known to it before the flood) as fast as they take a flood of new
/// sources: with the regular client, exactly as many sources as they follow,
/// all seen well within the last second. The next new source finds no room,
/// and no flood source has yet been counted in the shared budgets and
/// streaks, where it could land on a newcomer's (a collision that can only
/// cut a loop sooner, and would make exact counts of a loop a matter of
/// luck). Returns how many datagrams each regular client sent.
pub(crate) fn fill_the_tables(flood: &mut Flood, regulars: &[&UdpSocket]) -> u32 {
    let mut steps = 0u32;
    while flood.sent < TRACKED_SOURCES - 1 {
        flood.send(FLOOD_STEP.min(TRACKED_SOURCES - 1 - flood.sent));
        for regular in regulars {
            assert!(
                answered(regular, &steps.to_be_bytes()),
                "a known client went unanswered after {} flood datagrams",
                flood.sent
            );
        }
        steps += 1;
    }
    steps
}

#[test]
fn a_newcomer_is_answered_all_through_a_flood_of_new_sources() {
    let server = udp_server(&[]);
    let addr = server.listener_addr("udp", 0);
    let regular = client_at("127.0.0.1", addr);
    let started = Instant::now();
    let mut flood = Flood::new(&[addr]);
    fill_the_tables(&mut flood, &[&regular]);
    let filled = started.elapsed();
    // A host the server has never seen, answered after every step of the
    // rest of the flood, whose sources keep coming faster than the tables'
    // once-a-second sweep can make room for them.
    let newcomer = client_at("127.200.0.1", addr);
    let mut probe = 0u32;
    while flood.sent < FLOOD_DATAGRAMS {
        flood.send(FLOOD_STEP);
        assert!(
            answered(&newcomer, &probe.to_be_bytes()),
            "probe {probe} of the newcomer got no answer after {} flood datagrams \
             (the tables filled in {filled:?})",
            flood.sent
        );
        probe += 1;
    }
}

#[test]
fn a_loop_with_a_newcomer_ends_after_8_answers_while_a_flood_fills_the_tables() {
    let server = udp_server(&[]);
    let addr = server.listener_addr("udp", 0);
    let regular = client_at("127.0.0.1", addr);
    let mut flood = Flood::new(&[addr]);
    fill_the_tables(&mut flood, &[&regular]);
    // Another echo service the server has never seen, made to talk to it:
    // it echoes every copy back.
    let peer = client_at("127.200.0.2", addr);
    peer.send(b"ping-pong").expect("send");
    let mut buffer = [0u8; 64];
    for copy in 1..=echo_server::REPEATS_ANSWERED {
        let n = peer
            .recv(&mut buffer)
            .unwrap_or_else(|err| panic!("copy {copy} never came back: {err}"));
        assert_eq!(&buffer[..n], b"ping-pong");
        peer.send(&buffer[..n]).expect("echo");
    }
    // The copy that would make a ninth answer is refused, and counted.
    assert!(
        eventually(WAIT, || server.total("udp_loops") == 1),
        "the loop was not cut"
    );
    peer.set_nonblocking(true).expect("nonblocking");
    let more = peer.recv(&mut buffer);
    assert!(
        matches!(&more, Err(err) if err.kind() == ErrorKind::WouldBlock),
        "a ninth answer: {more:?}"
    );
}
