//! The harness for functional tests: finds the binaries under test and runs
//! the server as a real process, reading its announcement, bounding every
//! wait, and killing and reaping it whatever happens.

#![warn(missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The longest any single wait in a test may take: generous, because a
/// debug build on a loaded 2-core machine is slow, yet finite.
pub const WAIT: Duration = Duration::from_secs(20);

/// The path of a workspace binary of the same profile as the running test.
///
/// Cargo sets `CARGO_BIN_EXE_<name>` only for tests of the package that owns
/// the binary, so a test crate of its own looks beside its executable
/// (`target/<profile>/deps/..`), where `cargo build` put it.
///
/// # Panics
/// If the binary has not been built, with the command that builds it.
pub fn binary(name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(format!("CARGO_BIN_EXE_{name}")) {
        return PathBuf::from(path);
    }
    let test_exe = std::env::current_exe().expect("the test executable has a path");
    let deps = test_exe
        .parent()
        .expect("the test executable is in a directory");
    let profile_dir = if deps.ends_with("deps") {
        deps.parent().unwrap_or(deps)
    } else {
        deps
    };
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --workspace --bins` with the same profile first \
         (`cargo xtask ci` does)",
        path.display()
    );
    path
}

/// A running `echo-server` process, killed and reaped when dropped.
///
/// If the test is panicking at that point, the server's stderr is printed,
/// so a failure shows what the server logged.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// The server's own process: the child, unless it runs under a tracer
    /// ([`Server::serving_as_grandchild`]).
    pid: u32,
    /// The announced listeners, as `kind address`: `tcp 127.0.0.1:4000`.
    listeners: Vec<String>,
    /// The announcement lines as the server wrote them, text or JSON.
    announcements: Vec<String>,
    stderr: Arc<Mutex<String>>,
    stderr_lines: Receiver<String>,
    /// Disconnected when the server's stdout closes, which it does as it exits.
    stdout_open: Receiver<String>,
    /// Disconnected once every line of the server's stderr has been collected.
    stderr_collected: Receiver<()>,
}

impl Server {
    /// Starts `echo-server --listen 127.0.0.1:0` plus `args`, and waits for its announcement.
    pub fn start(args: &[&str]) -> Server {
        let mut all = vec!["--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        Server::start_command(
            Command::new(binary("echo-server"))
                .args(all)
                .stdin(Stdio::null()),
            1,
        )
    }

    /// Starts the server with exactly `args` (no default `--listen`), waiting
    /// for `listeners` announcement lines.
    pub fn start_with(args: &[&str], listeners: usize) -> Server {
        Server::start_command(
            Command::new(binary("echo-server"))
                .args(args)
                .stdin(Stdio::null()),
            listeners,
        )
    }

    /// Runs `command` (which starts the server, perhaps under a wrapper such
    /// as `prlimit`) and waits for `listeners` announcement lines on its stdout.
    ///
    /// Set the command's stdin: inherited, it would be the test runner's.
    /// A piped stdin is closed at once, as a finished producer's would be.
    ///
    /// # Panics
    /// If the process cannot start, exits, or does not announce within [`WAIT`].
    pub fn start_command(command: &mut Command, listeners: usize) -> Server {
        Server::spawn(command, listeners, None)
    }

    /// Like [`Server::start_command`], with the server's stderr going to
    /// `stderr` (a full device, a closed pipe) instead of to the test:
    /// [`Server::stderr`] is then empty and [`Server::wait_for_log`] fails.
    pub fn start_command_with_stderr(
        command: &mut Command,
        listeners: usize,
        stderr: Stdio,
    ) -> Server {
        Server::spawn(command, listeners, Some(stderr))
    }

    fn spawn(command: &mut Command, listeners: usize, given_stderr: Option<Stdio>) -> Server {
        if !command.get_envs().any(|(key, _)| key == "RUST_LOG") {
            command.env("RUST_LOG", "info");
        }
        let captured = given_stderr.is_none();
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(given_stderr.unwrap_or_else(Stdio::piped))
            .spawn()
            .expect("the server starts");
        drop(child.stdin.take());
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (line_sender, stderr_lines) = mpsc::channel();
        let (collecting, stderr_collected) = mpsc::channel::<()>();
        if captured {
            let stderr_pipe = child.stderr.take().expect("stderr is piped");
            let collected = Arc::clone(&stderr);
            thread::spawn(move || {
                for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
                    if let Ok(mut all) = collected.lock() {
                        all.push_str(&line);
                        all.push('\n');
                    }
                    let _ = line_sender.send(line);
                }
                drop(collecting);
            });
        }
        let (announce_sender, announcements) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = announce_sender.send(line);
            }
        });
        let mut server = Server {
            pid: child.id(),
            child,
            listeners: Vec::new(),
            announcements: Vec::new(),
            stderr,
            stderr_lines,
            stdout_open: announcements,
            stderr_collected,
        };
        let deadline = Instant::now() + WAIT;
        while server.listeners.len() < listeners {
            let left = deadline.saturating_duration_since(Instant::now());
            match server.stdout_open.recv_timeout(left) {
                Ok(line) => {
                    let listener = announced(&line).unwrap_or_else(|| {
                        panic!("unexpected stdout line from the server: {line:?}")
                    });
                    server.listeners.push(listener);
                    server.announcements.push(line);
                }
                Err(_) => panic!(
                    "the server announced {} of {listeners} listeners within {WAIT:?}; stderr:\n{}",
                    server.listeners.len(),
                    server.stderr()
                ),
            }
        }
        server
    }

    /// The address of the first TCP listener.
    pub fn addr(&self) -> SocketAddr {
        self.listener_addr("tcp", 0)
    }

    /// The address of the `index`th listener of `kind` (`tcp`, `udp`).
    ///
    /// # Panics
    /// If there is no such listener.
    pub fn listener_addr(&self, kind: &str, index: usize) -> SocketAddr {
        let prefix = format!("{kind} ");
        self.listeners
            .iter()
            .filter_map(|line| line.strip_prefix(&prefix))
            .nth(index)
            .unwrap_or_else(|| panic!("no {kind} listener #{index} in {:?}", self.listeners))
            .parse()
            .expect("announced addresses parse")
    }

    /// The announced listeners, as `kind address`.
    pub fn listeners(&self) -> &[String] {
        &self.listeners
    }

    /// The announcement lines, as the server wrote them on stdout (without
    /// the line ends): `listening on tcp 127.0.0.1:4000`, or a JSON event.
    pub fn announcements(&self) -> &[String] {
        &self.announcements
    }

    /// The process id of the server.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Takes the child's own child as the server, for a server started under
    /// a tracer such as `strace`, which forks it: [`Server::pid`],
    /// [`Server::signal`] and [`Server::total`] then mean the server.
    ///
    /// # Panics
    /// If the child has not exactly one child.
    pub fn serving_as_grandchild(&mut self) {
        let tracer = self.child.id();
        let path = format!("/proc/{tracer}/task/{tracer}/children");
        let children = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
        let pids: Vec<u32> = children
            .split_whitespace()
            .map(|pid| pid.parse().expect("a pid"))
            .collect();
        assert_eq!(pids.len(), 1, "the children of {tracer}: {children}");
        self.pid = pids[0];
    }

    /// Everything the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits up to [`WAIT`] for a stderr line containing `needle`, and returns it.
    ///
    /// # Panics
    /// If no such line comes in time.
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => continue,
                Err(_) => panic!(
                    "no log line with {needle:?} within {WAIT:?}; stderr:\n{}",
                    self.stderr()
                ),
            }
        }
    }

    /// Reads one numeric field of the server's totals (`idle_closed`,
    /// `bytes`, ...), asking for them with SIGUSR1; the totals line may be
    /// text (`bytes=5`) or JSON (`"bytes":5`).
    ///
    /// # Panics
    /// If no totals line comes within [`WAIT`], or it lacks the field.
    pub fn total(&self, name: &str) -> u64 {
        self.signal(Signal::SIGUSR1);
        let line = self.wait_for_log("totals");
        let value = match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(event) => event[name].as_u64(),
            Err(_) => {
                let field = format!("{name}=");
                line.split_whitespace()
                    .find_map(|word| word.strip_prefix(&field))
                    .and_then(|value| value.parse().ok())
            }
        };
        value.unwrap_or_else(|| panic!("no {name} in {line}"))
    }

    /// Sends `signal` to the server.
    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid() as i32), signal).expect("the server can be signalled");
    }

    /// Waits up to `limit` for the server to exit, returning its status.
    ///
    /// # Panics
    /// If it is still running after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        // The server's stdout closes when it exits: wait for that, with a
        // deadline, then reap it, which no longer blocks.
        match self.stdout_open.recv_timeout(limit) {
            Ok(line) => panic!("unexpected stdout line from the server: {line:?}"),
            Err(mpsc::RecvTimeoutError::Disconnected) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!(
                    "the server did not exit within {limit:?}; stderr:\n{}",
                    self.stderr()
                )
            }
        }
        // Its stderr closes at the same moment, but the lines still in the
        // pipe are collected by a thread of their own: wait for it too.
        if let Err(mpsc::RecvTimeoutError::Timeout) = self.stderr_collected.recv_timeout(limit) {
            panic!("the server's stderr stayed open after it exited");
        }
        self.child.wait().expect("the server can be reaped")
    }

    /// Stops the server with SIGTERM while a TCP exchange is in flight, which
    /// the client ends once the drain has begun, as one finishing in the
    /// grace period does; returns the exit status.
    ///
    /// # Panics
    /// If the exchange is not served whole, or the server does not log the
    /// drain (at info level) and exit within [`WAIT`].
    pub fn stop_during_an_exchange(&mut self) -> ExitStatus {
        let mut in_flight = TcpStream::connect(self.addr()).expect("connects");
        in_flight.set_read_timeout(Some(WAIT)).expect("timeout");
        in_flight.write_all(b"held").expect("written");
        let mut held = [0u8; 4];
        in_flight.read_exact(&mut held).expect("echoed");
        assert_eq!(&held, b"held");
        self.signal(Signal::SIGTERM);
        self.wait_for_log("draining connections");
        in_flight.shutdown(Shutdown::Write).expect("half-closed");
        assert_eq!(read_all(&mut in_flight, 64).expect("finished"), b"");
        self.wait_exit(WAIT)
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.pid != self.child.id() {
            // A traced server outlives its killed tracer.
            let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            // A panic inside a drop aborts: a stderr that cannot take this is ignored.
            let _ = writeln!(
                std::io::stderr().lock(),
                "--- echo-server stderr ---\n{}--- end ---",
                self.stderr()
            );
        }
    }
}

/// Whether `echo-server --help` lists `flag` (`--metrics`), so a test can
/// take in a feature once the server has it.
///
/// # Panics
/// If the server cannot be run.
pub fn server_accepts(flag: &str) -> bool {
    let output = Command::new(binary("echo-server"))
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .expect("echo-server --help runs");
    String::from_utf8_lossy(&output.stdout)
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .any(|word| word == flag)
}

/// What an announcement line of the server's stdout names, as `kind address`
/// (`tcp 127.0.0.1:4000`): from the text form, `listening on tcp
/// 127.0.0.1:4000`, or from the JSON event of `--log-format json`, whose
/// `kind` and `address` fields say the same; `None` for any other line.
pub fn announced(line: &str) -> Option<String> {
    if let Some(listener) = line.strip_prefix("listening on ") {
        return Some(listener.to_owned());
    }
    let event: serde_json::Value = serde_json::from_str(line).ok()?;
    let kind = event.get("kind")?.as_str()?;
    let address = event.get("address")?.as_str()?;
    Some(format!("{kind} {address}"))
}

/// Resident memory of process `pid` in KiB (`VmRSS`), and its peak (`VmHWM`).
///
/// # Panics
/// If `/proc/<pid>/status` cannot be read.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let now = echo_os::process::resident_kib(pid).unwrap_or_else(|err| panic!("{err}"));
    let peak = echo_os::process::peak_resident_kib(pid).unwrap_or_else(|err| panic!("{err}"));
    (now, peak)
}

