//! The event loop's rules that only a client kept waiting can see: how many
//! idle timeouts a quiet connection gets, what the sweep does when it looks
//! late, and a Unix read that stops short with more queued behind it.

use std::fs::File;
use std::io::{ErrorKind, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use echo_proto::pattern;
use echo_tests::{Server, TempDir, WAIT, read_all};
use nix::sys::signal::Signal;
use tokio::io::Interest;

/// The idle timeout of these tests: the sweep then runs every 250 ms, an
/// eighth of it (docs/server.md, "Idle timeout"), and a loaded machine's
/// delays stay small beside either.
const IDLE_TIMEOUT: Duration = Duration::from_secs(2);

fn server_with_idle_timeout() -> Server {
    let timeout = format!("{}ms", IDLE_TIMEOUT.as_millis());
    Server::start(&["--idle-timeout", &timeout])
}

/// Sends one byte and reads it back: the connection is served, and owes
/// its peer nothing.
fn exchange_a_byte(stream: &mut TcpStream) {
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    stream.write_all(b"x").expect("written");
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte).expect("echoed");
    assert_eq!(&byte, b"x");
}

/// Runs `wait` on a runtime of its own, for at most [`WAIT`]: readiness
/// that only epoll reports (an error, room to write), seen without reading
/// or writing, which the server would count as progress.
fn within_wait<T>(what: &str, wait: impl Future<Output = std::io::Result<T>>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(async { tokio::time::timeout(WAIT, wait).await })
        .unwrap_or_else(|_| panic!("{what}: not within {WAIT:?}"))
        .unwrap_or_else(|err| panic!("{what}: {err}"))
}

/// A connection whose last look by the sweep found its send queue empty,
/// and which then queues an echo its peer does not take, owes bytes: it
/// gets two timeouts, not one, so that the empty queue once seen does not
/// pass for the queue now.
#[test]
fn bytes_queued_after_the_queue_was_seen_empty_earn_two_timeouts() {
    let server = server_with_idle_timeout();
    // The smallest receive buffer: an echo of a few KiB waits in the
    // server's send queue, all of it written, none of it held by the server.
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(1).expect("rcvbuf");
    socket.connect(&server.addr().into()).expect("connect");
    let mut stream: TcpStream = socket.into();
    exchange_a_byte(&mut stream);
    // Quiet for three sweeps, well short of a timeout: the sweep looks once
    // the connection has been quiet for one, and finds the queue empty. The
    // quiet is the behaviour under test.
    thread::sleep(IDLE_TIMEOUT * 3 / 8);

    let message = pattern(31, 8 * 1024);
    let sent = Instant::now();
    stream.write_all(&message).expect("written");
    // Wait for the server to end the connection, reading nothing, since the
    // peer taking bytes would be progress.
    let stream = within_wait("the idle connection is reset", async {
        stream.set_nonblocking(true)?;
        let stream = tokio::net::TcpStream::from_std(stream)?;
        stream.ready(Interest::ERROR).await?;
        let stream = stream.into_std()?;
        stream.set_nonblocking(false)?;
        Ok(stream)
    });
    let waited = sent.elapsed();
    assert!(
        waited > IDLE_TIMEOUT * 3 / 2,
        "closed {waited:?} after its echo was queued: one timeout, not two"
    );
    // Owed bytes, so reset: what came is a part of the echo, then the reset.
    let mut reply = Vec::new();
    let end = (&stream).read_to_end(&mut reply);
    assert!(
        matches!(&end, Err(err) if err.kind() == ErrorKind::ConnectionReset),
        "{end:?} after {} bytes",
        reply.len()
    );
    assert!(reply.len() < message.len() && reply == message[..reply.len()]);
}

