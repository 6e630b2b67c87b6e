//! One blocking stream connection to an echo server, TCP or Unix, with the
//! few operations the client needs from either.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use echo_proto::Endpoint;

/// Which way bytes move through the socket: each way has its own timeout.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Direction {
    Send,
    Receive,
}

/// A connected stream socket.
#[derive(Debug)]
pub(crate) enum Connection {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Connection {
    /// Connects to `endpoint`; `timeout` bounds the connect and then every
    /// read and write, which is how inactivity is detected.
    pub(crate) fn open(endpoint: &Endpoint, timeout: Option<Duration>) -> io::Result<Self> {
        let connection = match endpoint {
            Endpoint::Ip(addr) => {
                return Connection::tcp(crate::eyeballs::connect_tcp(*addr, timeout)?, timeout);
            }
            Endpoint::Unix(path) => Connection::Unix(match timeout {
                // A wedged server with a full backlog blocks a Unix connect
                // indefinitely; socket2 can bound it as std does for TCP.
                Some(timeout) => {
                    let socket =
                        socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
                    socket.connect_timeout(&socket2::SockAddr::unix(path)?, timeout)?;
                    socket.into()
                }
                None => UnixStream::connect(path)?,
            }),
        };
        connection.set_timeout(Direction::Receive, timeout)?;
        connection.set_timeout(Direction::Send, timeout)?;
        Ok(connection)
    }

    /// A TCP connection already made, with `timeout` bounding every later
    /// read and write.
    pub(crate) fn tcp(stream: TcpStream, timeout: Option<Duration>) -> io::Result<Self> {
        // Small messages are whole requests; do not hold them back.
        stream.set_nodelay(true)?;
        let connection = Connection::Tcp(stream);
        connection.set_timeout(Direction::Receive, timeout)?;
        connection.set_timeout(Direction::Send, timeout)?;
        Ok(connection)
    }

    /// A second handle on the same socket, for the writer thread.
    pub(crate) fn try_clone(&self) -> io::Result<Self> {
        Ok(match self {
            Connection::Tcp(stream) => Connection::Tcp(stream.try_clone()?),
            Connection::Unix(stream) => Connection::Unix(stream.try_clone()?),
        })
    }

    pub(crate) fn read_some(&self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            Connection::Tcp(stream) => (&*stream).read(buffer),
            Connection::Unix(stream) => (&*stream).read(buffer),
        }
    }

    pub(crate) fn write_some(&self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Connection::Tcp(stream) => (&*stream).write(bytes),
            Connection::Unix(stream) => (&*stream).write(bytes),
        }
    }

    /// Bounds each later read (`Receive`) or write (`Send`) by `timeout`; the
    /// two are separate socket options, so the reader and the writer thread
    /// can each set their own on their handles of the one socket.
    pub(crate) fn set_timeout(
        &self,
        direction: Direction,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        match (self, direction) {
            (Connection::Tcp(stream), Direction::Receive) => stream.set_read_timeout(timeout),
            (Connection::Tcp(stream), Direction::Send) => stream.set_write_timeout(timeout),
            (Connection::Unix(stream), Direction::Receive) => stream.set_read_timeout(timeout),
            (Connection::Unix(stream), Direction::Send) => stream.set_write_timeout(timeout),
        }
    }

    /// Half-closes: the server reads end of stream, which ends the message.
    pub(crate) fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }

    /// Ends the exchange both ways, waking a thread blocked on the socket.
    pub(crate) fn shutdown_both(&self) {
        // Fails only when the socket is already disconnected, which is the goal.
        let _ = self.shutdown(Shutdown::Both);
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Connection::Tcp(stream) => stream.shutdown(how),
            Connection::Unix(stream) => stream.shutdown(how),
        }
    }
}

/// Whether an I/O error is a socket timeout (`SO_RCVTIMEO` reports `WouldBlock`).
pub(crate) fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
