//! The seed's four message cases, many clients at once, and a bulk message
//! spliced or copied, through the client library.

use std::net::SocketAddr;
use std::thread;

use echo_client::Client;
use echo_proto::{BUFFER_SIZE, pattern};
use echo_tests::{Server, WAIT};

fn client(addr: SocketAddr) -> Client {
    Client::new(addr).timeout(Some(WAIT))
}

fn assert_text_echoed(addr: SocketAddr, message: &str) {
    let reply = client(addr)
        .echo_text(message)
        .expect("the exchange succeeds");
    assert!(
        reply == message,
        "reply of {} bytes differs from message of {}",
        reply.len(),
        message.len()
    );
}

#[test]
fn messages_shorter_than_one_buffer_come_back() {
    let server = Server::start(&[]);
    for message in [
        "",
        "a",
        "this is the message to send",
        "line one\nline two\n",
        "\0\r\n\t",
    ] {
        assert_text_echoed(server.addr(), message);
    }
    let almost_full = "x".repeat(BUFFER_SIZE - 1);
    assert_text_echoed(server.addr(), &almost_full);
}

#[test]
fn messages_longer_than_several_buffers_come_back() {
    let server = Server::start(&[]);
    for len in [BUFFER_SIZE + 1, 3 * BUFFER_SIZE + 17, 40 * BUFFER_SIZE - 5] {
        let message = pattern(len as u64, len);
        let reply = client(server.addr())
            .echo(&message)
            .expect("the exchange succeeds");
        assert!(
            reply == message,
            "{len}-byte message came back as {} different bytes",
            reply.len()
        );
    }
}

#[test]
fn messages_of_exact_buffer_multiples_come_back() {
    let server = Server::start(&[]);
    for buffers in [1, 2, 64] {
        let message = pattern(buffers as u64, buffers * BUFFER_SIZE);
        let reply = client(server.addr())
            .echo(&message)
            .expect("the exchange succeeds");
        assert!(
            reply == message,
            "{buffers}-buffer message came back as {} different bytes",
            reply.len()
        );
    }
}

#[test]
fn non_ascii_messages_come_back_whole() {
    let server = Server::start(&[]);
    for message in [
        "café crème brûlée",
        "日本語のメッセージ、中文消息",
        "emoji 👋🏽 🇫🇷 👨‍👩‍👧",
        "combining: e\u{301} a\u{308} n\u{303}",
    ] {
        assert_text_echoed(server.addr(), message);
    }
    // A four-byte character whose bytes straddle the first buffer boundary,
    // in each of the three possible places.
    for before in [BUFFER_SIZE - 1, BUFFER_SIZE - 2, BUFFER_SIZE - 3] {
        let message = format!("{}🦀{}", "a".repeat(before), "é".repeat(BUFFER_SIZE));
        assert_text_echoed(server.addr(), &message);
    }
}

#[test]
fn two_hundred_concurrent_clients_each_get_their_own_message() {
    let server = Server::start(&[]);
    let addr = server.addr();
    let clients: Vec<_> = (0..200u64)
        .map(|n| {
            thread::spawn(move || {
                let message = pattern(n, 1000 + n as usize * 97);
                let reply = client(addr).echo(&message);
                (n, message, reply)
            })
        })
        .collect();
    for handle in clients {
        let (n, message, reply) = handle.join().expect("client thread");
        let reply = reply.unwrap_or_else(|err| panic!("client {n}: {err}"));
        assert!(reply == message, "client {n} got someone else's bytes");
    }
}

#[test]
fn the_server_serves_a_thousand_connections_in_a_row() {
    let server = Server::start(&[]);
    for n in 0..1000u64 {
        let message = format!("message number {n}");
        let reply = client(server.addr())
            .echo_text(&message)
            .expect("the exchange succeeds");
        assert_eq!(reply, message);
    }
}

/// The pipes process `pid` holds open: its stdout and stderr when a test
/// reads them, and the pipes a splicing server keeps for bulk streams.
fn pipes_open(pid: u32) -> usize {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("the server's descriptors");
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("pipe:"))
        .count()
}

#[test]
fn a_bulk_message_comes_back_whole_spliced_or_copied() {
    let message = pattern(11, 16 << 20);
    for (args, splices) in [(&[][..], true), (&["--splice", "never"][..], false)] {
        let server = Server::start(args);
        let before = pipes_open(server.pid());
        let reply = client(server.addr()).echo(&message).expect("echo");
        assert!(
            reply == message,
            "{args:?}: the reply differs from the message"
        );
        // A splicing server keeps the pipes it used as spares for the next
        // bulk stream; a copying one never opened any.
        let after = pipes_open(server.pid());
        assert_eq!(
            after > before,
            splices,
            "{args:?}: {before} pipes before, {after} after"
        );
    }
}
