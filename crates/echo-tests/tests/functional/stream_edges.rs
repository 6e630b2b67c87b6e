//! Stream connections at the edges of their promises: an urgent byte in the
//! middle of a bulk stream, an echo cut short that must look cut, and slow
//! readers at the reading speed the idle timeout promises to keep.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use echo_proto::{BUFFER_SIZE, pattern};
use echo_tests::{Server, TempDir, WAIT, binary, eventually};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Sends `before` bytes, one urgent (`MSG_OOB`) byte, then `after` bytes,
/// reads nothing for 300 ms, then reads the echo and half-closes only once
/// it has all of it, as a client checking a path for urgent data does;
/// returns what came back, or how it stalled.
fn echo_with_urgent_byte(addr: SocketAddr, seed: u64, before: usize, after: usize) -> Vec<u8> {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let head = pattern(seed, before);
    let tail = pattern(seed + 1, after);
    let mut expected = head.clone();
    expected.push(b'!');
    expected.extend_from_slice(&tail);
    let mut writer = stream.try_clone().expect("clone");
    let feeder = thread::spawn(move || {
        writer.write_all(&head).expect("the head is taken");
        socket2::SockRef::from(&writer)
            .send_out_of_band(b"!")
            .expect("the urgent byte is taken");
        writer.write_all(&tail).expect("the tail is taken");
    });
    // The pause fills the queues, so the echo resumes in the middle of a
    // backlog: the behaviour under test, not a synchronisation.
    thread::sleep(Duration::from_millis(300));
    let mut reader = &stream;
    let mut reply = vec![0u8; expected.len()];
    let mut got = 0;
    while got < reply.len() {
        match reader.read(&mut reply[got..]) {
            Ok(0) => panic!("closed after {got} of {} bytes", expected.len()),
            Ok(n) => got += n,
            Err(err) => panic!(
                "the echo stalled after {got} of {} bytes ({} before the mark): {err}",
                expected.len(),
                before
            ),
        }
    }
    feeder.join().expect("feeder");
    stream.shutdown(Shutdown::Write).expect("half-close");
    let mut rest = [0u8; 1];
    assert_eq!(
        reader.read(&mut rest).expect("a clean end"),
        0,
        "more than was sent"
    );
    assert!(reply == expected, "the echo differs from what was sent");
    reply
}

/// Several clients at once, so turns that yield to one another meet the
/// urgent mark in every way they can, with and without splicing.
fn urgent_bytes_in_bulk_streams(splice: &str) {
    const CLIENTS: usize = 6;
    let server = Server::start(&["--splice", splice]);
    let addr = server.addr();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| {
            // Marks at different distances from any turn's boundary.
            let before = (8 << 20) + n * 37_111;
            thread::spawn(move || echo_with_urgent_byte(addr, n as u64, before, 4096).len())
        })
        .collect();
    for client in clients {
        client.join().expect("every urgent byte is echoed in place");
    }
}

#[test]
fn an_urgent_byte_in_a_spliced_bulk_stream_is_echoed_in_place() {
    urgent_bytes_in_bulk_streams("bulk");
}

#[test]
fn an_urgent_byte_in_a_copied_bulk_stream_is_echoed_in_place() {
    urgent_bytes_in_bulk_streams("never");
}

/// A client with the smallest receive buffer the kernel allows, which sends
/// one read buffer's worth, and then neither reads nor ends its message: the
/// server reads all of it, but its echo waits in the server's send queue, so
/// the client is owed bytes while the server has nothing left to read.
fn client_owed_bytes(addr: SocketAddr) -> (TcpStream, Vec<u8>) {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(1).expect("rcvbuf");
    socket.connect(&addr.into()).expect("connect");
    let mut stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let message = pattern(11, BUFFER_SIZE);
    stream.write_all(&message).expect("the message is taken");
    // The first byte back proves the server is serving the connection.
    let mut first = [0u8; 1];
    stream.read_exact(&mut first).expect("the echo begins");
    assert_eq!(first[0], message[0]);
    (stream, message[1..].to_vec())
}

/// Reads what the server closed early sent, and asserts that the end says
/// so: a reset, never a clean end of stream after part of the echo.
fn assert_cut_looks_cut(mut stream: TcpStream, message: &[u8]) {
    let mut reply = Vec::new();
    match stream.read_to_end(&mut reply) {
        Ok(_) => panic!(
            "a clean end of stream after {} of {} bytes",
            reply.len(),
            message.len()
        ),
        Err(err) => assert_eq!(
            err.kind(),
            ErrorKind::ConnectionReset,
            "after {} bytes: {err}",
            reply.len()
        ),
    }
    assert!(reply.len() < message.len(), "the whole echo, then a reset");
    assert!(reply == message[..reply.len()], "what came back differs");
}

#[test]
fn an_echo_cut_at_the_end_of_the_grace_period_ends_in_a_reset() {
    let mut server = Server::start(&["--grace", "500ms"]);
    let (stream, message) = client_owed_bytes(server.addr());
    server.signal(Signal::SIGTERM);
    assert_eq!(server.wait_exit(WAIT).code(), Some(0));
    assert!(server.stderr().contains("cut=1 "), "{}", server.stderr());
    assert_cut_looks_cut(stream, &message);
}

