//! One TLS connection's byte mover: the handshake, made on one thread
//! before the exchange starts, then the rustls connection shared by the
//! writer thread and the reader.
//!
//! A rustls connection cannot be split across two threads, so it sits
//! behind a mutex that each side holds only to hand bytes to rustls or take
//! them out, never across a read or write on the socket: the reader may
//! block on the socket for a whole timeout while the writer encrypts and
//! sends, and the other way round, so a large message cannot deadlock.
//!
//! Records must reach the socket in the order rustls made them, so one
//! thread writes at a time: the writer, until it has written the whole
//! message; after that only the close_notify is left to send, and whichever
//! side finds it due takes it (once, under the lock) and sends it.

use std::io::{self, Read as _, Write as _};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use echo_proto::BUFFER_SIZE;
use rustls::{ClientConnection, ProtocolVersion};

use super::{Connector, Negotiated, Version};
use crate::activity::Patience;
use crate::connection::{Connection, Direction};
use crate::exchange::{Failure, write_all};

/// The TLS side of one connection, shared by its writer and its reader.
#[derive(Debug)]
pub(crate) struct Session {
    state: Mutex<State>,
    version: Version,
}

#[derive(Debug)]
struct State {
    connection: ClientConnection,
    /// The message's length, once the writer has written all of it; never
    /// set on a connection kept for persistent probes, which is not ended.
    written: Option<u64>,
    /// The message's length when it is known before it goes out, so that a
    /// close without close_notify can be judged before the writer has
    /// recorded `written`: the server may close as soon as it has read the
    /// last byte, before the writer thread is back from writing it.
    expected: Option<u64>,
    /// Plaintext bytes the reader has taken out so far.
    received: u64,
    /// Whether the client's close_notify has been taken to be sent.
    closed: bool,
}

impl State {
    /// The records of the client's close_notify, when it is due and no one
    /// has taken them yet: at once after the message over TLS 1.3; over TLS
    /// 1.2, where a close_notify closes both ways (RFC 5246 7.2.1), only
    /// once the whole echo is back.
    fn take_close(&mut self, version: Version) -> io::Result<Option<Vec<u8>>> {
        let Some(written) = self.written else {
            return Ok(None);
        };
        let due = match version {
            Version::Tls13 => true,
            Version::Tls12 => self.received >= written,
        };
        if self.closed || !due {
            return Ok(None);
        }
        self.closed = true;
        self.connection.send_close_notify();
        let mut records = Vec::new();
        drain(&mut self.connection, &mut records)?;
        Ok(Some(records))
    }
}

/// Makes the TLS handshake on `socket`, all of it within `timeout`, and
/// says what it agreed on; the socket's timeouts are `timeout` again after.
///
/// # Errors
/// [`Failure::Tls`] when rustls refuses the server (its certificate, an
/// alert, the protocol), after telling the server why; [`Failure::Network`]
/// when the socket fails, times out, or closes first.
pub(crate) fn handshake(
    connector: &Connector,
    socket: &Connection,
    timeout: Option<Duration>,
) -> Result<(Session, Negotiated), Failure> {
    let deadline = timeout.map(|timeout| Instant::now() + timeout);
    let mut connection =
        ClientConnection::new(Arc::clone(&connector.config), connector.server_name.clone())
            .map_err(Failure::Tls)?;
    // Every record made is taken out at once, so rustls need not hold back.
    connection.set_buffer_limit(None);
    let mut buffer = vec![0u8; BUFFER_SIZE];
    let mut records = Vec::new();
    loop {
        if connection.wants_write() {
            drain(&mut connection, &mut records).map_err(Failure::Network)?;
            write_before(socket, deadline, &records).map_err(Failure::Network)?;
            records.clear();
            continue;
        }
        if !connection.is_handshaking() {
            break;
        }
        let n = read_before(socket, deadline, &mut buffer).map_err(Failure::Network)?;
        if n == 0 {
            return Err(Failure::Network(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection during the TLS handshake",
            )));
        }
        let mut rest = &buffer[..n];
        while !rest.is_empty() {
            if connection.read_tls(&mut rest).map_err(Failure::Network)? == 0 {
                break;
            }
            if let Err(err) = connection.process_new_packets() {
                // rustls queued an alert that tells the server why; it may
                // be gone already, and the error to report is rustls's.
                let _ = drain(&mut connection, &mut records)
                    .and_then(|()| write_before(socket, deadline, &records));
                return Err(Failure::Tls(err));
            }
        }
    }
    for direction in [Direction::Receive, Direction::Send] {
        socket
            .set_timeout(direction, timeout)
            .map_err(Failure::Network)?;
    }
    let version = match connection.protocol_version() {
        Some(ProtocolVersion::TLSv1_2) => Version::Tls12,
        _ => Version::Tls13,
    };
    let cipher_suite = connection
        .negotiated_cipher_suite()
        .map(|suite| format!("{:?}", suite.suite()))
        .unwrap_or_default();
    let session = Session {
        state: Mutex::new(State {
            connection,
            written: None,
            expected: None,
            received: 0,
            closed: false,
        }),
        version,
    };
    Ok((
        session,
        Negotiated {
            version,
            cipher_suite,
        },
    ))
}

impl Session {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic on the other side leaves rustls's state as it was.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Says, before the exchange, that the message is `len` bytes long.
    pub(crate) fn expect(&self, len: u64) {
        self.lock().expected = Some(len);
    }

