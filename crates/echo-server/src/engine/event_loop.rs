//! One event loop: one thread, one epoll set (through mio), the
//! connections in a slab, one read buffer for all of them, and a coarse
//! sweep for the idle ones.
//!
//! A task per connection on a multi-threaded runtime costs more than the
//! echo itself on small exchanges: wake-ups across threads, a deregistration
//! before every close, a timer per wait. Here a connection is an entry in a
//! table, closing it is one `close(2)`, and an idle one costs a few dozen
//! bytes.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use slab::Slab;
use tracing::{debug, error, warn};

use super::control::{CUT, Control, DRAINING};
use super::limit::Limit;
use super::stream::{Held, Listen, Peer, Stream};
use crate::connection::{Echo, Look, MAX_PIPES, Readiness, Scratch, Socket as _, Step};
use crate::stats::Stats;

/// The first pause after a resource error from `accept`, doubled each time it repeats.
const ACCEPT_BACKOFF_START: Duration = Duration::from_millis(5);
/// The longest pause after a resource error from `accept`: short enough that
/// the server serves again promptly once descriptors come back.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(500);
/// At most one log line per this period about repeated `accept` failures.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(5);
/// Readiness events taken from the kernel per wait.
const EVENTS_PER_WAIT: usize = 1024;
/// The token of the waker through which the rest of the server speaks.
const WAKER: Token = Token(usize::MAX);
/// Listener `i` has token `LISTENERS_BELOW - 1 - i`; connections have their slab key.
const LISTENERS_BELOW: usize = usize::MAX;

/// Everything the event loop shares with the rest of the server.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    /// Totals for the whole server.
    pub stats: Arc<Stats>,
    /// One place per connection being served, over all stream listeners.
    pub limit: Arc<Limit>,
    /// Close a connection once it has read nothing and its peer taken
    /// nothing for this long; `None` never does.
    pub idle_timeout: Option<Duration>,
    /// Bulk connections may splice (see [`crate::Config::splice`]).
    pub splice: bool,
    /// How long a TLS handshake may take, when a TLS listener is served.
    pub handshake_timeout: Option<Duration>,
}

/// Makes event loop `index` with its epoll set and listeners, not yet running.
///
/// # Errors
/// The epoll set or its waker could not be made, or a listener could not be
/// registered (out of descriptors or memory).
pub(super) fn prepare(
    index: usize,
    listeners: Vec<Box<dyn Listen>>,
    shared: Shared,
) -> io::Result<EventLoop> {
    let poll = Poll::new()?;
    let control = Arc::new(Control::new(poll.registry(), WAKER)?);
    let mut accepting = Vec::with_capacity(listeners.len());
    for (index, mut listener) in listeners.into_iter().enumerate() {
        poll.registry().register(
            &mut listener,
            listener_token(index),
            mio::Interest::READABLE,
        )?;
        accepting.push(Some(Accepting {
            listener,
            backoff: ACCEPT_BACKOFF_START,
            paused_until: None,
            last_log: None,
            unlogged_errors: 0,
        }));
    }
    let now = Instant::now();
    Ok(EventLoop {
        index,
        poll,
        control: Arc::clone(&control),
        listeners: accepting,
        connections: Slab::new(),
        scratch: Scratch::new(MAX_PIPES),
        next_sweep: sweep_period(&shared).map(|every| now + every),
        shared,
        yielded: VecDeque::new(),
        waiting_for_place: false,
        now,
    })
}

fn listener_token(index: usize) -> Token {
    Token(LISTENERS_BELOW - 1 - index)
}

/// How often connections are looked over, when any timeout is set: by the
/// shorter of the idle timeout and the handshake timeout.
fn sweep_period(shared: &Shared) -> Option<Duration> {
    let shortest = match (shared.idle_timeout, shared.handshake_timeout) {
        (Some(idle), Some(handshake)) => idle.min(handshake),
        (idle, handshake) => idle.or(handshake)?,
    };
    Some(sweep_every(shortest))
}

/// How often idle connections are looked for: often enough that a timeout
/// means about what it says (at most an eighth late), rarely enough that
/// 20,000 idle connections cost nothing worth measuring.
fn sweep_every(timeout: Duration) -> Duration {
    (timeout / 8).clamp(Duration::from_millis(5), Duration::from_secs(1))
}

/// One listener and its state of accepting.
#[derive(Debug)]
struct Accepting {
    listener: Box<dyn Listen>,
    backoff: Duration,
    /// After a resource error, when to try again.
    paused_until: Option<Instant>,
    last_log: Option<Instant>,
    unlogged_errors: u64,
}

