//! Hostile and broken clients: the connection limit, idle timeouts,
//! backpressure, descriptor exhaustion, and the bounded drain.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use echo_client::Client;
use echo_proto::pattern;
use echo_tests::{Server, WAIT, binary, cpu_time, eventually, memory_kib, open_fds, read_all};
use nix::sys::signal::Signal;

/// Opens a connection and proves the server is serving it (one byte echoed).
fn served_connection(server: &Server) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr()).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    stream.write_all(b"x").expect("write");
    let mut byte = [0u8; 1];
    stream
        .read_exact(&mut byte)
        .expect("the connection is served");
    assert_eq!(&byte, b"x");
    stream
}

fn linger_zero(stream: &TcpStream) {
    socket2::SockRef::from(stream)
        .set_linger(Some(Duration::ZERO))
        .expect("linger");
}

#[test]
fn at_the_connection_limit_the_next_client_waits_its_turn() {
    the_next_client_waits_its_turn_at_the_limit("1");
}

#[test]
fn the_connection_limit_holds_over_several_event_loops() {
    the_next_client_waits_its_turn_at_the_limit("3");
}

fn the_next_client_waits_its_turn_at_the_limit(threads: &str) {
    let server = Server::start(&["--max-connections", "4", "--threads", threads]);
    let mut held: Vec<TcpStream> = (0..4).map(|_| served_connection(&server)).collect();

    let mut fifth = TcpStream::connect(server.addr()).expect("the kernel queues the fifth client");
    let message = pattern(5, 100_000);
    fifth.write_all(&message).expect("write");
    fifth.shutdown(Shutdown::Write).expect("half-close");
    // While four are served, the fifth gets nothing: not served, not refused.
    fifth
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let mut byte = [0u8; 1];
    let early = fifth.read(&mut byte);
    assert!(
        matches!(&early, Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "the fifth client was answered while four were being served: {early:?}"
    );

    // One of the four finishes; the fifth is then served, byte-exact.
    let mut first = held.remove(0);
    first.shutdown(Shutdown::Write).expect("half-close");
    assert_eq!(read_all(&mut first, 10).expect("clean end"), b"");
    fifth.set_read_timeout(Some(WAIT)).expect("timeout");
    let reply = read_all(&mut fifth, message.len() + 1).expect("the fifth is served");
    assert!(
        reply == message,
        "the fifth got {} bytes, not its {}",
        reply.len(),
        message.len()
    );
}

#[test]
fn an_idle_connection_is_closed_cleanly_but_a_trickling_one_is_not() {
    let server = Server::start(&["--idle-timeout", "300ms"]);
    let mut silent = TcpStream::connect(server.addr()).expect("connect");
    silent.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut trickle = TcpStream::connect(server.addr()).expect("connect");
    trickle.set_read_timeout(Some(WAIT)).expect("timeout");

    let mut sent = Vec::new();
    for n in 0..10u8 {
        trickle
            .write_all(&[b'a' + n])
            .expect("the trickling connection stays open");
        sent.push(b'a' + n);
        // The gap between bytes is the behaviour under test: a third of the idle timeout.
        thread::sleep(Duration::from_millis(100));
    }
    trickle.shutdown(Shutdown::Write).expect("half-close");
    assert_eq!(
        read_all(&mut trickle, 100).expect("the trickle is echoed"),
        sent
    );

    // A clean end of stream (a FIN), not a reset: read returns 0 bytes.
    let mut byte = [0u8; 1];
    assert_eq!(
        silent.read(&mut byte).expect("a clean close, not a reset"),
        0
    );
}

#[test]
fn a_client_that_never_reads_costs_bounded_memory_and_is_timed_out() {
    let server = Server::start(&["--idle-timeout", "1s"]);
    let client = Client::new(server.addr()).timeout(Some(WAIT));
    client.echo(&pattern(0, 1 << 20)).expect("warm-up");
    let (_, peak_before) = memory_kib(server.pid());

    let mut hog = TcpStream::connect(server.addr()).expect("connect");
    hog.set_write_timeout(Some(WAIT)).expect("timeout");
    let writer = thread::spawn(move || {
        let chunk = pattern(9, 1 << 20);
        let mut written = 0usize;
        for _ in 0..64 {
            if hog.write_all(&chunk).is_err() {
                return written;
            }
            written += chunk.len();
        }
        written
    });
    // Others are served meanwhile.
    let message = pattern(1, 2 << 20);
    assert!(client.echo(&message).expect("another client is served") == message);

    let written = writer.join().expect("writer thread");
    assert!(
        written < 64 << 20,
        "the server read all 64 MiB from a client that never reads"
    );
    let (_, peak_after) = memory_kib(server.pid());
    assert!(
        peak_after.saturating_sub(peak_before) < 8 * 1024,
        "peak memory grew by {} KiB for a client that never reads",
        peak_after - peak_before
    );
    server.signal(Signal::SIGUSR1);
    let totals = server.wait_for_log("totals");
    assert!(totals.contains("idle_closed=1"), "{totals}");
}

#[test]
fn out_of_descriptors_the_server_backs_off_and_recovers() {
    // A limit of 64 descriptors, and a connection limit far above it, so the
    // server really runs out and `accept` fails with EMFILE.
    let mut command = Command::new("prlimit");
    command
        .args(["--nofile=64", "--"])
        .arg(binary("echo-server"))
        .args(["--listen", "127.0.0.1:0", "--max-connections", "1000"])
        .stdin(Stdio::null());
    let server = Server::start_command(&mut command, 1);
    let flood: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(server.addr()).expect("the kernel queues"))
        .collect();
    server.wait_for_log("accept failing");

    let before = cpu_time(server.pid());
    // Two seconds of starvation is the behaviour under test.
    thread::sleep(Duration::from_secs(2));
    let used = cpu_time(server.pid()) - before;
    assert!(
        used < Duration::from_millis(200),
        "the starved server used {used:?} of CPU in 2 s"
    );
    // Failing again and again, it still says so once in its first five
    // seconds, counting the one failure that line reports.
    let log = server.stderr();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("accept failing"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("failures=1"), "{log}");

    drop(flood);
    let started = Instant::now();
    let reply = Client::new(server.addr())
        .timeout(Some(WAIT))
        .echo_text("back")
        .expect("served again");
    assert_eq!(reply, "back");
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(2),
        "served only {waited:?} after descriptors came back"
    );
}

