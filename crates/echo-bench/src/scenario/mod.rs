//! What to run ([`Plan`], [`Scenario`]) and the machinery every scenario shares:
//! the budget that bounds the run, the pool of workers with its hard deadline,
//! and the client-side connect.

mod bulk;
mod conn;
mod idle;
mod persistent;
mod udp;

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::report::Report;
use crate::tally::{ExchangeError, Live, Tally};
use crate::{BenchError, limits};

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

/// Time past the end of the run (and past one timeout for the exchange in
/// flight, and one for the clean close) after which workers still running are
/// abandoned and counted as failed.
const HARD_GRACE: Duration = Duration::from_secs(1);

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
                let max = echo_proto::udp::MAX_DATAGRAM;
                if !(crate::check::SEQUENCE_LEN..=max).contains(&self.size) {
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

/// Runs `plan` to its end and reports on it, feeding `live` as it goes.
///
/// Must be called within a tokio runtime with I/O and time enabled.
///
/// # Errors
/// A [`BenchError`] when the run cannot start (an invalid plan, an unreadable
/// server process); failures of exchanges are counted in the report instead.
pub async fn run(plan: &Plan, live: Arc<Live>) -> Result<Report, BenchError> {
    plan.validate()?;
    let rss_before = plan.server_pid.map(limits::resident_kib).transpose()?;
    let started = Instant::now();
    let mut outcome = match &plan.scenario {
        Scenario::Conn => conn::run(Shared::new(plan, live, started)).await,
        Scenario::Persistent => persistent::run(Shared::new(plan, live, started)).await,
        Scenario::Bulk { total } => bulk::run(Shared::new(plan, live, started), *total).await,
        Scenario::Idle { connections } => idle::run(plan, live, *connections).await?,
        Scenario::Udp { .. } => udp::run(Shared::new(plan, live, started)).await,
    };
    outcome.rss_before_kib = rss_before;
    if outcome.rss_after_kib.is_none() {
        outcome.rss_after_kib = plan.server_pid.map(limits::resident_kib).transpose()?;
    }
    Ok(Report::new(plan, &outcome, started.elapsed()))
}

/// What a scenario hands to the report besides its tally.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Everything counted.
    pub tally: Tally,
    /// Whether the run ended because the count ran out (rather than the time).
    pub count_reached: bool,
    /// The time over which the rate is computed, if not the whole run (idle: the opening).
    pub rate_window: Option<Duration>,
    /// `idle`: connections that still echoed after the hold.
    pub held: Option<u64>,
    /// `idle`: how many local addresses the connections came from.
    pub source_addresses: Option<usize>,
    /// The server's resident memory before the run, in KiB.
    pub rss_before_kib: Option<u64>,
    /// The server's resident memory at the measuring point (idle: all connections open), in KiB.
    pub rss_after_kib: Option<u64>,
}

/// The budget every worker draws from: a time limit, and optionally a count of exchanges.
#[derive(Debug)]
pub(crate) struct Budget {
    /// No exchange starts at or after this moment.
    pub end: Instant,
    /// Exchanges left to start, when the run is bounded by count.
    remaining: Option<AtomicU64>,
}

impl Budget {
    pub(crate) fn new(end: Instant, count: Option<u64>) -> Self {
        Budget {
            end,
            remaining: count.map(AtomicU64::new),
        }
    }

    /// Takes the right to start one more exchange, if time and count allow.
    pub(crate) fn take(&self) -> bool {
        if Instant::now() >= self.end {
            return false;
        }
        match &self.remaining {
            None => true,
            Some(remaining) => remaining
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }

    /// Whether the count, if any, has been used up.
    pub(crate) fn count_reached(&self) -> bool {
        self.remaining
            .as_ref()
            .is_some_and(|remaining| remaining.load(Ordering::Relaxed) == 0)
    }
}

/// What the workers of one run share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub plan: Plan,
    pub budget: Budget,
    pub live: Arc<Live>,
}

impl Shared {
    fn new(plan: &Plan, live: Arc<Live>, started: Instant) -> Arc<Self> {
        Arc::new(Shared {
            plan: plan.clone(),
            budget: Budget::new(started + plan.duration, plan.count),
            live,
        })
    }

    /// The moment after which workers still running are abandoned: the end of
    /// the run, plus one timeout for the exchange in flight and one for a clean close.
    fn hard_deadline(&self) -> Instant {
        self.budget.end + self.plan.timeout * 2 + HARD_GRACE
    }
}

/// Runs `worker(id, shared)` for every worker of the plan, bounded by the
/// plan's budget and hard deadline, and reports what they counted.
pub(crate) async fn run_budgeted<F, Fut>(shared: Arc<Shared>, worker: F) -> Outcome
where
    F: Fn(usize, Arc<Shared>) -> Fut,
    Fut: Future<Output = Tally> + Send + 'static,
{
    let tally = run_workers(shared.plan.workers, shared.hard_deadline(), |id| {
        worker(id, Arc::clone(&shared))
    })
    .await;
    Outcome {
        tally,
        count_reached: shared.budget.count_reached(),
        ..Outcome::default()
    }
}

/// Worker `worker`'s two messages of `size` bytes, sent in turn so that a
/// stale or replayed reply fails the check against the current one.
pub(crate) fn alternating_messages(worker: usize, size: usize) -> [Vec<u8>; 2] {
    [
        echo_proto::pattern(seed(worker, 0), size),
        echo_proto::pattern(seed(worker, 1), size),
    ]
}

