//! The servers a benchmark runs against: ours, and each reference, whether
//! a built-in one (the tokio echo, the C floor) or any command; started,
//! found ready, and killed and reaped however the benchmark ends.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::show;

/// How long a server may take to announce itself or accept a connection.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// How a server to measure is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Launch {
    /// Our release `echo-server`, on port 0, ready at its `listening on` line.
    Ours,
    /// A release binary of echo-server (an earlier build, say) started the same way.
    OurBinary(PathBuf),
    /// echo-bench's `reference` example, the canonical tokio echo.
    Tokio,
    /// The project's C epoll echo (`xtask/reference/echo_floor.c`), one thread.
    CFloor,
    /// Any command, run by `sh -c "exec COMMAND"` with `{port}` replaced by a
    /// port picked here, ready once that port accepts a connection.
    Command(String),
}

/// A server to measure: a name for the table and how to start it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Contender {
    /// What the table, the plot and the logs call it.
    pub(crate) name: String,
    /// How it is started.
    pub(crate) launch: Launch,
}

impl Contender {
    /// Our server, always the first column.
    pub(crate) fn ours() -> Self {
        Contender {
            name: "ours".into(),
            launch: Launch::Ours,
        }
    }

    /// Reads a `--reference` value: `tokio`, `c`, `NAME=COMMAND`, or a command
    /// (named after its program); a command with no `{port}` is taken for an
    /// echo-server binary, started on port 0.
    pub(crate) fn parse(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        let (name, spec) = match text.split_once('=') {
            Some((name, spec)) if !name.is_empty() && !name.contains(char::is_whitespace) => {
                (Some(name.to_owned()), spec.trim())
            }
            _ => (None, text),
        };
        let launch = match spec {
            "" => bail!("--reference needs a value: tokio, c, or a command"),
            "tokio" => Launch::Tokio,
            "c" => Launch::CFloor,
            command if command.contains("{port}") => Launch::Command(command.to_owned()),
            binary if !binary.contains(char::is_whitespace) => {
                Launch::OurBinary(PathBuf::from(binary))
            }
            other => bail!(
                "--reference '{other}': a command must say where to listen with {{port}}, \
                 as in 'epoll_echo {{port}} 1'"
            ),
        };
        let name = name.unwrap_or_else(|| match &launch {
            Launch::Tokio => "tokio".into(),
            Launch::CFloor => "c".into(),
            Launch::OurBinary(path) => program_name(&path.to_string_lossy()),
            Launch::Command(command) => program_name(command),
            Launch::Ours => "ours".into(),
        });
        Ok(Contender { name, launch })
    }

    /// Starts it from the release binaries in `release` (and the C floor
    /// built in `out`), logging to `<out>/<name><log_suffix>.log`.
    pub(crate) fn start(
        &self,
        release: &Path,
        out: &Path,
        log_suffix: &str,
    ) -> anyhow::Result<Server> {
        let log = out.join(format!("{}{log_suffix}.log", self.name));
        match &self.launch {
            Launch::Ours => announced(
                &self.name,
                Command::new(release.join("echo-server")).args(["--listen", "127.0.0.1:0"]),
                &log,
            ),
            Launch::OurBinary(path) => announced(
                &self.name,
                Command::new(path).args(["--listen", "127.0.0.1:0"]),
                &log,
            ),
            Launch::Tokio => announced(
                &self.name,
                Command::new(release.join("examples").join("reference"))
                    .args(["--listen", "127.0.0.1:0"]),
                &log,
            ),
            // The floor takes port 0 and announces its port as echo-server does.
            Launch::CFloor => announced(
                &self.name,
                Command::new(out.join("echo_floor")).args(["0", "1"]),
                &log,
            ),
            Launch::Command(command) => connectable(&self.name, command, &log),
        }
    }
}

/// The file name of a command's program, as a column name.
fn program_name(command: &str) -> String {
    let program = command.split_whitespace().next().unwrap_or("reference");
    Path::new(program).file_name().map_or_else(
        || program.to_owned(),
        |name| name.to_string_lossy().into_owned(),
    )
}

/// Builds the C floor into `out` with the system's C compiler (`$CC` or `cc`).
///
/// # Errors
/// No C compiler, or the build failed; the message says which.
pub(crate) fn build_c_floor(root: &Path, out: &Path) -> anyhow::Result<()> {
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let source = root.join("xtask").join("reference").join("echo_floor.c");
    let program = out.join("echo_floor");
    let mut command = Command::new(&compiler);
    command
        .args(["-O2", "-pthread", "-o"])
        .arg(&program)
        .arg(&source);
    eprintln!("$ {}", show(&command));
    match command.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => bail!(
            "building the C floor failed ({status}): `{}`",
            show(&command)
        ),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => bail!(
            "no C compiler ({compiler}) to build the C floor: install gcc, or set CC, \
             or leave out --reference c"
        ),
        Err(err) => bail!("cannot run {compiler}: {err}"),
    }
}

/// A server process started for the benchmark, killed and reaped when dropped,
/// whichever way the benchmark ends.
#[derive(Debug)]
pub(crate) struct Server {
    /// What the server is called in progress lines, labels and errors.
    pub(crate) name: String,
    child: Child,
    /// `(kind, address)` of each listener: from its `listening on` lines,
    /// or the port picked for it.
    addrs: Vec<(String, String)>,
    log: PathBuf,
}

