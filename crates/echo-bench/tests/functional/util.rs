//! In-test echo servers with chosen faults, and a bounded way to run the
//! `echo-bench` binary.

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// How an in-test server treats what it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Echoes faithfully.
    Faithful,
    /// Echoes, but flips one bit of every byte at stream offset 7 modulo 4096
    /// (for UDP, of byte 20 of every datagram).
    FlipByte,
    /// Reads and never answers.
    Silent,
}

/// The stream offsets a [`Behaviour::FlipByte`] server corrupts.
const FLIP_EVERY: u64 = 4096;
const FLIP_AT: u64 = 7;

/// Starts a TCP echo server on a free port of 127.0.0.1, serving until the test's runtime ends.
pub async fn tcp_server(behaviour: Behaviour) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind tcp");
    tcp_server_on(listener, behaviour)
}

/// Serves `listener` as a TCP echo server until the test's runtime ends.
pub fn tcp_server_on(listener: TcpListener, behaviour: Behaviour) -> SocketAddr {
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, behaviour));
        }
    });
    addr
}

async fn serve(mut stream: TcpStream, behaviour: Behaviour) {
    let mut buffer = vec![0u8; 16 * 1024];
    let mut offset = 0u64;
    loop {
        let n = match stream.read(&mut buffer).await {
            // A silent server keeps even a half-closed connection open, as a hung one would.
            Ok(0) if behaviour == Behaviour::Silent => std::future::pending().await,
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        match behaviour {
            Behaviour::Silent => continue,
            Behaviour::FlipByte => {
                for (index, byte) in buffer[..n].iter_mut().enumerate() {
                    if (offset + index as u64) % FLIP_EVERY == FLIP_AT {
                        *byte ^= 0x20;
                    }
                }
            }
            Behaviour::Faithful => {}
        }
        offset += n as u64;
        if stream.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

/// Starts a UDP echo server on a free loopback port, serving until the test's runtime ends.
pub async fn udp_server(behaviour: Behaviour) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
    let addr = socket.local_addr().expect("local addr");
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 65_536];
        while let Ok((n, peer)) = socket.recv_from(&mut buffer).await {
            match behaviour {
                Behaviour::Silent => continue,
                Behaviour::FlipByte if n > 20 => buffer[20] ^= 0x20,
                _ => {}
            }
            let _ = socket.send_to(&buffer[..n], peer).await;
        }
    });
    addr
}

/// A loopback address where nothing listens (a port just freed).
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("local addr")
}

/// The longest an `echo-bench` run in these tests may take before it is killed
/// and the test fails: far above any run's own bound.
const CHILD_LIMIT: Duration = Duration::from_secs(60);

/// Runs `echo-bench` with `args` (stdin closed, output captured) and returns
/// its output; kills it and fails the test if it outlives [`CHILD_LIMIT`].
pub async fn echo_bench(args: &[&str]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_echo-bench"))
        .args(args)
        .env_remove("ECHO_ADDR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start echo-bench");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid fits"));
    let waiting = tokio::task::spawn_blocking(move || child.wait_with_output());
    match tokio::time::timeout(CHILD_LIMIT, waiting).await {
        Ok(output) => output.expect("join").expect("wait for echo-bench"),
        Err(_) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            panic!("echo-bench {args:?} ran for more than {CHILD_LIMIT:?}");
        }
    }
}

/// Stdout and stderr of a run, for assertion messages.
pub fn show(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
