//! One TLS connection as the event loop serves it: a non-blocking byte
//! stream of plaintext over a TCP stream of records, through rustls's
//! unbuffered API, so that the echo's state machine moves its bytes as it
//! moves a plain connection's.
//!
//! rustls's buffered connection keeps buffers of its own for as long as a
//! connection lives; here the records in and out sit in buffers borrowed
//! from the thread's pool ([`super::buffers`]) only while they are there, so
//! a connection waiting for input holds none.
//!
//! Reading takes from the socket no more record bytes than the caller's
//! buffer has room left for their plaintext, so a read leaves no whole
//! record undecrypted behind it: rustls can then always be asked to encrypt
//! the echo, which it allows only once every record it has decrypted was read.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};

use echo_proto::BUFFER_SIZE;
use mio::net::TcpStream;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncodeTlsData, EncryptError, InsufficientSizeError, WriteTraffic,
};
use tracing::debug;

use super::{Context, Failure, buffers};
use crate::stats::Stats;

/// The least room worth reading records into while plaintext is already in
/// hand: below it, the read returns what it has and the next one goes on.
const MIN_READ: usize = 4 * 1024;

thread_local! {
    /// The name the client asked for (SNI) in the last hello this thread's
    /// certificate resolver saw: rustls's unbuffered server connection does
    /// not keep it, and the resolver runs inside the connection's own call.
    static SERVER_NAME: RefCell<Option<Box<str>>> = const { RefCell::new(None) };
}

/// Notes the name a client hello asked for, for the connection being
/// processed on this thread to log once its handshake is over.
pub(super) fn note_server_name(name: Option<&str>) {
    SERVER_NAME.set(name.map(Box::from));
}

/// Where the handshake stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handshake {
    /// Under way; it must be over by this instant.
    Pending(Instant),
    /// Over, and counted.
    Done,
    /// Failed, and counted.
    Failed,
}

/// A TLS connection being served.
pub(crate) struct TlsStream {
    tcp: TcpStream,
    conn: UnbufferedServerConnection,
    context: Arc<Context>,
    incoming: Incoming,
    outgoing: Outgoing,
    /// Plaintext decrypted while writing, to be read first (never, in
    /// practice: see the module's doc).
    unread: Vec<u8>,
    handshake: Handshake,
    /// The server name the client asked for, while the handshake is on.
    server_name: Option<Box<str>>,
    /// The TCP stream has ended.
    eof: bool,
    /// The client's message has ended: by its `close_notify`, or by an end
    /// of stream once the handshake was over.
    peer_done: bool,
    /// Our `close_notify` is queued.
    closing: bool,
    /// A read of the socket in this turn came back short: it was empty then,
    /// and bytes that came since raise a new edge, so the turn need not ask again.
    drained: bool,
    /// This turn must read until `WouldBlock` or the end of stream: the
    /// peer shut down its side, and that edge has been taken.
    drain_to_the_end: bool,
    /// Record bytes were read or written since the byte mover last asked.
    moved: bool,
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream")
            .field("tcp", &self.tcp)
            .field("handshake", &self.handshake)
            .field("incoming", &self.incoming.filled)
            .field("outgoing", &(self.outgoing.end - self.outgoing.start))
            .field("peer_done", &self.peer_done)
            .field("closing", &self.closing)
            .finish_non_exhaustive()
    }
}

/// Records received and not yet processed: a record in part, mostly.
#[derive(Debug, Default)]
struct Incoming {
    buffer: Option<Box<[u8]>>,
    filled: usize,
}

impl Incoming {
    /// The bytes rustls is to process.
    fn filled_mut(&mut self) -> &mut [u8] {
        match &mut self.buffer {
            Some(buffer) => &mut buffer[..self.filled],
            None => &mut [],
        }
    }

    /// Drops the first `n` bytes, which rustls is done with.
    fn discard(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        if let Some(buffer) = &mut self.buffer {
            buffer.copy_within(n..self.filled, 0);
        }
        self.filled -= n;
    }

    /// Whether the buffer has no room left behind the bytes held.
    fn is_full(&self) -> bool {
        self.buffer
            .as_ref()
            .is_some_and(|buffer| self.filled == buffer.len())
    }

