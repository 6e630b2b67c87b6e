//! In-test echo servers with chosen faults and pacings, the real echo-server
//! as a process, addresses that surely refuse, and a bounded way to run the
//! `echo-bench` binary.

use std::collections::HashSet;
use std::io::Read as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket, UnixListener};
use tokio::time::Instant;

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
    /// Accepts, then resets the connection at once, as an overloaded proxy may.
    Resets,
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
            if behaviour == Behaviour::Resets {
                // Closed with lingering off, a socket sends a reset, not a FIN.
                socket2::SockRef::from(&stream)
                    .set_linger(Some(std::time::Duration::ZERO))
                    .expect("linger off");
                drop(stream);
                continue;
            }
            tokio::spawn(serve(stream, behaviour));
        }
    });
    addr
}

/// Serves `listener` as a faithful TCP echo server until the test's runtime
/// ends, noting the address every connection came from.
pub fn tcp_server_noting_peers(listener: TcpListener) -> (SocketAddr, Arc<Mutex<HashSet<IpAddr>>>) {
    let addr = listener.local_addr().expect("local addr");
    let peers = Arc::new(Mutex::new(HashSet::new()));
    let noted = Arc::clone(&peers);
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            noted.lock().expect("peers lock").insert(peer.ip());
            tokio::spawn(serve(stream, Behaviour::Faithful));
        }
    });
    (addr, peers)
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(stream: S, behaviour: Behaviour) {
    serve_gated(stream, behaviour, Gate::Open).await;
}

/// What a server waits for before it writes each reply back.
#[derive(Debug, Clone)]
enum Gate {
    /// Nothing: it answers at once.
    Open,
    /// A stall of all connections at once, after a number of replies.
    Stall(Arc<Stall>),
    /// Its turn in a queue of replies spaced evenly over all connections.
    Paced(Arc<Pace>),
}

impl Gate {
    async fn wait(&self) {
        match self {
            Gate::Open => {}
            Gate::Stall(stall) => stall.wait().await,
            Gate::Paced(pace) => pace.wait().await,
        }
    }
}

async fn serve_gated<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    behaviour: Behaviour,
    gate: Gate,
) {
    if behaviour == Behaviour::Resets {
        // A stream other than TCP has no reset to send: it just closes.
        return;
    }
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
            Behaviour::Faithful | Behaviour::Resets => {}
        }
        offset += n as u64;
        gate.wait().await;
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

/// A UDP server on its own thread that answers every datagram twice, as a
/// broken echo server (or a duplicating network) would; it stops when
/// stopped or dropped, or after [`CHILD_LIMIT`] at the latest.
#[derive(Debug)]
pub struct TwiceAnswering {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

/// How long the [`TwiceAnswering`] server's thread waits for a datagram
/// before it looks whether it is to stop: the bound on stopping it.
const STOP_CHECK: Duration = Duration::from_millis(100);

impl TwiceAnswering {
    /// Starts the server on a free port of 127.0.0.1.
    pub fn start() -> TwiceAnswering {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        socket
            .set_read_timeout(Some(STOP_CHECK))
            .expect("set the read timeout");
        let addr = socket.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let give_up = std::time::Instant::now() + CHILD_LIMIT;
            let mut buffer = vec![0u8; 65_536];
            let mut received = 0;
            while !stopping.load(Ordering::Relaxed) && std::time::Instant::now() < give_up {
                // A timeout or an error only brings the next look at the flag.
                let Ok((n, peer)) = socket.recv_from(&mut buffer) else {
                    continue;
                };
                received += 1;
                for _ in 0..2 {
                    let _ = socket.send_to(&buffer[..n], peer);
                }
            }
            received
        });
        TwiceAnswering {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server, within [`STOP_CHECK`], and returns how many
    /// datagrams it received (and answered twice).
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .map(|thread| thread.join().expect("the server thread"))
            .unwrap_or(0)
    }
}

impl Drop for TwiceAnswering {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A loopback address where nothing listens (a port just freed).
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("local addr")
}

/// When a [`stalling_server`] stalls and for how long.
#[derive(Debug)]
struct Stall {
    replies: AtomicU64,
    after: u64,
    length: Duration,
    until: Mutex<Option<Instant>>,
}

impl Stall {
    /// Counts a reply; the one numbered `after` starts the stall, and every
    /// reply until it ends waits for its end.
    async fn wait(&self) {
        let n = self.replies.fetch_add(1, Ordering::Relaxed);
        let until = {
            let mut until = self.until.lock().expect("stall lock");
            if n == self.after {
                *until = Some(Instant::now() + self.length);
            }
            *until
        };
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
    }
}

