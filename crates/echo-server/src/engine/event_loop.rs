//! The event loop that serves every stream connection, TCP and Unix: one
//! thread, one epoll set (through mio), the connections in a slab, one read
//! buffer for all of them, and a coarse sweep for the idle ones.
//!
//! A task per connection on a multi-threaded runtime costs more than the
//! echo itself on small exchanges: wake-ups across threads, a deregistration
//! before every close, a timer per wait. Here a connection is an entry in a
//! table, closing it is one `close(2)`, and an idle one costs a few dozen
//! bytes.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use tracing::{debug, error, warn};

use crate::connection::{Echo, Look, MAX_PIPES, Readiness, Scratch, Socket, Step};
use crate::listen::SocketFile;
use crate::send_queue;
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

/// A listening stream socket handed to the event loop, with its name for logs.
#[derive(Debug)]
pub(crate) enum StreamListener {
    /// A TCP listener.
    Tcp(TcpListener, String),
    /// A Unix stream listener, and the socket file to remove when it closes.
    Unix {
        listener: UnixListener,
        /// Held only to be dropped with the listener, which removes the file.
        _file: Option<SocketFile>,
        name: String,
    },
}

impl StreamListener {
    fn name(&self) -> &str {
        match self {
            StreamListener::Tcp(_, name) | StreamListener::Unix { name, .. } => name,
        }
    }

    fn accept(&self) -> io::Result<(Stream, Peer)> {
        match self {
            StreamListener::Tcp(listener, _) => {
                let (stream, peer) = listener.accept()?;
                // Each exchange is a request waiting for its answer: Nagle's
                // algorithm would hold small replies back until the peer's
                // delayed ACK. It fails only on a connection already dead,
                // which the echo then finds out.
                let _ = stream.set_nodelay(true);
                Ok((Stream::Tcp(stream), Peer::Ip(peer)))
            }
            StreamListener::Unix { listener, .. } => {
                let (stream, _) = listener.accept()?;
                Ok((Stream::Unix(stream), Peer::Unix))
            }
        }
    }

    fn register(&mut self, poll: &Poll, token: Token) -> io::Result<()> {
        match self {
            StreamListener::Tcp(listener, _) => {
                poll.registry()
                    .register(listener, token, Interest::READABLE)
            }
            StreamListener::Unix { listener, .. } => {
                poll.registry()
                    .register(listener, token, Interest::READABLE)
            }
        }
    }
}

/// How a peer is named in logs.
#[derive(Debug, Clone, Copy)]
enum Peer {
    Ip(std::net::SocketAddr),
    /// Unix peers are unnamed; the listener's path is in its own log lines.
    Unix,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Ip(addr) => write!(f, "{addr}"),
            Peer::Unix => f.write_str("unix peer"),
        }
    }
}

/// One accepted connection's socket.
#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// Bytes written and not yet taken by the peer, as the kernel counts them.
    fn unsent(&self) -> Option<u64> {
        match self {
            Stream::Tcp(stream) => send_queue::unsent(stream),
            Stream::Unix(stream) => send_queue::unsent(stream),
        }
    }

    /// The peer's name for a log line; asked of the kernel only when one is written.
    fn peer(&self) -> String {
        match self {
            Stream::Tcp(stream) => stream
                .peer_addr()
                .map_or_else(|_| "a peer gone".to_owned(), |addr| addr.to_string()),
            Stream::Unix(_) => Peer::Unix.to_string(),
        }
    }

    /// Ends a connection the server closes early: with a FIN when the peer
    /// is owed nothing, so it reads a clean end of stream; with a reset when
    /// it is still owed bytes, so a cut echo can never pass for a whole one.
    ///
    /// A Unix socket has no reset: its peer reads a plain end of stream,
    /// unless input was left unread, which the kernel reports to it as
    /// `ECONNRESET`.
    fn end_early(&self, owed: bool) {
        // Best effort either way: both fail only on a connection already dead.
        let _ = match self {
            Stream::Tcp(stream) if owed => {
                // A zero linger makes the close a reset, and throws the send queue away.
                socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO))
            }
            Stream::Tcp(stream) => stream.shutdown(Shutdown::Write),
            Stream::Unix(stream) => stream.shutdown(Shutdown::Write),
        };
    }
}