    /// Reads at most `limit` bytes from `tcp` behind those held; says how
    /// many, and whether that was fewer than asked (the socket is empty).
    fn read_from(&mut self, tcp: &TcpStream, limit: usize) -> io::Result<(usize, bool)> {
        let buffer = self.buffer.get_or_insert_with(buffers::take);
        let end = self.filled.saturating_add(limit).min(buffer.len());
        let n = (&*tcp).read(&mut buffer[self.filled..end])?;
        let short = self.filled + n < end;
        self.filled += n;
        Ok((n, short))
    }

    /// Gives the buffer back when it holds nothing.
    fn release_if_empty(&mut self) {
        if self.filled == 0 {
            if let Some(buffer) = self.buffer.take() {
                buffers::give(buffer);
            }
        }
    }
}

impl Drop for Incoming {
    /// A connection closed with its buffer lent (the last records read, or
    /// a peer gone) gives it back, so the next connection need not make one.
    fn drop(&mut self) {
        if let Some(buffer) = self.buffer.take() {
            buffers::give(buffer);
        }
    }
}

/// Records encoded and not yet written that a write may add to rather
/// than send first (a session ticket, say), so both go in one system call.
const COALESCED: usize = 16 * 1024;

/// Records encoded and not yet taken by the socket.
#[derive(Debug, Default)]
struct Outgoing {
    buffer: Option<Box<[u8]>>,
    start: usize,
    end: usize,
    /// The socket took some since the byte mover last asked.
    moved: bool,
}

impl Outgoing {
    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Bytes held.
    fn held(&self) -> usize {
        self.end - self.start
    }

    /// The room behind what is held, at least `need` bytes of it.
    fn room(&mut self, need: usize) -> &mut [u8] {
        let buffer = self.buffer.get_or_insert_with(buffers::take);
        if buffer.len() - self.end < need {
            buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if buffer.len() - self.end < need {
                // A flight bigger than a buffer (a long certificate chain): rare.
                let mut bigger = vec![0; self.end + need].into_boxed_slice();
                bigger[..self.end].copy_from_slice(&buffer[..self.end]);
                *buffer = bigger;
            }
        }
        &mut buffer[self.end..]
    }

    /// Writes into the room with `encode`, growing it once if it says it needs more.
    fn put(
        &mut self,
        mut encode: impl FnMut(&mut [u8]) -> Result<usize, Option<usize>>,
    ) -> io::Result<()> {
        let n = match encode(self.room(0)) {
            Ok(n) => n,
            Err(Some(required)) => encode(self.room(required))
                .map_err(|_| io::Error::other("TLS: no room for a record"))?,
            Err(None) => return Err(io::Error::other("TLS: a record could not be encoded")),
        };
        self.end += n;
        Ok(())
    }

    /// Writes what is held to `tcp`; `WouldBlock` when the peer is not taking it.
    fn send(&mut self, tcp: &TcpStream) -> io::Result<()> {
        self.send_with(tcp, 0)
    }

    /// Writes what is held to `tcp` as the connection's last bytes: the
    /// kernel keeps them back (`MSG_MORE`) for the close that follows at once
    /// to add its FIN to the same segment, which then goes out.
    fn send_last(&mut self, tcp: &TcpStream) -> io::Result<()> {
        self.send_with(tcp, libc::MSG_MORE)
    }

