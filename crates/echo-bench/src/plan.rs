//! What to run: a [`Plan`] names the scenario, its target and the addresses
//! it resolved to, and the shape of its load; it checks before anything is
//! sent that it can be run, and so becomes a [`ValidPlan`].
//!
//! The plan knows nothing of how scenarios run or how runs are reported, and
//! does no I/O: resolving its target is `resolve`'s.

use std::net::IpAddr;
use std::ops::Deref;
use std::path::PathBuf;
use std::time::Duration;

use echo_proto::{Endpoint, Target};

use crate::check::SEQUENCE_LEN;
use crate::error::{BenchError, PlanError};
use crate::size::group_thousands;

/// How long a run bounded only by `--count` may take before it stops anyway.
pub const COUNT_TIME_CAP: Duration = Duration::from_secs(60);
/// The run's duration when neither a duration nor a count is given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(5);
/// The share of the asked rate, in percent, a fixed-rate run must achieve to pass.
pub const MIN_RATE_PCT: f64 = 95.0;

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

/// Why a text is not a rate: not a number, or not a finite one above 0.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid rate '{text}': use exchanges per second, a number above 0 such as 2000 or 0.5")]
pub struct RateError {
    /// The text as given.
    pub text: String,
}

/// Reads a rate in exchanges per second: a positive number, as `2000` or `0.5`.
///
/// # Errors
/// A [`RateError`] naming the text.
pub fn parse_rate(text: &str) -> Result<f64, RateError> {
    match text.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(RateError {
            text: text.to_owned(),
        }),
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

    /// Whether the scenario sends one exchange after another, so that a
    /// fixed rate means something (bulk streams, idle holds).
    pub fn takes_a_rate(&self) -> bool {
        matches!(
            self,
            Scenario::Conn | Scenario::Persistent | Scenario::Udp { .. }
        )
    }
}

/// One address a target resolved to, and whether the load stays on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Where to connect: an IP socket address or a Unix socket path.
    pub endpoint: Endpoint,
    /// Whether it is on this machine: a loopback address, one of the
    /// machine's own addresses, the unspecified address, or a Unix socket.
    pub on_this_host: bool,
}

impl Destination {
    /// An address on this machine, as tests and their in-process servers use.
    pub fn local(endpoint: impl Into<Endpoint>) -> Self {
        Destination {
            endpoint: endpoint.into(),
            on_this_host: true,
        }
    }
}

/// Which certificates the TLS client trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The system's roots, as rustls-native-certs finds them (the default).
    System,
    /// The PEM roots in this file (`--tls-ca`).
    Roots(PathBuf),
    /// Any certificate at all (`--tls-insecure`).
    Insecure,
}

/// How a run speaks TLS to the server (`--tls` and the `--tls-*` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPlan {
    /// The certificates trusted.
    pub trust: Trust,
    /// The name to ask for and verify (`--tls-server-name`); `None`, the
    /// target's host name or IP address.
    pub server_name: Option<String>,
    /// A client certificate chain and its key, as PEM files, for servers
    /// that require one.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// `conn` only: each worker's connections after its first resume its session.
    pub resume: bool,
}

impl TlsPlan {
    /// The name to ask the server for: `--tls-server-name`, else the
    /// target's host name as given, else its IP address.
    pub fn server_name(&self, target: &Target) -> String {
        if let Some(name) = &self.server_name {
            return name.clone();
        }
        match target {
            Target::Name { host, .. } => host.clone(),
            Target::Endpoint(Endpoint::Ip(addr)) => addr.ip().to_string(),
            Target::Endpoint(Endpoint::Unix(path)) => path.display().to_string(),
        }
    }
}

