//! An RFC 862 echo server: every byte a client sends comes back, in order,
//! unchanged, in bounded memory, whatever the client does.
//!
//! [`server`] is the one-call form (default address, stops on Ctrl-C, SIGTERM
//! or Ctrl-D), and [`serve`] the same with [`Options`]: the `echo-server`
//! command is `serve` behind its flags, so the two cannot start differently.
//! [`Server::run`] is the seam both use: it takes sockets that are already
//! bound and a shutdown future, so a test can bind port 0 and decide when the
//! server stops.

#![warn(missing_docs)]

pub mod connection;
pub mod limits;
pub mod listen;
pub mod log;
pub mod send_queue;
pub mod signals;
mod start;
pub mod stats;
mod stream;
mod udp;

use std::future::Future;
use std::io;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use listen::{ListenError, Listener};
pub use start::{Options, ServerError, serve, server};
pub use stats::{Stats, Totals};
pub use udp::REPEATS_ANSWERED;

/// How long connections in flight may take to finish after shutdown starts, by default.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);
/// How long a connection may sit with no byte moving before it is closed, by default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How many UDP datagrams per second one source IP gets answered, by default.
pub const DEFAULT_UDP_RATE: u32 = 1_000;
/// After the grace period, how long the cut connections get to be torn down.
const TEARDOWN: Duration = Duration::from_secs(1);

/// How the server treats its clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Stream connections served at once, over all listeners; further clients
    /// wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Close a connection after this long with no byte moving; `None` never does.
    pub idle_timeout: Option<Duration>,
    /// After shutdown starts, how long connections in flight may take to finish.
    pub grace: Duration,
    /// UDP datagrams per second answered per source IP; 0 for no limit.
    pub udp_rate: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_connections: limits::DEFAULT_MAX_CONNECTIONS,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            grace: DEFAULT_GRACE,
            udp_rate: DEFAULT_UDP_RATE,
        }
    }
}

/// An echo server with its configuration and running totals.
#[derive(Debug)]
pub struct Server {
    config: Config,
    stats: Arc<Stats>,
}

impl Server {
    /// A server that will serve with `config`.
    pub fn new(config: Config) -> Self {
        Server {
            config,
            stats: Arc::default(),
        }
    }

    /// The server's running totals, to report while it runs.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// Serves every listener until `shutdown` resolves, then drains: stops
    /// accepting (closing the listening sockets), lets connections in flight
    /// finish for up to the grace period, closes the rest, and returns the totals.
    ///
    /// Must be called within a multi-threaded or current-thread tokio runtime
    /// with I/O and time enabled.
    pub async fn run(self, listeners: Vec<Listener>, shutdown: impl Future<Output = ()>) -> Totals {
        let stop_accepting = CancellationToken::new();
        let shared = stream::Shared {
            stats: Arc::clone(&self.stats),
            limit: Arc::new(Semaphore::new(
                self.config.max_connections.clamp(1, Semaphore::MAX_PERMITS),
            )),
            idle_timeout: self.config.idle_timeout,
            tracker: TaskTracker::new(),
            hard_stop: CancellationToken::new(),
        };
        // Every UDP port of this server: a datagram from one of them is the
        // server answering itself, or another echo service on the same port.
        let own_ports: Arc<[u16]> = listeners
            .iter()
            .filter_map(|listener| match listener {
                Listener::Udp(udp) => udp.local_addr().ok().map(|addr| addr.port()),
                _ => None,
            })
            .collect();
        let listener_tasks = TaskTracker::new();
        for listener in listeners {
            let stop = stop_accepting.clone();
            let name = listener.to_string();
            match listener {
                Listener::Tcp(tcp) => {
                    listener_tasks.spawn(stream::serve(tcp, name, shared.clone(), stop))
                }
                Listener::Unix(unix, socket_file) => {
                    let shared = shared.clone();
                    listener_tasks.spawn(async move {
                        stream::serve(unix, name, shared, stop).await;
                        drop(socket_file);
                    })
                }
                Listener::Udp(udp) => listener_tasks.spawn(udp::serve(
                    udp,
                    self.config.udp_rate,
                    Arc::clone(&own_ports),
                    Arc::clone(&self.stats),
                    stop,
                )),
            };
        }
        listener_tasks.close();

        shutdown.await;
        stop_accepting.cancel();
        // Listener tasks return at once, dropping (closing) their sockets.
        listener_tasks.wait().await;
        shared.tracker.close();
        let in_flight = shared.tracker.len();
        if in_flight > 0 {
            info!(connections = in_flight, grace = ?self.config.grace, "draining connections");
        }
        if tokio::time::timeout(self.config.grace, shared.tracker.wait())
            .await
            .is_err()
        {
            warn!(
                connections = shared.tracker.len(),
                "grace period over, closing remaining connections"
            );
            shared.hard_stop.cancel();
            // Each task drops its socket as soon as it sees the cancellation.
            let _ = tokio::time::timeout(TEARDOWN, shared.tracker.wait()).await;
        }
        self.stats.snapshot()
    }
}

/// Prints one `listening on <kind> <address>` line per listener to stdout,
/// the line scripts and tests wait for, and nothing else.
///
/// # Errors
/// Writing to stdout failed.
pub fn announce(listeners: &[Listener]) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    for listener in listeners {
        writeln!(stdout, "listening on {listener}")?;
    }
    stdout.flush()
}
