//! A stream connection over TCP, a Unix socket or TLS over TCP, with
//! borrowed halves, so the stream scenarios run alike over any of them.
//!
//! tokio-util's `Either` forwards reads and writes to whichever it holds.
//! TCP and Unix sockets split without a lock; a TLS stream is one state
//! machine for both directions, so its halves share it through tokio's
//! `split`, which locks it for each call.

use tokio::net::{TcpStream, UnixStream, tcp, unix};
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;

/// A connection with no TLS: TCP on the left, Unix on the right.
pub(crate) type Plain = Either<TcpStream, UnixStream>;

/// One connection to the echo server: plain on the left, TLS on the right
/// (boxed: rustls's state is large, and `idle` holds thousands).
pub(crate) type Stream = Either<Plain, Box<TlsStream<TcpStream>>>;

/// The reading half of a [`Stream`], borrowed.
pub(crate) type ReadHalf<'a> = Either<
    Either<tcp::ReadHalf<'a>, unix::ReadHalf<'a>>,
    tokio::io::ReadHalf<&'a mut TlsStream<TcpStream>>,
>;

/// The writing half of a [`Stream`], borrowed; shutting it down half-closes
/// the connection (over TLS, sends close_notify and then half-closes).
pub(crate) type WriteHalf<'a> = Either<
    Either<tcp::WriteHalf<'a>, unix::WriteHalf<'a>>,
    tokio::io::WriteHalf<&'a mut TlsStream<TcpStream>>,
>;

/// Both halves of `stream`, to read and write at the same time within one task.
pub(crate) fn split(stream: &mut Stream) -> (ReadHalf<'_>, WriteHalf<'_>) {
    match stream {
        Either::Left(Either::Left(stream)) => {
            let (reader, writer) = stream.split();
            (
                Either::Left(Either::Left(reader)),
                Either::Left(Either::Left(writer)),
            )
        }
        Either::Left(Either::Right(stream)) => {
            let (reader, writer) = stream.split();
            (
                Either::Left(Either::Right(reader)),
                Either::Left(Either::Right(writer)),
            )
        }
        Either::Right(stream) => {
            let (reader, writer) = tokio::io::split(&mut **stream);
            (Either::Right(reader), Either::Right(writer))
        }
    }
}

/// Whether a half-close ends a message on `stream` while its echo is still
/// to be read: always over TCP and Unix sockets and TLS 1.3, whose
/// close_notify closes one direction only; never over TLS 1.2, where
/// close_notify closes both (RFC 5246 7.2.1), so the client reads back all
/// it sent before sending it.
pub(crate) fn half_close_ends_message(stream: &Stream) -> bool {
    match stream {
        Either::Left(_) => true,
        Either::Right(tls) => {
            tls.get_ref().1.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_2)
        }
    }
}