    fn send_with(&mut self, tcp: &TcpStream, flags: libc::c_int) -> io::Result<()> {
        let Some(buffer) = &self.buffer else {
            return Ok(());
        };
        let socket = socket2::SockRef::from(tcp);
        while self.start < self.end {
            match socket.send_with_flags(&buffer[self.start..self.end], flags | libc::MSG_NOSIGNAL)
            {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.start += n;
                    self.moved = true;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        self.start = 0;
        self.end = 0;
        if let Some(buffer) = self.buffer.take() {
            buffers::give(buffer);
        }
        Ok(())
    }
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        if let Some(buffer) = self.buffer.take() {
            buffers::give(buffer);
        }
    }
}

/// The size a too-small buffer was found to need, from either kind of error.
fn required_by_encode(err: EncodeError) -> Option<usize> {
    match err {
        EncodeError::InsufficientSize(InsufficientSizeError { required_size }) => {
            Some(required_size)
        }
        _ => None,
    }
}

fn required_by_encrypt(err: EncryptError) -> Option<usize> {
    match err {
        EncryptError::InsufficientSize(InsufficientSizeError { required_size }) => {
            Some(required_size)
        }
        _ => None,
    }
}

/// Encodes a handshake record rustls has ready into `outgoing`.
fn encode<Data>(outgoing: &mut Outgoing, mut record: EncodeTlsData<'_, Data>) -> io::Result<()> {
    outgoing.put(|room| record.encode(room).map_err(required_by_encode))
}

/// Encrypts our `close_notify` into `outgoing`.
fn close_notify<Data>(
    outgoing: &mut Outgoing,
    traffic: &mut WriteTraffic<'_, Data>,
) -> io::Result<()> {
    outgoing.put(|room| {
        traffic
            .queue_close_notify(room)
            .map_err(required_by_encrypt)
    })
}

/// What a read does after one state of the connection.
enum Next {
    /// Ask rustls again.
    Again,
    /// Records are wanted from the socket.
    Input,
    /// Return the plaintext in hand (the end of the message is next).
    Return,
    /// Both sides sent `close_notify`, or ours follows an end of stream.
    Closed,
}

/// Result of one `process_tls_records` call, apart from its discard.
type Processed = Result<Next, rustls::Error>;

impl TlsStream {
    /// A connection just accepted, its handshake to come.
    ///
    /// # Errors
    /// rustls could not make the connection (out of memory, in practice).
    pub(crate) fn accept(tcp: TcpStream, context: Arc<Context>) -> io::Result<Self> {
        let conn = UnbufferedServerConnection::new(Arc::clone(&context.config))
            .map_err(io::Error::other)?;
        Ok(TlsStream {
            tcp,
            conn,
            handshake: Handshake::Pending(Instant::now() + context.handshake_timeout),
            context,
            incoming: Incoming::default(),
            outgoing: Outgoing::default(),
            unread: Vec::new(),
            server_name: None,
            eof: false,
            peer_done: false,
            closing: false,
            drained: false,
            drain_to_the_end: false,
            moved: false,
        })
    }

    /// The TCP stream under the records.
    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// A new turn: the socket is to be read again, to its end if asked.
    pub(crate) fn start_turn(&mut self, drain_to_the_end: bool) {
        self.drained = false;
        self.drain_to_the_end = drain_to_the_end;
    }

    /// The TCP stream under the records, to register it.
    pub(crate) fn tcp_mut(&mut self) -> &mut TcpStream {
        &mut self.tcp
    }

    /// Whether record bytes were read or written since last asked: a
    /// handshake's records are progress too, for the idle rule.
    pub(crate) fn take_moved(&mut self) -> bool {
        std::mem::take(&mut self.moved) || std::mem::take(&mut self.outgoing.moved)
    }

    /// Record bytes encoded and not yet written to the socket.
    pub(crate) fn held_output(&self) -> u64 {
        self.outgoing.held() as u64
    }