/// One run: a scenario, its target and the shape of its load.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// What to do.
    pub scenario: Scenario,
    /// The echo server as given: an address, a `HOST:PORT` name or a Unix socket path.
    pub target: Target,
    /// What the target resolved to, in the resolver's order; the run loads
    /// the first, which `reach` makes the first that answers.
    pub addrs: Vec<Destination>,
    /// Concurrent workers: connections for `persistent` and `bulk`, concurrent
    /// connects for `conn` and `idle`, sockets for `udp`.
    pub workers: usize,
    /// Bytes per message (per write for `bulk`).
    pub size: usize,
    /// How long the load goes on (for `idle`, how long connections are held).
    pub duration: Duration,
    /// Stop after this many exchanges over all workers, if the duration has not ended first.
    pub count: Option<u64>,
    /// Exchanges per second over all workers on a fixed schedule; `None`
    /// for a closed loop, each worker sending as soon as its last reply is in.
    pub rate: Option<f64>,
    /// The longest wait for any one exchange (for `bulk`, for any progress).
    pub timeout: Duration,
    /// The server's process, whose CPU time and resident memory are read
    /// before and after the load.
    pub server_pid: Option<u32>,
    /// A name for the run in reports and plots, such as the server's.
    pub label: Option<String>,
    /// This machine's own addresses, looked up once by whoever resolved the
    /// target: which source addresses connections may spread over besides
    /// loopback's; empty, the spread is loopback's alone.
    pub own_addresses: Vec<IpAddr>,
    /// TLS over every connection; `None` for plain TCP or Unix sockets.
    pub tls: Option<TlsPlan>,
}

impl Plan {
    /// The plan's defaults for `scenario` against one address on this
    /// machine: one worker, 64 B, one second, a one-second timeout.
    pub fn local(scenario: Scenario, endpoint: impl Into<Endpoint>) -> Self {
        let destination = Destination::local(endpoint);
        Plan {
            scenario,
            target: Target::Endpoint(destination.endpoint.clone()),
            addrs: vec![destination],
            workers: 1,
            size: 64,
            duration: Duration::from_secs(1),
            count: None,
            rate: None,
            timeout: Duration::from_secs(1),
            server_pid: None,
            label: None,
            own_addresses: Vec::new(),
            tls: None,
        }
    }

    /// The address the run loads: the first of [`Plan::addrs`].
    pub fn destination(&self) -> Option<&Destination> {
        self.addrs.first()
    }

    /// The addresses the load would leave this machine for.
    pub fn off_host(&self) -> Vec<&Endpoint> {
        self.addrs
            .iter()
            .filter(|destination| !destination.on_this_host)
            .map(|destination| &destination.endpoint)
            .collect()
    }

    /// Checks that the plan can be run as it stands, its addresses resolved
    /// so far included, and returns it as a [`ValidPlan`], what runs take;
    /// addresses resolved later are checked as they are added
    /// ([`ValidPlan::with_addrs`]), so a bad command line is found before any
    /// name is looked up and no check is made twice.
    ///
    /// # Errors
    /// [`BenchError::InvalidPlan`] for sizes, counts, rates, targets or limits
    /// the scenario cannot honour.
    pub fn validate(self) -> Result<ValidPlan, BenchError> {
        self.check_shape()?;
        for destination in &self.addrs {
            self.check_destination(destination)?;
        }
        Ok(ValidPlan(self))
    }

    /// The checks that need no address.
    fn check_shape(&self) -> Result<(), PlanError> {
        let scenario = self.scenario.name();
        if self.workers == 0 {
            return Err(PlanError::NoWorkers);
        }
        if self.timeout.is_zero() {
            return Err(PlanError::ZeroTimeout);
        }
        if self.count == Some(0) {
            return Err(PlanError::ZeroCount);
        }
        if let Some(rate) = self.rate {
            if !self.scenario.takes_a_rate() {
                return Err(PlanError::RateNotTaken { scenario });
            }
            if !(rate.is_finite() && rate > 0.0) {
                return Err(PlanError::RateNotPositive { rate });
            }
        }
        if let Some(tls) = &self.tls {
            if matches!(self.scenario, Scenario::Udp { .. }) {
                return Err(PlanError::TlsNotTaken { scenario });
            }
            if self.target.is_unix() {
                return Err(PlanError::TlsToUnix {
                    target: self.target.to_string(),
                });
            }
            if tls.resume && self.scenario != Scenario::Conn {
                return Err(PlanError::ResumeNotTaken { scenario });
            }
        }
        match &self.scenario {
            Scenario::Conn => {}
            Scenario::Persistent | Scenario::Bulk { .. } | Scenario::Idle { .. }
                if self.size == 0 =>
            {
                return Err(PlanError::EmptyMessage { scenario });
            }
            Scenario::Persistent => {}
            Scenario::Bulk { total } => {
                if self.count.is_some() {
                    return Err(PlanError::CountNotTaken {
                        scenario,
                        instead: "streams --total bytes",
                    });
                }
                if *total == 0 {
                    return Err(PlanError::ZeroTotal);
                }
            }
            Scenario::Idle { connections } => {
                if self.count.is_some() {
                    return Err(PlanError::CountNotTaken {
                        scenario,
                        instead: "holds --connections",
                    });
                }
                if *connections == 0 {
                    return Err(PlanError::NoConnections);
                }
            }
            Scenario::Udp { max_loss } => {
                if self.target.is_unix() {
                    return Err(PlanError::UdpToUnix {
                        target: self.target.to_string(),
                    });
                }
                // Before resolving, IPv6's limit, the largest there is; each
                // address is held to its own as it is added.
                self.check_datagram_size(echo_proto::udp::MAX_DATAGRAM_V6)?;
                if !(0.0..=100.0).contains(max_loss) {
                    return Err(PlanError::MaxLoss {
                        max_loss: *max_loss,
                    });
                }
            }
        }
        Ok(())
    }