/// How many file descriptors process `pid` has open.
///
/// # Panics
/// If `/proc/<pid>/fd` cannot be read.
pub fn open_fds(pid: u32) -> usize {
    echo_os::process::open_fds(pid).unwrap_or_else(|err| panic!("{err}"))
}

/// CPU time (user + system) process `pid` has used so far.
///
/// # Panics
/// If `/proc/<pid>/stat` cannot be read.
pub fn cpu_time(pid: u32) -> Duration {
    echo_os::process::cpu_time(pid).unwrap_or_else(|err| panic!("{err}"))
}

/// A loopback address that refuses every TCP connection for as long as the
/// returned socket lives: it is bound there but does not listen, so no other
/// test can take the port meanwhile. UDP on the same port is refused too,
/// unless another test happens to bind that very number for UDP.
///
/// # Panics
/// If no socket can be bound on 127.0.0.1.
pub fn refusing_address() -> (socket2::Socket, SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("literal");
    socket.bind(&any.into()).expect("bind");
    let addr = socket
        .local_addr()
        .expect("address")
        .as_socket()
        .expect("an IP address");
    (socket, addr)
}

/// Polls `condition` until it holds or `limit` passes; returns whether it held.
///
/// For states that only the kernel can tell about (descriptors closed,
/// memory returned), which announce nothing a test could wait on.
pub fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Reads from `reader` until end of stream or `limit` bytes, whichever is first.
pub fn read_all(reader: &mut impl Read, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader.take(limit as u64).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// A path for a Unix socket in a fresh temporary directory, removed with the guard.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates a fresh directory under the system's temporary directory.
    ///
    /// # Panics
    /// If it cannot be created.
    pub fn new(tag: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("echo-tests-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temporary directory");
        TempDir(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The OpenBSD netcat, the one whose `-N` half-closes once stdin ends, as
/// the README's examples mean: `nc.openbsd`, or an `nc` that says it is
/// OpenBSD's; `None` when only another flavour (ncat, GNU netcat) is on the
/// `PATH`, whose `-N` means something else or nothing.
pub fn openbsd_netcat() -> Option<PathBuf> {
    openbsd_netcat_in(std::env::var_os("PATH").as_deref())
}

/// [`openbsd_netcat`] over the directories of `path`, a `PATH`-style list.
pub fn openbsd_netcat_in(path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    let dirs: Vec<PathBuf> = std::env::split_paths(path?).collect();
    ["nc.openbsd", "nc"]
        .iter()
        .flat_map(|name| dirs.iter().map(move |dir| dir.join(name)))
        .find(|candidate| is_openbsd_netcat(candidate))
}

fn is_openbsd_netcat(program: &Path) -> bool {
    if !program.is_file() {
        return false;
    }
    // Its usage text, printed for -h, starts by naming it.
    Command::new(program)
        .arg("-h")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|output| {
            let said = [output.stdout, output.stderr].concat();
            String::from_utf8_lossy(&said).contains("OpenBSD netcat")
        })
}

/// Reading a server's `--metrics` endpoint as a scraper does, for the tests
/// of the endpoint itself and of what ships with it on (the image).
pub mod metrics {
    use std::io::Write;
    use std::net::{SocketAddr, TcpStream};

    use super::{WAIT, read_all};

    /// Sends `request` as it is, and reads the answer until the server closes;
    /// `None` when the connection is refused or reset.
    pub fn try_exchange(addr: SocketAddr, request: &[u8]) -> Option<String> {
        let mut stream = TcpStream::connect(addr).ok()?;
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        stream.write_all(request).ok()?;
        let answer = read_all(&mut stream, 1 << 20).ok()?;
        Some(String::from_utf8(answer).expect("the answer is text"))
    }

    /// [`try_exchange`], which must be answered.
    pub fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        try_exchange(addr, request).expect("the metrics port answers")
    }

    /// `GET /metrics`, checked for its status and media type; returns the body.
    pub fn scrape(addr: SocketAddr) -> String {
        try_scrape(addr).expect("the scrape is answered")
    }

    /// [`scrape`], or `None` when the connection is closed unanswered (every
    /// place taken).
    pub fn try_scrape(addr: SocketAddr) -> Option<String> {
        let answer = try_exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")?;
        if answer.is_empty() {
            return None;
        }
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("\r\ncontent-type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            "{head}"
        );
        Some(body.to_owned())
    }

    /// The value of the sample written exactly `name` (with its labels, if any).
    pub fn sample(body: &str, name: &str) -> f64 {
        body.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no sample {name} in:\n{body}"))
    }

    /// The count of sample `name`, which must be a whole number.
    pub fn count(body: &str, name: &str) -> u64 {
        let value = sample(body, name);
        assert_eq!(value.fract(), 0.0, "{name} {value}");
        value as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn fake_tool(dir: &Path, name: &str, banner: &str) {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\necho '{banner}' >&2\nexit 1\n")).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    #[test]
    fn announcements_read_alike_in_text_and_json() {
        let json = r#"{"timestamp":"2026-01-01T00:00:00.000001Z","level":"INFO","message":"listening on metrics 127.0.0.1:9100","kind":"metrics","address":"127.0.0.1:9100","target":"echo_server::log"}"#;
        assert_eq!(announced(json).as_deref(), Some("metrics 127.0.0.1:9100"));
        assert_eq!(
            announced("listening on unix /run/echo.sock").as_deref(),
            Some("unix /run/echo.sock")
        );
        for other in [
            "listening",
            r#"{"kind":"tcp"}"#,
            r#"{"kind":"tcp","address":7}"#,
            "[1]",
        ] {
            assert_eq!(announced(other), None, "{other}");
        }
    }

    #[test]
    fn the_openbsd_netcat_is_found_even_when_nc_is_ncat() {
        let first = TempDir::new("ncat");
        let second = TempDir::new("openbsd");
        fake_tool(first.path(), "nc", "Ncat 7.93 ( https://nmap.org/ncat )");
        fake_tool(
            second.path(),
            "nc.openbsd",
            "OpenBSD netcat (Debian patchlevel 1.219-1)",
        );
        let path = std::env::join_paths([first.path(), second.path()]).expect("join");
        assert_eq!(
            openbsd_netcat_in(Some(&path)),
            Some(second.path().join("nc.openbsd"))
        );
        let only_ncat = std::env::join_paths([first.path()]).expect("join");
        assert_eq!(openbsd_netcat_in(Some(&only_ncat)), None);
    }
}