    /// Whether records are encoded and not yet written to the socket.
    pub(crate) fn holds_output(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Whether the handshake is still on at `now`, past its deadline; it is
    /// counted as failed then, and the connection is to be closed.
    pub(crate) fn handshake_overdue(&mut self, now: Instant) -> bool {
        match self.handshake {
            Handshake::Pending(deadline) if now >= deadline => {
                self.handshake = Handshake::Failed;
                Failure::Timeout.count(&self.context.stats);
                true
            }
            _ => false,
        }
    }

    /// Ends a connection the server closes early: a reset when the peer is
    /// owed bytes, else our `close_notify` (once the handshake is over) and
    /// the end of the TCP stream.
    pub(crate) fn end_early(&mut self, owed: bool) {
        // Best effort throughout: it fails only on a connection already dead.
        if owed {
            let _ = socket2::SockRef::from(&self.tcp).set_linger(Some(Duration::ZERO));
            return;
        }
        if self.handshake == Handshake::Done && !self.closing {
            let _ = self.queue_close_notify();
            let _ = self.outgoing.send(&self.tcp);
        }
        let _ = self.tcp.shutdown(Shutdown::Write);
    }

    /// Queues our `close_notify`, once rustls allows application records.
    fn queue_close_notify(&mut self) -> io::Result<()> {
        for _ in 0..8 {
            let status = self.conn.process_tls_records(self.incoming.filled_mut());
            let discard = status.discard;
            let done = match status.state {
                Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                    close_notify(&mut self.outgoing, &mut traffic)?;
                    self.closing = true;
                    true
                }
                Ok(ConnectionState::EncodeTlsData(record)) => {
                    encode(&mut self.outgoing, record)?;
                    false
                }
                Ok(ConnectionState::TransmitTlsData(transmit)) => {
                    transmit.done();
                    false
                }
                _ => true,
            };
            self.incoming.discard(discard);
            if done {
                break;
            }
        }
        Ok(())
    }

    /// Counts a failed handshake by its cause, sends rustls's alert if the
    /// socket takes it now, and says what failed.
    fn failed(&mut self, err: rustls::Error) -> io::Error {
        let during_handshake = matches!(self.handshake, Handshake::Pending(_));
        if during_handshake {
            self.handshake = Handshake::Failed;
            Failure::of(&err).count(&self.context.stats);
        }
        // rustls queued a fatal alert, which the next call gives out before
        // it looks at the records again; a call after that would read the
        // same bad records again, so there is none: the connection is over.
        let status = self.conn.process_tls_records(self.incoming.filled_mut());
        let discard = status.discard;
        if let Ok(ConnectionState::EncodeTlsData(record)) = status.state {
            let _ = encode(&mut self.outgoing, record);
        }
        self.incoming.discard(discard);
        let _ = self.outgoing.send(&self.tcp);
        let what = if during_handshake {
            "TLS handshake failed"
        } else {
            "TLS failed"
        };
        io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {err}"))
    }

    /// Ends a handshake the peer left before it was over.
    fn left_during_handshake(&mut self, err: io::Error) -> io::Error {
        if matches!(self.handshake, Handshake::Pending(_)) {
            self.handshake = Handshake::Failed;
            Failure::Closed.count(&self.context.stats);
            return io::Error::new(
                err.kind(),
                format!("TLS handshake failed: the client left: {err}"),
            );
        }
        err
    }