    /// The checks of one address the load may go to.
    fn check_destination(&self, destination: &Destination) -> Result<(), PlanError> {
        let Endpoint::Ip(addr) = destination.endpoint else {
            return Ok(());
        };
        let ip = addr.ip().to_canonical();
        let broadcast = matches!(ip, std::net::IpAddr::V4(v4) if v4.is_broadcast());
        if ip.is_multicast() || broadcast {
            return Err(PlanError::NotOneServer { addr });
        }
        if let Scenario::Udp { .. } = self.scenario {
            self.check_datagram_size(echo_proto::udp::max_datagram(addr))?;
        }
        Ok(())
    }

    fn check_datagram_size(&self, max: usize) -> Result<(), PlanError> {
        if (SEQUENCE_LEN..=max).contains(&self.size) {
            Ok(())
        } else {
            Err(PlanError::DatagramSize {
                size: self.size,
                max,
            })
        }
    }
}

/// A [`Plan`] that passed [`Plan::validate`], with every address it holds:
/// what [`reach`](crate::reach) and [`run`](crate::run) take, so that neither
/// checks it again.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidPlan(Plan);

impl ValidPlan {
    /// The plan with `addrs` added to its destinations, each checked, and
    /// `own_addresses` as this machine's.
    ///
    /// # Errors
    /// [`BenchError::InvalidPlan`] for an address the plan cannot load: a
    /// multicast or broadcast one, or, for udp, one whose datagrams cannot
    /// be as large as the plan's size.
    pub fn with_addrs(
        self,
        addrs: Vec<Destination>,
        own_addresses: Vec<IpAddr>,
    ) -> Result<ValidPlan, BenchError> {
        for destination in &addrs {
            self.0.check_destination(destination)?;
        }
        let mut plan = self.0;
        plan.addrs.extend(addrs);
        plan.own_addresses = own_addresses;
        Ok(ValidPlan(plan))
    }

    /// The plan with `destination`, one of its own, as its only address.
    pub(crate) fn narrowed_to(&self, destination: &Destination) -> ValidPlan {
        ValidPlan(Plan {
            addrs: vec![destination.clone()],
            ..self.0.clone()
        })
    }
}

impl Deref for ValidPlan {
    type Target = Plan;

    fn deref(&self) -> &Plan {
        &self.0
    }
}

