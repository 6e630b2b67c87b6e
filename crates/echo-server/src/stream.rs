//! The accept loop for stream listeners (TCP and Unix) and the task that
//! serves each accepted connection.

use std::fmt::Display;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::connection::{self, EchoError, Transport};
use crate::stats::Stats;

/// The first pause after a resource error from `accept`, doubled each time it repeats.
const ACCEPT_BACKOFF_START: Duration = Duration::from_millis(5);
/// The longest pause after a resource error from `accept`: short enough that
/// the server serves again promptly once descriptors come back.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(500);
/// At most one log line per this period about repeated `accept` failures.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(5);

/// A listening stream socket.
pub(crate) trait Accept: Send + 'static {
    /// The connections it yields.
    type Stream: Transport + 'static;
    /// How a peer is named in logs; formatted only if a log line is written.
    type Peer: Display + Send + 'static;
    /// Accepts one connection.
    fn accept_one(&self) -> impl Future<Output = io::Result<(Self::Stream, Self::Peer)>> + Send;
}

impl Accept for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    type Peer = std::net::SocketAddr;

    async fn accept_one(&self) -> io::Result<(Self::Stream, Self::Peer)> {
        let (stream, peer) = self.accept().await?;
        // Each exchange is a request waiting for its answer: Nagle's algorithm
        // would hold small replies back until the peer's delayed ACK.
        // It fails only on a connection already dead, which the echo then finds out.
        let _ = stream.set_nodelay(true);
        Ok((stream, peer))
    }
}

impl Accept for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    /// Unix peers are unnamed; the listener's path is in the log context already.
    type Peer = &'static str;

    async fn accept_one(&self) -> io::Result<(Self::Stream, Self::Peer)> {
        let (stream, _) = self.accept().await?;
        Ok((stream, "unix peer"))
    }
}

/// Everything a connection task shares with the rest of the server.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    /// Totals for the whole server.
    pub stats: Arc<Stats>,
    /// One permit per connection being served, shared by all stream listeners.
    pub limit: Arc<Semaphore>,
    /// Close a connection after this long without a byte moving; `None` never does.
    pub idle_timeout: Option<Duration>,
    /// Tracks every connection task, so the drain can wait for them.
    pub tracker: TaskTracker,
    /// Cancelled when the grace period is over: connections still open are closed.
    pub hard_stop: CancellationToken,
}

/// Accepts connections on `listener` until `stop` is cancelled, serving each
/// in its own task.
///
/// Each accepted connection waits for a permit before it is served, and the
/// listener accepts nothing more meanwhile, so at the limit further clients
/// wait queued in the kernel instead of being refused.
pub(crate) async fn serve<L: Accept>(
    listener: L,
    name: impl Display,
    shared: Shared,
    stop: CancellationToken,
) {
    let mut backoff = ACCEPT_BACKOFF_START;
    let mut last_log: Option<Instant> = None;
    let mut unlogged_errors = 0u64;
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            accepted = listener.accept_one() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) if is_connection_error(&err) => {
                // This one connection died before we got to it; the next may be fine.
                Stats::bump(&shared.stats.refused);
                debug!(listener = %name, error = %err, "connection lost before it was accepted");
                continue;
            }
            Err(err) => {
                // Out of descriptors or memory: the pending connection stays
                // queued and `accept` would fail again at once, so pause
                // instead of spinning, and say so now and then.
                unlogged_errors += 1;
                if last_log.is_none_or(|at| at.elapsed() >= ACCEPT_LOG_EVERY) {
                    warn!(listener = %name, error = %err, failures = unlogged_errors,
                        "accept failing, backing off up to {ACCEPT_BACKOFF_MAX:?}");
                    last_log = Some(Instant::now());
                    unlogged_errors = 0;
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        backoff = ACCEPT_BACKOFF_START;
        // At the limit this waits, and this listener accepts nothing more
        // meanwhile: later clients queue in the kernel. The permit is taken
        // after `accept`, not before, so that one listener waiting for
        // clients never holds a permit another listener's clients need.
        let permit = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            permit = shared.limit.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                // The semaphore is never closed; if it were, serving would be over.
                Err(_) => return,
            },
        };
        Stats::bump(&shared.stats.accepted);
        Stats::bump(&shared.stats.active);
        let connection = shared.clone();
        shared.tracker.spawn(async move {
            let _permit = permit;
            handle(stream, peer, &connection).await;
            Stats::drop_one(&connection.stats.active);
        });
    }
}

/// Serves one connection to its end and records how it ended.
async fn handle<S: Transport>(mut stream: S, peer: impl Display, shared: &Shared) {
    debug!(%peer, "connection opened");
    let stats = &shared.stats;
    let mut written = 0u64;
    let result = tokio::select! {
        result = connection::echo(&mut stream, shared.idle_timeout, |n| {
            written += n as u64;
            Stats::add(&stats.stream_bytes, n);
        }) => result,
        () = shared.hard_stop.cancelled() => {
            Stats::bump(&stats.cut);
            forget_unsent(&stream, written, stats);
            debug!(%peer, "connection closed: shutdown grace period over");
            return;
        }
    };
    match result {
        Ok(()) => debug!(%peer, "connection finished"),
        Err(EchoError::Idle(after)) => {
            Stats::bump(&stats.idle_closed);
            forget_unsent(&stream, written, stats);
            debug!(%peer, "connection closed: idle for {after:?}");
            // Best effort: a FIN tells the peer we are done rather than leaving it guessing.
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
        }
        Err(EchoError::Io(err)) => {
            Stats::bump(&stats.failed);
            debug!(%peer, error = %err, "connection failed");
        }
    }
}

/// Moves what a connection closed early still had queued from the echoed
/// bytes to the unsent ones: with its input unread, the close is a reset,
/// and the kernel throws the queue away.
fn forget_unsent<S: Transport>(stream: &S, written: u64, stats: &Stats) {
    if let Some(unsent) = stream.send_queue().unsent() {
        // A Unix socket counts buffer sizes, not bytes: never more than was written.
        stats.unsend(unsent.min(written));
    }
}

/// Errors that concern only the connection being accepted, not the listener:
/// accept(2) reports a pending network error of the new connection this way,
/// and Linux asks callers to treat those like EAGAIN.
fn is_connection_error(err: &io::Error) -> bool {
    use nix::errno::Errno;
    let Some(code) = err.raw_os_error() else {
        return false;
    };
    matches!(
        Errno::from_raw(code),
        Errno::ECONNABORTED
            | Errno::ECONNRESET
            | Errno::EINTR
            | Errno::EPROTO
            | Errno::EPERM
            | Errno::ETIMEDOUT
            | Errno::ENETDOWN
            | Errno::ENETUNREACH
            | Errno::ENOPROTOOPT
            | Errno::EHOSTDOWN
            | Errno::EHOSTUNREACH
            | Errno::ENONET
            | Errno::EOPNOTSUPP
    )
}