    /// Counts and logs the handshake once it is over.
    fn check_handshake(&mut self) {
        if !matches!(self.handshake, Handshake::Pending(_)) || self.conn.is_handshaking() {
            return;
        }
        self.handshake = Handshake::Done;
        Stats::bump(&self.context.stats.tls_handshakes);
        let server_name = self.server_name.take();
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        let peer = self
            .tcp
            .peer_addr()
            .map_or_else(|_| "a peer gone".to_owned(), |addr| addr.to_string());
        let version = self
            .conn
            .protocol_version()
            .map(|version| version.as_str().unwrap_or("unknown").replace('_', "."));
        let suite = self
            .conn
            .negotiated_cipher_suite()
            .map(|suite| suite.suite().as_str().unwrap_or("unknown").to_owned());
        let alpn = self
            .conn
            .alpn_protocol()
            .map(|protocol| String::from_utf8_lossy(protocol).into_owned());
        let client = self
            .conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|cert| subject(cert.as_ref()));
        debug!(%peer,
            version = version.as_deref().unwrap_or("none"),
            suite = suite.as_deref().unwrap_or("none"),
            sni = server_name.as_deref().unwrap_or("none"),
            alpn = alpn.as_deref().unwrap_or("none"),
            resumed = matches!(self.conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed)),
            client_certificate = client.as_deref().unwrap_or("none"),
            "TLS handshake done");
    }

    /// Handles one state of the connection for a read into `buf`, of which
    /// `n` bytes are filled.
    fn step_read(&mut self, buf: &mut [u8], n: &mut usize) -> io::Result<Next> {
        let status = self.conn.process_tls_records(self.incoming.filled_mut());
        // The certificate resolver ran inside that call if a hello came.
        if let Some(name) = SERVER_NAME.take() {
            self.server_name = Some(name);
        }
        let discard = status.discard;
        let next: Processed = match status.state {
            Err(err) => Err(err),
            Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                let mut next = Ok(Next::Again);
                while let Some(record) = traffic.next_record() {
                    match record {
                        Ok(record) => {
                            let payload = record.payload;
                            let fits = payload.len().min(buf.len() - *n);
                            buf[*n..*n + fits].copy_from_slice(&payload[..fits]);
                            self.unread.extend_from_slice(&payload[fits..]);
                            *n += fits;
                        }
                        Err(err) => {
                            next = Err(err);
                            break;
                        }
                    }
                }
                next
            }
            Ok(ConnectionState::EncodeTlsData(record)) => {
                encode(&mut self.outgoing, record)?;
                Ok(Next::Again)
            }
            Ok(ConnectionState::TransmitTlsData(transmit)) => {
                transmit.done();
                Ok(Next::Again)
            }
            Ok(ConnectionState::PeerClosed) => {
                self.peer_done = true;
                Ok(Next::Again)
            }
            Ok(ConnectionState::Closed) => Ok(Next::Closed),
            Ok(ConnectionState::BlockedHandshake) => Ok(Next::Input),
            Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                if !self.peer_done {
                    Ok(Next::Input)
                } else if *n > 0 {
                    // The echo of what is in hand goes out before our close_notify.
                    Ok(Next::Return)
                } else if !self.closing {
                    close_notify(&mut self.outgoing, &mut traffic)?;
                    self.closing = true;
                    Ok(Next::Again)
                } else {
                    Ok(Next::Closed)
                }
            }
            // Early data is never accepted (rustls's default), and no other state exists today.
            Ok(_) => Err(rustls::Error::General("unexpected TLS state".into())),
        };
        self.incoming.discard(discard);
        match next {
            Ok(next) => {
                self.check_handshake();
                Ok(next)
            }
            Err(err) => Err(self.failed(err)),
        }
    }
}

/// A certificate's subject as text (`CN=client.test, O=...`), for the log.
fn subject(der: &[u8]) -> String {
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => cert.subject().to_string(),
        Err(_) => "(unparsable)".to_owned(),
    }
}

impl Read for TlsStream {
    /// Plaintext, as records come; `Ok(0)` once the client's message is over
    /// and our `close_notify` is written; `WouldBlock` when the socket has
    /// nothing more, with any handshake records owed to the peer sent first.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.unread.is_empty() {
            let n = self.unread.len().min(buf.len());
            buf[..n].copy_from_slice(&self.unread[..n]);
            self.unread.drain(..n);
            if self.unread.is_empty() {
                self.unread = Vec::new();
            }
            return Ok(n);
        }
        let mut n = 0;
        loop {
            match self.step_read(buf, &mut n)? {
                Next::Again => {}
                Next::Return => return Ok(n),
                Next::Closed => {
                    if n == 0 {
                        // The byte mover closes the connection on this end
                        // of stream, or flushes what the socket did not take.
                        self.outgoing.send_last(&self.tcp)?;
                    }
                    return Ok(n);
                }
                Next::Input if self.eof => {
                    if matches!(self.handshake, Handshake::Pending(_)) {
                        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
                        return Err(self.left_during_handshake(eof));
                    }
                    // An end of stream without close_notify ends the message as well.
                    self.peer_done = true;
                }
                Next::Input => {
                    if !self.unread.is_empty() {
                        return Ok(n);
                    }
                    // No more record bytes than their plaintext has room for;
                    // during the handshake, which yields none, as many as the
                    // buffer holds (a handshake message may span several records).
                    let room = if matches!(self.handshake, Handshake::Pending(_)) {
                        usize::MAX
                    } else {
                        (buf.len() - n).saturating_sub(self.incoming.filled)
                    };
                    if n > 0 && room < MIN_READ {
                        return Ok(n);
                    }
                    if room == 0 || self.incoming.is_full() {
                        let err = rustls::Error::General("a TLS message too big to buffer".into());
                        return Err(self.failed(err));
                    }
                    let read = if self.drained && !self.drain_to_the_end {
                        // Saves a read that would find nothing.
                        Err(io::Error::from(io::ErrorKind::WouldBlock))
                    } else {
                        self.incoming.read_from(&self.tcp, room)
                    };
                    match read {
                        Ok((0, _)) => self.eof = true,
                        Ok((_, short)) => {
                            self.drained |= short;
                            self.moved = true;
                        }
                        Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                            self.incoming.release_if_empty();
                            if n > 0 {
                                // The echo's write sends what is held with it.
                                return Ok(n);
                            }
                            // What is owed to the peer (a handshake flight)
                            // goes before the wait for its answer; a peer
                            // not taking it yet is `holds_output`.
                            match self.outgoing.send(&self.tcp) {
                                Err(err) if err.kind() != io::ErrorKind::WouldBlock => {
                                    return Err(err);
                                }
                                _ => return Err(err),
                            }
                        }
                        Err(err) => return Err(self.left_during_handshake(err)),
                    }
                }
            }
        }
    }
}

