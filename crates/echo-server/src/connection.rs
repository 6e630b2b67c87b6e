//! Echoing one stream connection: the byte mover, apart from accepting and bookkeeping.
//!
//! [`Echo`] is a state machine over a non-blocking byte stream (any
//! [`Socket`]: `Read + Write` that says `WouldBlock`), driven by readiness
//! events: the event loop serves every connection from one thread with it,
//! and tests drive it over an in-memory stream that reads and writes in
//! random short pieces and delivers its events as edge-triggered epoll does.
//!
//! A connection that keeps filling the read buffer (a bulk stream) moves its
//! bytes with `splice(2)` through a pipe instead, so they never leave the
//! kernel; small exchanges and idle connections keep the plain path and
//! never hold a pipe.

use std::io::{self, Read, Write};
use std::os::fd::{BorrowedFd, OwnedFd};

use echo_proto::BUFFER_SIZE;
use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags, fcntl, splice};

/// How many chunks one connection may move per turn before the others get
/// theirs: a bulk stream must not starve the event loop's other connections.
pub const CHUNKS_PER_TURN: usize = 16;

/// The most pipes an event loop keeps open at once, in use or spare: each is
/// two descriptors and some kernel memory, and beyond about a thousand per
/// user the kernel shrinks new pipes to two pages.
pub const MAX_PIPES: usize = 64;
/// Pipes kept open for the next bulk turn when no connection uses them.
const SPARE_PIPES: usize = 8;
/// The size asked of each pipe: bigger than a read chunk, so one pair of
/// splices moves several segments.
const PIPE_BYTES: usize = 256 * 1024;

/// A byte stream the echo can move bytes on: a socket, or a test's stand-in.
pub trait Socket: Read + Write {
    /// The descriptor `splice(2)` may move bytes through; `None` (the
    /// default) keeps every byte on the plain read-and-write path.
    fn splice_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    /// Whether the stream holds bytes of its own that the socket has not
    /// taken yet (TLS records encrypted from an echo), which `flush` writes
    /// and which keep the connection owing its peer; never, by default.
    fn holds_output(&self) -> bool {
        false
    }

    /// Told as each turn starts, before any read, whether the turn must
    /// read until the socket says `WouldBlock` or the end of stream (the
    /// peer has shut down its side, or urgent data is pending); otherwise a
    /// stream whose reads take more from the socket than they return may
    /// stop at a short read of the socket, since a TCP socket's next bytes
    /// raise a new edge. Nothing, by default.
    fn start_turn(&mut self, _drain_to_the_end: bool) {}

    /// Whether bytes moved on the socket since last asked that reads and
    /// writes of the echo did not return or take (a TLS handshake's records,
    /// say): progress all the same, for the idle rule. Never, by default.
    fn take_moved(&mut self) -> bool {
        false
    }
}

/// The event loop's scratch space, lent to each connection's turn: the one
/// read buffer, and the pipes for bulk connections.
#[derive(Debug)]
pub struct Scratch {
    chunk: Box<[u8]>,
    pipes: Pipes,
}

impl Scratch {
    /// A buffer of [`BUFFER_SIZE`], and room for at most `max_pipes` pipes.
    pub fn new(max_pipes: usize) -> Self {
        Scratch {
            chunk: vec![0u8; BUFFER_SIZE].into_boxed_slice(),
            pipes: Pipes {
                spare: Vec::new(),
                open: 0,
                max_open: max_pipes,
            },
        }
    }

    /// Pipes open now, in use or spare.
    #[cfg(test)]
    fn pipes_open(&self) -> usize {
        self.pipes.open
    }
}

/// A bounded pool of pipes, created only when a bulk connection needs one.
#[derive(Debug)]
struct Pipes {
    spare: Vec<Pipe>,
    open: usize,
    max_open: usize,
}

impl Pipes {
    /// A pipe, or `None` when the bound is reached or the kernel has none
    /// to give (out of descriptors, or the user's pipe memory): the
    /// connection then copies, as small ones do.
    fn take(&mut self) -> Option<Pipe> {
        if let Some(pipe) = self.spare.pop() {
            return Some(pipe);
        }
        if self.open >= self.max_open {
            return None;
        }
        let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).ok()?;
        // A bigger pipe saves system calls; refused, the default still works.
        let size = libc::c_int::try_from(PIPE_BYTES).unwrap_or(libc::c_int::MAX);
        let _ = fcntl(&write, FcntlArg::F_SETPIPE_SZ(size));
        self.open += 1;
        Some(Pipe {
            read,
            write,
            held: 0,
        })
    }

    /// Takes back a pipe; one still holding bytes is closed, never reused.
    fn give(&mut self, pipe: Pipe) {
        if pipe.held == 0 && self.spare.len() < SPARE_PIPES {
            self.spare.push(pipe);
        } else {
            self.open -= 1;
        }
    }
}

/// A pipe a bulk connection's bytes go through, and how many it holds.
#[derive(Debug)]
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    held: usize,
}

/// What the readiness event that woke a connection said, beyond "look".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Readiness {
    /// There may be bytes (or the end of stream) to read.
    pub readable: bool,
    /// The peer has shut down its write side: there is an end of stream to
    /// read, so reading goes on past short reads until it comes.
    pub read_closed: bool,
    /// Urgent (`MSG_OOB`) data is pending: a read stops short at its mark
    /// with more bytes queued, so a short read proves nothing.
    pub urgent: bool,
}

impl Readiness {
    /// Everything may be ready: for a connection's first turn and for turns
    /// that resume after a spent budget, when no event says more.
    pub const ANY: Readiness = Readiness {
        readable: true,
        read_closed: false,
        urgent: false,
    };
}

