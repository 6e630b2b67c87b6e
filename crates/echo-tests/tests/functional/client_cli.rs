//! The `echo-client` command, and standard tools (`nc -N`, `socat`) as clients.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::thread;

use assert_cmd::Command as Cmd;
use echo_proto::pattern;
use echo_tests::{Server, WAIT, binary, openbsd_netcat, refusing_address};
use predicates::prelude::*;

/// `echo-client` with a bounded run and no settings from the environment.
pub fn echo_client() -> Cmd {
    let mut command = Cmd::new(binary("echo-client"));
    command
        .timeout(WAIT)
        .env_remove("ECHO_ADDR")
        .env_remove("ECHO_TIMEOUT")
        .env_remove("ECHO_UDP")
        .env_remove("RUST_LOG");
    command
}

/// A server that echoes with its first byte changed: a reply `--check` must catch.
fn corrupting_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    thread::spawn(move || {
        for stream in listener.incoming().take(2) {
            let Ok(mut stream) = stream else { continue };
            let mut message = Vec::new();
            if stream.read_to_end(&mut message).is_ok() {
                if let Some(first) = message.first_mut() {
                    *first ^= 0x20;
                }
                let _ = stream.write_all(&message);
            }
        }
    });
    addr
}

#[test]
fn the_seed_command_prints_the_message_back() {
    let server = Server::start(&[]);
    echo_client()
        .args([
            "--addr",
            &server.addr().to_string(),
            "this is the message to send",
        ])
        .assert()
        .success()
        .stdout("this is the message to send\n")
        .stderr("");
}

#[test]
fn the_address_can_come_from_the_environment() {
    let server = Server::start(&[]);
    echo_client()
        .env("ECHO_ADDR", server.addr().to_string())
        .arg("--check")
        .arg("from the environment")
        .assert()
        .success()
        .stdout("from the environment\n");
}

