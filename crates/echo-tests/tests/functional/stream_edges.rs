//! Stream connections at the edges of their promises: an urgent byte in the
//! middle of a bulk stream, an echo cut short that must look cut, and slow
//! readers at the reading speed the idle timeout promises to keep.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use echo_proto::pattern;
use echo_tests::{Server, WAIT};

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