/// How a turn of [`Echo::advance`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing more can move until the next readiness event.
    Wait,
    /// The turn's budget is spent with bytes still to move: go on soon,
    /// after the other connections had their turn, without waiting for an event.
    Yield,
    /// The peer ended its message and every byte is written back: close now,
    /// and the peer reads a clean end of stream.
    Finished,
}

/// One connection's echo, between readiness events.
///
/// Invariants: a connection holds bytes of its own only after a write came
/// up short, and none while it waits for input: at most one [`BUFFER_SIZE`]
/// when it copies, or one pipe of up to `PIPE_BYTES` (256 KiB) while it
/// splices; it reads again only once those are written back, so a peer that
/// does not read stops being read; and it finishes only after reading the end
/// of stream with nothing left to write, so closing then sends a FIN after the
/// last byte, never a reset.
#[derive(Debug)]
pub struct Echo {
    /// Bytes read but not written back yet, after a short write.
    rest: Option<Rest>,
    /// Whether a short read proves the socket drained: true for TCP, whose
    /// every new segment raises a new edge, unless urgent data or the end of
    /// stream says otherwise.
    short_read_drains: bool,
    /// The end of stream is known to be coming (sticky, since the event that
    /// said so may come while the connection is not reading).
    peer_done: bool,
    /// Urgent data is pending (sticky, like `peer_done`): until a read finds
    /// the socket empty, a short read or a splice's `EAGAIN` may only mean
    /// the urgent mark, which raises no new edge, so neither proves the
    /// socket drained. Turns resumed after a spent budget, or woken by a
    /// writable edge, carry no urgent flag of their own.
    urgent: bool,
    /// Bytes written back so far.
    written: u64,
    /// The connection has filled the read buffer: its next turns splice.
    bulk: bool,
    /// The pipe it splices through, during a turn, or while the pipe holds
    /// bytes the peer has not taken; never while the connection waits for input.
    pipe: Option<Pipe>,
    /// Every byte is copied, none spliced: splicing is off, the stream has
    /// nothing to splice through, or the kernel refused it for this socket.
    copy_only: bool,
}

#[derive(Debug)]
struct Rest {
    bytes: Box<[u8]>,
    done: usize,
}

/// What a turn did besides its [`Step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Turn {
    /// How it ended.
    pub step: Step,
    /// Whether any byte was read or written: the idle clock starts again.
    pub moved: bool,
}

impl Echo {
    /// A connection that has moved nothing yet; `short_read_drains` as for
    /// [`Echo`]'s field (true for TCP streams, false for others), and
    /// `may_splice` whether a bulk stream may splice: a TCP stream, with
    /// splicing not turned off.
    pub fn new(short_read_drains: bool, may_splice: bool) -> Self {
        Echo {
            rest: None,
            short_read_drains,
            peer_done: false,
            urgent: false,
            written: 0,
            bulk: false,
            pipe: None,
            copy_only: !may_splice,
        }
    }

    /// Gives the connection's pipe back to `scratch`, when it is closed.
    pub fn release(&mut self, scratch: &mut Scratch) {
        if let Some(pipe) = self.pipe.take() {
            scratch.pipes.give(pipe);
        }
    }

    /// Bytes written back to the peer so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Whether the connection holds bytes it could not write back yet.
    pub fn holds_bytes(&self) -> bool {
        self.rest.is_some() || self.pipe.as_ref().is_some_and(|pipe| pipe.held > 0)
    }

    /// Moves bytes between `stream`'s two directions until it would block,
    /// the turn's budget is spent, or the echo is over, with the event
    /// loop's `scratch`; [`Echo::written`] counts what it wrote back.
    ///
    /// Safe to call at any time: without readiness it finds `WouldBlock`.
    ///
    /// # Errors
    /// The stream failed (a reset, typically); the connection is over.
    pub fn advance<S: Socket>(
        &mut self,
        stream: &mut S,
        scratch: &mut Scratch,
        ready: Readiness,
    ) -> io::Result<Turn> {
        let mut result = self.turn(stream, scratch, ready);
        if let Ok(turn) = &mut result {
            turn.moved |= stream.take_moved();
        }
        // A connection waiting for input holds no pipe: idle ones must not
        // tie up descriptors.
        if self.pipe.as_ref().is_some_and(|pipe| pipe.held == 0) {
            self.release(scratch);
        }
        result
    }