impl Server {
    /// Starts `command` with stdout piped and stderr to `log`, and waits for
    /// one announcement of each of `kinds`, as echo-server makes them.
    pub(crate) fn start(
        name: &str,
        command: &mut Command,
        log: &Path,
        kinds: &[&str],
    ) -> anyhow::Result<Server> {
        let (mut server, stdout) = spawn(name, command, log, true)?;
        let stdout = stdout.context("no stdout pipe")?;
        let shown = show(command);
        let (lines, announcements) = mpsc::channel();
        // Reads until the server exits; the receiver going away ends it sooner.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + READY_WITHIN;
        while !kinds
            .iter()
            .all(|kind| server.addrs.iter().any(|(k, _)| k == kind))
        {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match announcements.recv_timeout(left) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Timeout) => bail!(
                    "`{shown}` announced no {kinds:?} address within {READY_WITHIN:?}; see {}",
                    server.log.display()
                ),
                Err(mpsc::RecvTimeoutError::Disconnected) => bail!(
                    "`{shown}` exited before announcing its address; see {}",
                    server.log.display()
                ),
            };
            let announced = line
                .strip_prefix("listening on ")
                .and_then(|rest| rest.split_once(' '));
            if let Some((kind, addr)) = announced {
                server.addrs.push((kind.to_owned(), addr.to_owned()));
            }
        }
        Ok(server)
    }

    /// The first address of `kind`; starting made sure there is one.
    pub(crate) fn addr(&self, kind: &str) -> &str {
        self.addrs
            .iter()
            .find(|(k, _)| k == kind)
            .map_or("127.0.0.1:0", |(_, addr)| addr)
    }

    /// The server's process id, as echo-bench's `--server-pid` takes it.
    pub(crate) fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Fails if the server has exited, pointing at its log.
    pub(crate) fn check_alive(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => bail!(
                "the {} server exited ({status}) during the benchmark; see {}",
                self.name,
                self.log.display()
            ),
            Err(err) => bail!("cannot check on the {} server: {err}", self.name),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Already gone is fine; either way it is reaped, never left a zombie.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a server that announces itself as echo-server does.
fn announced(name: &str, command: &mut Command, log: &Path) -> anyhow::Result<Server> {
    Server::start(name, command, log, &["tcp"])
}

/// Starts `command` on a port picked here, and waits until the port accepts.
fn connectable(name: &str, command: &str, log: &Path) -> anyhow::Result<Server> {
    let port = free_port()?;
    let line = command.replace("{port}", &port.to_string());
    // `exec`, so that the pid echo-bench measures is the server's, not the shell's.
    let mut shell = Command::new("sh");
    shell.args(["-c", &format!("exec {line}")]);
    let (mut server, _) = spawn(name, &mut shell, log, false)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            break;
        }
        server.check_alive()?;
        if Instant::now() >= deadline {
            bail!(
                "`{line}` accepted no connection on {addr} within {READY_WITHIN:?}; see {}",
                server.log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    server.addrs.push(("tcp".into(), addr.to_string()));
    Ok(server)
}

/// A loopback port free a moment ago, for a server that cannot bind port 0
/// and say which it got; another program could take it meanwhile, which
/// the readiness check then shows.
fn free_port() -> anyhow::Result<u16> {
    let probe = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(probe
        .local_addr()
        .context("cannot find a free port")?
        .port())
}

/// Starts `command` with stderr (and, unless `pipe_stdout`, stdout too) to `log`.
fn spawn(
    name: &str,
    command: &mut Command,
    log: &Path,
    pipe_stdout: bool,
) -> anyhow::Result<(Server, Option<std::process::ChildStdout>)> {
    let log_file = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let stdout = if pipe_stdout {
        Stdio::piped()
    } else {
        Stdio::from(
            log_file
                .try_clone()
                .with_context(|| format!("cannot share {}", log.display()))?,
        )
    };
    let shown = show(command);
    eprintln!("$ {shown} &");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("cannot start `{shown}`"))?;
    let stdout = child.stdout.take();
    // The server is guarded from here on: any early return kills and reaps it.
    let server = Server {
        name: name.to_owned(),
        child,
        addrs: Vec::new(),
        log: log.to_path_buf(),
    };
    Ok((server, stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_read_as_names_builtins_binaries_or_commands() {
        assert_eq!(
            Contender::parse("tokio").expect("tokio").launch,
            Launch::Tokio
        );
        assert_eq!(Contender::parse("c").expect("c").name, "c");
        let previous = Contender::parse("prev=/tmp/old/echo-server").expect("binary");
        assert_eq!(previous.name, "prev");
        assert_eq!(
            previous.launch,
            Launch::OurBinary(PathBuf::from("/tmp/old/echo-server"))
        );
        let command = Contender::parse("/opt/epoll_echo {port} 1").expect("command");
        assert_eq!(command.name, "epoll_echo");
        assert_eq!(
            command.launch,
            Launch::Command("/opt/epoll_echo {port} 1".into())
        );
        assert!(Contender::parse("socat TCP-LISTEN:7 EXEC:cat").is_err());
        assert!(Contender::parse("").is_err());
    }
}
