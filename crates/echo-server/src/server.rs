//! The server itself: the `run` seam that serves bound
//! sockets until a shutdown future resolves, and the announcement.

use std::future::Future;
use std::io;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::{Config, Splice};
use crate::engine;
use crate::limits;
use crate::listen::{ListenError, Listener};
use crate::stats::{Stats, Totals};
use crate::tls::{self, TlsError};
use crate::udp;

/// After the grace period, how long the cut connections get to be torn down.
const TEARDOWN: Duration = Duration::from_secs(1);

/// An echo server with its configuration and running totals.
#[derive(Debug)]
pub struct Server {
    config: Config,
    stats: Arc<Stats>,
    /// What TLS listeners serve with, once loaded.
    tls: Option<Arc<tls::Context>>,
}

impl Server {
    /// A server that will serve with `config`.
    pub fn new(config: Config) -> Self {
        Server {
            config,
            stats: Arc::default(),
            tls: None,
        }
    }

    /// Loads the certificate, key and client CAs TLS listeners serve with,
    /// so that a missing or broken file stops the server before it binds
    /// anything; [`Server::run`] loads them itself if this was not called.
    ///
    /// # Errors
    /// [`ServerError::Tls`]: a file is missing or unusable, or none was given.
    pub fn load_tls(&mut self) -> Result<(), ServerError> {
        if self.tls.is_none() {
            let context = tls::Context::load(&self.config.tls, Arc::clone(&self.stats))?;
            self.tls = Some(Arc::new(context));
        }
        Ok(())
    }

    /// The server's running totals, to report while it runs.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// Serves every listener until `shutdown` resolves, then drains: stops
    /// accepting (closing the listening sockets), lets connections in flight
    /// finish for up to the grace period, closes the rest, and returns the totals.
    ///
    /// Stream connections are served by an event loop on a thread of its
    /// own; UDP sockets by tasks of the tokio runtime this is called within
    /// (multi-threaded or current-thread, with I/O and time enabled).
    ///
    /// # Errors
    /// [`ServerError::EventLoop`] when the sockets cannot be set up for
    /// serving (out of descriptors or memory), [`ServerError::Tls`] when a
    /// TLS listener has no usable certificate; nothing has been served then.
    pub async fn run(
        mut self,
        listeners: Vec<Listener>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Totals, ServerError> {
        // Every UDP port of this server: a datagram from one of them is the
        // server answering itself, or another echo service on the same port.
        let own_ports: Arc<[u16]> = listeners
            .iter()
            .filter_map(|listener| match listener {
                Listener::Udp(udp) => udp.local_addr().ok().map(|addr| addr.port()),
                _ => None,
            })
            .collect();
        let serves_tls = listeners
            .iter()
            .any(|listener| matches!(listener, Listener::Tls(_)));
        if serves_tls {
            self.load_tls()?;
        }
        let stop_udp = CancellationToken::new();
        let udp_tasks = TaskTracker::new();
        let mut streams = Vec::new();
        for listener in listeners {
            match engine::stream_listener(listener, self.tls.as_ref()) {
                Ok(stream) => streams.push(stream),
                Err(Listener::Udp(udp)) => {
                    let udp =
                        tokio::net::UdpSocket::from_std(udp).map_err(ServerError::EventLoop)?;
                    udp_tasks.spawn(udp::serve(
                        udp,
                        self.config.udp_rate,
                        Arc::clone(&own_ports),
                        Arc::clone(&self.stats),
                        stop_udp.clone(),
                    ));
                }
                // Loaded above for every TLS listener.
                Err(_) => return Err(TlsError::NoCertificate.into()),
            }
        }
        udp_tasks.close();
        let mut event_loop = if streams.is_empty() {
            None
        } else {
            let shared = engine::Shared {
                stats: Arc::clone(&self.stats),
                limit: Arc::new(engine::Limit::new(self.config.connection_limit())),
                idle_timeout: self.config.idle_timeout(),
                splice: self.config.splice == Splice::Bulk,
                handshake_timeout: serves_tls.then_some(self.config.tls.tls_handshake_timeout),
            };
            let handle = engine::start(streams, self.config.event_loops, &shared);
            Some(handle.map_err(ServerError::EventLoop)?)
        };

        shutdown.await;
        stop_udp.cancel();
        if let Some(event_loop) = &event_loop {
            event_loop.stop_accepting();
        }
        // UDP tasks return at once, dropping (closing) their sockets.
        udp_tasks.wait().await;
        let Some(event_loop) = &mut event_loop else {
            return Ok(self.stats.snapshot());
        };
        let in_flight = self.stats.active.load(std::sync::atomic::Ordering::Relaxed);
        if in_flight > 0 {
            info!(connections = in_flight, grace = %echo_proto::Human(self.config.grace), "draining connections");
        }
        if tokio::time::timeout(self.config.grace, event_loop.finished())
            .await
            .is_err()
        {
            warn!(
                connections = self.stats.active.load(std::sync::atomic::Ordering::Relaxed),
                "grace period over, closing remaining connections"
            );
            event_loop.cut();
            let _ = tokio::time::timeout(TEARDOWN, event_loop.finished()).await;
        }
        Ok(self.stats.snapshot())
    }
}

/// Prints one `listening on <kind> <address>` line per listener to stdout,
/// the line scripts and tests wait for, and nothing else; with JSON logs, as
/// a JSON event with `kind` and `address` fields ([`crate::log::announcement`]).
///
/// # Errors
/// Writing to stdout failed.
pub fn announce(listeners: &[Listener]) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    for listener in listeners {
        // A listener shows itself as `kind address`, the announcement's own words.
        let shown = listener.to_string();
        let (kind, address) = shown.split_once(' ').unwrap_or((&shown, ""));
        stdout.write_all(&crate::log::announcement(kind, address))?;
    }
    stdout.flush()
}

/// Why the server could not start; once it serves, nothing stops it but a signal.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The tokio runtime could not start (out of threads or memory).
    #[error("cannot start the async runtime")]
    Runtime(#[source] io::Error),
    /// A signal handler could not be installed.
    #[error("cannot install signal handlers")]
    Signals(#[source] io::Error),
    /// A listening socket could not be bound or inherited; the error names it.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// No connection limit was given, and the open-files limit is too low
    /// for the default one to serve enough connections.
    #[error(transparent)]
    Descriptors(#[from] limits::TooFewDescriptors),
    /// The `listening on` lines could not be written to stdout.
    #[error("cannot write the announcement to stdout")]
    Stdout(#[source] io::Error),
    /// TLS listeners have no certificate and key, or those given cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The sockets could not be set up for serving: the epoll set, its
    /// waker or a registration failed (out of descriptors or memory).
    #[error("cannot set up the event loop")]
    EventLoop(#[source] io::Error),
}
