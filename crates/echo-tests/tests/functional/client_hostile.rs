//! `echo-client` and `echo-bench` against servers and surroundings that do
//! not play along. Each test pins down a promise that used to be broken.

use std::fs::OpenOptions;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;

use echo_tests::{WAIT, binary};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::client_cli::refusing_address;

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
