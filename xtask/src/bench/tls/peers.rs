//! The TLS echo servers a user would otherwise pick, socat and ncat: how each
//! is started, which scenarios it can pass and why not the others (found by
//! hand), and how the CPU of a server that forks is read whole.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::certs::Certs;
use crate::bench::servers::{Contender, Launch};

/// How long a server's children may take to be reaped after a run, before
/// its CPU time is read.
const REAPED_WITHIN: Duration = Duration::from_secs(10);

/// An OpenSSL configuration that caps its servers at TLS 1.2, for ncat.
const TLS12_ONLY: &str = "\
openssl_conf = default_conf
[default_conf]
ssl_conf = ssl_section
[ssl_section]
system_default = system_default_section
[system_default_section]
MaxProtocol = TLSv1.2
";

/// Whether a peer runs a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scenario {
    /// It passes it, with a footnote when it needed something ours did not.
    Runs(Option<&'static str>),
    /// It cannot pass it, for this reason (a footnote to its `-`).
    Skipped(&'static str),
}

/// A peer: the command it runs as, and what it can pass.
#[derive(Debug)]
pub(super) struct Peer {
    /// The column's name, and the program looked for on `PATH`.
    pub(super) name: &'static str,
    /// Its command line; `{port}`, `{cert}`, `{key}` and `{dir}` (the run's
    /// directory) are filled in.
    pub(super) command: &'static str,
    /// `conn 64 B × 50` over TLS.
    pub(super) conn: Scenario,
    /// `bulk 1 GiB × 1` over TLS.
    pub(super) bulk: Scenario,
    /// `idle 10,000` over TLS.
    pub(super) idle: Scenario,
}

/// Why no forking peer's idle memory is shown.
const IDLE_FORKS: &str = "echo-bench weighs the memory of the listening process, and this \
                          server holds each connection in a process of its own";

/// The peers, in column order.
pub(super) const PEERS: [Peer; 2] = [
    Peer {
        name: "socat",
        command: "socat -b4096 OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,\
                  cert={cert},key={key},verify=0 PIPE",
        conn: Scenario::Runs(None),
        bulk: Scenario::Runs(Some(
            "socat with -b4096: with its default 8 KiB transfers it stalls in bulk \
             (a blocking write of 8 KiB into its PIPE, which only it drains, \
             when select promised room for 4 KiB), and echo-bench times out",
        )),
        idle: Scenario::Skipped(IDLE_FORKS),
    },
    Peer {
        name: "ncat",
        command: "env OPENSSL_CONF={dir}/tls12.cnf ncat --ssl --ssl-cert {cert} --ssl-key {key} \
                  -l -k -e /bin/cat 127.0.0.1 {port}",
        conn: Scenario::Runs(Some(
            "ncat over TLS 1.2 (OPENSSL_CONF caps its OpenSSL there): over TLS 1.3 it ends \
             the connection at the client's close_notify without echoing anything \
             (every conn exchange a mismatch, 0 bytes back), while over 1.2 echo-bench \
             reads the echo before its close_notify",
        )),
        bulk: Scenario::Skipped(
            "ncat -e /bin/cat stalls in bulk (it stops reading the socket while cat's \
             output waits, and cat waits for it)",
        ),
        idle: Scenario::Skipped(IDLE_FORKS),
    },
];

impl Peer {
    /// The contender that starts it with `certs`, its files in `dir`.
    pub(super) fn contender(&self, certs: &Certs, dir: &Path) -> Contender {
        let command = self
            .command
            .replace("{cert}", &certs.cert.to_string_lossy())
            .replace("{key}", &certs.key.to_string_lossy())
            .replace("{dir}", &dir.to_string_lossy());
        Contender {
            name: self.name.to_owned(),
            launch: Launch::Command(command),
        }
    }

    /// Whether it runs any scenario at all.
    pub(super) fn runs_any(&self) -> bool {
        [self.conn, self.bulk, self.idle]
            .iter()
            .any(|scenario| matches!(scenario, Scenario::Runs(_)))
    }
}

/// Writes the files the peers' commands name into `dir`.
///
/// # Errors
/// A file cannot be written.
pub(super) fn prepare(dir: &Path) -> anyhow::Result<()> {
    let tls12 = dir.join("tls12.cnf");
    std::fs::write(&tls12, TLS12_ONLY).with_context(|| format!("cannot write {}", tls12.display()))
}

/// Whether `program` is an executable file in a directory of `PATH`.
pub(super) fn installed(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program)).is_ok_and(|meta| {
                meta.is_file()
                    && std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0
            })
        })
    })
}

/// The CPU time of process `pid` once every child it has started is
/// reaped, so that a forking server's last connections are counted
/// (the kernel adds a child's time to its parent only when the parent
/// waits for it, which socat does a moment after the connection ends).
///
/// # Errors
/// Children still there after [`REAPED_WITHIN`], or `/proc` unreadable.
pub(super) fn settled_cpu(pid: u32) -> anyhow::Result<Duration> {
    let deadline = Instant::now() + REAPED_WITHIN;
    while has_children(pid)? {
        if Instant::now() >= deadline {
            bail!("process {pid} still has children {REAPED_WITHIN:?} after the run");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    echo_bench::limits::cpu_time(pid).with_context(|| format!("cannot read the CPU time of {pid}"))
}

/// Whether any process has `pid` as its parent (zombies included).
fn has_children(pid: u32) -> anyhow::Result<bool> {
    let entries = std::fs::read_dir("/proc").context("cannot list /proc")?;
    for entry in entries.map_while(Result::ok) {
        let name = entry.file_name();
        let Some(child) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        // A process may end between the listing and the read: not a child then.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if child != pid && parent_of(&stat) == Some(pid) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The parent's pid in a `/proc/PID/stat` line: the second field after the
/// command name, which is in parentheses and may itself hold spaces and `)`.
fn parent_of(stat: &str) -> Option<u32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_are_read_past_the_command_name() {
        assert_eq!(parent_of("42 (socat) S 17 42 42 0 -1"), Some(17));
        assert_eq!(parent_of("42 (a) b) Z 9 42 42 0 -1"), Some(9));
        assert_eq!(parent_of("42 (cat"), None);
    }

    #[test]
    fn peer_commands_get_the_run_s_files() {
        let certs = Certs {
            ca: "/run/ca.pem".into(),
            cert: "/run/cert.pem".into(),
            key: "/run/key.pem".into(),
        };
        let ncat = PEERS[1].contender(&certs, Path::new("/run"));
        assert_eq!(
            ncat.launch,
            Launch::Command(
                "env OPENSSL_CONF=/run/tls12.cnf ncat --ssl --ssl-cert /run/cert.pem \
                 --ssl-key /run/key.pem -l -k -e /bin/cat 127.0.0.1 {port}"
                    .into()
            )
        );
        assert!(PEERS.iter().all(Peer::runs_any));
    }
}
