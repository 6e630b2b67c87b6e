//! `echo-client` and `echo-bench` against servers and surroundings that do
//! not play along: endless replies, slow readers, silent listeners, a full
//! stderr. Each test pins down a promise that used to be broken.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use echo_client::{Client, DEFAULT_TIMEOUT, Error};
use echo_proto::pattern;
use echo_tests::{TempDir, WAIT, binary, refusing_address};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::client_cli::echo_client;

/// A server that answers its first connection with bytes that never end:
/// only the client can stop the exchange.
fn endless_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let bytes = vec![b'x'; 64 * 1024];
        // Ends when the client has gone and the write fails.
        while stream.write_all(&bytes).is_ok() {}
    });
    addr
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
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(full)
        .spawn()
        .expect("the command starts");
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("a pid fits in i32"));
    let (done, status) = mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(child.wait());
    });
    match status.recv_timeout(WAIT) {
        Ok(status) => status.expect("the command is reaped").code(),
        Err(_) => {
            // The waiting thread has not reaped it, so the pid is still ours.
            let _ = kill(pid, Signal::SIGKILL);
            panic!("{command:?} did not exit within {WAIT:?}");
        }
    }
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
