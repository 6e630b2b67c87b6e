//! The library's error types, in a module of their own so that every module
//! can name them without depending on the crate root, which depends on them all.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::check::SEQUENCE_LEN;

/// Why a benchmark could not be run at all (as opposed to a run that met errors,
/// which [`Report::ok`](crate::Report::ok) tells).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The plan is inconsistent: zero workers, a size the scenario cannot send, ...
    #[error("invalid plan: {0}")]
    InvalidPlan(#[from] PlanError),
    /// The resolver could not turn the target's host name into addresses.
    #[error("cannot resolve host name '{host}'")]
    Resolve {
        /// The name as given.
        host: String,
        /// What the resolver said.
        #[source]
        source: io::Error,
    },
    /// The resolver gave no answer for the target's host name within the timeout.
    #[error("cannot resolve host name '{host}': no answer within {}", echo_proto::Human(*.after))]
    ResolveTimeout {
        /// The name as given.
        host: String,
        /// How long the resolver was given.
        after: Duration,
    },
    /// The resolver answered for the host name, but with no address.
    #[error("host name '{0}' resolved to no address")]
    NoAddress(String),
    /// None of the target's addresses took the one connection (or, for udp,
    /// the one datagram) made before the load starts.
    #[error("{}", unreachable(.target, .attempts))]
    Unreachable {
        /// The target as given.
        target: String,
        /// What each address said, in the order tried.
        attempts: Vec<Unanswered>,
    },
    /// The TLS client could not be set up from the plan.
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The server's memory use could not be read from `/proc/PID/status`.
    #[error("cannot read the resident memory of process {pid}")]
    Rss {
        /// The process asked about.
        pid: u32,
        /// What reading its status said.
        #[source]
        source: echo_os::process::ProcessError,
    },
    /// The server's CPU time could not be read from `/proc/PID/stat`.
    #[error("cannot read the CPU time of process {pid}")]
    Cpu {
        /// The process asked about.
        pid: u32,
        /// What reading its stat said.
        #[source]
        source: echo_os::process::ProcessError,
    },
    /// With a start time (`--start-at`), the generator was ready only after
    /// it: its load would begin out of step with the other generators'.
    #[error(
        "ready {} after the start time {start}: the load would begin late, out of step \
         with the other generators; start them all earlier, or pass --late-ok to run anyway",
        echo_proto::Human(*.late)
    )]
    Late {
        /// The start time, in RFC 3339.
        start: String,
        /// How long after it the generator was ready.
        late: Duration,
    },
    /// A plot could not be drawn or written.
    #[error("cannot draw the plot {}: {message}", path.display())]
    Plot {
        /// Where the plot was to go.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Why a plan cannot be run as it stands, found before anything is sent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// `--workers 0`: nothing would send.
    #[error("at least one worker is needed")]
    NoWorkers,
    /// `--timeout 0`: every exchange would time out before it began.
    #[error("the timeout must be longer than zero")]
    ZeroTimeout,
    /// `--count 0`: the run would end before its first exchange.
    #[error("--count 0 would send nothing")]
    ZeroCount,
    /// `--rate` for a scenario that does not send one exchange after another.
    #[error("{scenario} does not take --rate: it applies to conn, persistent and udp")]
    RateNotTaken {
        /// The scenario's name.
        scenario: &'static str,
    },
    /// A rate that is not a finite number above 0 (the library's callers
    /// can give one; the command's parser refuses it first).
    #[error("--rate {rate} is not a rate above 0 per second")]
    RateNotPositive {
        /// The rate given.
        rate: f64,
    },
    /// The target is, or resolved to, a multicast or broadcast address.
    #[error("{addr} is a multicast or broadcast address: an echo load goes to one server")]
    NotOneServer {
        /// The address.
        addr: std::net::SocketAddr,
    },
    /// A size of 0 for a scenario whose exchanges need a byte to echo.
    #[error("{scenario} needs a size of at least 1 byte")]
    EmptyMessage {
        /// The scenario's name.
        scenario: &'static str,
    },
    /// `--count` for a scenario whose load is measured otherwise.
    #[error("{scenario} {instead}; --count does not apply")]
    CountNotTaken {
        /// The scenario's name.
        scenario: &'static str,
        /// What bounds its load instead, as `streams --total bytes`.
        instead: &'static str,
    },
    /// `bulk --total 0`.
    #[error("bulk needs a --total of at least 1 byte")]
    ZeroTotal,
    /// `idle --connections 0`.
    #[error("idle needs at least one connection")]
    NoConnections,
    /// `udp` towards a Unix socket path.
    #[error(
        "udp sends datagrams to an IP address or a host name; {target} is a Unix \
         stream socket, for conn, persistent, bulk and idle"
    )]
    UdpToUnix {
        /// The target as given.
        target: String,
    },
    /// `--tls` for udp, which has no TLS (DTLS is another protocol).
    #[error("{scenario} does not take --tls: it applies to conn, persistent, bulk and idle")]
    TlsNotTaken {
        /// The scenario's name.
        scenario: &'static str,
    },
    /// `--tls` towards a Unix socket: the server speaks TLS over TCP only.
    #[error("--tls needs a TCP address, not the Unix socket {target}")]
    TlsToUnix {
        /// The target as given.
        target: String,
    },
    /// `--tls-resume` for a scenario other than conn, whose connections
    /// each handshake once.
    #[error("{scenario} does not take --tls-resume: only conn makes connection after connection")]
    ResumeNotTaken {
        /// The scenario's name.
        scenario: &'static str,
    },
    /// A udp size that cannot hold the sequence number or exceeds the
    /// largest datagram the resolved addresses take.
    #[error(
        "udp datagrams carry a {SEQUENCE_LEN}-byte sequence number: the size must be \
         {SEQUENCE_LEN} to {max} bytes, not {size}"
    )]
    DatagramSize {
        /// The size given.
        size: usize,
        /// The largest datagram the addresses take.
        max: usize,
    },
    /// A plan run with no address to load, its target never resolved.
    #[error("{target} resolved to no address")]
    NoAddress {
        /// The target as given.
        target: String,
    },
    /// `--max-loss` outside 0 to 100.
    #[error("--max-loss {max_loss} is not a percentage")]
    MaxLoss {
        /// The value given.
        max_loss: f64,
    },
}