impl Socket for Stream {
    /// TCP bulk streams splice; Unix ones copy, as they are rarely bulk.
    fn splice_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        match self {
            Stream::Tcp(stream) => Some(stream.as_fd()),
            Stream::Unix(_) => None,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.read(buffer),
            Stream::Unix(stream) => stream.read(buffer),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.write(bytes),
            Stream::Unix(stream) => stream.write(bytes),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The most event loops a server runs: one bit each in [`Limit`]'s waiting set.
pub(crate) const MAX_LOOPS: usize = 64;

/// The connection limit, shared by every listener of every event loop.
#[derive(Debug)]
pub(crate) struct Limit {
    max: usize,
    taken: AtomicUsize,
    /// One bit per event loop that stopped accepting at the limit.
    waiting: AtomicU64,
    /// How to wake each event loop, once they are all started.
    loops: OnceLock<Vec<Arc<Control>>>,
}

impl Limit {
    pub(crate) fn new(max: usize) -> Self {
        Limit {
            max: max.max(1),
            taken: AtomicUsize::new(0),
            waiting: AtomicU64::new(0),
            loops: OnceLock::new(),
        }
    }

    /// Takes a place for one more connection, if there is one.
    fn try_take(&self) -> bool {
        self.taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |taken| {
                (taken < self.max).then_some(taken + 1)
            })
            .is_ok()
    }

    /// Takes a place, or marks event loop `me` as waiting for one; `true`
    /// when a place was taken.
    fn take_or_wait(&self, me: usize) -> bool {
        if self.try_take() {
            return true;
        }
        self.waiting.fetch_or(1 << me, Ordering::AcqRel);
        // A place given back between the failed take and the mark found no
        // one to wake: look once more, now that the mark is there.
        if self.try_take() {
            self.waiting.fetch_and(!(1 << me), Ordering::AcqRel);
            return true;
        }
        false
    }

    /// Gives a place back, from event loop `me`, and wakes the other loops
    /// that wait for one (`me` sees to its own listeners itself). Every mark
    /// is cleared: a loop that finds the limit still reached marks itself again.
    fn give_back(&self, me: usize) {
        self.taken.fetch_sub(1, Ordering::AcqRel);
        if self.waiting.load(Ordering::Acquire) == 0 {
            return;
        }
        let waiting = self.waiting.swap(0, Ordering::AcqRel) & !(1 << me);
        if let Some(loops) = self.loops.get() {
            for (index, control) in loops.iter().enumerate() {
                if waiting & (1 << index) != 0 {
                    control.place_freed.store(true, Ordering::Release);
                    control.wake();
                }
            }
        }
    }
}

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
}

/// The phase the rest of the server has put the event loop in.
const SERVING: u8 = 0;
/// Listeners closed; connections in flight go on.
const DRAINING: u8 = 1;
/// The grace period is over: close every connection and stop.
const CUT: u8 = 2;

/// What the rest of the server tells an event loop, and the waker that
/// makes it look.
#[derive(Debug)]
pub(crate) struct Control {
    phase: AtomicU8,
    /// Another loop gave a place back while this one waited for one.
    place_freed: AtomicBool,
    waker: Waker,
}

impl Control {
    fn set(&self, phase: u8) {
        self.phase.fetch_max(phase, Ordering::AcqRel);
        self.wake();
    }

    fn wake(&self) {
        if let Err(err) = self.waker.wake() {
            // Only an eventfd that cannot be written; the loop still looks
            // at its next event or sweep.
            warn!(error = %err, "cannot wake the event loop");
        }
    }
}

/// The running event loops, as the rest of the server holds them.
#[derive(Debug)]
pub(crate) struct Handle {
    controls: Vec<Arc<Control>>,
    finished: Vec<tokio::sync::oneshot::Receiver<()>>,
}

impl Handle {
    /// Closes the listeners (queued clients are then reset by the kernel);
    /// connections in flight go on.
    pub(crate) fn stop_accepting(&self) {
        for control in &self.controls {
            control.set(DRAINING);
        }
    }

    /// Closes every connection still open and ends the loops.
    pub(crate) fn cut(&self) {
        for control in &self.controls {
            control.set(CUT);
        }
    }

    /// Resolves once every loop has ended: drained, or cut.
    pub(crate) async fn finished(&mut self) {
        for finished in &mut self.finished {
            // An error means the thread is gone without saying so: ended too.
            let _ = finished.await;
        }
    }
}

/// Starts one event loop per element of `listeners` (at most [`MAX_LOOPS`],
/// as the caller clamps them), each on a thread of its own serving its
/// listeners, all under one limit.
///
/// # Errors
/// An epoll set or its waker could not be made, or a listener could not be
/// registered (out of descriptors or memory); no loop is left running then.
pub(crate) fn start(listeners: Vec<Vec<StreamListener>>, shared: &Shared) -> io::Result<Handle> {
    let mut prepared = Vec::with_capacity(listeners.len());
    for (index, listeners) in listeners.into_iter().enumerate() {
        prepared.push(prepare(index, listeners, shared.clone())?);
    }
    let controls: Vec<Arc<Control>> = prepared
        .iter()
        .map(|event_loop| Arc::clone(&event_loop.control))
        .collect();
    let _ = shared.limit.loops.set(controls.clone());
    let mut handle = Handle {
        controls,
        finished: Vec::with_capacity(prepared.len()),
    };
    for event_loop in prepared {
        let (done, receiver) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("echo-streams-{}", event_loop.index))
            .spawn(move || {
                event_loop.run();
                let _ = done.send(());
            });
        if let Err(err) = spawned {
            // The loops already running stop at once, before serving anyone.
            handle.cut();
            return Err(err);
        }
        handle.finished.push(receiver);
    }
    Ok(handle)
}