#[test]
fn thousands_of_connect_and_close_cycles_leak_no_descriptor() {
    let server = Server::start(&[]);
    Client::new(server.addr())
        .timeout(Some(WAIT))
        .echo_text("warm-up")
        .expect("warm-up");
    let fds_before = open_fds(server.pid());
    for n in 0..2000 {
        let stream = TcpStream::connect(server.addr()).expect("connect");
        if n % 2 == 0 {
            linger_zero(&stream);
        }
        drop(stream);
    }
    let settled = eventually(WAIT, || open_fds(server.pid()) <= fds_before);
    assert!(
        settled,
        "{} descriptors open after the cycles, {fds_before} before",
        open_fds(server.pid())
    );
    Client::new(server.addr())
        .timeout(Some(WAIT))
        .echo_text("after")
        .expect("still serving");
}

#[test]
fn the_drain_is_bounded_by_the_grace_period() {
    let mut server = Server::start(&["--grace", "500ms"]);
    let mut stuck = served_connection(&server);
    // Mid-transfer and not reading: this connection would never finish.
    stuck.set_write_timeout(Some(WAIT)).expect("timeout");
    let writer = thread::spawn(move || {
        let chunk = pattern(3, 1 << 20);
        while stuck.write_all(&chunk).is_ok() {}
    });
    let started = Instant::now();
    server.signal(Signal::SIGTERM);
    let status = server.wait_exit(WAIT);
    let took = started.elapsed();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", server.stderr());
    assert!(
        took >= Duration::from_millis(500),
        "exited after {took:?}, before the grace period"
    );
    assert!(
        took < Duration::from_secs(3),
        "the drain took {took:?} with a 500ms grace period"
    );
    assert!(
        server.stderr().contains("cut=1"),
        "stderr:\n{}",
        server.stderr()
    );
    writer
        .join()
        .expect("the writer sees the connection closed");
}

fn assert_second_signal_exits_at_once(signal: Signal, code: i32) {
    let mut server = Server::start(&["--grace", "60s"]);
    let _in_flight = served_connection(&server);
    server.signal(signal);
    server.wait_for_log("draining");
    server.signal(signal);
    let status = server.wait_exit(WAIT);
    assert_eq!(status.code(), Some(code), "stderr:\n{}", server.stderr());
}

#[test]
fn a_second_sigterm_during_the_drain_exits_at_once_with_143() {
    assert_second_signal_exits_at_once(Signal::SIGTERM, 143);
}

