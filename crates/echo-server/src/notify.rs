//! Telling a service manager how the server is doing, by systemd's notify
//! protocol: `READY=1` once every listener is bound and announced,
//! `STOPPING=1` when the drain starts, and `STATUS=` lines: at both, and
//! the totals on SIGUSR1.
//!
//! It speaks only when `NOTIFY_SOCKET` is set, to a socket path or, for a
//! name starting with `@`, to Linux's abstract namespace, as `sd_notify(3)`
//! reads it; the variable is left in place.
//!
//! Nothing here ever waits. A manager that stops reading fills its socket's
//! queue (`net.unix.max_dgram_qlen` datagrams, 10 by default), and a blocking
//! send would then hold a runtime worker, or the start-up itself, until the
//! manager reads again, which may be never: the server would neither serve
//! nor stop. So each datagram goes without waiting. `READY=1` and
//! `STOPPING=1`, which the manager acts on, are kept when the queue is full
//! and retried from a task of their own until they go, or the process ends
//! first: the exit never waits for them. A `STATUS=` line that cannot go is
//! dropped and counted in `notify_dropped`; the next one says the same
//! thing, newer. A message that fails for any other reason (no socket at
//! that path) is logged, never fatal: the server serves whether or not
//! anyone is listening.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::warn;

use crate::stats::{Stats, Totals};

/// How often a kept `READY=1` or `STOPPING=1` is tried again: soon enough
/// for a manager that was only slow, rare enough to cost nothing.
const RETRY_INTERVAL: Duration = Duration::from_millis(100);

/// The one notifier of the process, as `NOTIFY_SOCKET` is one per process.
///
/// The lock is held only around sends that cannot block, never across an
/// `.await`, so whoever takes it gets it at once.
static NOTIFIER: Mutex<Notifier> = Mutex::new(Notifier::new());

/// The socket notifications go from, and those waiting for room.
struct Notifier {
    /// Unbound and non-blocking, opened at the first message and kept, so a
    /// retry every [`RETRY_INTERVAL`] costs no socket of its own.
    socket: Option<UnixDatagram>,
    /// `READY=1` and `STOPPING=1` messages that found the queue full, oldest
    /// first; while any waits, nothing newer is sent, so the manager never
    /// hears of the drain before it heard the server was ready.
    pending: VecDeque<String>,
    /// The task retrying `pending`. It clears this, under the lock, when
    /// nothing is left, and a runtime dropped at exit ends it unfinished, so
    /// a finished one counts as none.
    retry: Option<JoinHandle<()>>,
    /// Whether a dropped `STATUS=` line was warned of: one warning says it,
    /// a line per drop would only add to a stalled system's load.
    warned_drop: bool,
}

/// What became of a message sent without waiting.
enum Sent {
    /// The whole datagram is in the manager's queue.
    Yes,
    /// The queue is full: the manager is not reading, or not yet.
    QueueFull,
}

/// Every listener is bound and announced: the server accepts connections.
pub fn ready(listeners: usize) {
    send_surely(format!(
        "READY=1\nSTATUS=serving on {listeners} listeners\n"
    ));
}

/// The drain has started: listeners are closed, connections in flight finish.
pub fn stopping(connections: u64) {
    send_surely(format!(
        "STOPPING=1\nSTATUS=stopping: draining {connections} connections\n"
    ));
}

/// The running totals, as `systemctl status` shows them; dropped, and
/// counted in `stats`, when the manager's queue is full.
pub fn status(totals: &Totals, stats: &Stats) {
    let Some(address) = address() else {
        return;
    };
    let message = format!("STATUS={totals}\n");
    let (outcome, first_drop) = {
        let mut notifier = lock();
        let outcome = notifier.send_in_turn(&address, &message);
        let first_drop = matches!(outcome, Ok(Sent::QueueFull)) && !notifier.warned_drop;
        if first_drop {
            notifier.warned_drop = true;
        }
        (outcome, first_drop)
    };
    match outcome {
        Ok(Sent::Yes) => {}
        Ok(Sent::QueueFull) => {
            Stats::bump(&stats.notify_dropped);
            if first_drop {
                warn!(
                    "the service manager is not reading its socket: STATUS= lines that \
                     cannot go are dropped, and counted in notify_dropped"
                );
            }
        }
        Err(err) => warn!(error = %err, "cannot notify the service manager"),
    }
}

/// Sends `message` now, or keeps it and retries until it goes.
fn send_surely(message: String) {
    let Some(address) = address() else {
        return;
    };
    let outcome = {
        let mut notifier = lock();
        let outcome = notifier.send_in_turn(&address, &message);
        if let Ok(Sent::QueueFull) = outcome {
            notifier.pending.push_back(message.clone());
            notifier.keep_retrying(&address);
        }
        outcome
    };
    match outcome {
        Ok(Sent::Yes) => {}
        Ok(Sent::QueueFull) => warn!(
            notification = %first_line(&message),
            "the service manager is not reading its socket: the notification is kept \
             and retried until it goes"
        ),
        Err(err) => warn!(
            error = %err,
            notification = %first_line(&message),
            "cannot notify the service manager"
        ),
    }
}

/// What a log line calls a notification: `READY=1`, say.
fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or_default()
}