    /// Encrypts `bytes` and writes the records through `writer`.
    pub(crate) fn write_all(&self, writer: &mut Patience<'_>, mut bytes: &[u8]) -> io::Result<()> {
        let mut records = Vec::new();
        while !bytes.is_empty() {
            {
                let mut state = self.lock();
                let n = state.connection.writer().write(bytes)?;
                bytes = &bytes[n..];
                drain(&mut state.connection, &mut records)?;
            }
            if records.is_empty() {
                return Err(io::ErrorKind::WriteZero.into());
            }
            write_all(writer, &records)?;
            records.clear();
        }
        Ok(())
    }

    /// The writer's last step once all `sent` bytes are out: records the
    /// length, calls `report` (which must not block) while no close_notify
    /// can have gone yet, so that a reader who sees the server close finds
    /// the report, then sends the close_notify if it is due.
    pub(crate) fn finish_writing(
        &self,
        writer: &mut Patience<'_>,
        sent: u64,
        report: impl FnOnce(),
    ) -> io::Result<()> {
        let close = {
            let mut state = self.lock();
            state.written = Some(sent);
            report();
            state.take_close(self.version)?
        };
        match close {
            Some(records) => write_all(writer, &records),
            None => Ok(()),
        }
    }
}

/// The reader's side of a [`Session`]: TLS bytes read from the socket and
/// not yet handed to rustls, which takes them a few KiB at a time and only
/// while its plaintext buffer has room.
#[derive(Debug)]
pub(crate) struct Inbound {
    session: Arc<Session>,
    pending: Vec<u8>,
    /// `pending[start..end]` is still to be handed to rustls.
    start: usize,
    end: usize,
}

impl Inbound {
    pub(crate) fn new(session: Arc<Session>) -> Self {
        Inbound {
            session,
            pending: vec![0u8; BUFFER_SIZE],
            start: 0,
            end: 0,
        }
    }

    /// Reads some plaintext into `buffer` (not empty), reading the socket
    /// through `receive` when rustls has none; sends the close_notify when
    /// the bytes read make it due.
    ///
    /// `Ok(0)` is the end: the server's close_notify, or the connection
    /// closed without one once the whole message has come back (or, for a
    /// stream, before it was all written, which the caller judges).
    ///
    /// # Errors
    /// [`Failure::Truncated`] when the connection closed without a
    /// close_notify before the whole echo came back; [`Failure::Tls`] when
    /// rustls refuses what came; [`Failure::Network`] for the socket.
    pub(crate) fn read(
        &mut self,
        receive: &mut Patience<'_>,
        buffer: &mut [u8],
    ) -> Result<usize, Failure> {
        loop {
            {
                let mut state = self.session.lock();
                match state.connection.reader().read(buffer) {
                    Ok(0) => return Ok(0),
                    Ok(n) => {
                        state.received += n as u64;
                        let close = state
                            .take_close(self.session.version)
                            .map_err(Failure::Network)?;
                        drop(state);
                        if let Some(records) = close {
                            write_all(&mut receive.other_way(), &records)
                                .map_err(Failure::Network)?;
                        }
                        return Ok(n);
                    }
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                    Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => {
                        return match state.written.or(state.expected) {
                            Some(sent) if state.received < sent => Err(Failure::Truncated {
                                received: state.received,
                                sent,
                            }),
                            _ => Ok(0),
                        };
                    }
                    Err(err) => return Err(Failure::Network(err)),
                }
                if self.start < self.end {
                    let mut rest = &self.pending[self.start..self.end];
                    match state
                        .connection
                        .read_tls(&mut rest)
                        .map_err(Failure::Network)?
                    {
                        // Past the server's close_notify: nothing more counts.
                        0 => self.start = self.end,
                        n => self.start += n,
                    }
                    state
                        .connection
                        .process_new_packets()
                        .map_err(Failure::Tls)?;
                    continue;
                }
            }
            let n = receive
                .attempt(|socket| socket.read_some(&mut self.pending))
                .map_err(Failure::Network)?;
            if n == 0 {
                // Tells rustls the connection ended, so that its reader
                // says whether a close_notify came first.
                let mut state = self.session.lock();
                state
                    .connection
                    .read_tls(&mut io::empty())
                    .map_err(Failure::Network)?;
            }
            (self.start, self.end) = (0, n);
        }
    }
}

/// Takes every record rustls has made into `records`.
fn drain(connection: &mut ClientConnection, records: &mut Vec<u8>) -> io::Result<()> {
    while connection.wants_write() {
        connection.write_tls(records)?;
    }
    Ok(())
}

/// What is left before `deadline`, as a socket timeout; an error once it passed.
fn left(deadline: Option<Instant>) -> io::Result<Option<Duration>> {
    match deadline.map(|deadline| deadline.saturating_duration_since(Instant::now())) {
        Some(left) if left.is_zero() => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the TLS handshake took too long",
        )),
        other => Ok(other),
    }
}

fn write_before(
    socket: &Connection,
    deadline: Option<Instant>,
    mut bytes: &[u8],
) -> io::Result<()> {
    while !bytes.is_empty() {
        socket.set_timeout(Direction::Send, left(deadline)?)?;
        match socket.write_some(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

fn read_before(
    socket: &Connection,
    deadline: Option<Instant>,
    buffer: &mut [u8],
) -> io::Result<usize> {
    loop {
        socket.set_timeout(Direction::Receive, left(deadline)?)?;
        match socket.read_some(buffer) {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}