/// One connection being served.
#[derive(Debug)]
struct Connection {
    stream: Held,
    echo: Echo,
    /// When a byte last moved, or the idle sweep last saw the peer take bytes.
    last_progress: Instant,
    /// What the send queue held when the idle sweep last looked.
    last_look: Option<Look>,
}

/// Why a connection ends.
#[derive(Debug)]
enum Ending {
    Finished,
    Failed(io::Error),
    Idle,
    Cut,
    /// A TLS handshake past its deadline (counted by the stream).
    HandshakeTimeout,
}

#[derive(Debug)]
pub(super) struct EventLoop {
    /// Which of the server's event loops this is.
    pub(super) index: usize,
    poll: Poll,
    pub(super) control: Arc<Control>,
    /// `None` once closed.
    listeners: Vec<Option<Accepting>>,
    connections: Slab<Connection>,
    /// The read buffer and the pipes every connection uses in turn.
    scratch: Scratch,
    shared: Shared,
    /// Connections whose budget ran out with bytes still to move.
    yielded: VecDeque<usize>,
    /// A listener stopped accepting at the connection limit: accept again
    /// when a connection ends.
    waiting_for_place: bool,
    next_sweep: Option<Instant>,
    /// The time of the latest wake-up, good enough for idle clocks.
    now: Instant,
}

