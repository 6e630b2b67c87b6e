//! The one way the server starts, for the `echo-server` command and the
//! library's `server()` alike: signal handlers, sockets (inherited or bound),
//! the open-files limit, SIGUSR1, the announcement, the run, the totals.

use std::time::Duration;

use echo_proto::{DEFAULT_ADDR, Endpoint, Human};
use tracing::{info, warn};

use crate::listen;
use crate::server::{
    Config, DEFAULT_EVENT_LOOPS, DEFAULT_GRACE, DEFAULT_IDLE_TIMEOUT, DEFAULT_UDP_RATE, Server,
    ServerError, announce,
};
use crate::stats::Totals;
use crate::{limits, notify, signals};

/// What to serve and how, as `echo-server`'s flags say it;
/// `Options::default()` is the seed's server on [`DEFAULT_ADDR`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Where to listen, unless systemd passed sockets (`LISTEN_FDS`), which win.
    pub listen: Vec<Endpoint>,
    /// Also echo UDP on every IP address listened on, on the same port.
    pub udp: bool,
    /// Stream connections served at once; `None` derives the limit from the
    /// open-files limit, once it is raised.
    pub max_connections: Option<usize>,
    /// See [`Config::idle_timeout`].
    pub idle_timeout: Option<Duration>,
    /// See [`Config::grace`].
    pub grace: Duration,
    /// See [`Config::udp_rate`].
    pub udp_rate: u32,
    /// See [`Config::event_loops`].
    pub event_loops: usize,
    /// See [`Config::splice`].
    pub splice: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: vec![Endpoint::Ip(DEFAULT_ADDR)],
            udp: false,
            max_connections: None,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            grace: DEFAULT_GRACE,
            udp_rate: DEFAULT_UDP_RATE,
            event_loops: DEFAULT_EVENT_LOOPS,
            splice: true,
        }
    }
}

/// The seed's server: echoes on [`DEFAULT_ADDR`] with the default
/// configuration until Ctrl-C, SIGTERM, SIGHUP or Ctrl-D on a terminal, and
/// logs to stderr as `echo-server` does.
///
/// # Errors
/// A [`ServerError`] when the server cannot start; once serving, it returns `Ok`.
pub fn server() -> Result<Totals, ServerError> {
    crate::log::init(crate::log::Format::Human);
    serve(&Options::default())
}

/// Runs the server as `echo-server` does with `options`, in a runtime of its
/// own, until a signal stops it and the drain is over; returns the totals,
/// which it has logged.
///
/// Logs go wherever the global `tracing` subscriber sends them
/// ([`crate::log::init`] sets up the command's); with `NOTIFY_SOCKET` set,
/// the service manager hears of readiness, the drain and SIGUSR1's totals.
///
/// # Errors
/// A [`ServerError`] when the server cannot start.
pub fn serve(options: &Options) -> Result<Totals, ServerError> {
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
            options.max_connections,
            options.event_loops,
            options.splice,
        )?;
        let listeners = match listen::inherited()? {
            Some(listeners) => listeners,
            None => listen::bind(&options.listen, options.udp, plan.event_loops)?,
        };
        // Only once bound: a server that cannot start says one line, the error.
        fd_limit.log();
        if plan.event_loops < options.event_loops {
            warn!(
                "the open-files limit of {} allows {} event loops, not the {} asked for, \
                 with {} connections at once",
                fd_limit.soft().unwrap_or(0),
                plan.event_loops,
                options.event_loops,
                plan.max_connections
            );
        }
        if options.udp && !options.listen.iter().any(|endpoint| matches!(endpoint, Endpoint::Ip(_))) {
            warn!("--udp echoes UDP on IP addresses only, and no --listen address is one: no UDP is served");
        }
        let max_connections = plan.max_connections;
        let config = Config {
            max_connections,
            idle_timeout: options.idle_timeout,
            grace: options.grace,
            udp_rate: options.udp_rate,
            event_loops: plan.event_loops,
            splice: options.splice,
        };
        let server = Server::new(config.clone());
        signals::report_on_sigusr1(server.stats()).map_err(ServerError::Signals)?;
        announce(&listeners).map_err(ServerError::Stdout)?;
        notify::ready(listeners.len());
        info!(
            listeners = listeners.len(),
            max_connections,
            idle_timeout = %config
                .idle_timeout
                .map_or_else(|| "never".to_owned(), |timeout| Human(timeout).to_string()),
            grace = %Human(config.grace),
            "echo-server started"
        );
        let stats = server.stats();
        let drain_starts = async move {
            let reason = shutdown.started().await;
            info!(reason, "shutting down");
            notify::stopping(stats.active.load(std::sync::atomic::Ordering::Relaxed));
        };
        let totals = server.run(listeners, drain_starts).await?;
        totals.log("echo-server stopped");
        Ok(totals)
    })
}