/// Makes event loop `index` with its epoll set and listeners, not yet running.
fn prepare(index: usize, listeners: Vec<StreamListener>, shared: Shared) -> io::Result<EventLoop> {
    let poll = Poll::new()?;
    let control = Arc::new(Control {
        phase: AtomicU8::new(SERVING),
        place_freed: AtomicBool::new(false),
        waker: Waker::new(poll.registry(), WAKER)?,
    });
    let mut accepting = Vec::with_capacity(listeners.len());
    for (index, mut listener) in listeners.into_iter().enumerate() {
        listener.register(&poll, listener_token(index))?;
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
        next_sweep: shared
            .idle_timeout
            .map(|timeout| now + sweep_every(timeout)),
        shared,
        yielded: VecDeque::new(),
        waiting_for_place: false,
        now,
    })
}

fn listener_token(index: usize) -> Token {
    Token(LISTENERS_BELOW - 1 - index)
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
    listener: StreamListener,
    backoff: Duration,
    /// After a resource error, when to try again.
    paused_until: Option<Instant>,
    last_log: Option<Instant>,
    unlogged_errors: u64,
}

/// One connection being served.
#[derive(Debug)]
struct Connection {
    stream: Stream,
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
}

#[derive(Debug)]
struct EventLoop {
    /// Which of the server's event loops this is.
    index: usize,
    poll: Poll,
    control: Arc<Control>,
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
    fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS_PER_WAIT);
        loop {
            match self.control.phase.load(Ordering::Acquire) {
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
                        if self.control.place_freed.swap(false, Ordering::AcqRel) {
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

    fn add(&mut self, mut stream: Stream, peer: Peer) {
        let stats = &self.shared.stats;
        Stats::bump(&stats.accepted);
        Stats::bump(&stats.active);
        let entry = self.connections.vacant_entry();
        let token = Token(entry.key());
        // Urgent data raises EPOLLPRI: it tells the echo that a short read
        // stopped at the urgent mark rather than at the end of the queue.
        let registered = match &mut stream {
            Stream::Tcp(tcp) => self.poll.registry().register(
                tcp,
                token,
                Interest::READABLE | Interest::WRITABLE | Interest::PRIORITY,
            ),
            Stream::Unix(unix) => {
                self.poll
                    .registry()
                    .register(unix, token, Interest::READABLE | Interest::WRITABLE)
            }
        };
        if let Err(err) = registered {
            Stats::bump(&stats.failed);
            Stats::drop_one(&stats.active);
            self.shared.limit.give_back(self.index);
            debug!(%peer, error = %err, "connection not served: cannot register it");
            return;
        }
        debug!(%peer, "connection opened");
        // TCP streams splice when bulk; Unix ones have nothing to splice through.
        let tcp = matches!(stream, Stream::Tcp(_));
        entry.insert(Connection {
            stream,
            echo: Echo::new(tcp, tcp && self.shared.splice),
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
    fn sweep_idle(&mut self) {
        let (Some(timeout), Some(due)) = (self.shared.idle_timeout, self.next_sweep) else {
            return;
        };
        if self.now < due {
            return;
        }
        let every = sweep_every(timeout);
        self.next_sweep = Some(self.now + every);
        let now = self.now;
        let mut idle = Vec::new();
        for (key, connection) in &mut self.connections {
            let quiet = now.duration_since(connection.last_progress);
            if quiet < every {
                continue;
            }
            let written = connection.echo.written();
            let holds_bytes = connection.echo.holds_bytes();
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
    connection.echo.holds_bytes() || unsent != Some(0)
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
    fn the_limit_admits_exactly_its_size() {
        let limit = Limit::new(2);
        assert!(limit.try_take());
        assert!(limit.take_or_wait(0));
        assert!(!limit.take_or_wait(1));
        assert_eq!(limit.waiting.load(Ordering::Acquire), 0b10);
        limit.give_back(0);
        assert_eq!(limit.waiting.load(Ordering::Acquire), 0, "loop 1 was told");
        assert!(limit.try_take());
    }

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
}