impl EventLoop {
    /// Serves until told to stop: drained, or cut.
    pub(super) fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS_PER_WAIT);
        loop {
            match self.control.phase() {
                CUT => {
                    self.close_listeners();
                    self.close_all(|| Ending::Cut);
                    return;
                }
                DRAINING => {
                    self.close_listeners();
                    if self.connections.is_empty() {
                        return;
                    }
                }
                _ => {}
            }
            let timeout = self.poll_timeout();
            if let Err(err) = self.poll.poll(&mut events, timeout) {
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                error!(error = %err, "the event loop cannot wait for events; closing its connections");
                self.close_listeners();
                self.close_all(|| Ending::Failed(io::Error::other("the event loop failed")));
                return;
            }
            self.now = Instant::now();
            for event in &events {
                match event.token() {
                    WAKER => {
                        if self.control.take_place_freed() {
                            self.resume_accepting();
                        }
                    }
                    Token(token) if token >= LISTENERS_BELOW - self.listeners.len() => {
                        self.accept(LISTENERS_BELOW - 1 - token);
                    }
                    Token(key) => self.serve(
                        key,
                        Readiness {
                            readable: event.is_readable(),
                            read_closed: event.is_read_closed(),
                            urgent: event.is_priority(),
                        },
                    ),
                }
            }
            for _ in 0..self.yielded.len() {
                if let Some(key) = self.yielded.pop_front() {
                    self.serve(key, Readiness::ANY);
                }
            }
            self.resume_paused_listeners();
            self.sweep_idle();
        }
    }

    /// How long the next wait may be: not at all with turns to resume, else
    /// until the next sweep or paused listener is due, else forever.
    fn poll_timeout(&self) -> Option<Duration> {
        if !self.yielded.is_empty() {
            return Some(Duration::ZERO);
        }
        let paused = self
            .listeners
            .iter()
            .flatten()
            .filter_map(|accepting| accepting.paused_until);
        let due = self.next_sweep.into_iter().chain(paused).min()?;
        Some(due.saturating_duration_since(Instant::now()))
    }

    /// Accepts on listener `index` until its queue is empty, the connection
    /// limit is reached (later clients wait in the kernel's queue), or
    /// `accept` fails for want of resources (it pauses, instead of spinning).
    fn accept(&mut self, index: usize) {
        loop {
            let Some(Some(accepting)) = self.listeners.get_mut(index) else {
                return;
            };
            if accepting.paused_until.is_some() {
                return;
            }
            if !self.shared.limit.take_or_wait(self.index) {
                self.waiting_for_place = true;
                return;
            }
            let accepted = accepting.listener.accept();
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    self.shared.limit.give_back(self.index);
                    if err.kind() == io::ErrorKind::WouldBlock {
                        accepting.backoff = ACCEPT_BACKOFF_START;
                        return;
                    }
                    if is_connection_error(&err) {
                        // This one connection died before we got to it; the next may be fine.
                        Stats::bump(&self.shared.stats.refused);
                        debug!(listener = accepting.listener.name(), error = %err,
                            "connection lost before it was accepted");
                        continue;
                    }
                    // Out of descriptors or memory: the pending connection
                    // stays queued and `accept` would fail again at once.
                    accepting.unlogged_errors += 1;
                    if accepting
                        .last_log
                        .is_none_or(|at| at.elapsed() >= ACCEPT_LOG_EVERY)
                    {
                        warn!(listener = accepting.listener.name(), error = %err,
                            failures = accepting.unlogged_errors,
                            "accept failing, backing off up to {}", echo_proto::Human(ACCEPT_BACKOFF_MAX));
                        accepting.last_log = Some(Instant::now());
                        accepting.unlogged_errors = 0;
                    }
                    accepting.paused_until = Some(Instant::now() + accepting.backoff);
                    accepting.backoff = (accepting.backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    return;
                }
            };
            accepting.backoff = ACCEPT_BACKOFF_START;
            self.add(stream, peer);
        }
    }

    fn add(&mut self, mut stream: Held, peer: Peer) {
        let stats = &self.shared.stats;
        Stats::bump(&stats.accepted);
        Stats::bump(&stats.active);
        let entry = self.connections.vacant_entry();
        let interest = stream.interest();
        let registered = self
            .poll
            .registry()
            .register(&mut stream, Token(entry.key()), interest);
        if let Err(err) = registered {
            Stats::bump(&stats.failed);
            Stats::drop_one(&stats.active);
            self.shared.limit.give_back(self.index);
            debug!(%peer, error = %err, "connection not served: cannot register it");
            return;
        }
        debug!(%peer, "connection opened");
        let may_splice = self.shared.splice && stream.splice_fd().is_some();
        entry.insert(Connection {
            echo: Echo::new(stream.short_read_drains(), may_splice),
            stream,
            last_progress: self.now,
            last_look: None,
        });
    }

    /// Gives connection `key` its turn.
    fn serve(&mut self, key: usize, ready: Readiness) {
        let Some(connection) = self.connections.get_mut(key) else {
            // An event for a connection closed earlier in the same batch.
            return;
        };
        let before = connection.echo.written();
        let turn = connection
            .echo
            .advance(&mut connection.stream, &mut self.scratch, ready);
        // One count per turn, not per write: the totals are shared by every loop.
        let written = connection.echo.written() - before;
        if written > 0 {
            self.shared
                .stats
                .stream_bytes
                .fetch_add(written, Ordering::Relaxed);
        }
        match turn {
            Ok(turn) => {
                if turn.moved {
                    connection.last_progress = self.now;
                }
                match turn.step {
                    Step::Wait => {}
                    Step::Yield => self.yielded.push_back(key),
                    Step::Finished => self.close(key, Ending::Finished),
                }
            }
            Err(err) => self.close(key, Ending::Failed(err)),
        }
    }

    fn close(&mut self, key: usize, ending: Ending) {
        let Some(mut connection) = self.connections.try_remove(key) else {
            return;
        };
        connection.echo.release(&mut self.scratch);
        let stats = &self.shared.stats;
        let peer = if tracing::enabled!(tracing::Level::DEBUG) {
            connection.stream.peer()
        } else {
            String::new()
        };
        match ending {
            Ending::Finished => debug!(%peer, "connection finished"),
            Ending::Failed(err) => {
                Stats::bump(&stats.failed);
                debug!(%peer, error = %err, "connection failed");
            }
            Ending::HandshakeTimeout => {
                Stats::bump(&stats.failed);
                debug!(%peer, "connection closed: TLS handshake timed out");
            }
            Ending::Idle => {
                Stats::bump(&stats.idle_closed);
                let owed = forget_unsent(&connection, stats);
                connection.stream.end_early(owed);
                debug!(%peer, owed, "connection closed: idle");
            }
            Ending::Cut => {
                Stats::bump(&stats.cut);
                let owed = forget_unsent(&connection, stats);
                connection.stream.end_early(owed);
                debug!(%peer, owed, "connection closed: shutdown grace period over");
            }
        }
        // Closing the socket also takes it out of the epoll set: no
        // deregistration, one system call.
        drop(connection);
        Stats::drop_one(&stats.active);
        self.shared.limit.give_back(self.index);
        if self.waiting_for_place {
            self.resume_accepting();
        }
    }

    /// Accepts again on every listener, after the limit had stopped it.
    fn resume_accepting(&mut self) {
        self.waiting_for_place = false;
        for index in 0..self.listeners.len() {
            self.accept(index);
        }
    }

    fn close_all(&mut self, ending: impl Fn() -> Ending) {
        let keys: Vec<usize> = self.connections.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.close(key, ending());
        }
    }

    /// Closes every listener, removing the socket files this server created;
    /// clients still queued are then reset by the kernel.
    fn close_listeners(&mut self) {
        for slot in &mut self.listeners {
            *slot = None;
        }
        self.waiting_for_place = false;
    }

    fn resume_paused_listeners(&mut self) {
        for index in 0..self.listeners.len() {
            let due = self.listeners[index]
                .as_ref()
                .and_then(|accepting| accepting.paused_until)
                .is_some_and(|at| at <= self.now);
            if due {
                if let Some(Some(accepting)) = self.listeners.get_mut(index) {
                    accepting.paused_until = None;
                }
                self.accept(index);
            }
        }
    }

    /// Closes the connections where nothing moved for too long: one idle
    /// timeout for a connection that owes its peer nothing, two for one
    /// whose peer has bytes queued or held for it and took none of them.
    ///
    /// A byte read or written is progress, and so is the peer taking queued
    /// bytes, which only the kernel sees (`SIOCOUTQ`): a slow reader reopens
    /// its receive window in steps (a whole segment on TCP), so its queue
    /// shrinks now and then with no write of ours between. The queue is
    /// asked about only once a connection has been quiet for a sweep, and
    /// then at every sweep while it still holds bytes, so the fast path costs
    /// no system call and a connection that owes nothing costs one.
    ///
    /// A TLS handshake past its deadline is closed whatever moved.
    fn sweep_idle(&mut self) {
        let (Some(every), Some(due)) = (sweep_period(&self.shared), self.next_sweep) else {
            return;
        };
        if self.now < due {
            return;
        }
        self.next_sweep = Some(self.now + every);
        let now = self.now;
        let mut idle = Vec::new();
        let mut overdue = Vec::new();
        for (key, connection) in &mut self.connections {
            if connection.stream.handshake_overdue(now) {
                overdue.push(key);
                continue;
            }
            let Some(timeout) = self.shared.idle_timeout else {
                continue;
            };
            let quiet = now.duration_since(connection.last_progress);
            if quiet < every {
                continue;
            }
            let written = connection.echo.written();
            let holds_bytes = connection.echo.holds_bytes() || connection.stream.holds_output();
            // The last look found the queue empty, and nothing moved since.
            let settled = !holds_bytes
                && connection
                    .last_look
                    .is_some_and(|look| look.written == written && look.unsent == 0);
            let owed = if settled {
                false
            } else {
                let look = connection
                    .stream
                    .unsent()
                    .map(|unsent| Look { written, unsent });
                let earlier = std::mem::replace(&mut connection.last_look, look);
                if look.is_some_and(|look| look.peer_took_bytes(earlier)) {
                    connection.last_progress = now;
                    continue;
                }
                holds_bytes || look.is_some_and(|look| look.unsent > 0)
            };
            if quiet >= if owed { 2 * timeout } else { timeout } {
                idle.push(key);
            }
        }
        for key in overdue {
            self.close(key, Ending::HandshakeTimeout);
        }
        for key in idle {
            self.close(key, Ending::Idle);
        }
    }
}