/// A rate as people write it: whole and grouped from 10 up, else to two decimals.
pub fn format_rate(rate: f64) -> String {
    if rate >= 10.0 {
        group_thousands(rate.round() as u64)
    } else {
        format!("{rate:.2}")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A plan of `scenario` towards 127.0.0.1:7, for tests here and beside.
    pub(crate) fn plan(scenario: Scenario) -> Plan {
        Plan::local(
            scenario,
            "127.0.0.1:7"
                .parse::<std::net::SocketAddr>()
                .expect("literal"),
        )
    }

    #[test]
    fn plans_are_checked_before_anything_is_sent() {
        assert!(plan(Scenario::Conn).validate().is_ok());
        let named = Plan {
            target: "localhost:7".parse().expect("literal"),
            addrs: Vec::new(),
            ..plan(Scenario::Udp { max_loss: 1.0 })
        };
        let checked = named.validate().expect("valid before resolving");
        let v4 =
            |addr: &str| Destination::local(addr.parse::<std::net::SocketAddr>().expect("literal"));
        assert!(
            matches!(
                checked
                    .clone()
                    .with_addrs(vec![v4("127.0.0.1:7"), v4("224.0.0.1:7")], Vec::new()),
                Err(BenchError::InvalidPlan(PlanError::NotOneServer { .. }))
            ),
            "each address added is checked"
        );
        let big = Plan {
            size: 65_520,
            addrs: Vec::new(),
            ..plan(Scenario::Udp { max_loss: 1.0 })
        };
        assert!(
            matches!(
                big.validate()
                    .expect("IPv6 takes it")
                    .with_addrs(vec![v4("127.0.0.1:7")], Vec::new()),
                Err(BenchError::InvalidPlan(PlanError::DatagramSize {
                    size: 65_520,
                    max: 65_507
                }))
            ),
            "an IPv4 address holds the size to its own limit"
        );
        let resolved = checked
            .with_addrs(vec![v4("127.0.0.1:7")], Vec::new())
            .expect("valid");
        assert_eq!(resolved.addrs.len(), 1);
        let remote = Plan {
            addrs: vec![Destination {
                endpoint: Endpoint::Ip("192.0.2.1:7".parse().expect("literal")),
                on_this_host: false,
            }],
            ..plan(Scenario::Conn)
        };
        assert!(
            remote.validate().is_ok(),
            "a remote target is a plan like any other"
        );
        let v6 = Plan::local(
            Scenario::Persistent,
            "[::1]:7".parse::<std::net::SocketAddr>().expect("literal"),
        );
        assert!(v6.validate().is_ok());
        let mut empty_conn = plan(Scenario::Conn);
        empty_conn.size = 0;
        assert!(
            empty_conn.validate().is_ok(),
            "an empty message is a valid exchange"
        );
        let unix = Plan::local(
            Scenario::Bulk { total: 10 },
            Endpoint::Unix("/tmp/e.sock".into()),
        );
        assert!(unix.validate().is_ok());
        let paced = Plan {
            rate: Some(0.5),
            ..plan(Scenario::Udp { max_loss: 1.0 })
        };
        assert!(paced.validate().is_ok());

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
            Plan::local(
                Scenario::Udp { max_loss: 1.0 },
                Endpoint::Unix("/tmp/e.sock".into()),
            ),
            Plan {
                rate: Some(100.0),
                ..plan(Scenario::Bulk { total: 10 })
            },
            Plan {
                rate: Some(100.0),
                ..plan(Scenario::Idle { connections: 1 })
            },
            Plan {
                rate: Some(0.0),
                ..plan(Scenario::Conn)
            },
            Plan {
                rate: Some(f64::NAN),
                ..plan(Scenario::Conn)
            },
            Plan::local(
                Scenario::Udp { max_loss: 1.0 },
                "255.255.255.255:7"
                    .parse::<std::net::SocketAddr>()
                    .expect("literal"),
            ),
            Plan::local(
                Scenario::Conn,
                "[ff02::1]:7"
                    .parse::<std::net::SocketAddr>()
                    .expect("literal"),
            ),
        ];
        for plan in invalid {
            let shown = format!("{plan:?}");
            assert!(
                matches!(plan.validate(), Err(BenchError::InvalidPlan(_))),
                "{shown}"
            );
        }
    }

    #[test]
    fn rates_are_positive_numbers() {
        assert_eq!(parse_rate("2000"), Ok(2000.0));
        assert_eq!(parse_rate(" 0.5 "), Ok(0.5));
        for text in ["0", "-3", "fast", "", "inf", "NaN"] {
            let err = parse_rate(text).expect_err(text);
            assert_eq!(err.text, text);
            assert!(err.to_string().contains(&format!("'{text}'")), "{err}");
        }
        assert_eq!(format_rate(2000.0), "2,000");
        assert_eq!(format_rate(0.5), "0.50");
    }
}
