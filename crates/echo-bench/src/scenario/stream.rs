//! A stream connection over TCP or a Unix socket, with borrowed halves, so the
//! stream scenarios run alike over either without a lock between the halves.
//!
//! tokio-util's `Either` forwards reads and writes to whichever it holds.

use tokio::net::{TcpStream, UnixStream, tcp, unix};
use tokio_util::either::Either;

/// One connection to the echo server: TCP on the left, Unix on the right.
pub(crate) type Stream = Either<TcpStream, UnixStream>;

/// The reading half of a [`Stream`], borrowed.
pub(crate) type ReadHalf<'a> = Either<tcp::ReadHalf<'a>, unix::ReadHalf<'a>>;

/// The writing half of a [`Stream`], borrowed; shutting it down half-closes the connection.
pub(crate) type WriteHalf<'a> = Either<tcp::WriteHalf<'a>, unix::WriteHalf<'a>>;

/// Both halves of `stream`, to read and write at the same time within one task.
pub(crate) fn split(stream: &mut Stream) -> (ReadHalf<'_>, WriteHalf<'_>) {
    match stream {
        Either::Left(stream) => {
            let (reader, writer) = stream.split();
            (Either::Left(reader), Either::Left(writer))
        }
        Either::Right(stream) => {
            let (reader, writer) = stream.split();
            (Either::Right(reader), Either::Right(writer))
        }
    }
}