/// Moves what a connection closed early still had queued from the echoed
/// bytes to the unsent ones, since the reset that ends it throws the queue
/// away; says whether the peer is owed anything: bytes queued in the socket
/// and not yet taken, or held by the echo and not yet written (when the
/// kernel cannot tell, it is taken as owed).
fn forget_unsent(connection: &Connection, stats: &Stats) -> bool {
    let unsent = connection.stream.unsent();
    if let Some(unsent) = unsent {
        // A Unix socket counts buffer sizes, not bytes: never more than was written.
        stats.unsend(unsent.min(connection.echo.written()));
    }
    connection.echo.holds_bytes() || connection.stream.holds_output() || unsent != Some(0)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_follows_the_timeout() {
        assert_eq!(
            sweep_every(Duration::from_millis(250)),
            Duration::from_micros(31_250)
        );
        assert_eq!(sweep_every(Duration::from_secs(60)), Duration::from_secs(1));
        assert_eq!(
            sweep_every(Duration::from_millis(1)),
            Duration::from_millis(5)
        );
    }

    /// accept(2) reports the pending network errors of the connection it
    /// takes, and Linux asks callers to pass over them as over `EAGAIN`; out
    /// of descriptors or memory, the listener must pause instead.
    #[test]
    fn accept_passes_over_only_errors_of_the_connection_it_takes() {
        use nix::errno::Errno;
        let error = |errno: Errno| io::Error::from_raw_os_error(errno as i32);
        for errno in [Errno::ECONNABORTED, Errno::EPROTO, Errno::ENETDOWN] {
            assert!(is_connection_error(&error(errno)), "{errno}");
        }
        for errno in [Errno::EMFILE, Errno::ENFILE, Errno::ENOBUFS, Errno::ENOMEM] {
            assert!(!is_connection_error(&error(errno)), "{errno}");
        }
        assert!(!is_connection_error(&io::Error::other("no errno")));
    }
}
