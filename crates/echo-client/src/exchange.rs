//! The byte mover of one stream exchange: a writer thread sends the message
//! and half-closes while the caller's thread reads the reply, both through the
//! one inactivity timeout, and their two outcomes become one.
//!
//! Over TLS the two threads share the rustls connection (see
//! [`crate::tls::session`]), and the message ends with a close_notify
//! instead of a half-close.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use echo_proto::BUFFER_SIZE;

use crate::activity::{Activity, Patience};
use crate::connection::{Connection, Direction};
use crate::tls::session::{Inbound, Session};

/// How many bytes went each way in a [`Client::stream`](crate::Client::stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// Bytes sent to the server.
    pub sent: u64,
    /// Bytes received back.
    pub received: u64,
}

/// How many bytes the reply may have at any moment: an echo never sends back
/// a byte before it has received it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ceiling<'a> {
    /// A message whose length is known before it goes out.
    Message(u64),
    /// A stream's bytes as the writer counts them in [`send`]: a ceiling that
    /// rises while the stream goes out, and is the stream's length once it ended.
    Stream(&'a AtomicU64),
}

impl Ceiling<'_> {
    fn now(self) -> u64 {
        match self {
            Ceiling::Message(len) => len,
            // The writer raised the count before it wrote the bytes, and the
            // server can echo them only after that write, so every byte read
            // here by now is covered; Acquire pairs with that Release.
            Ceiling::Stream(offered) => offered.load(Ordering::Acquire),
        }
    }
}

/// Copies the reply to `output` until the server closes (over TLS, the
/// plaintext `tls` decrypts), or until it goes past the `ceiling`, then
/// combines that with the writer's outcome, preferring the error that
/// explains the other; on failure, shuts the connection down so that the
/// writer cannot stay blocked.
pub(crate) fn finish<W: Write + ?Sized>(
    connection: &Connection,
    tls: Option<&mut Inbound>,
    activity: &Activity,
    timeout: Option<Duration>,
    writer_outcome: &mpsc::Receiver<Result<u64, Failure>>,
    output: &mut W,
    ceiling: Ceiling<'_>,
) -> Result<Transfer, Failure> {
    let mut reader = Patience::new(connection, Direction::Receive, activity, timeout);
    let read = receive(&mut reader, tls, output, ceiling);
    // The writer reports before it half-closes, so when the server closed
    // after our half-close the report is already here; when it closed
    // earlier, the writer's report may not have come yet: closed early.
    let written = writer_outcome.try_recv();
    let result = match (written, read) {
        (Ok(Ok(sent)), Ok(received)) => Ok(Transfer { sent, received }),
        // A failing input is the root cause; the reader then sees an aborted connection.
        (Ok(Err(failure @ Failure::Input(_))), _) => Err(failure),
        (_, Err(failure)) => Err(failure),
        // The server closed before taking the whole message: the writer
        // then meets a reset or a broken pipe, possibly before the reader
        // has drained what came back.
        (Ok(Err(Failure::Network(err))), Ok(_)) if is_closed(&err) => Err(Failure::ClosedEarly),
        (Ok(Err(failure)), Ok(_)) => Err(failure),
        (Err(mpsc::TryRecvError::Empty), Ok(_)) => Err(Failure::ClosedEarly),
        (Err(mpsc::TryRecvError::Disconnected), Ok(_)) => Err(Failure::WriterLost),
    };
    if result.is_err() {
        // Unblocks a writer stuck on a server that stopped reading.
        connection.shutdown_both();
    }
    result
}

/// What went wrong on one side of an exchange, before it is put in terms of the endpoint.
#[derive(Debug)]
pub(crate) enum Failure {
    Network(io::Error),
    Input(io::Error),
    Output(io::Error),
    ClosedEarly,
    ReplyTooLong {
        sent: u64,
    },
    WriterLost,
    /// rustls refused what the server sent, or could not go on.
    Tls(rustls::Error),
    /// The connection closed without a TLS close_notify before the whole
    /// echo came back: the reply may have been cut by anyone on the path.
    Truncated {
        received: u64,
        sent: u64,
    },
}

