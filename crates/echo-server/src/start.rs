//! The one way the server starts, for the `echo-server` command and the
//! library's `server()` alike: signal handlers, sockets (inherited or bound),
//! the open-files limit, SIGUSR1, the announcement, the run, the totals.

use echo_proto::{Endpoint, Human};
use tracing::{info, warn};

use crate::config::{Config, Splice};
use crate::listen;
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
        if config.udp && !config.listen.iter().any(|endpoint| matches!(endpoint, Endpoint::Ip(_))) {
            warn!("--udp echoes UDP on IP addresses only, and no --listen address is one: no UDP is served");
        }
        let max_connections = plan.max_connections;
        let config = Config {
            max_connections: Some(max_connections),
            event_loops: plan.event_loops,
            ..config.clone()
        };
        let server = Server::new(config.clone());
        signals::report_on_sigusr1(server.stats()).map_err(ServerError::Signals)?;
        announce(&listeners).map_err(ServerError::Stdout)?;
        notify::ready(listeners.len());
        info!(
            listeners = listeners.len(),
            max_connections,
            idle_timeout = %config
                .idle_timeout()
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
