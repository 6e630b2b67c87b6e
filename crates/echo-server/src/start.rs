//! The one way the server starts, for the `echo-server` command and the
//! library's `server()` alike: signal handlers, sockets (inherited or bound),
//! the open-files limit, SIGUSR1, the metrics endpoint, the announcement, the
//! run, the totals.

use std::io::{self, Write as _};
use std::net::{SocketAddr, TcpListener};

use echo_proto::{Endpoint, Human};
use tracing::{info, warn};

use crate::config::{Config, Splice};
use crate::listen::{self, ListenAddr, ListenError, Listener};
use crate::metrics::{self, Metrics};
use crate::server::{Server, ServerError, announce};
use crate::stats::Totals;
use crate::{limits, notify, signals};

/// The seed's server: echoes on [`echo_proto::DEFAULT_ADDR`] with the default
/// configuration until Ctrl-C, SIGTERM, SIGHUP or Ctrl-D on a terminal, and
/// logs to stderr as `echo-server` does.
///
/// # Errors
/// A [`ServerError`] when the server cannot start; once serving, it returns `Ok`.
pub fn server() -> Result<Totals, ServerError> {
    crate::log::init(
        crate::log::Format::Human,
        echo_generate::color::When::Auto.stderr(),
    );
    serve(&Config::default())
}

/// Runs the server as `echo-server` does with `config`, in a runtime of its
/// own, until a signal stops it and the drain is over; returns the totals,
/// which it has logged.
///
/// Logs go wherever the global `tracing` subscriber sends them
/// ([`crate::log::init`] sets up the command's); with `NOTIFY_SOCKET` set,
/// the service manager hears of readiness, the drain and SIGUSR1's totals.
///
/// # Errors
/// A [`ServerError`] when the server cannot start.
pub fn serve(config: &Config) -> Result<Totals, ServerError> {
    let runtime = tokio::runtime::Runtime::new().map_err(ServerError::Runtime)?;
    runtime.block_on(async {
        // Handlers go in before the announcement, so a signal sent as soon as
        // the address is known already means a graceful stop.
        let shutdown = signals::on_signals().map_err(ServerError::Signals)?;
        // The loops are counted before binding: only listeners shared by
        // several loops may allow SO_REUSEPORT.
        let fd_limit = limits::raise_fd_limit();
        let plan = limits::plan(
            fd_limit.soft(),
            config.max_connections,
            config.event_loops,
            config.splice == Splice::Bulk,
        )?;
        let listeners = match listen::inherited()? {
            Some(listeners) => listeners,
            None => listen::bind(&config.listen, config.udp, plan.event_loops)?,
        };
        let metrics_listener = config.metrics.map(bind_metrics).transpose()?;
        // Only once bound: a server that cannot start says one line, the error.
        fd_limit.log();
        if plan.event_loops < config.event_loops {
            warn!(
                "the open-files limit of {} allows {} event loops, not the {} asked for, \
                 with {} connections at once",
                fd_limit.soft().unwrap_or(0),
                plan.event_loops,
                config.event_loops,
                plan.max_connections
            );
        }
        let plain_ip = |addr: &ListenAddr| matches!(addr, ListenAddr::Plain(Endpoint::Ip(_)));
        if config.udp && !config.listen.iter().any(plain_ip) {
            warn!("--udp echoes UDP on plain IP addresses only, and no --listen address is one: no UDP is served");
        }
        let serves_tls = listeners.iter().any(|listener| matches!(listener, Listener::Tls(_)));
        if config.tls.tls_cert.is_some() && !serves_tls {
            warn!("--tls-cert is given but no --listen address is tls:IP:PORT: nothing is served over TLS");
        }
        let max_connections = match (config.max_connections, config.metrics) {
            // A limit derived from the descriptors leaves the endpoint's own to it.
            (None, Some(_)) => plan.max_connections.saturating_sub(metrics::DESCRIPTORS).max(1),
            _ => plan.max_connections,
        };
        let config = Config {
            max_connections: Some(max_connections),
            event_loops: plan.event_loops,
            ..config.clone()
        };
        let mut server = Server::new(config.clone());
        if serves_tls {
            server.load_tls()?;
        }
        signals::report_on_sigusr1(server.stats()).map_err(ServerError::Signals)?;
        let metrics = match metrics_listener {
            Some((listener, addr)) => {
                let metrics = Metrics::start(listener, server.stats(), max_connections)
                    .map_err(ServerError::EventLoop)?;
                Some((metrics, addr))
            }
            None => None,
        };
        announce(&listeners).map_err(ServerError::Stdout)?;
        if let Some((_, addr)) = &metrics {
            announce_metrics(*addr).map_err(ServerError::Stdout)?;
            info!(url = %format!("http://{addr}/metrics"), "serving metrics");
        }
        notify::ready(listeners.len());
        info!(
            listeners = listeners.len(),
            event_loops = plan.event_loops,
            max_connections,
            idle_timeout = %config
                .idle_timeout()
                .map_or_else(|| "never".to_owned(), |timeout| Human(timeout).to_string()),
            grace = %Human(config.grace),
            "echo-server started"
        );
        let stats = server.stats();
        let metrics = metrics.map(|(metrics, _)| metrics);
        let drain_starts = async {
            let reason = shutdown.started().await;
            // A scraper must not hold the process up: the endpoint closes first.
            if let Some(metrics) = &metrics {
                metrics.stop();
            }
            info!(reason, "shutting down");
            notify::stopping(stats.active.load(std::sync::atomic::Ordering::Relaxed));
        };
        let totals = server.run(listeners, drain_starts).await?;
        drop(metrics);
        totals.log("echo-server stopped");
        Ok(totals)
    })
}

/// Binds the `--metrics` address as a TCP listener is bound for `--listen`,
/// so it fails, and is refused, alike; returns it with the address it got.
fn bind_metrics(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ListenError> {
    let endpoint = ListenAddr::Plain(Endpoint::Ip(addr));
    let bound = listen::bind(std::slice::from_ref(&endpoint), false, 1)?;
    let listener = bound.into_iter().find_map(|listener| match listener {
        Listener::Tcp(listener) => Some(listener),
        Listener::Tls(_) | Listener::Udp(_) | Listener::Unix(..) => None,
    });
    let fail = |source| ListenError::Bind {
        endpoint: endpoint.clone(),
        source,
    };
    let listener = listener.ok_or_else(|| fail(io::Error::other("no TCP listener was bound")))?;
    let addr = listener.local_addr().map_err(fail)?;
    Ok((listener, addr))
}

/// Says where the metrics are, as [`announce`] says where the listeners
/// are: `listening on metrics <address>` on stdout (or its JSON event), for
/// scripts and tests that started it on port 0.
fn announce_metrics(addr: SocketAddr) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout.write_all(&crate::log::announcement("metrics", &addr.to_string()))?;
    stdout.flush()
}