/// Runs `worker(id)` for every worker of the plan and merges their tallies.
pub(crate) async fn run_workers<F, Fut>(workers: usize, deadline: Instant, worker: F) -> Tally
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Tally> + Send + 'static,
{
    let (tally, _) = run_workers_with(workers, deadline, |id| {
        let work = worker(id);
        async move { (work.await, ()) }
    })
    .await;
    tally
}

/// Runs `worker(id)` for every worker, merges their tallies and collects
/// what else they hand back, in no particular order.
///
/// Workers still running at `deadline` are aborted and each counted as a
/// timeout, so the run ends even if some wait is not bounded as it should be.
pub(crate) async fn run_workers_with<F, Fut, T>(
    workers: usize,
    deadline: Instant,
    worker: F,
) -> (Tally, Vec<T>)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = (Tally, T)> + Send + 'static,
    T: Send + 'static,
{
    let mut set = JoinSet::new();
    for id in 0..workers {
        set.spawn(worker(id));
    }
    let mut total = Tally::new();
    let mut results = Vec::with_capacity(workers);
    loop {
        match tokio::time::timeout_at(deadline, set.join_next()).await {
            Ok(None) => break,
            Ok(Some(Ok((tally, result)))) => {
                total.merge(&tally);
                results.push(result);
            }
            Ok(Some(Err(join_error))) => total.failed(
                None,
                &ExchangeError::Io {
                    during: "running a worker",
                    source: std::io::Error::other(join_error.to_string()),
                },
            ),
            Err(_) => {
                let stuck = set.len();
                set.abort_all();
                for _ in 0..stuck {
                    total.failed(
                        None,
                        &ExchangeError::Timeout {
                            during: "for a worker to finish by the run's hard deadline",
                            after: Duration::ZERO,
                        },
                    );
                }
                break;
            }
        }
    }
    (total, results)
}

/// Connects to `addr` with Nagle's algorithm off: every exchange waits for its
/// answer, and Nagle would hold small messages back for the peer's delayed ACK.
pub(crate) async fn connect(addr: SocketAddr) -> Result<TcpStream, ExchangeError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(ExchangeError::Connect)?;
    stream
        .set_nodelay(true)
        .map_err(ExchangeError::io("setting TCP_NODELAY"))?;
    Ok(stream)
}

/// Connects from `source` (port chosen at connect time) to `target`, with
/// Nagle's algorithm off as in [`connect`].
///
/// With the port left to `connect`, the kernel may reuse a source port towards
/// other destinations and recycle ports from TIME_WAIT, as it does for an
/// unbound socket; a plain `bind` to port 0 would reserve a port outright.
pub(crate) async fn connect_from(source: Ipv4Addr, target: SocketAddr) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    nix::sys::socket::setsockopt(
        &socket,
        nix::sys::socket::sockopt::IpBindAddressNoPort,
        &true,
    )
    .map_err(io::Error::from)?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    let stream = socket.connect(target).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The `index`th loopback address counted from 127.0.0.1 (index 0).
pub(crate) fn loopback_address(index: usize) -> Ipv4Addr {
    let offset = u32::try_from(index).unwrap_or(u32::MAX).min(0x00FF_FFFE);
    Ipv4Addr::from(u32::from(Ipv4Addr::LOCALHOST) + offset)
}

/// Connects within `timeout`.
pub(crate) async fn connect_within(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<TcpStream, ExchangeError> {
    tokio::time::timeout(timeout, connect(addr))
        .await
        .map_err(|_| ExchangeError::Timeout {
            during: "connecting",
            after: timeout,
        })?
}

/// The payload seed of worker `worker`'s `n`th distinct message, so no two
/// workers send the same bytes and a reply that went to the wrong connection fails.
pub(crate) fn seed(worker: usize, n: u64) -> u64 {
    ((worker as u64) << 32) | n
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

    #[tokio::test]
    async fn a_count_hands_out_exactly_that_many_exchanges() {
        let budget = Arc::new(Budget::new(
            Instant::now() + Duration::from_secs(60),
            Some(1000),
        ));
        let mut tasks = JoinSet::new();
        for _ in 0..8 {
            let budget = Arc::clone(&budget);
            tasks.spawn(async move {
                let mut taken = 0u64;
                while budget.take() {
                    taken += 1;
                    tokio::task::yield_now().await;
                }
                taken
            });
        }
        let total: u64 = tasks.join_all().await.into_iter().sum();
        assert_eq!(total, 1000);
        assert!(budget.count_reached());
    }

    #[tokio::test]
    async fn a_budget_past_its_end_hands_out_nothing() {
        let budget = Budget::new(Instant::now(), Some(10));
        assert!(!budget.take());
        assert!(!budget.count_reached());
        let open = Budget::new(Instant::now() + Duration::from_secs(60), None);
        assert!(open.take() && open.take());
    }

    #[tokio::test(start_paused = true)]
    async fn workers_stuck_past_the_deadline_are_abandoned_and_counted() {
        let deadline = Instant::now() + Duration::from_secs(1);
        let tally = run_workers(3, deadline, |id| async move {
            let mut tally = Tally::new();
            if id == 0 {
                tally.succeeded(1, Duration::from_micros(1));
            } else {
                std::future::pending::<()>().await;
            }
            tally
        })
        .await;
        assert_eq!(tally.exchanges, 1);
        assert_eq!(tally.errors.timeout, 2);
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
