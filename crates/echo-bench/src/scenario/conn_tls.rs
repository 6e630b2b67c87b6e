//! `conn` over TLS as a client that wastes no segment runs it: the message
//! is handed to rustls before the handshake, so it leaves with the client's
//! Finished, and over TLS 1.3 our close_notify with them, in one write.
//!
//! Through tokio-rustls the Finished, the message and close_notify were
//! three writes, three segments: a server that finds two small segments
//! waiting acknowledges them at once, in a segment of its own, where one
//! segment lets that acknowledgement ride on its answer (Linux's
//! `tcp_cleanup_rbuf`). HTTPS clients send their request with their
//! Finished in the same way. Reading goes on while writing, so a message
//! larger than the socket buffers cannot stall both ends.
//!
//! Over TLS 1.2, close_notify closes both ways (RFC 5246 7.2.1): the client
//! reads the whole echo back before sending it, as the other scenarios do.

use std::io::{self, Read, Write};

use rustls::ClientConnection;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::tally::{ExchangeError, Handshake, Mismatch};
use crate::tls::{Connector, describe};

/// rustls's reads and writes of records, on a tokio socket that is ready
/// or says `WouldBlock`.
struct Io<'a>(&'a TcpStream);

impl Read for Io<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for Io<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One exchange on `tcp`, made at `connected`: the handshake, `message`
/// sent and its echo read into `reply` (scratch space) up to the server's
/// close_notify, then checked. The handshake goes to `handshook` once over.
///
/// # Errors
/// [`ExchangeError::Tls`] for a handshake that failed, [`ExchangeError::Io`]
/// for a connection that failed after it, [`ExchangeError::Mismatch`] for a
/// reply that is not the message.
pub(super) async fn exchange(
    tls: &Connector,
    mut tcp: TcpStream,
    connected: Instant,
    message: &[u8],
    reply: &mut Vec<u8>,
    mut handshook: impl FnMut(&Handshake),
) -> Result<(), ExchangeError> {
    let mut conn = tls
        .client()
        .map_err(|err| ExchangeError::Tls(io::Error::other(err)))?;
    // Held until the handshake is over, then sent with the Finished.
    conn.set_buffer_limit(None);
    conn.writer()
        .write_all(message)
        .map_err(ExchangeError::io("sending the message"))?;
    // One byte past the message is enough to know the reply is too long,
    // and keeps a server that never stops sending from filling memory.
    let limit = message.len() + 1;
    reply.clear();
    let mut over: Option<bool> = None; // the handshake: Some(is TLS 1.3) once over
    let mut closing = false;
    let mut half_closed = false;
    loop {
        if over.is_none() && !conn.is_handshaking() {
            let handshake = describe(&conn, connected.elapsed());
            handshook(&handshake);
            over = Some(conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3));
        }
        if let Some(tls13) = over {
            if !closing && (tls13 || reply.len() >= message.len()) {
                conn.send_close_notify();
                closing = true;
            }
        }
        write(&mut conn, &tcp, over.is_none())?;
        if closing && !half_closed && !conn.wants_write() {
            tcp.shutdown()
                .await
                .map_err(ExchangeError::io("half-closing"))?;
            half_closed = true;
        }
        let interest = if conn.wants_write() {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        let ready = tcp
            .ready(interest)
            .await
            .map_err(ExchangeError::io("waiting on the socket"))?;
        if !ready.is_readable() {
            continue;
        }
        let eof = match conn.read_tls(&mut Io(&tcp)) {
            Ok(n) => n == 0,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            Err(err) => return Err(failed(over, err)),
        };
        let state = match conn.process_new_packets() {
            Ok(state) => state,
            Err(err) => {
                // rustls queued its alert for the server: best effort.
                let _ = conn.write_tls(&mut Io(&tcp));
                return Err(failed(
                    over,
                    io::Error::new(io::ErrorKind::InvalidData, err),
                ));
            }
        };
        let peer_closed = state.peer_has_closed();
        take_plaintext(&mut conn, reply, limit)?;
        if reply.len() > message.len() {
            break;
        }
        if over.is_none() && eof {
            return Err(ExchangeError::Tls(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection during the handshake",
            )));
        }
        if peer_closed {
            break;
        }
        if eof {
            return Err(ExchangeError::io("reading the reply")(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection without sending close_notify",
            )));
        }
    }
    echo_proto::verify(message, reply)
        .map_err(|mismatch| ExchangeError::Mismatch(Mismatch::Message(mismatch)))
}

/// Writes what rustls has for the server until the socket takes no more.
fn write(
    conn: &mut ClientConnection,
    tcp: &TcpStream,
    handshaking: bool,
) -> Result<(), ExchangeError> {
    while conn.wants_write() {
        match conn.write_tls(&mut Io(tcp)) {
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(err) if handshaking => return Err(ExchangeError::Tls(err)),
            Err(err) => return Err(ExchangeError::io("sending the message")(err)),
        }
    }
    Ok(())
}

/// Moves the plaintext rustls has decrypted into `reply`, up to `limit` bytes.
fn take_plaintext(
    conn: &mut ClientConnection,
    reply: &mut Vec<u8>,
    limit: usize,
) -> Result<(), ExchangeError> {
    let mut chunk = [0; 16 * 1024];
    while reply.len() < limit {
        let room = chunk.len().min(limit - reply.len());
        match conn.reader().read(&mut chunk[..room]) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&chunk[..n]),
            // Nothing more decrypted for now; an end of stream without
            // close_notify is told apart by the caller.
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(err) => return Err(ExchangeError::io("reading the reply")(err)),
        }
    }
    Ok(())
}

/// A socket or TLS failure, as the handshake's while it is on.
fn failed(handshake_over: Option<bool>, err: io::Error) -> ExchangeError {
    match handshake_over {
        None => ExchangeError::Tls(err),
        Some(_) => ExchangeError::io("reading the reply")(err),
    }
}