/// Where `NOTIFY_SOCKET` points; `None` when it is unset or unusable, the
/// latter logged.
fn address() -> Option<SocketAddr> {
    let name = std::env::var_os("NOTIFY_SOCKET")?;
    match socket_address(&name) {
        Ok(address) => Some(address),
        Err(err) => {
            warn!(error = %err, socket = %name.to_string_lossy(), "cannot notify the service manager");
            None
        }
    }
}

/// Reads `name` as `sd_notify(3)` does: a leading `@` stands for the NUL
/// that starts a name in the abstract namespace, anything else is a path.
fn socket_address(name: &OsStr) -> io::Result<SocketAddr> {
    match name.as_bytes().strip_prefix(b"@") {
        Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name),
        None => SocketAddr::from_pathname(name),
    }
}

/// The notifier, also after a panic elsewhere while it was held: its state
/// is whole between any two statements.
fn lock() -> MutexGuard<'static, Notifier> {
    NOTIFIER.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Tries the kept messages every [`RETRY_INTERVAL`] until none is left.
async fn retry(address: SocketAddr) {
    loop {
        tokio::time::sleep(RETRY_INTERVAL).await;
        let mut notifier = lock();
        notifier.flush(&address);
        if notifier.pending.is_empty() {
            notifier.retry = None;
            return;
        }
    }
}

impl Notifier {
    const fn new() -> Notifier {
        Notifier {
            socket: None,
            pending: VecDeque::new(),
            retry: None,
            warned_drop: false,
        }
    }

    /// Sends `message` to `address` without waiting.
    fn send(&mut self, address: &SocketAddr, message: &str) -> io::Result<Sent> {
        let socket = match &mut self.socket {
            Some(socket) => socket,
            slot @ None => {
                let socket = UnixDatagram::unbound()?;
                socket.set_nonblocking(true)?;
                slot.insert(socket)
            }
        };
        loop {
            match socket.send_to_addr(message.as_bytes(), address) {
                Ok(n) if n == message.len() => return Ok(Sent::Yes),
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "the notification was cut short",
                    ));
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(Sent::QueueFull),
                Err(err) => return Err(err),
            }
        }
    }

    /// Sends `message` after the kept ones, if they all go; a message that
    /// would overtake one still kept counts as finding the queue full.
    fn send_in_turn(&mut self, address: &SocketAddr, message: &str) -> io::Result<Sent> {
        self.flush(address);
        if self.pending.is_empty() {
            self.send(address, message)
        } else {
            Ok(Sent::QueueFull)
        }
    }

    /// Sends the kept messages, oldest first, until the queue is full again;
    /// one that fails otherwise is logged and given up, as a new one would be.
    fn flush(&mut self, address: &SocketAddr) {
        while let Some(message) = self.pending.pop_front() {
            match self.send(address, &message) {
                Ok(Sent::Yes) => {}
                Ok(Sent::QueueFull) => {
                    self.pending.push_front(message);
                    return;
                }
                Err(err) => warn!(
                    error = %err,
                    notification = %first_line(&message),
                    "cannot notify the service manager"
                ),
            }
        }
    }

    /// Makes sure a task retries the kept messages.
    fn keep_retrying(&mut self, address: &SocketAddr) {
        if self.retry.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        // Every caller runs on the server's runtime; were one not to, the
        // message would still go with the next one sent.
        self.retry = tokio::runtime::Handle::try_current()
            .ok()
            .map(|runtime| runtime.spawn(retry(address.clone())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_at_sign_names_the_abstract_namespace_and_anything_else_a_path() {
        let abstract_address = socket_address(OsStr::new("@echo/notify")).expect("abstract");
        assert_eq!(
            abstract_address.as_abstract_name(),
            Some(&b"echo/notify"[..])
        );
        assert_eq!(abstract_address.as_pathname(), None);
        let path_address = socket_address(OsStr::new("/run/notify")).expect("path");
        assert_eq!(
            path_address.as_pathname(),
            Some(std::path::Path::new("/run/notify"))
        );
    }

    #[test]
    fn a_full_queue_keeps_ready_and_drops_status_until_the_manager_reads() {
        let name = format!("@echo-server-notify-test-{}", std::process::id());
        let address = socket_address(OsStr::new(&name)).expect("address");
        let manager = UnixDatagram::bind_addr(&address).expect("bind");
        let filler = UnixDatagram::unbound().expect("socket");
        filler.set_nonblocking(true).expect("non-blocking");
        let mut filled = 0;
        while filled < 10_000 && filler.send_to_addr(b"filler", &address).is_ok() {
            filled += 1;
        }
        assert!(filled > 0 && filled < 10_000, "{filled}");

        let mut notifier = Notifier::new();
        assert!(matches!(
            notifier.send(&address, "READY=1\n"),
            Ok(Sent::QueueFull)
        ));
        notifier.pending.push_back("READY=1\n".to_owned());
        notifier.flush(&address);
        assert_eq!(notifier.pending.len(), 1);

        let mut buffer = [0u8; 64];
        for _ in 0..filled {
            let n = manager.recv(&mut buffer).expect("a filler");
            assert_eq!(&buffer[..n], b"filler");
        }
        notifier.flush(&address);
        assert!(notifier.pending.is_empty());
        let n = manager.recv(&mut buffer).expect("the kept message");
        assert_eq!(&buffer[..n], b"READY=1\n");
    }
}
