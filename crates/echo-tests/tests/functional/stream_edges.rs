//! Stream connections at the edges of their promises: an urgent byte in the
//! middle of a bulk stream, an echo cut short that must look cut, and slow
//! readers at the reading speed the idle timeout promises to keep.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use echo_proto::{BUFFER_SIZE, pattern};
use echo_tests::{Server, WAIT, binary};
use nix::sys::signal::Signal;

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