#[test]
fn sixty_four_mebibytes_stream_through_stdin_byte_exact() {
    let server = Server::start(&[]);
    let message = pattern(64, 64 << 20);
    let output = echo_client()
        .args(["--addr", &server.addr().to_string(), "--check", "-"])
        .write_stdin(message.clone())
        .output()
        .expect("echo-client runs");
    assert!(
        output.status.success(),
        "stderr: {}",
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
fn a_refused_connection_is_one_line_that_says_what_to_do_and_exit_1() {
    let (_socket, addr) = refusing_address();
    echo_client()
        .args(["--addr", &addr.to_string(), "hello"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::starts_with(format!(
            "error: cannot connect to {addr}: "
        )))
        .stderr(predicate::str::contains("refused"))
        .stderr(predicate::str::ends_with(format!(
            "; is an echo server running there? start one with \
             `cargo run -p echo-server -- --listen {addr}`, or pick another with --addr\n"
        )))
        .stderr(predicate::function(|err: &str| err.lines().count() == 1));
}

#[test]
fn a_closed_udp_port_says_nothing_listens_on_udp_there() {
    // A TCP-only server: its port is closed to UDP.
    let server = Server::start(&[]);
    let addr = server.addr();
    echo_client()
        .args(["--udp", "--addr", &addr.to_string(), "hello"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(format!(
            "error: nothing listens on UDP at {addr}: an ICMP port unreachable came back; \
             echo-server answers UDP only when started with --udp, as in \
             `cargo run -p echo-server -- --udp --listen {addr}`\n"
        ));
}

#[test]
fn bad_usage_exits_2() {
    echo_client()
        .args(["--addr", "not-an-address", "hi"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "invalid address 'not-an-address': expected IP:PORT, [IPV6]:PORT or unix:PATH",
        ));
    echo_client().assert().code(2);
    echo_client()
        .args(["--timeout", "5", "hi"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid duration '5'"));
}

#[test]
fn check_catches_a_server_that_changes_the_reply() {
    let addr = corrupting_server();
    echo_client()
        .args(["--addr", &addr.to_string(), "--check", "hello"])
        .assert()
        .code(1)
        .stderr(format!("error: {addr} answered wrongly: reply differs from what was sent at byte 0 (sent 5 bytes, received 5)\n"));
    echo_client()
        .args(["--addr", &addr.to_string(), "--check", "-"])
        .write_stdin("streamed")
        .assert()
        .code(1)
        .stdout("Streamed")
        .stderr(format!(
            "error: {addr} answered wrongly: the reply's bytes differ from what was sent\n"
        ));
}

#[test]
fn without_check_a_changed_reply_is_printed_as_received() {
    let addr = corrupting_server();
    echo_client()
        .args(["--addr", &addr.to_string(), "hello"])
        .assert()
        .success()
        .stdout("Hello\n");
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let server = Server::start(&[]);
    // Larger than a pipe buffer, so writing it must fail once the reader is gone;
    // smaller than the 128 KiB the kernel allows for one argument.
    let message = "m".repeat(100_000);
    let mut child = Command::new(binary("echo-client"))
        .args(["--addr", &server.addr().to_string(), &message])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("echo-client starts");
    // Closing the read end at once is `| head -c0`: every write then fails with EPIPE.
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("piped")
        .read_to_string(&mut stderr)
        .expect("stderr");
    let status = child.wait().expect("echo-client exits");
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(stderr, "");
}

#[test]
fn help_teaches_every_flag() {
    echo_client().arg("--help").assert().success().stdout(
        predicate::str::contains("--addr")
            .and(predicate::str::contains("--timeout"))
            .and(predicate::str::contains("--check"))
            .and(predicate::str::contains("--udp"))
            .and(predicate::str::contains("--ipv4"))
            .and(predicate::str::contains("--ipv6"))
            .and(predicate::str::contains("--quiet"))
            .and(predicate::str::contains("--deadline"))
            .and(predicate::str::contains("unix_time_s"))
            .and(predicate::str::contains("--color <WHEN>"))
            .and(predicate::str::contains("NO_COLOR"))
            .and(predicate::str::contains("Exit status")),
    );
}

/// Whether `text` holds an ANSI escape sequence: colour, bold or the like.
fn styled(text: &[u8]) -> bool {
    text.windows(2).any(|pair| pair == b"\x1b[")
}

/// `echo-client args` with stderr on a terminal (a pseudo-terminal whose
/// other end the test reads) and `env` set; returns what it wrote there.
fn stderr_on_a_terminal(args: &[&str], env: &[(&str, &str)]) -> Vec<u8> {
    let pty = nix::pty::openpty(None, None).expect("a pseudo-terminal");
    let mut command = Command::new(binary("echo-client"));
    command
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .env("TERM", "xterm-256color")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(pty.slave));
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("echo-client starts");
    // The spawned child holds the only copy of the terminal's end now, so
    // reading the other end stops (EIO) once the child has exited.
    drop(command);
    let mut master = std::fs::File::from(pty.master);
    let (done, text) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let mut all = Vec::new();
        let mut buffer = [0u8; 4096];
        while let Ok(n @ 1..) = master.read(&mut buffer) {
            all.extend_from_slice(&buffer[..n]);
        }
        let _ = done.send(all);
    });
    let text = text
        .recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("echo-client {args:?} still writes after {WAIT:?}"));
    child.wait().expect("echo-client exits");
    text
}

#[test]
fn color_follows_the_flag_then_no_color_then_the_terminal() {
    // clap's errors: styled on a terminal unless NO_COLOR or TERM says not,
    // or --color never; never styled into a pipe unless --color always.
    let wrong = ["--chek"];
    assert!(styled(&stderr_on_a_terminal(&wrong, &[])));
    assert!(!styled(&stderr_on_a_terminal(&wrong, &[("NO_COLOR", "1")])));
    assert!(styled(&stderr_on_a_terminal(&wrong, &[("NO_COLOR", "")])));
    assert!(!styled(&stderr_on_a_terminal(&wrong, &[("TERM", "dumb")])));
    assert!(!styled(&stderr_on_a_terminal(
        &["--color", "never", "--chek"],
        &[]
    )));
    assert!(styled(&stderr_on_a_terminal(
        &["--color=always", "--chek"],
        &[("NO_COLOR", "1")]
    )));
    let piped = |args: &[&str]| echo_client().args(args).env_remove("NO_COLOR").output();
    let output = piped(&["--chek"]).expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(!styled(&output.stderr), "{output:?}");
    let output = piped(&["--color", "always", "--chek"]).expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(styled(&output.stderr), "{output:?}");
    // A usage error the command finds itself follows it too.
    let output = piped(&["--color", "always", "-4", "-a", "[::1]:7", "hi"]).expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(styled(&output.stderr), "{output:?}");
    // --help goes to stdout, by the same rule.
    let output = piped(&["--color", "always", "--help"]).expect("runs");
    assert!(styled(&output.stdout));
    assert!(!styled(&piped(&["--help"]).expect("runs").stdout));
}

#[test]
fn log_lines_are_coloured_by_the_same_rule() {
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    let logged = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["-a", addr.as_str()];
        all.extend_from_slice(args);
        all.push("hi");
        let mut env = env.to_vec();
        env.push(("RUST_LOG", "debug"));
        stderr_on_a_terminal(&all, &env)
    };
    let plain = logged(&[], &[("NO_COLOR", "1")]);
    let text = String::from_utf8_lossy(&plain);
    assert!(text.contains("connected"), "no debug log: {text}");
    assert!(!styled(&plain), "{text}");
    assert!(styled(&logged(&[], &[])));
    assert!(!styled(&logged(&["--color", "never"], &[])));
    let output = echo_client()
        .args(["--color", "always", "-a", &addr, "hi"])
        .env("RUST_LOG", "debug")
        .output()
        .expect("runs");
    assert!(output.status.success());
    assert!(styled(&output.stderr), "{output:?}");
}

/// Runs a standard tool as the client; they are installed by `.ci/run`.
fn standard_tool(program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let output = Cmd::new(program)
        .args(args)
        .timeout(WAIT)
        .write_stdin(input.to_vec())
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "cannot run {program} ({err}); install it (apt-get install netcat-openbsd socat)"
            )
        });
    assert!(
        output.status.success(),
        "{program}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[test]
fn netcat_with_n_is_a_client() {
    // Only OpenBSD's netcat has the -N of the README's examples; ncat's -N
    // is not a half-close, so running it would test nothing of ours.
    let Some(nc) = openbsd_netcat() else {
        eprintln!(
            "skipped: no OpenBSD netcat (nc.openbsd) on the PATH; apt-get install netcat-openbsd"
        );
        return;
    };
    let server = Server::start(&[]);
    let addr = server.addr();
    let message = pattern(3, 300_000);
    let reply = standard_tool(
        &nc.to_string_lossy(),
        &["-N", &addr.ip().to_string(), &addr.port().to_string()],
        &message,
    );
    assert!(
        reply == message,
        "nc got {} bytes back, not the {} sent",
        reply.len(),
        message.len()
    );
}

#[test]
fn socat_is_a_client() {
    let server = Server::start(&[]);
    let message = pattern(4, 300_000);
    let reply = standard_tool(
        "socat",
        &["-t", "10", "-", &format!("TCP:{}", server.addr())],
        &message,
    );
    assert!(
        reply == message,
        "socat got {} bytes back, not the {} sent",
        reply.len(),
        message.len()
    );
}

#[test]
fn a_gibibyte_streams_through_byte_exact_in_bounded_server_memory() {
    const BLOCK: usize = 1 << 20;
    const BLOCKS: u64 = 1024;
    let server = Server::start(&[]);
    let mut child = Command::new(binary("echo-client"))
        .args(["--addr", &server.addr().to_string(), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("echo-client starts");
    // Each block is stamped with its number, so a lost, repeated or
    // reordered block shows; the rest is a fixed pattern.
    let block = |n: u64| {
        let mut bytes = pattern(7, BLOCK);
        bytes[..8].copy_from_slice(&n.to_le_bytes());
        bytes
    };
    let mut stdin = child.stdin.take().expect("piped");
    let feeder = thread::spawn(move || {
        let mut bytes = block(0);
        for n in 0..BLOCKS {
            bytes[..8].copy_from_slice(&n.to_le_bytes());
            stdin.write_all(&bytes).expect("feed echo-client");
        }
    });
    let mut stdout = child.stdout.take().expect("piped");
    let mut received = vec![0u8; BLOCK];
    let mut expected = block(0);
    for n in 0..BLOCKS {
        stdout
            .read_exact(&mut received)
            .unwrap_or_else(|err| panic!("block {n} of {BLOCKS}: {err}"));
        expected[..8].copy_from_slice(&n.to_le_bytes());
        assert!(received == expected, "block {n} came back different");
    }
    assert_eq!(
        stdout.read(&mut received).expect("end of the reply"),
        0,
        "more came back than was sent"
    );
    feeder.join().expect("feeder");
    let status = child.wait().expect("echo-client exits");
    assert!(status.success(), "echo-client failed: {status}");
    let (_, peak_kib) = echo_tests::memory_kib(server.pid());
    assert!(
        peak_kib < 32 * 1024,
        "the server's peak memory was {peak_kib} KiB for a 1 GiB stream"
    );
}