#[test]
fn a_second_sigint_during_the_drain_exits_at_once_with_130() {
    assert_second_signal_exits_at_once(Signal::SIGINT, 130);
}

#[test]
fn a_second_sighup_during_the_drain_exits_at_once_with_129() {
    assert_second_signal_exits_at_once(Signal::SIGHUP, 129);
}

#[test]
fn the_limit_is_shared_by_listeners_without_starving_any() {
    let server = Server::start_with(
        &[
            "--listen",
            "127.0.0.1:0",
            "--listen",
            "127.0.0.1:0",
            "--max-connections",
            "2",
        ],
        2,
    );
    let first = server.listener_addr("tcp", 0);
    let second = server.listener_addr("tcp", 1);
    // One connection in service on the first listener leaves one slot, which
    // the idle second listener must not be sitting on.
    let mut held = TcpStream::connect(first).expect("connect");
    held.set_read_timeout(Some(WAIT)).expect("timeout");
    held.write_all(b"x").expect("write");
    let mut byte = [0u8; 1];
    held.read_exact(&mut byte).expect("served");
    let client = |addr| Client::new(addr).timeout(Some(WAIT));
    assert_eq!(
        client(first)
            .echo_text("first")
            .expect("the free slot serves the first listener"),
        "first"
    );
    assert_eq!(
        client(second)
            .echo_text("second")
            .expect("and then the second"),
        "second"
    );
}

#[test]
fn during_the_drain_new_clients_are_refused_and_the_one_in_flight_finishes() {
    let mut server = Server::start(&["--grace", "60s"]);
    let mut in_flight = served_connection(&server);
    server.signal(Signal::SIGTERM);
    server.wait_for_log("draining");
    // The loop closes its listener as the drain starts, so the kernel then
    // refuses a new client rather than queueing it for no one.
    assert!(
        eventually(WAIT, || TcpStream::connect(server.addr())
            .is_err_and(|err| err.kind() == ErrorKind::ConnectionRefused)),
        "still accepting new clients during the drain"
    );
    in_flight.write_all(b"last words").expect("write");
    in_flight.shutdown(Shutdown::Write).expect("half-close");
    let reply = read_all(&mut in_flight, 1 << 10).expect("the echo comes");
    assert_eq!(reply, b"xlast words"[1..]);
    let status = server.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "stderr:\n{}", server.stderr());
}

/// Sends `signal` to one thread of a process, which runs its handler there:
/// std, nix and rustix send signals only to whole processes or to threads
/// of their own.
#[allow(unsafe_code)]
fn tgkill(pid: i32, tid: i32, signal: Signal) {
    // SAFETY: tgkill(2) takes three integers and touches no memory of ours.
    let sent = unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, signal as libc::c_int) };
    assert_eq!(sent, 0, "tgkill: {}", std::io::Error::last_os_error());
}

/// The threads of `pid` whose name is `name`, from `/proc/PID/task/*/comm`.
fn threads_named(pid: u32, name: &str) -> Vec<i32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the server's threads")
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let comm = std::fs::read_to_string(path.join("comm")).ok()?;
            (comm.trim() == name).then(|| path.file_name()?.to_str()?.parse().ok())?
        })
        .collect()
}

#[test]
fn a_signal_that_interrupts_an_event_loop_harms_no_connection() {
    let server = Server::start(&[]);
    let mut held = served_connection(&server);
    let threads = threads_named(server.pid(), "echo-streams-0");
    assert_eq!(threads.len(), 1, "one event loop thread");
    // SIGUSR1 aimed at the loop's own thread, which waits in epoll_wait with
    // nothing to do: the handler runs there and the wait returns EINTR.
    let pid = i32::try_from(server.pid()).expect("a pid");
    for sent in 1..=5 {
        tgkill(pid, threads[0], Signal::SIGUSR1);
        // Its totals line says the signal was taken, on that thread.
        assert!(
            eventually(WAIT, || server.stderr().matches("totals").count() >= sent),
            "stderr:\n{}",
            server.stderr()
        );
    }
    held.write_all(b"still here").expect("write");
    held.shutdown(Shutdown::Write).expect("half-close");
    let reply = read_all(&mut held, 1 << 10).expect("the echo comes");
    assert_eq!(reply, b"still here");
    assert_eq!(
        Client::new(server.addr())
            .timeout(Some(WAIT))
            .echo_text("and new ones")
            .expect("still serving"),
        "and new ones"
    );
    assert!(
        !server.stderr().contains("cannot wait for events"),
        "stderr:\n{}",
        server.stderr()
    );
}