/// Writes all of `input` to the connection, reports, then half-closes: the
/// half-close is what tells the server the message is complete. Over TLS
/// (`tls`) the bytes are encrypted, and the end is a close_notify, sent as
/// [`Session::finish_writing`] says.
///
/// `offered` counts the bytes handed to the socket, each piece before it is
/// written, so that it is never below what the server can have received:
/// the reader, which checks the reply against it, would otherwise see the
/// echo of a write that has not been counted yet.
pub(crate) fn send<R: Read + ?Sized>(
    connection: &Connection,
    tls: Option<&Session>,
    activity: &Activity,
    timeout: Option<Duration>,
    input: &mut R,
    offered: &AtomicU64,
    outcome: &mpsc::SyncSender<Result<u64, Failure>>,
) {
    let mut writer = Patience::new(connection, Direction::Send, activity, timeout);
    let mut buffer = vec![0u8; BUFFER_SIZE];
    let mut sent = 0u64;
    let result = loop {
        let n = match input.read(&mut buffer) {
            Ok(0) => break Ok(sent),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => break Err(Failure::Input(err)),
        };
        offered.fetch_add(n as u64, Ordering::Release);
        let written = match tls {
            Some(session) => session.write_all(&mut writer, &buffer[..n]),
            None => write_all(&mut writer, &buffer[..n]),
        };
        if let Err(err) = written {
            break Err(Failure::Network(err));
        }
        sent += n as u64;
    };
    // The receiver is gone only when the exchange is already over, so each
    // report's failure is ignored. Should the end of the message fail to go
    // out, the server never learns the message ended and the reader sees
    // the connection fail or time out, which it then reports.
    match (result, tls) {
        (Ok(sent), Some(session)) => {
            let _ = session.finish_writing(&mut writer, sent, || {
                let _ = outcome.send(Ok(sent));
            });
        }
        (Ok(sent), None) => {
            let _ = outcome.send(Ok(sent));
            let _ = connection.shutdown_write();
        }
        (Err(failure), _) => {
            let _ = outcome.send(Err(failure));
            // Ends the exchange: the reader sees the connection go.
            connection.shutdown_both();
        }
    }
}

/// Writes all of `bytes`, a write at a time: `Write::write_all` cannot say
/// how much went out before a timeout, so it could not be resumed.
pub(crate) fn write_all(writer: &mut Patience<'_>, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match writer.attempt(|connection| connection.write_some(bytes))? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => bytes = &bytes[n..],
        }
    }
    Ok(())
}

/// Copies everything the server sends to `output` until it closes, each
/// piece flushed as it arrives; fails at the first byte beyond the
/// `ceiling`, having passed on the bytes before it and none after.
fn receive<W: Write + ?Sized>(
    reader: &mut Patience<'_>,
    mut tls: Option<&mut Inbound>,
    output: &mut W,
    ceiling: Ceiling<'_>,
) -> Result<u64, Failure> {
    let mut buffer = vec![0u8; BUFFER_SIZE];
    let mut received = 0u64;
    loop {
        let n = match &mut tls {
            Some(inbound) => inbound.read(reader, &mut buffer)?,
            None => reader
                .attempt(|connection| connection.read_some(&mut buffer))
                .map_err(Failure::Network)?,
        };
        if n == 0 {
            return Ok(received);
        }
        let sent = ceiling.now();
        let allowed = usize::try_from(sent.saturating_sub(received)).unwrap_or(usize::MAX);
        let piece = &buffer[..n.min(allowed)];
        // Flushed at once: whoever reads a stream's echo (a terminal, a pipe)
        // must see it while the stream is still going, not when it ends.
        output.write_all(piece).map_err(Failure::Output)?;
        output.flush().map_err(Failure::Output)?;
        received += piece.len() as u64;
        if piece.len() < n {
            return Err(Failure::ReplyTooLong { sent });
        }
    }
}

/// Whether a write failed because the peer had closed the connection.
fn is_closed(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    )
}
