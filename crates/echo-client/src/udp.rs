//! The UDP form of echo: one datagram out, the same datagram back.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use echo_proto::Endpoint;
use echo_proto::udp::{MAX_DATAGRAM_V6, max_datagram};

use crate::error::Error;

/// How many times a datagram is sent within the timeout before giving up.
const ATTEMPTS: u32 = 3;

/// Sends `message` to `endpoint` and returns the reply, resending it up to
/// [`ATTEMPTS`] times, evenly spread over `timeout`; a reply longer than the
/// message is [`Error::ReplyTooLong`].
pub(crate) fn echo(
    endpoint: &Endpoint,
    timeout: Duration,
    message: &[u8],
) -> Result<Vec<u8>, Error> {
    let Endpoint::Ip(server) = endpoint else {
        return Err(Error::UdpNeedsIp(endpoint.clone()));
    };
    let max = max_datagram(*server);
    if message.len() > max {
        return Err(Error::DatagramTooLarge {
            len: message.len(),
            max,
        });
    }
    let io_error = |source| Error::Io {
        endpoint: endpoint.clone(),
        source,
    };
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).map_err(io_error)?;
    // Connecting filters out datagrams from anyone but the server, and makes
    // an ICMP "port unreachable" come back as a refused connection.
    socket.connect(server).map_err(io_error)?;
    let per_attempt = (timeout / ATTEMPTS).max(Duration::from_millis(1));
    // One byte more than any datagram, so a longer reply shows as such.
    let mut buffer = vec![0u8; MAX_DATAGRAM_V6 + 1];
    for _ in 0..ATTEMPTS {
        socket
            .send(message)
            .map_err(|source| refused_or(endpoint, source))?;
        let deadline = Instant::now() + per_attempt;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            socket.set_read_timeout(Some(left)).map_err(io_error)?;
            match socket.recv(&mut buffer) {
                // No echo of the message is longer than it: the server is
                // not echoing, or this is not the reply to it.
                Ok(len) if len > message.len() => {
                    return Err(Error::ReplyTooLong {
                        endpoint: endpoint.clone(),
                        sent: message.len() as u64,
                    });
                }
                Ok(len) => return Ok(buffer[..len].to_vec()),
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(refused_or(endpoint, err)),
            }
        }
    }
    Err(Error::Timeout {
        endpoint: endpoint.clone(),
        after: timeout,
    })
}

/// A refused "connection" is an ICMP port unreachable for a datagram sent
/// earlier: nothing listens on UDP there, which is what the error says.
pub(crate) fn refused_or(endpoint: &Endpoint, source: io::Error) -> Error {
    if source.kind() == io::ErrorKind::ConnectionRefused {
        Error::PortUnreachable {
            endpoint: endpoint.clone(),
        }
    } else {
        Error::Io {
            endpoint: endpoint.clone(),
            source,
        }
    }
}
