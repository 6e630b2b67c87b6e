//! The servers a benchmark runs against: started from a command, ready once
//! they have announced their addresses, and killed and reaped however the
//! benchmark ends.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::show;

/// How long a server may take to print its `listening on` line.
const ANNOUNCE_WITHIN: Duration = Duration::from_secs(10);

/// The names of the two servers compared, in table order.
const CONTENDERS: [&str; 2] = ["ours", "reference"];

/// Starts `CONTENDERS[which]` from the release binaries, on a free loopback
/// port, logging to `<out>/<name><log_suffix>.log`.
pub(super) fn start_contender(
    which: usize,
    release: &Path,
    out: &Path,
    log_suffix: &str,
) -> anyhow::Result<Server> {
    let program = match which {
        0 => release.join("echo-server"),
        _ => release.join("examples").join("reference"),
    };
    Server::start(
        CONTENDERS[which],
        Command::new(program).args(["--listen", "127.0.0.1:0"]),
        &out.join(format!("{}{log_suffix}.log", CONTENDERS[which])),
        &["tcp"],
    )
}

/// A server process started for the benchmark, killed and reaped when dropped,
/// whichever way the benchmark ends.
#[derive(Debug)]
pub(super) struct Server {
    /// What the server is called in progress lines, labels and errors.
    pub(super) name: &'static str,
    child: Child,
    /// `(kind, address)` from each `listening on KIND ADDRESS` line.
    addrs: Vec<(String, String)>,
    log: PathBuf,
    pid: String,
}

impl Server {
    /// Starts `command` with stdout piped and stderr to `log`, and waits (at
    /// most [`ANNOUNCE_WITHIN`]) for one announcement of each of `kinds`.
    pub(super) fn start(
        name: &'static str,
        command: &mut Command,
        log: &Path,
        kinds: &[&str],
    ) -> anyhow::Result<Server> {
        let log = log.to_path_buf();
        let log_file =
            File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let shown = show(command);
        eprintln!("$ {shown} &");
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot start `{shown}`"))?;
        let pid = child.id().to_string();
        let stdout = child.stdout.take().context("no stdout pipe")?;
        // The server is guarded from here on: any early return kills and reaps it.
        let mut server = Server {
            name,
            child,
            addrs: Vec::new(),
            log,
            pid,
        };
        let (lines, announcements) = mpsc::channel();
        // Reads until the server exits; the receiver going away ends it sooner.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + ANNOUNCE_WITHIN;
        while !kinds
            .iter()
            .all(|kind| server.addrs.iter().any(|(k, _)| k == kind))
        {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match announcements.recv_timeout(left) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    bail!(
                        "`{shown}` announced no {kinds:?} address within {ANNOUNCE_WITHIN:?}; see {}",
                        server.log.display()
                    )
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!(
                        "`{shown}` exited before announcing its address; see {}",
                        server.log.display()
                    )
                }
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

    /// The first announced address of `kind`; `start` made sure there is one.
    pub(super) fn addr(&self, kind: &str) -> &str {
        self.addrs
            .iter()
            .find(|(k, _)| k == kind)
            .map_or("127.0.0.1:0", |(_, addr)| addr)
    }

    /// The server's process id, as echo-bench's `--server-pid` takes it.
    pub(super) fn pid(&self) -> String {
        self.pid.clone()
    }

    /// Fails if the server has exited, pointing at its log.
    pub(super) fn check_alive(&mut self) -> anyhow::Result<()> {
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