#[test]
fn an_idle_connection_still_owed_bytes_ends_in_a_reset() {
    let server = Server::start_command(
        Command::new(binary("echo-server"))
            .args(["--listen", "127.0.0.1:0", "--idle-timeout", "500ms"])
            .env("RUST_LOG", "echo_server=debug")
            .stdin(Stdio::null()),
        1,
    );
    let (stream, message) = client_owed_bytes(server.addr());
    let closed = server.wait_for_log("connection closed: idle");
    assert!(closed.contains("owed=true"), "{closed}");
    assert_cut_looks_cut(stream, &message);
}

/// The idle timeout the slow-reader tests run with: the promise is stated
/// per timeout, so a short one keeps the tests short.
const IDLE_TIMEOUT: Duration = Duration::from_secs(2);
/// The reading speed the idle timeout promises never to cut: 64 KiB per
/// timeout (README, "Idle timeout").
const PROMISED_BYTES_PER_TIMEOUT: usize = 64 * 1024;

/// Sends a message bigger than every buffer on the way, then reads its echo
/// at exactly the promised speed for five timeouts, checks the server closed
/// nothing as idle meanwhile, and reads the rest at full speed.
fn a_reader_at_the_promised_speed_is_kept<S>(server: &Server, stream: S, writer: S)
where
    S: Read + Write + Send + 'static,
{
    const TOTAL: usize = 2 << 20;
    const PIECE: usize = 4096;
    let message = pattern(21, TOTAL);
    let sent = message.clone();
    let mut writer = writer;
    let feeder = thread::spawn(move || writer.write_all(&sent).map(|()| writer));
    let mut reader = stream;
    let mut reply = Vec::with_capacity(TOTAL);
    let mut piece = [0u8; PIECE];
    let pieces_per_timeout = PROMISED_BYTES_PER_TIMEOUT / PIECE;
    let gap = IDLE_TIMEOUT / u32::try_from(pieces_per_timeout).expect("small");
    let start = Instant::now();
    // The pacing is the behaviour under test: each piece at its due time,
    // catching up after a late one, never faster on average.
    for n in 1..=5 * pieces_per_timeout {
        reader
            .read_exact(&mut piece)
            .unwrap_or_else(|err| panic!("cut after {} bytes: {err}", reply.len()));
        reply.extend_from_slice(&piece);
        let due = start + gap * u32::try_from(n).expect("small");
        thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    assert_eq!(server.total("idle_closed"), 0, "the slow reader was closed");
    reply.resize(TOTAL, 0);
    reader
        .read_exact(&mut reply[5 * PROMISED_BYTES_PER_TIMEOUT..])
        .expect("the rest comes back");
    drop(
        feeder
            .join()
            .expect("feeder")
            .expect("the whole message is taken"),
    );
    assert!(reply == message, "the reply differs from the message");
    assert_eq!(
        server.total("bytes"),
        TOTAL as u64,
        "bytes counted as echoed"
    );
}

#[test]
fn a_tcp_reader_at_the_promised_speed_is_never_cut() {
    let timeout = format!("{}ms", IDLE_TIMEOUT.as_millis());
    let server = Server::start(&["--idle-timeout", &timeout]);
    let stream = TcpStream::connect(server.addr()).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let writer = stream.try_clone().expect("clone");
    a_reader_at_the_promised_speed_is_kept(&server, stream, writer);
}

#[test]
fn a_unix_reader_at_the_promised_speed_is_never_cut() {
    let dir = TempDir::new("slow-unix");
    let path = dir.path().join("echo.sock");
    let listen = format!("unix:{}", path.display());
    let timeout = format!("{}ms", IDLE_TIMEOUT.as_millis());
    let server = Server::start_with(&["--listen", &listen, "--idle-timeout", &timeout], 1);
    let stream = UnixStream::connect(&path).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let writer = stream.try_clone().expect("clone");
    a_reader_at_the_promised_speed_is_kept(&server, stream, writer);
}

/// A child process killed and reaped when dropped, panicking or not: a
/// stopped client fed from `/dev/zero` must not outlive its test.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_stopped_reader_is_closed_within_two_timeouts() {
    let timeout = format!("{}ms", IDLE_TIMEOUT.as_millis());
    let server = Server::start_command(
        Command::new(binary("echo-server"))
            .args(["--listen", "127.0.0.1:0", "--idle-timeout", &timeout])
            .env("RUST_LOG", "echo_server=debug")
            .stdin(Stdio::null()),
        1,
    );
    // Endless input, and an output nobody reads: the client soon stops
    // reading its echo, and once the server has echoed far more than the
    // client's buffers hold, the server is owed bytes.
    let client = Reaped(
        Command::new(binary("echo-client"))
            .args(["--addr", &server.addr().to_string(), "--timeout", "0s", "-"])
            .stdin(std::fs::File::open("/dev/zero").expect("open /dev/zero"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("echo-client starts"),
    );
    let pid = Pid::from_raw(i32::try_from(client.0.id()).expect("a pid"));
    assert!(
        eventually(WAIT, || server.total("bytes") > 2 << 20),
        "the server never echoed 2 MiB"
    );
    // A stopped process's kernel still acknowledges, and answers window
    // probes: only the queue that stops moving tells.
    kill(pid, Signal::SIGSTOP).expect("SIGSTOP");
    let stopped = Instant::now();
    let closed = server.wait_for_log("connection closed: idle");
    let took = stopped.elapsed();
    drop(client);
    assert!(closed.contains("owed=true"), "{closed}");
    // Two timeouts and the sweep's eighth, plus a timeout's slack for a
    // loaded machine: the bound is the promise, not a benchmark.
    assert!(
        took < 3 * IDLE_TIMEOUT,
        "closed {took:?} after the reader stopped"
    );
}