/// Starts a TCP echo server on 127.0.0.1 that echoes faithfully but, once
/// it has sent `after` replies, holds every reply of every connection for
/// `length`, once, as a server stalled by a pause of its own would.
pub async fn stalling_server(after: u64, length: Duration) -> SocketAddr {
    let stall = Arc::new(Stall {
        replies: AtomicU64::new(0),
        after,
        length,
        until: Mutex::new(None),
    });
    gated_server(Gate::Stall(stall)).await
}

/// The evenly spaced turns of a [`slow_server`]'s replies.
#[derive(Debug)]
struct Pace {
    next: Mutex<Instant>,
    interval: Duration,
}

impl Pace {
    async fn wait(&self) {
        let turn = {
            let mut next = self.next.lock().expect("pace lock");
            let turn = (*next).max(Instant::now());
            *next = turn + self.interval;
            turn
        };
        tokio::time::sleep_until(turn).await;
    }
}

/// Starts a TCP echo server on 127.0.0.1 that answers at most `per_second`
/// messages a second over all its connections together.
pub async fn slow_server(per_second: u32) -> SocketAddr {
    let pace = Arc::new(Pace {
        next: Mutex::new(Instant::now()),
        interval: Duration::from_secs(1) / per_second,
    });
    gated_server(Gate::Paced(pace)).await
}

async fn gated_server(gate: Gate) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind tcp");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_gated(stream, Behaviour::Faithful, gate.clone()));
        }
    });
    addr
}

/// A fresh temporary directory, removed with the guard, and the real
/// echo-server as a process, killed with its guard: the workspace's test harness's.
pub use echo_tests::{Server, TempDir, refusing_address};

/// Starts a Unix-socket echo server in `dir`, serving until the test's
/// runtime ends, and returns its socket's path.
pub fn unix_server(dir: &TempDir) -> PathBuf {
    let path = dir.path().join("echo.sock");
    let listener = UnixListener::bind(&path).expect("bind unix");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, Behaviour::Faithful));
        }
    });
    path
}

/// The longest an `echo-bench` run in these tests may take before it is killed
/// and the test fails: far above any run's own bound.
const CHILD_LIMIT: Duration = Duration::from_secs(60);

/// The `echo-bench` binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_echo-bench")
}

/// Runs `echo-bench` with `args` (stdin closed, output captured) and returns
/// its output; kills it and fails the test if it outlives [`CHILD_LIMIT`].
pub async fn echo_bench(args: &[&str]) -> Output {
    run_bounded(Command::new(binary()).args(args)).await
}

/// Runs `command` (stdin closed, output captured, no `ECHO_ADDR`) and returns
/// its output; kills it and fails the test if it outlives [`CHILD_LIMIT`].
pub async fn run_bounded(command: &mut Command) -> Output {
    let shown = format!("{command:?}");
    let child = command
        .env_remove("ECHO_ADDR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the command");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid fits"));
    let waiting = tokio::task::spawn_blocking(move || child.wait_with_output());
    match tokio::time::timeout(CHILD_LIMIT, waiting).await {
        Ok(output) => output.expect("join").expect("wait for the command"),
        Err(_) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            panic!("{shown} ran for more than {CHILD_LIMIT:?}");
        }
    }
}

/// Runs `echo-bench` with `args` and its stderr on a pseudo-terminal, as a
/// person at one would (stdin and stdout empty); returns how it exited and
/// all it wrote there, within [`CHILD_LIMIT`].
pub async fn on_a_terminal(args: &[&str]) -> (ExitStatus, String) {
    let pty = nix::pty::openpty(None, None).expect("a pseudo-terminal");
    let mut command = Command::new(binary());
    command
        .args(args)
        .env_remove("ECHO_ADDR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(pty.slave));
    let mut child = command.spawn().expect("echo-bench starts");
    // The child holds the terminal's only other end now: reading stops (EIO)
    // once it has exited.
    drop(command);
    let mut master = std::fs::File::from(pty.master);
    let reading = tokio::task::spawn_blocking(move || {
        let mut all = Vec::new();
        let mut buffer = [0u8; 4096];
        while let Ok(n @ 1..) = master.read(&mut buffer) {
            all.extend_from_slice(&buffer[..n]);
        }
        all
    });
    let written = tokio::time::timeout(CHILD_LIMIT, reading)
        .await
        .expect("echo-bench ends")
        .expect("read the terminal");
    let status = child.wait().expect("echo-bench exits");
    (status, String::from_utf8_lossy(&written).into_owned())
}

/// A run's stderr after the line that announces the load (`running ...`),
/// which it must begin with.
pub fn after_start_line(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let Some((first, rest)) = stderr.split_once('\n') else {
        panic!("no start line: {}", show(output));
    };
    assert!(first.starts_with("running "), "{}", show(output));
    rest.to_owned()
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

/// A command's stdout read as one JSON value (a report, or a dry run's
/// plan), or a panic that shows the whole output.
pub fn json_report(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| panic!("{err}: {}", show(output)))
}
