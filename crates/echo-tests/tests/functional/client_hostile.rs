//! `echo-client` and `echo-bench` against servers and surroundings that do
//! not play along: endless or wrong replies, slow readers, silent listeners,
//! a full stderr or stdout. Each test pins down a promise that used to be broken.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use echo_client::{Client, DEFAULT_TIMEOUT, Error};
use echo_proto::pattern;
use echo_tests::{Server, TempDir, WAIT, binary, refusing_address};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::client_cli::echo_client;

/// A server that answers its first connection with bytes that never end:
/// only the client can stop the exchange.
fn endless_server() -> SocketAddr {
    echo_then_endless_server(0)
}

#[test]
fn a_reply_longer_than_the_message_is_cut_off_with_one_error_line() {
    let addr = endless_server();
    echo_client()
        .args(["--addr", &addr.to_string(), "hi"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(format!(
            "error: {addr} sent more than the 2 bytes of the message\n"
        ));
}

/// A server that takes the whole message before it answers, and takes it
/// slowly: 16 KiB every 10 ms. While it reads, nothing comes back for
/// seconds, yet the client's writes keep moving.
///
/// It listens on a Unix socket because a Unix socket's buffer is fixed at
/// about 200 KiB, which this server drains in well under the client's
/// timeout: on TCP loopback the client's send buffer grows to 4 MiB and
/// swallows megabytes at once, after which the client sees no progress for
/// seconds while the server reads, and rightly times out.
fn store_and_forward_server(path: &Path) {
    let listener = UnixListener::bind(path).expect("bind");
    thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let mut message = Vec::new();
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            match stream.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => message.extend_from_slice(&buffer[..n]),
                Err(_) => return,
            }
            // The pacing is the behaviour under test, not a synchronisation.
            thread::sleep(Duration::from_millis(10));
        }
        let _ = stream.write_all(&message);
    });
}

#[test]
fn the_timeout_counts_progress_in_either_direction() {
    let dir = TempDir::new("store-and-forward");
    let path = dir.path().join("echo.sock");
    store_and_forward_server(&path);
    // About 2.6 s for the server to read, during which the client's writes
    // never pause for more than about 150 ms (as measured): a wide margin
    // on both sides of the 1 s timeout.
    let message = pattern(11, 4 << 20);
    let output = echo_client()
        .args([
            "--addr",
            &format!("unix:{}", path.display()),
            "--timeout",
            "1s",
            "-",
        ])
        .write_stdin(message.clone())
        .output()
        .expect("echo-client runs");
    assert!(
        output.status.success(),
        "{}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stdout == message,
        "{} bytes came back, not the {} sent",
        output.stdout.len(),
        message.len()
    );
}

#[test]
fn the_library_gives_up_on_a_silent_server_after_the_default_timeout() {
    // Connections complete in the kernel's backlog, and are never accepted.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let (done, outcome) = mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(Client::new(addr).echo(b"hi"));
    });
    let result = outcome
        .recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("Client::echo still waits after {WAIT:?}"));
    assert!(
        matches!(&result, Err(Error::Timeout { after, .. }) if *after == DEFAULT_TIMEOUT),
        "{result:?}"
    );
    drop(listener);
}

/// Runs `command` with stderr on `/dev/full`, where every write fails, and
/// returns its exit code; within [`WAIT`], or it is killed.
fn exit_code_with_stderr_full(command: &mut Command) -> Option<i32> {
    let full = OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full opens");
    output_within_wait(
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(full),
    )
    .status
    .code()
}

#[test]
fn a_client_failure_exits_1_even_when_stderr_is_full() {
    let (_socket, addr) = refusing_address();
    let code = exit_code_with_stderr_full(
        Command::new(binary("echo-client"))
            .args(["--addr", &addr.to_string(), "hi"])
            .env_remove("ECHO_ADDR")
            .env_remove("ECHO_TIMEOUT"),
    );
    assert_eq!(code, Some(1));
}

#[test]
fn a_failed_bench_run_exits_1_even_when_stderr_is_full() {
    let (_socket, addr) = refusing_address();
    let code = exit_code_with_stderr_full(
        Command::new(binary("echo-bench"))
            .args(["conn", "--addr", &addr.to_string(), "-d", "1s"])
            .env_remove("ECHO_ADDR"),
    );
    assert_eq!(code, Some(1));
}

/// A server that echoes the first `len` bytes of its first connection, then
/// sends bytes that never end: an echo gone wrong after a good start.
fn echo_then_endless_server(len: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let mut message = vec![0u8; len];
        if stream.read_exact(&mut message).is_err() || stream.write_all(&message).is_err() {
            return;
        }
        let bytes = vec![b'x'; 64 * 1024];
        // Ends when the client has gone and the write fails.
        while stream.write_all(&bytes).is_ok() {}
    });
    addr
}

/// `echo-client -` with `hello` on stdin, with and without `--check`,
/// against a fresh `server()` whose reply goes on after the echo: the echo
/// is passed on, then the first byte too many is one error line and exit 1.
fn assert_a_stream_reply_past_stdin_is_an_error(server: fn() -> SocketAddr) {
    for check in [&[][..], &["--check"]] {
        let addr = server();
        // Within echo_client's bound, or the exit code is not 1.
        echo_client()
            .args(["--addr", &addr.to_string()])
            .args(check)
            .arg("-")
            .write_stdin("hello")
            .assert()
            .code(1)
            .stdout("hello")
            .stderr(format!(
                "error: {addr} sent more than the 5 bytes of the message\n"
            ));
    }
}