/// A connection the sweep first looks at only once it has been quiet for a
/// timeout, as after the server was stopped, and which owes nothing, is
/// closed at that sweep, not one later.
#[test]
fn a_quiet_connection_first_looked_at_after_a_timeout_is_closed_at_that_sweep() {
    let server = server_with_idle_timeout();
    let mut quiet = TcpStream::connect(server.addr()).expect("connect");
    exchange_a_byte(&mut quiet);
    // Stopped before the sweep looks at the connection (a quiet of 250 ms),
    // for one and a half timeouts: the stop's length is the behaviour under
    // test.
    server.signal(Signal::SIGSTOP);
    thread::sleep(IDLE_TIMEOUT * 3 / 2);
    // A client that comes meanwhile is accepted by the first turn of the
    // resumed loop, whose sweep also closes the quiet connection; its echo
    // comes in a later turn.
    let mut later = TcpStream::connect(server.addr()).expect("the kernel queues it");
    later.write_all(b"y").expect("written");
    server.signal(Signal::SIGCONT);
    later.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut byte = [0u8; 1];
    later.read_exact(&mut byte).expect("echoed");
    assert_eq!(&byte, b"y");
    assert_eq!(
        server.total("idle_closed"),
        1,
        "the quiet connection outlived the sweep that found it idle"
    );
    assert_eq!(
        read_all(&mut quiet, 64).expect("a clean end, as nothing was owed"),
        b""
    );
}

/// The control message that passes descriptor `fd` (`SCM_RIGHTS`), laid out
/// as cmsg(3) says: a `cmsghdr`, the descriptor, and padding to a `long`.
fn passing(fd: RawFd) -> Vec<u8> {
    let align = |len: usize| len.next_multiple_of(size_of::<usize>());
    let header = size_of::<libc::cmsghdr>();
    let mut control = Vec::with_capacity(align(header) + align(size_of::<RawFd>()));
    control.extend_from_slice(&(header + size_of::<RawFd>()).to_ne_bytes());
    control.extend_from_slice(&libc::SOL_SOCKET.to_ne_bytes());
    control.extend_from_slice(&libc::SCM_RIGHTS.to_ne_bytes());
    control.extend_from_slice(&fd.to_ne_bytes());
    control.resize(control.capacity(), 0);
    control
}

/// A Unix read stops after a message that carried descriptors, however much
/// is queued behind it, so a short read there does not mean the socket is
/// drained: the server reads on, and a client whose writes wait for room in
/// its send buffer is not left waiting.
#[test]
fn a_unix_read_stopped_by_a_passed_descriptor_does_not_end_the_turn() {
    let dir = TempDir::new("passed-descriptor");
    let path = dir.path().join("echo.sock");
    let listen = format!("unix:{}", path.display());
    let _server = Server::start_with(&["--listen", &listen, "--max-connections", "1"], 1);
    // The one place is taken, so the next client's bytes wait unread, all
    // of them, until the server accepts it.
    let mut holder = UnixStream::connect(&path).expect("connect");
    holder.set_read_timeout(Some(WAIT)).expect("timeout");
    holder.write_all(b"h").expect("written");
    let mut byte = [0u8; 1];
    holder.read_exact(&mut byte).expect("echoed");

    let client = UnixStream::connect(&path).expect("the kernel queues it");
    let socket = socket2::SockRef::from(&client);
    socket.set_send_buffer_size(16 * 1024).expect("sndbuf");
    let passed = File::open("/dev/null").expect("a descriptor to pass");
    let control = passing(passed.as_raw_fd());
    let first = [IoSlice::new(b"!")];
    let header = socket2::MsgHdr::new()
        .with_buffers(&first)
        .with_control(&control);
    assert_eq!(
        socket.sendmsg(&header, 0).expect("sent with a descriptor"),
        1
    );
    // Then as much as the send buffer takes: the client can write again
    // only once the server has read most of it.
    let mut message = b"!".to_vec();
    client.set_nonblocking(true).expect("non-blocking");
    let chunk = pattern(41, 4096);
    loop {
        match (&client).write(&chunk) {
            Ok(n) => message.extend_from_slice(&chunk[..n]),
            Err(err) if err.kind() == ErrorKind::WouldBlock => break,
            Err(err) => panic!("writing: {err}"),
        }
    }

    holder.shutdown(Shutdown::Write).expect("half-close");
    assert_eq!(read_all(&mut holder, 64).expect("a clean end"), b"");
    let mut client = within_wait("room to write again", async {
        let client = tokio::net::UnixStream::from_std(client)?;
        client.writable().await?;
        let client = client.into_std()?;
        client.set_nonblocking(false)?;
        Ok(client)
    });
    client.set_read_timeout(Some(WAIT)).expect("timeout");
    client.shutdown(Shutdown::Write).expect("half-close");
    let reply = read_all(&mut client, message.len() + 1).expect("echoed");
    assert!(
        reply == message,
        "{} bytes back of {}",
        reply.len(),
        message.len()
    );
}