    fn turn<S: Socket>(
        &mut self,
        stream: &mut S,
        scratch: &mut Scratch,
        ready: Readiness,
    ) -> io::Result<Turn> {
        let mut turn = Turn {
            step: Step::Wait,
            moved: false,
        };
        self.peer_done |= ready.read_closed;
        self.urgent |= ready.urgent;
        stream.start_turn(self.peer_done || self.urgent);
        let holds = self.holds_bytes() || stream.holds_output();
        if !holds && !ready.readable && !self.peer_done && !self.urgent {
            // Only writable: nothing of ours is waiting to go out.
            return Ok(turn);
        }
        let mut budget = CHUNKS_PER_TURN;
        loop {
            if !self.write_held(stream, &mut turn)? {
                return Ok(turn);
            }
            if budget == 0 {
                turn.step = Step::Yield;
                return Ok(turn);
            }
            budget -= 1;
            if self.bulk && self.pipe.is_none() && !self.copy_only && !self.urgent {
                self.pipe = scratch.pipes.take();
            }
            // Urgent data: splicing stops at its mark, reading takes it inline.
            let spliced = match (&mut self.pipe, stream.splice_fd()) {
                (Some(pipe), Some(fd)) if !self.urgent => Some(splice(
                    fd,
                    None,
                    &pipe.write,
                    None,
                    PIPE_BYTES,
                    splice_flags(),
                )),
                _ => None,
            };
            match spliced {
                // No pipe, or the end or the urgent mark: `read` tells which.
                None | Some(Ok(0)) => {}
                Some(Ok(n)) => {
                    if let Some(pipe) = &mut self.pipe {
                        pipe.held = n;
                    }
                    turn.moved = true;
                    // A short splice proves nothing (the pipe counts pages,
                    // not bytes): only `EAGAIN` says the socket is drained.
                    continue;
                }
                Some(Err(nix::Error::EAGAIN)) => return Ok(turn),
                Some(Err(nix::Error::EINTR)) => continue,
                Some(Err(nix::Error::EINVAL | nix::Error::ENOSYS)) => {
                    self.copy_only = true;
                    self.release(scratch);
                }
                Some(Err(err)) => return Err(err.into()),
            }
            let limit = scratch.chunk.len();
            let chunk = &mut scratch.chunk[..];
            let n = match stream.read(chunk) {
                Ok(0) => {
                    turn.step = Step::Finished;
                    return Ok(turn);
                }
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    // Nothing at all to read, not even past an urgent mark:
                    // drained for sure, and whatever comes next raises an edge.
                    self.urgent = false;
                    return Ok(turn);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            };
            turn.moved = true;
            self.bulk |= n == limit;
            let mut done = 0;
            while done < n {
                match stream.write(&chunk[done..n]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(w) => {
                        done += w;
                        self.written += w as u64;
                    }
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => return Err(err),
                }
            }
            if done < n {
                // The peer is not taking bytes as fast as it sends them: keep
                // the rest, and read no more until it is written back.
                self.rest = Some(Rest {
                    bytes: chunk[done..n].into(),
                    done: 0,
                });
                return Ok(turn);
            }
            let drain_to_the_end = !self.short_read_drains || self.peer_done || self.urgent;
            if n < limit && !drain_to_the_end {
                // The socket is drained; bytes that come later raise a new edge.
                return Ok(turn);
            }
        }
    }

    /// Writes back what the connection holds (a short write's rest, or the
    /// pipe's bytes); `false` when the peer cannot take more now.
    fn write_held<S: Socket>(&mut self, stream: &mut S, turn: &mut Turn) -> io::Result<bool> {
        if stream.holds_output() {
            match stream.flush() {
                Ok(()) => turn.moved = true,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(err) => return Err(err),
            }
        }
        if let Some(rest) = &mut self.rest {
            while rest.done < rest.bytes.len() {
                match stream.write(&rest.bytes[rest.done..]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        rest.done += n;
                        self.written += n as u64;
                        turn.moved = true;
                    }
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => return Err(err),
                }
            }
            self.rest = None;
        }
        if let (Some(pipe), Some(fd)) = (&mut self.pipe, stream.splice_fd()) {
            while pipe.held > 0 {
                match splice(&pipe.read, None, fd, None, pipe.held, splice_flags()) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        pipe.held -= n;
                        self.written += n as u64;
                        turn.moved = true;
                    }
                    Err(nix::Error::EAGAIN) => return Ok(false),
                    Err(nix::Error::EINTR) => {}
                    Err(err) => return Err(err.into()),
                }
            }
        }
        Ok(true)
    }
}

/// Never block on the pipe: the socket's readiness is what the loop waits on.
fn splice_flags() -> SpliceFFlags {
    SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE
}

/// What a connection's send queue held when the idle rule last looked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Look {
    /// Bytes written to the connection so far.
    pub written: u64,
    /// Bytes of those the peer had not taken.
    pub unsent: u64,
}

