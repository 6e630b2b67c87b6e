//! The byte mover of one stream exchange: a writer thread sends the message
//! and half-closes while the caller's thread reads the reply, both through the
//! one inactivity timeout, and their two outcomes become one.

use std::io::{self, Read, Write};
use std::sync::mpsc;
use std::time::Duration;

use echo_proto::BUFFER_SIZE;

use crate::activity::{Activity, Patience};
use crate::connection::{Connection, Direction};

/// How many bytes went each way in a [`Client::stream`](crate::Client::stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// Bytes sent to the server.
    pub sent: u64,
    /// Bytes received back.
    pub received: u64,
}

/// Copies the reply to `output` until the server closes, or past
/// `limit` bytes, then combines that with the writer's outcome,
/// preferring the error that explains the other; on failure, shuts the
/// connection down so that the writer cannot stay blocked.
pub(crate) fn finish<W: Write + ?Sized>(
    connection: &Connection,
    activity: &Activity,
    timeout: Option<Duration>,
    writer_outcome: &mpsc::Receiver<Result<u64, Failure>>,
    output: &mut W,
    limit: Option<usize>,
) -> Result<Transfer, Failure> {
    let mut reader = Patience::new(connection, Direction::Receive, activity, timeout);
    let read = receive(&mut reader, output, limit);
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
    ReplyTooLong { sent: usize },
    WriterLost,
}

/// Writes all of `input` to the connection, reports, then half-closes: the
/// half-close is what tells the server the message is complete.
pub(crate) fn send<R: Read + ?Sized>(
    connection: &Connection,
    activity: &Activity,
    timeout: Option<Duration>,
    input: &mut R,
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
        if let Err(err) = write_all(&mut writer, &buffer[..n]) {
            break Err(Failure::Network(err));
        }
        sent += n as u64;
    };
    let failed = result.is_err();
    // The receiver is gone only when the exchange is already over.
    let _ = outcome.send(result);
    if failed {
        // Ends the exchange: the reader sees the connection go.
        connection.shutdown_both();
    } else {
        // Should this fail, the server never learns the message ended and the
        // reader sees the connection fail or time out, which it then reports.
        let _ = connection.shutdown_write();
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

/// Copies everything the server sends to `output` until it closes; fails
/// as soon as more than `limit` bytes have come, without keeping the excess.
fn receive<W: Write + ?Sized>(
    reader: &mut Patience<'_>,
    output: &mut W,
    limit: Option<usize>,
) -> Result<u64, Failure> {
    let mut buffer = vec![0u8; BUFFER_SIZE];
    let mut received = 0u64;
    loop {
        let n = match reader.attempt(|connection| connection.read_some(&mut buffer)) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) => return Err(Failure::Network(err)),
        };
        if let Some(sent) = limit {
            if received + n as u64 > sent as u64 {
                return Err(Failure::ReplyTooLong { sent });
            }
        }
        output.write_all(&buffer[..n]).map_err(Failure::Output)?;
        received += n as u64;
    }
    output.flush().map_err(Failure::Output)?;
    Ok(received)
}

/// Whether a write failed because the peer had closed the connection.
fn is_closed(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    )
}