/// Why one address of the target did not take the connection made before the load.
///
/// Only ever shown inside [`BenchError::Unreachable`], whose one line carries
/// every address's reason; the operating system's words are therefore part of
/// the message rather than a source of their own.
#[derive(Debug, thiserror::Error)]
pub enum Unanswered {
    /// The address refused the connection (or the datagram), or the socket
    /// file is not there: no server runs at it.
    #[error("nothing listens at {addr} ({reason})")]
    NothingListens {
        /// The address tried.
        addr: String,
        /// `connection refused` or `no such socket file`.
        reason: &'static str,
    },
    /// The connection was neither made nor refused within the timeout.
    #[error("no answer from {addr} within {} (connecting)", echo_proto::Human(*.after))]
    Timeout {
        /// The address tried.
        addr: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// The connection failed otherwise: no route, no permission, ...
    #[error("cannot connect to {addr}: {source}")]
    Failed {
        /// The address tried.
        addr: String,
        /// What the operating system said.
        source: io::Error,
    },
}

/// One address's reason alone, or every address's after the target.
fn unreachable(target: &str, attempts: &[Unanswered]) -> String {
    match attempts {
        [] => format!("{target} has no address to connect to"),
        [only] => only.to_string(),
        all => {
            let reasons: Vec<String> = all.iter().map(ToString::to_string).collect();
            format!("no address of {target} answers: {}", reasons.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_target_names_each_address_and_its_reason() {
        let refused = |addr: &str| Unanswered::NothingListens {
            addr: addr.to_owned(),
            reason: "connection refused",
        };
        let one = BenchError::Unreachable {
            target: "127.0.0.1:1".into(),
            attempts: vec![refused("127.0.0.1:1")],
        };
        assert_eq!(
            one.to_string(),
            "nothing listens at 127.0.0.1:1 (connection refused)"
        );
        let two = BenchError::Unreachable {
            target: "localhost:9".into(),
            attempts: vec![
                refused("[::1]:9"),
                Unanswered::Timeout {
                    addr: "127.0.0.1:9".into(),
                    after: Duration::from_secs(5),
                },
            ],
        };
        assert_eq!(
            two.to_string(),
            "no address of localhost:9 answers: nothing listens at [::1]:9 (connection refused); \
             no answer from 127.0.0.1:9 within 5s (connecting)"
        );
    }
}