impl Look {
    /// Whether the peer took bytes since `earlier`: the queue shrank with
    /// no write between. A look after a write proves nothing, nor does a
    /// first look; the sweep looks again at its next round.
    pub fn peer_took_bytes(self, earlier: Option<Look>) -> bool {
        earlier
            .is_some_and(|earlier| earlier.written == self.written && self.unsent < earlier.unsent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    /// An in-memory stream as the server sees it: the client's bytes come in
    /// pieces, the server's writes are taken in pieces through a small
    /// window, every call may be cut short or refused with `WouldBlock`, and
    /// readiness is reported only on changes, as edge-triggered epoll does.
    struct Choppy {
        /// Bytes the client has sent and the server not yet read.
        inbound: VecDeque<u8>,
        /// The client has half-closed, and the server may read the end.
        inbound_ended: bool,
        /// Bytes the server wrote that the client has not taken.
        outbound: VecDeque<u8>,
        window: usize,
        steps: Vec<(usize, bool)>,
        next: usize,
        refused: bool,
        /// A write found the window full: the next take raises an edge.
        no_space: bool,
        /// A change the server has not been told of: an edge.
        edge: bool,
        largest_rest: usize,
    }

    impl Choppy {
        /// A stream with `inbound` already sent, a window of `window` bytes,
        /// and calls cut at `limit` bytes, never refused.
        fn new(inbound: VecDeque<u8>, window: usize, limit: usize) -> Self {
            Choppy {
                inbound,
                inbound_ended: false,
                outbound: VecDeque::new(),
                window,
                steps: vec![(limit, false)],
                next: 0,
                refused: false,
                no_space: false,
                edge: false,
                largest_rest: 0,
            }
        }

        /// The next call's size limit, and whether it says "not yet";
        /// never twice in a row, so progress is always possible.
        fn step(&mut self) -> (usize, bool) {
            let (limit, refuse) = self.steps[self.next % self.steps.len()];
            self.next += 1;
            self.refused = refuse && !self.refused;
            (limit, self.refused)
        }
    }

    impl Read for Choppy {
        fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
            let (limit, refuse) = self.step();
            if self.inbound.is_empty() && !self.inbound_ended {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            if refuse && !self.inbound.is_empty() {
                // A spurious "not yet" is a real socket's right only with an
                // edge to follow, which a retry then sees.
                self.edge = true;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = limit.min(buffer.len()).min(self.inbound.len());
            for slot in &mut buffer[..n] {
                *slot = self.inbound.pop_front().expect("counted");
            }
            if n < buffer.len() && !self.inbound.is_empty() {
                // A short read with bytes still queued: on a real socket they
                // came after the read began, and raised an edge of their own.
                self.edge = true;
            }
            Ok(n)
        }
    }

    impl Socket for Choppy {}

    impl Write for Choppy {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let (limit, refuse) = self.step();
            let room = self.window.saturating_sub(self.outbound.len());
            if room == 0 {
                // As TCP does, a write that finds no room asks for a
                // writable edge once the peer has taken some.
                self.no_space = true;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            if refuse {
                self.edge = true;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = limit.min(bytes.len()).min(room);
            self.outbound.extend(&bytes[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Runs a whole exchange of `message` through [`Echo`], the client
    /// feeding and taking bytes in pieces of `feed`, and returns the reply,
    /// the bytes counted, and the largest rest the connection held.
    fn exchange(
        message: &[u8],
        steps: Vec<(usize, bool)>,
        window: usize,
        feed: usize,
        short_read_drains: bool,
        fin_with_last: bool,
    ) -> Result<(Vec<u8>, usize, usize), String> {
        let mut stream = Choppy {
            steps,
            edge: true,
            ..Choppy::new(VecDeque::new(), window, 1)
        };
        let mut echo = Echo::new(short_read_drains, false);
        let mut scratch = Scratch::new(0);
        let mut sent = 0;
        let mut reply = Vec::new();
        let mut pending_yield = false;
        for _round in 0..2_000_000 {
            // The client: sends a piece, half-closes at the end, takes a piece.
            if sent < message.len() {
                let n = feed.min(message.len() - sent);
                stream.inbound.extend(&message[sent..sent + n]);
                sent += n;
                stream.edge = true;
                // The FIN often rides with the last segment: one edge for both.
                stream.inbound_ended = sent == message.len() && fin_with_last;
            } else if !stream.inbound_ended {
                stream.inbound_ended = true;
                stream.edge = true;
            }
            let taken = feed.min(stream.outbound.len());
            if taken > 0 {
                reply.extend(stream.outbound.drain(..taken));
                stream.edge |= std::mem::take(&mut stream.no_space);
            }
            // The server: a turn only on an edge, or to go on after a yield.
            if stream.edge || pending_yield {
                stream.edge = false;
                let ready = Readiness {
                    readable: !stream.inbound.is_empty() || stream.inbound_ended,
                    read_closed: stream.inbound_ended,
                    urgent: false,
                };
                let turn = echo
                    .advance(&mut stream, &mut scratch, ready)
                    .map_err(|err| err.to_string())?;
                if let Some(rest) = &echo.rest {
                    stream.largest_rest = stream.largest_rest.max(rest.bytes.len());
                }
                pending_yield = turn.step == Step::Yield;
                if turn.step == Step::Finished {
                    reply.extend(stream.outbound.drain(..));
                    let counted = usize::try_from(echo.written()).expect("in memory");
                    return Ok((reply, counted, stream.largest_rest));
                }
            } else if sent == message.len()
                && stream.inbound_ended
                && stream.outbound.is_empty()
                && !stream.no_space
            {
                return Err(format!(
                    "stalled: no edge to come, {} of {} bytes echoed",
                    reply.len(),
                    message.len()
                ));
            }
        }
        Err("did not finish".to_owned())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn every_byte_comes_back_in_order(
            message in proptest::collection::vec(any::<u8>(), 0..(3 * BUFFER_SIZE)),
            steps in proptest::collection::vec((1usize..(2 * BUFFER_SIZE), proptest::bool::weighted(0.2)), 1..16),
            window in 1usize..(2 * BUFFER_SIZE),
            feed in 1usize..(2 * BUFFER_SIZE),
            short_read_drains in any::<bool>(),
            fin_with_last in any::<bool>(),
        ) {
            let outcome = exchange(&message, steps, window, feed, short_read_drains, fin_with_last);
            prop_assert!(outcome.is_ok(), "{:?}", outcome.err());
            let (reply, counted, largest_rest) = outcome.expect("checked");
            prop_assert_eq!(counted, message.len());
            prop_assert!(largest_rest <= BUFFER_SIZE, "held {} bytes", largest_rest);
            prop_assert!(reply == message, "reply of {} bytes differs from message of {}", reply.len(), message.len());
        }
    }

    #[test]
    fn the_peer_took_bytes_only_if_the_queue_shrank_with_no_write_between() {
        let look = |written, unsent| Look { written, unsent };
        // The queue shrank since the last look, with no write in between.
        assert!(look(100, 10).peer_took_bytes(Some(look(100, 60))));
        // Nothing moved: idle, whether something is queued or not.
        assert!(!look(100, 60).peer_took_bytes(Some(look(100, 60))));
        assert!(!look(100, 0).peer_took_bytes(Some(look(100, 0))));
        // No earlier look, or a write since: nothing to compare with.
        assert!(!look(0, 0).peer_took_bytes(None));
        assert!(!look(100, 30).peer_took_bytes(None));
        assert!(!look(100, 0).peer_took_bytes(Some(look(50, 20))));
        assert!(!look(100, 10).peer_took_bytes(Some(look(50, 20))));
    }

    #[test]
    fn a_peer_that_takes_nothing_stops_being_read() {
        let mut stream = Choppy::new(
            (0..=255u8).cycle().take(10 * BUFFER_SIZE).collect(),
            1000,
            BUFFER_SIZE,
        );
        let mut echo = Echo::new(true, false);
        let mut scratch = Scratch::new(0);
        for _ in 0..100 {
            echo.advance(&mut stream, &mut scratch, Readiness::ANY)
                .expect("no failure");
        }
        assert_eq!(stream.outbound.len(), 1000, "the window is full");
        assert_eq!(
            stream.inbound.len(),
            9 * BUFFER_SIZE,
            "one chunk read, the rest left unread"
        );
        assert!(echo.holds_bytes());
    }

    #[test]
    fn a_long_burst_yields_to_the_other_connections() {
        let mut stream = Choppy::new(
            std::iter::repeat_n(7u8, 100 * BUFFER_SIZE).collect(),
            usize::MAX,
            BUFFER_SIZE,
        );
        let mut echo = Echo::new(true, false);
        let mut scratch = Scratch::new(0);
        let turn = echo
            .advance(&mut stream, &mut scratch, Readiness::ANY)
            .expect("no failure");
        assert_eq!(turn.step, Step::Yield);
        assert_eq!(stream.outbound.len(), CHUNKS_PER_TURN * BUFFER_SIZE);
    }

    /// A socket with every byte already queued and an urgent mark in it, as
    /// TCP reads one: a read that has copied something stops short at the
    /// mark, the next one starts at the urgent byte, and no edge comes for
    /// bytes that are already there.
    struct Marked {
        inbound: VecDeque<u8>,
        /// Bytes before the mark still to read; `None` once read past it.
        before_mark: Option<usize>,
        outbound: Vec<u8>,
    }

    impl Read for Marked {
        fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
            if self.inbound.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut n = buffer.len().min(self.inbound.len());
            match self.before_mark {
                Some(0) => self.before_mark = None,
                Some(before) => {
                    n = n.min(before);
                    self.before_mark = Some(before - n);
                }
                None => {}
            }
            for slot in &mut buffer[..n] {
                *slot = self.inbound.pop_front().expect("counted");
            }
            Ok(n)
        }
    }

    impl Write for Marked {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.outbound.extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Socket for Marked {}

    #[test]
    fn an_urgent_mark_met_in_a_resumed_turn_is_read_past() {
        // More than one turn's budget before the mark, so a turn resumed
        // without any event meets it.
        let before = (CHUNKS_PER_TURN + 3) * BUFFER_SIZE + 100;
        let message: Vec<u8> = (0..before + 1 + 4096).map(|n| (n % 253) as u8).collect();
        let mut stream = Marked {
            inbound: message.iter().copied().collect(),
            before_mark: Some(before),
            outbound: Vec::new(),
        };
        let mut echo = Echo::new(true, false);
        let mut scratch = Scratch::new(0);
        // The one event the kernel raises: readable, with urgent data.
        let mut ready = Readiness {
            readable: true,
            read_closed: false,
            urgent: true,
        };
        for _ in 0..100 {
            let turn = echo
                .advance(&mut stream, &mut scratch, ready)
                .expect("no failure");
            if turn.step != Step::Yield {
                break;
            }
            ready = Readiness::ANY;
        }
        assert_eq!(
            stream.outbound.len(),
            message.len(),
            "the echo stopped at the urgent mark, with no edge to come"
        );
        assert!(stream.outbound == message, "the echo differs");
    }

    /// A socket that answers each call as its script says, in order, and
    /// panics at a call beyond it: a test says exactly which calls a turn
    /// makes, and a turn that retries a failed call, or reads again where it
    /// should stop, cannot go unseen or loop for ever.
    #[derive(Debug, Default)]
    struct Scripted {
        reads: VecDeque<io::Result<&'static [u8]>>,
        writes: VecDeque<io::Result<usize>>,
        outbound: Vec<u8>,
    }

    impl Scripted {
        fn new(
            reads: impl IntoIterator<Item = io::Result<&'static [u8]>>,
            writes: impl IntoIterator<Item = io::Result<usize>>,
        ) -> Self {
            Scripted {
                reads: reads.into_iter().collect(),
                writes: writes.into_iter().collect(),
                outbound: Vec::new(),
            }
        }

        /// Every scripted call was made.
        fn is_spent(&self) -> bool {
            self.reads.is_empty() && self.writes.is_empty()
        }
    }

    impl Read for Scripted {
        fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
            let bytes = self.reads.pop_front().expect("a read beyond the script")?;
            buffer[..bytes.len()].copy_from_slice(bytes);
            Ok(bytes.len())
        }
    }

    impl Write for Scripted {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let taken = self
                .writes
                .pop_front()
                .expect("a write beyond the script")?;
            let taken = taken.min(bytes.len());
            self.outbound.extend_from_slice(&bytes[..taken]);
            Ok(taken)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Socket for Scripted {}

    fn fails<T>(kind: io::ErrorKind) -> io::Result<T> {
        Err(kind.into())
    }

    /// A copying connection after one turn over `stream`, which must end
    /// with every scripted call made.
    fn one_turn(stream: &mut Scripted, short_read_drains: bool, ready: Readiness) -> Echo {
        let mut echo = Echo::new(short_read_drains, false);
        turn_again(&mut echo, stream, ready).expect("no failure");
        echo
    }

    fn turn_again(echo: &mut Echo, stream: &mut Scripted, ready: Readiness) -> io::Result<Turn> {
        let turn = echo.advance(stream, &mut Scratch::new(0), ready);
        assert!(stream.is_spent(), "calls left unmade: {stream:?}");
        turn
    }

    #[test]
    fn a_writable_edge_alone_costs_no_read() {
        // An empty script: any read or write fails the test.
        let mut stream = Scripted::default();
        let mut echo = Echo::new(true, false);
        let turn = turn_again(&mut echo, &mut stream, Readiness::default()).expect("no failure");
        assert_eq!(
            turn,
            Turn {
                step: Step::Wait,
                moved: false
            }
        );
    }

    #[test]
    fn a_short_read_ends_the_turn_only_over_tcp() {
        // TCP: the next segment raises an edge of its own, so reading again
        // would only find `WouldBlock`.
        let mut stream = Scripted::new([Ok(&b"hello"[..])], [Ok(5)]);
        let echo = one_turn(&mut stream, true, Readiness::ANY);
        assert_eq!(stream.outbound, b"hello");
        assert_eq!(echo.written(), 5);
        // Other kinds read on until the socket says it is empty.
        let mut stream = Scripted::new(
            [Ok(&b"hello"[..]), fails(io::ErrorKind::WouldBlock)],
            [Ok(5)],
        );
        one_turn(&mut stream, false, Readiness::ANY);
        assert_eq!(stream.outbound, b"hello");
    }

    #[test]
    fn an_interrupted_read_or_write_is_tried_again() {
        let mut stream = Scripted::new(
            [fails(io::ErrorKind::Interrupted), Ok(&b"hello"[..])],
            [fails(io::ErrorKind::Interrupted), Ok(5)],
        );
        let echo = one_turn(&mut stream, true, Readiness::ANY);
        assert_eq!(stream.outbound, b"hello");
        assert_eq!(echo.written(), 5);
    }

    #[test]
    fn a_failed_read_or_write_ends_the_connection() {
        let mut stream = Scripted::new([fails(io::ErrorKind::ConnectionReset)], []);
        let failed = turn_again(&mut Echo::new(true, false), &mut stream, Readiness::ANY);
        assert_eq!(
            failed.map_err(|err| err.kind()),
            Err(io::ErrorKind::ConnectionReset)
        );
        let mut stream = Scripted::new([Ok(&b"hello"[..])], [fails(io::ErrorKind::BrokenPipe)]);
        let failed = turn_again(&mut Echo::new(true, false), &mut stream, Readiness::ANY);
        assert_eq!(
            failed.map_err(|err| err.kind()),
            Err(io::ErrorKind::BrokenPipe)
        );
    }

    /// A connection whose peer took two bytes of "hello" and then no more:
    /// it holds the other three.
    fn holding_a_rest() -> Echo {
        let mut stream = Scripted::new(
            [Ok(&b"hello"[..])],
            [Ok(2), fails(io::ErrorKind::WouldBlock)],
        );
        let echo = one_turn(&mut stream, true, Readiness::ANY);
        assert_eq!(stream.outbound, b"he");
        assert!(echo.holds_bytes());
        echo
    }

    #[test]
    fn a_held_rest_goes_out_on_a_writable_edge_through_an_interruption() {
        let mut echo = holding_a_rest();
        // Once the rest is out, the turn reads again, and finds nothing.
        let mut stream = Scripted::new(
            [fails(io::ErrorKind::WouldBlock)],
            [fails(io::ErrorKind::Interrupted), Ok(3)],
        );
        let turn = turn_again(&mut echo, &mut stream, Readiness::default()).expect("no failure");
        assert_eq!(stream.outbound, b"llo");
        assert!(turn.moved);
        assert_eq!(echo.written(), 5);
        assert!(!echo.holds_bytes());
    }

    #[test]
    fn a_failed_write_of_a_held_rest_ends_the_connection() {
        let mut echo = holding_a_rest();
        let mut stream = Scripted::new([], [fails(io::ErrorKind::BrokenPipe)]);
        let failed = turn_again(&mut echo, &mut stream, Readiness::default());
        assert_eq!(
            failed.map_err(|err| err.kind()),
            Err(io::ErrorKind::BrokenPipe)
        );
    }

    #[test]
    fn a_pipe_is_non_blocking_closed_on_exec_and_as_big_as_asked() {
        use nix::errno::Errno;
        use nix::fcntl::FdFlag;
        let mut scratch = Scratch::new(1);
        let pipe = scratch.pipes.take().expect("a pipe");
        for end in [&pipe.read, &pipe.write] {
            let status = fcntl(end, FcntlArg::F_GETFL).expect("status flags");
            assert!(OFlag::from_bits_truncate(status).contains(OFlag::O_NONBLOCK));
            // The library's user may start processes: they must not
            // inherit the pipe.
            let flags = fcntl(end, FcntlArg::F_GETFD).expect("descriptor flags");
            assert!(FdFlag::from_bits_truncate(flags).contains(FdFlag::FD_CLOEXEC));
        }
        let size = fcntl(&pipe.write, FcntlArg::F_GETPIPE_SZ).expect("pipe size");
        if usize::try_from(size) != Ok(PIPE_BYTES) {
            // A user past its pipe memory limit gets the default size: then
            // the kernel refuses the size asked again.
            let asked = libc::c_int::try_from(PIPE_BYTES).expect("fits");
            assert_eq!(
                fcntl(&pipe.write, FcntlArg::F_SETPIPE_SZ(asked)),
                Err(Errno::EPERM),
                "a pipe of {size} bytes, not PIPE_BYTES"
            );
        }
    }

    #[test]
    fn spare_pipes_are_kept_up_to_their_bound_and_the_rest_closed() {
        let mut pipes = Scratch::new(SPARE_PIPES + 2).pipes;
        let taken: Vec<Pipe> = (0..SPARE_PIPES + 2)
            .map(|_| pipes.take().expect("within the bound"))
            .collect();
        assert!(pipes.take().is_none(), "past the bound");
        for pipe in taken {
            pipes.give(pipe);
        }
        assert_eq!(pipes.spare.len(), SPARE_PIPES);
        assert_eq!(pipes.open, SPARE_PIPES);
        // The closed ones left room for as many new ones.
        let taken: Vec<Pipe> = (0..SPARE_PIPES + 2)
            .map(|_| pipes.take().expect("within the bound"))
            .collect();
        assert_eq!(pipes.open, taken.len());
    }

    #[test]
    fn a_pipe_still_holding_bytes_is_closed_not_reused() {
        use nix::errno::Errno;
        let mut pipes = Scratch::new(1).pipes;
        let mut pipe = pipes.take().expect("a pipe");
        pipe.held = nix::unistd::write(&pipe.write, b"stale").expect("into the pipe");
        pipes.give(pipe);
        assert_eq!(pipes.open, 0);
        // Another connection would echo the stale bytes to its own peer.
        let pipe = pipes.take().expect("a new pipe");
        // Whatever flags the pipe came with, the test must not block.
        fcntl(&pipe.read, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).expect("non-blocking");
        assert_eq!(
            nix::unistd::read(&pipe.read, &mut [0; 8]),
            Err(Errno::EAGAIN)
        );
    }

    /// The server's side of a real TCP connection, counting the bytes that
    /// reached it through `read` rather than through a pipe.
    struct Served {
        stream: mio::net::TcpStream,
        bytes_read: usize,
    }

    impl Socket for Served {
        fn splice_fd(&self) -> Option<BorrowedFd<'_>> {
            use std::os::fd::AsFd;
            Some(self.stream.as_fd())
        }
    }

    impl Read for Served {
        fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
            let n = self.stream.read(buffer)?;
            self.bytes_read += n;
            Ok(n)
        }
    }

    impl Write for Served {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.stream.write(bytes)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// The longest any wait of the loopback tests may take.
    const WAIT: std::time::Duration = std::time::Duration::from_secs(60);

    /// A real TCP connection on loopback whose server side [`Echo`] serves
    /// from mio's readiness events, as the event loop does, with splicing.
    struct Loopback {
        client: std::net::TcpStream,
        server: Served,
        poll_set: mio::Poll,
        events: mio::Events,
        echo: Echo,
        scratch: Scratch,
    }

    /// The client's two threads: one writes, the other reads the echo.
    struct Client {
        writer: std::thread::JoinHandle<()>,
        reader: std::thread::JoinHandle<io::Result<Vec<u8>>>,
    }

    impl Loopback {
        fn new() -> Self {
            use std::net::{TcpListener, TcpStream};
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            // As echo-server's listeners do: urgent bytes come inline.
            socket2::SockRef::from(&listener)
                .set_out_of_band_inline(true)
                .expect("urgent data inline");
            let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
            client.set_read_timeout(Some(WAIT)).expect("timeout");
            let (server, _) = listener.accept().expect("accept");
            server.set_nonblocking(true).expect("non-blocking");
            let mut stream = mio::net::TcpStream::from_std(server);
            let poll_set = mio::Poll::new().expect("poll");
            poll_set
                .registry()
                .register(
                    &mut stream,
                    mio::Token(0),
                    mio::Interest::READABLE | mio::Interest::WRITABLE | mio::Interest::PRIORITY,
                )
                .expect("register");
            Loopback {
                client,
                server: Served {
                    stream,
                    bytes_read: 0,
                },
                poll_set,
                events: mio::Events::with_capacity(16),
                echo: Echo::new(true, true),
                scratch: Scratch::new(MAX_PIPES),
            }
        }

        /// Serves until the echo finishes or `enough` says so after a turn;
        /// the first turn, as the event loop's, assumes anything may be ready.
        fn serve(&mut self, mut enough: impl FnMut(&Echo, &Scratch) -> bool) -> Step {
            let deadline = std::time::Instant::now() + WAIT;
            let mut resume = true;
            loop {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the echo did not finish"
                );
                let wait = if resume {
                    std::time::Duration::ZERO
                } else {
                    std::time::Duration::from_secs(1)
                };
                self.poll_set
                    .poll(&mut self.events, Some(wait))
                    .expect("poll");
                let mut turns: Vec<Readiness> = self
                    .events
                    .iter()
                    .map(|event| Readiness {
                        readable: event.is_readable(),
                        read_closed: event.is_read_closed(),
                        urgent: event.is_priority(),
                    })
                    .collect();
                if resume {
                    turns.push(Readiness::ANY);
                }
                for ready in turns {
                    let turn = self
                        .echo
                        .advance(&mut self.server, &mut self.scratch, ready)
                        .expect("no failure");
                    if turn.step == Step::Finished || enough(&self.echo, &self.scratch) {
                        return turn.step;
                    }
                    resume = turn.step == Step::Yield;
                }
            }
        }

        /// Waits on readable edges, each new segment raising one, until the
        /// server's receive queue holds `bytes`.
        fn wait_queued(&mut self, bytes: usize) {
            let deadline = std::time::Instant::now() + WAIT;
            let mut peeked = vec![0; bytes];
            loop {
                let queued = match self.server.stream.peek(&mut peeked) {
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => 0,
                    queued => queued.expect("peek"),
                };
                if queued == bytes {
                    return;
                }
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                assert!(!left.is_zero(), "{queued} of {bytes} bytes came");
                self.poll_set
                    .poll(&mut self.events, Some(left))
                    .expect("poll");
            }
        }

        /// Starts the client: `send` writes from a thread of its own; another
        /// reads the echo, and half-closes only once `echo_len` bytes came,
        /// as a client that waits for its whole echo before it ends its
        /// stream: no end of stream makes the server read on.
        fn start_client(
            &self,
            echo_len: usize,
            send: impl FnOnce(&mut std::net::TcpStream) + Send + 'static,
        ) -> Client {
            let mut sending = self.client.try_clone().expect("clone");
            let mut reading = self.client.try_clone().expect("clone");
            Client {
                writer: std::thread::spawn(move || send(&mut sending)),
                reader: std::thread::spawn(move || {
                    let mut reply = vec![0; echo_len];
                    reading.read_exact(&mut reply)?;
                    reading.shutdown(std::net::Shutdown::Write)?;
                    // Anything after the echo is kept, for the test to see.
                    reading.read_to_end(&mut reply).map(|_| reply)
                }),
            }
        }

        /// Ends the server's side, as closing does after a finished echo,
        /// and returns what the client read.
        fn reply(&self, client: Client) -> Vec<u8> {
            self.server
                .stream
                .shutdown(std::net::Shutdown::Write)
                .expect("end of stream");
            client.writer.join().expect("writer");
            client
                .reader
                .join()
                .expect("reader")
                .expect("the whole reply")
        }
    }

    #[test]
    fn a_bulk_stream_is_spliced_byte_exact_with_its_urgent_byte_inline() {
        const HALF: usize = 8 << 20;
        let first: Vec<u8> = (0..HALF).map(|n| (n % 251) as u8).collect();
        let second: Vec<u8> = (0..HALF).map(|n| (n % 241) as u8).collect();
        let mut expected = first.clone();
        expected.push(b'U');
        expected.extend_from_slice(&second);
        let mut served = Loopback::new();
        let client = served.start_client(expected.len(), move |client| {
            client.write_all(&first).expect("first half");
            socket2::SockRef::from(&*client)
                .send_out_of_band(b"U")
                .expect("urgent byte");
            client.write_all(&second).expect("second half");
        });
        let mut most_pipes = 0;
        let step = served.serve(|_, scratch| {
            most_pipes = most_pipes.max(scratch.pipes_open());
            false
        });
        assert_eq!(step, Step::Finished);
        let reply = served.reply(client);
        assert!(most_pipes > 0, "the bulk stream never spliced");
        assert_eq!(reply.len(), expected.len());
        assert!(reply == expected, "the reply differs from what was sent");
        assert_eq!(served.echo.written(), expected.len() as u64);
    }

    #[test]
    fn a_bulk_stream_is_read_once_then_spliced() {
        let message: Vec<u8> = (0..4 << 20).map(|n| (n % 251) as u8).collect();
        let mut served = Loopback::new();
        let client = served.start_client(message.len(), {
            let message = message.clone();
            move |client| client.write_all(&message).expect("send")
        });
        // The first read then fills the buffer, which makes the stream bulk.
        served.wait_queued(BUFFER_SIZE);
        let step = served.serve(|_, _| false);
        assert_eq!(step, Step::Finished);
        let reply = served.reply(client);
        assert!(reply == message, "the reply differs from what was sent");
        assert_eq!(
            served.server.bytes_read, BUFFER_SIZE,
            "bytes read, not spliced"
        );
    }

    #[test]
    fn small_echoes_never_take_a_pipe() {
        let mut served = Loopback::new();
        let mut most_pipes = 0;
        let mut sent = 0;
        for round in 0..3 {
            let message = format!("small message {round}");
            served.client.write_all(message.as_bytes()).expect("send");
            sent += message.len() as u64;
            served.serve(|echo, scratch| {
                most_pipes = most_pipes.max(scratch.pipes_open());
                echo.written() == sent
            });
            let mut reply = vec![0; message.len()];
            served.client.read_exact(&mut reply).expect("the echo");
            assert_eq!(reply, message.as_bytes());
        }
        assert_eq!(most_pipes, 0, "an idle connection would hold a pipe");
    }

    impl Loopback {
        /// Makes the connection a bulk one whose pipe holds `bytes` its
        /// peer has not taken yet: by hand, since the kernel leaves a pipe
        /// holding bytes with nothing more to come only by a race.
        fn hold_in_pipe(&mut self, bytes: &[u8]) {
            let mut pipe = self.scratch.pipes.take().expect("a pipe");
            pipe.held = nix::unistd::write(&pipe.write, bytes).expect("into the pipe");
            assert_eq!(pipe.held, bytes.len());
            self.echo.bulk = true;
            self.echo.pipe = Some(pipe);
        }

        /// One turn on `ready`, and what the client then reads: exactly as
        /// many bytes as the turn wrote back.
        fn turn_and_read(&mut self, ready: Readiness) -> (Turn, Vec<u8>) {
            let written = self.echo.written();
            let turn = self
                .echo
                .advance(&mut self.server, &mut self.scratch, ready)
                .expect("no failure");
            let mut reply = vec![0; usize::try_from(self.echo.written() - written).expect("small")];
            self.client.read_exact(&mut reply).expect("the echo");
            (turn, reply)
        }
    }

    #[test]
    fn a_writable_edge_writes_back_what_the_pipe_holds() {
        // The peer stopped taking bytes with some still in the pipe, and the
        // receive queue is empty: no readable edge will come, only a
        // writable one once the peer takes bytes.
        let mut served = Loopback::new();
        served.hold_in_pipe(b"held");
        assert!(served.echo.holds_bytes());
        let (turn, reply) = served.turn_and_read(Readiness::default());
        assert!(turn.moved, "the pipe's bytes stayed in it");
        assert_eq!(reply, b"held");
        assert!(!served.echo.holds_bytes());
        // Waiting for input, it gave the pipe back for the next bulk turn.
        assert!(served.echo.pipe.is_none());
        assert_eq!(served.scratch.pipes.spare.len(), 1);
    }

    #[test]
    fn an_urgent_byte_is_read_even_with_a_pipe_in_hand() {
        // A splice stops at the urgent mark and says `EAGAIN`, and no edge
        // is to come for a byte that is already there: only a read takes it.
        let mut served = Loopback::new();
        socket2::SockRef::from(&served.client)
            .send_out_of_band(b"U")
            .expect("urgent byte");
        served.wait_queued(1);
        served.hold_in_pipe(b"held");
        let (turn, reply) = served.turn_and_read(Readiness {
            readable: true,
            read_closed: false,
            urgent: true,
        });
        assert_eq!(reply, b"heldU");
        assert_eq!(turn.step, Step::Wait);
    }
}
