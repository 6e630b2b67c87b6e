//! What to run: a [`Plan`] names the scenario, its loopback target and the
//! shape of its load, and checks before anything is sent that it can be run.
//!
//! The plan knows nothing of how scenarios run or how runs are reported.

use std::net::SocketAddr;
use std::time::Duration;

use crate::check::SEQUENCE_LEN;
use crate::error::BenchError;

/// How long a run bounded only by `--count` may take before it stops anyway.
pub const COUNT_TIME_CAP: Duration = Duration::from_secs(60);
/// The run's duration when neither a duration nor a count is given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(5);
/// The time limit of a run given `count` and perhaps a `duration`: the
/// duration if given, else [`COUNT_TIME_CAP`] with a count and
/// [`DEFAULT_DURATION`] without.
pub fn time_limit(duration: Option<Duration>, count: Option<u64>) -> Duration {
    match (duration, count) {
        (Some(duration), _) => duration,
        (None, Some(_)) => COUNT_TIME_CAP,
        (None, None) => DEFAULT_DURATION,
    }
}

/// The load to generate.
#[derive(Debug, Clone, PartialEq)]
pub enum Scenario {
    /// A new connection per message: connect, send, half-close, read to end, check, close.
    Conn,
    /// Long-lived connections, each sending a message and waiting for it to come back, over and over.
    Persistent,
    /// A few connections each streaming a share of `total` bytes, writing and reading at once.
    Bulk {
        /// Bytes to stream over all connections together.
        total: u64,
    },
    /// Opens `connections` connections, holds them for the run's duration, then
    /// checks that each still echoes.
    Idle {
        /// How many connections to hold.
        connections: u64,
    },
    /// Datagrams to a UDP echo server, each waiting for its reply.
    Udp {
        /// The share of datagrams, in percent, that may go unanswered before the run fails.
        max_loss: f64,
    },
}

impl Scenario {
    /// The scenario's command-line name.
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Conn => "conn",
            Scenario::Persistent => "persistent",
            Scenario::Bulk { .. } => "bulk",
            Scenario::Idle { .. } => "idle",
            Scenario::Udp { .. } => "udp",
        }
    }
}

/// One run: a scenario, its target and the shape of its load.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// What to do.
    pub scenario: Scenario,
    /// The echo server, on a loopback address.
    pub addr: SocketAddr,
    /// Concurrent workers: connections for `persistent` and `bulk`, concurrent
    /// connects for `conn` and `idle`, sockets for `udp`.
    pub workers: usize,
    /// Bytes per message (per write for `bulk`).
    pub size: usize,
    /// How long the load goes on (for `idle`, how long connections are held).
    pub duration: Duration,
    /// Stop after this many exchanges over all workers, if the duration has not ended first.
    pub count: Option<u64>,
    /// The longest wait for any one exchange (for `bulk`, for any progress).
    pub timeout: Duration,
    /// The server's process, whose resident memory is reported before and after.
    pub server_pid: Option<u32>,
    /// A name for the run in reports and plots, such as the server's.
    pub label: Option<String>,
}

impl Plan {
    /// Checks that the plan can be run as it stands.
    ///
    /// # Errors
    /// [`BenchError::NotLoopback`] for a non-loopback target, and
    /// [`BenchError::InvalidPlan`] for sizes, counts or limits the scenario cannot honour.
    pub fn validate(&self) -> Result<(), BenchError> {
        if !self.addr.ip().is_loopback() {
            return Err(BenchError::NotLoopback(self.addr));
        }
        let invalid = |message: String| Err(BenchError::InvalidPlan(message));
        if self.workers == 0 {
            return invalid("at least one worker is needed".into());
        }
        if self.timeout.is_zero() {
            return invalid("the timeout must be longer than zero".into());
        }
        if self.count == Some(0) {
            return invalid("--count 0 would send nothing".into());
        }
        match &self.scenario {
            Scenario::Conn => {}
            Scenario::Persistent | Scenario::Bulk { .. } | Scenario::Idle { .. }
                if self.size == 0 =>
            {
                return invalid(format!(
                    "{} needs a size of at least 1 byte",
                    self.scenario.name()
                ));
            }
            Scenario::Persistent => {}
            Scenario::Bulk { total } => {
                if self.count.is_some() {
                    return invalid("bulk streams --total bytes; --count does not apply".into());
                }
                if *total == 0 {
                    return invalid("bulk needs a --total of at least 1 byte".into());
                }
            }
            Scenario::Idle { connections } => {
                if self.count.is_some() {
                    return invalid("idle holds --connections; --count does not apply".into());
                }
                if *connections == 0 {
                    return invalid("idle needs at least one connection".into());
                }
            }
            Scenario::Udp { max_loss } => {
                let max = echo_proto::udp::max_datagram(self.addr);
                if !(SEQUENCE_LEN..=max).contains(&self.size) {
                    return invalid(format!(
                        "udp datagrams carry an 8-byte sequence number: the size must be 8 to {max} bytes"
                    ));
                }
                if !(0.0..=100.0).contains(max_loss) {
                    return invalid(format!("--max-loss {max_loss} is not a percentage"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(scenario: Scenario) -> Plan {
        Plan {
            scenario,
            addr: "127.0.0.1:7".parse().expect("literal"),
            workers: 1,
            size: 64,
            duration: Duration::from_secs(1),
            count: None,
            timeout: Duration::from_secs(1),
            server_pid: None,
            label: None,
        }
    }

    #[test]
    fn plans_are_checked_before_anything_is_sent() {
        assert!(plan(Scenario::Conn).validate().is_ok());
        let mut remote = plan(Scenario::Conn);
        remote.addr = "192.0.2.1:7".parse().expect("literal");
        assert!(matches!(remote.validate(), Err(BenchError::NotLoopback(_))));
        let mut v6 = plan(Scenario::Persistent);
        v6.addr = "[::1]:7".parse().expect("literal");
        assert!(v6.validate().is_ok());
        let mut empty_conn = plan(Scenario::Conn);
        empty_conn.size = 0;
        assert!(
            empty_conn.validate().is_ok(),
            "an empty message is a valid exchange"
        );

        let invalid = [
            Plan {
                workers: 0,
                ..plan(Scenario::Conn)
            },
            Plan {
                size: 0,
                ..plan(Scenario::Persistent)
            },
            Plan {
                count: Some(0),
                ..plan(Scenario::Conn)
            },
            Plan {
                timeout: Duration::ZERO,
                ..plan(Scenario::Conn)
            },
            Plan {
                count: Some(5),
                ..plan(Scenario::Bulk { total: 10 })
            },
            plan(Scenario::Bulk { total: 0 }),
            plan(Scenario::Idle { connections: 0 }),
            Plan {
                size: 7,
                ..plan(Scenario::Udp { max_loss: 1.0 })
            },
            Plan {
                size: 70_000,
                ..plan(Scenario::Udp { max_loss: 1.0 })
            },
            plan(Scenario::Udp { max_loss: 101.0 }),
        ];
        for plan in invalid {
            assert!(
                matches!(plan.validate(), Err(BenchError::InvalidPlan(_))),
                "{plan:?}"
            );
        }
    }
}