impl Write for TlsStream {
    /// Encrypts up to a read chunk of `data` and writes the records with any
    /// held before them; those the socket does not take now stay held, and
    /// a call that finds more than [`COALESCED`] bytes held and the socket
    /// still not taking them says `WouldBlock`. Once the client's message is
    /// over, the records wait for our close_notify, which the next read adds.
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.outgoing.held() > COALESCED {
            self.outgoing.send(&self.tcp)?;
        }
        let data = &data[..data.len().min(BUFFER_SIZE)];
        loop {
            let status = self.conn.process_tls_records(self.incoming.filled_mut());
            let discard = status.discard;
            let next: Result<bool, rustls::Error> = match status.state {
                Err(err) => Err(err),
                Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                    self.outgoing
                        .put(|room| traffic.encrypt(data, room).map_err(required_by_encrypt))?;
                    Ok(true)
                }
                Ok(ConnectionState::EncodeTlsData(record)) => {
                    encode(&mut self.outgoing, record)?;
                    Ok(false)
                }
                Ok(ConnectionState::TransmitTlsData(transmit)) => {
                    transmit.done();
                    Ok(false)
                }
                Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                    let mut result = Ok(false);
                    while let Some(record) = traffic.next_record() {
                        match record {
                            Ok(record) => self.unread.extend_from_slice(record.payload),
                            Err(err) => {
                                result = Err(err);
                                break;
                            }
                        }
                    }
                    result
                }
                Ok(ConnectionState::PeerClosed) => {
                    self.peer_done = true;
                    Ok(false)
                }
                Ok(ConnectionState::Closed) => {
                    self.incoming.discard(discard);
                    return Err(io::ErrorKind::BrokenPipe.into());
                }
                Ok(_) => {
                    self.incoming.discard(discard);
                    return Err(io::Error::other(
                        "TLS: an echo to write before the handshake is over",
                    ));
                }
            };
            self.incoming.discard(discard);
            match next {
                Ok(true) => break,
                Ok(false) => {}
                Err(err) => return Err(self.failed(err)),
            }
        }
        if self.peer_done {
            // The message is over: the next read queues our close_notify
            // and sends it with this, in one segment.
            return Ok(data.len());
        }
        match self.outgoing.send(&self.tcp) {
            Err(err) if err.kind() != io::ErrorKind::WouldBlock => Err(err),
            _ => Ok(data.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.outgoing.send(&self.tcp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_dropped_with_buffers_lent_gives_them_back() {
        std::thread::spawn(|| {
            let incoming = Incoming {
                buffer: Some(buffers::take()),
                filled: 5,
            };
            let outgoing = Outgoing {
                buffer: Some(buffers::take()),
                start: 0,
                end: 7,
                moved: false,
            };
            assert_eq!(buffers::spare(), 0);
            drop(incoming);
            drop(outgoing);
            assert_eq!(buffers::spare(), 2, "both buffers are spare again");
        })
        .join()
        .expect("the test thread");
    }
}