#[test]
fn a_stream_reply_that_never_ends_is_cut_off_at_the_first_byte_too_many() {
    assert_a_stream_reply_past_stdin_is_an_error(|| echo_then_endless_server(5));
}

/// A server that takes the whole message of its first connection and sends
/// it back twice.
fn doubling_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let mut message = Vec::new();
        if stream.read_to_end(&mut message).is_ok() {
            let _ = stream.write_all(&message.repeat(2));
        }
    });
    addr
}

#[test]
fn a_stream_reply_longer_than_stdin_is_an_error() {
    assert_a_stream_reply_past_stdin_is_an_error(doubling_server);
}

/// Waits for `child` to exit and collects what it left in its pipes; within
/// [`WAIT`], or it is killed and the test fails.
fn finish_within_wait(child: Child) -> Output {
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("a pid fits in i32"));
    let (done, output) = mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match output.recv_timeout(WAIT) {
        Ok(output) => output.expect("the command is reaped"),
        Err(_) => {
            // The waiting thread has not reaped it, so the pid is still ours.
            let _ = kill(pid, Signal::SIGKILL);
            panic!("the command did not exit within {WAIT:?}");
        }
    }
}

/// Runs `command`, with the stdio it sets, to its end: see [`finish_within_wait`].
fn output_within_wait(command: &mut Command) -> Output {
    finish_within_wait(command.spawn().expect("the command starts"))
}

#[test]
fn a_stream_reply_reaches_stdout_while_stdin_is_still_open() {
    let server = Server::start(&[]);
    let mut child = Command::new(binary("echo-client"))
        // No timeout of its own: only the end of stdin may end the exchange.
        .args(["--addr", &server.addr().to_string(), "--timeout", "0s", "-"])
        .env_remove("ECHO_ADDR")
        .env_remove("ECHO_TIMEOUT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("echo-client starts");
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("a pid fits in i32"));
    let mut stdin = child.stdin.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    // No newline: a line-buffered stdout would hold all of it back.
    let chunk = [0x00, 0xff, b'a', b'b', b'c'];
    let (arrived, echo) = mpsc::channel();
    thread::spawn(move || {
        let mut first = [0u8; 5];
        let _ = arrived.send(stdout.read_exact(&mut first).map(|()| first.to_vec()));
        let mut rest = Vec::new();
        let _ = arrived.send(stdout.read_to_end(&mut rest).map(|_| rest));
    });
    stdin.write_all(&chunk).expect("stdin takes the chunk");
    let first = echo.recv_timeout(WAIT).unwrap_or_else(|_| {
        let _ = kill(pid, Signal::SIGKILL);
        panic!("the echo was not on stdout within {WAIT:?} while stdin was open");
    });
    assert_eq!(first.expect("stdout reads"), chunk);
    let running = child.try_wait().expect("echo-client can be polled");
    assert!(
        running.is_none(),
        "echo-client exited before its stdin closed: {running:?}"
    );
    // End of stdin ends the message; the client then exits with nothing more to say.
    drop(stdin);
    let output = finish_within_wait(child);
    let rest = echo
        .recv_timeout(WAIT)
        .expect("stdout closes as the client exits")
        .expect("stdout reads");
    assert!(
        output.status.success(),
        "{}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(rest, b"");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}

/// A UDP server that answers every datagram with `reply`, whatever it said:
/// a broken echo, or another service on the port.
fn udp_server_answering(reply: &'static [u8]) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let addr = socket.local_addr().expect("address");
    // Ends the thread once nothing has come for a whole WAIT.
    socket.set_read_timeout(Some(WAIT)).expect("a read timeout");
    thread::spawn(move || {
        let mut buffer = vec![0u8; 64 * 1024];
        while let Ok((_, peer)) = socket.recv_from(&mut buffer) {
            let _ = socket.send_to(reply, peer);
        }
    });
    addr
}

#[test]
fn a_udp_reply_longer_than_the_message_is_an_error() {
    let addr = udp_server_answering(b"hello, world");
    echo_client()
        .args(["--addr", &addr.to_string(), "--udp", "hello"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(format!(
            "error: {addr} sent more than the 5 bytes of the message\n"
        ));
}

#[test]
fn a_udp_reply_that_is_not_the_message_is_an_error_even_without_check() {
    let addr = udp_server_answering(b"world");
    for check in [&[][..], &["--check"]] {
        echo_client()
            .args(["--addr", &addr.to_string(), "--udp"])
            .args(check)
            .arg("hello")
            .assert()
            .code(1)
            .stdout("")
            .stderr(format!(
                "error: {addr} answered wrongly: reply differs from what was sent at byte 0 \
                 (sent 5 bytes, received 5)\n"
            ));
    }
}

#[test]
fn a_full_stdout_is_named_in_the_error() {
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    let dir = TempDir::new("full-stdout");
    let input = dir.path().join("message");
    std::fs::write(&input, "hello").expect("the message is written");
    let full = || {
        OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full opens")
    };
    for (message, stdin) in [
        ("hello", Stdio::null()),
        ("-", File::open(&input).expect("the message opens").into()),
    ] {
        let output = output_within_wait(
            Command::new(binary("echo-client"))
                .args(["--addr", &addr, message])
                .env_remove("ECHO_ADDR")
                .env_remove("ECHO_TIMEOUT")
                .stdin(stdin)
                .stdout(full())
                .stderr(Stdio::piped()),
        );
        assert_eq!(output.status.code(), Some(1), "{message}");
        assert_eq!(
            String::from_utf8_lossy(&output.stderr),
            "error: cannot write the reply to stdout: No space left on device (os error 28)\n",
            "{message}"
        );
    }
}
