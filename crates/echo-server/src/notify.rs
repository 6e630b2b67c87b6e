//! Telling a service manager how the server is doing, by systemd's notify
//! protocol: `READY=1` once every listener is bound and announced,
//! `STOPPING=1` when the drain starts, and `STATUS=` lines: at both, and
//! the totals on SIGUSR1.
//!
//! It speaks only when `NOTIFY_SOCKET` is set, and leaves that variable in
//! place. A message that cannot be sent is logged, never fatal: the server
//! serves whether or not anyone is listening.

use sd_notify::NotifyState;
use tracing::warn;

use crate::stats::Totals;

/// Every listener is bound and announced: the server accepts connections.
pub fn ready(listeners: usize) {
    send(&[
        NotifyState::Ready,
        NotifyState::Status(&format!("serving on {listeners} listeners")),
    ]);
}

/// The drain has started: listeners are closed, connections in flight finish.
pub fn stopping(connections: u64) {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status(&format!("stopping: draining {connections} connections")),
    ]);
}

/// The running totals, as `systemctl status` shows them.
pub fn status(totals: &Totals) {
    send(&[NotifyState::Status(&totals.to_string())]);
}

fn send(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(err) = sd_notify::notify(states) {
        warn!(error = %err, "cannot notify the service manager");
    }
}
