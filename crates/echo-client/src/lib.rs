//! A blocking client for RFC 862 echo servers, over TCP, Unix sockets or UDP.
//!
//! [`client`] is the one-call form: it sends a text message to the default
//! address and returns the reply. [`Client`] reaches other addresses, sets
//! timeouts, and sends raw bytes or whole streams.
//!
//! The client writes and reads at the same time (the writer on its own
//! thread), because an echo server sends bytes back while it is still
//! receiving them: a client that wrote everything before reading would stall
//! both sides once the message outgrew the socket buffers.
//!
//! A [`Client`] gives up after [`DEFAULT_TIMEOUT`] without progress unless
//! told otherwise, so that even [`client`] cannot hang on a server that
//! accepts and never answers; progress in either direction counts.

#![warn(missing_docs)]

mod activity;
mod connection;
mod exchange;
mod udp;

use std::io::{self, Read, Write};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use echo_proto::{DEFAULT_ADDR, Endpoint};

use crate::activity::Activity;
use crate::connection::{Connection, is_timeout};
use crate::exchange::{Failure, finish, send};

pub use crate::exchange::Transfer;

/// How long a [`Client`] waits for a connection to be made, or for any byte
/// to move either way, unless [`Client::timeout`] says otherwise; also the
/// default of `echo-client --timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the UDP client waits for replies in all, when no timeout is set.
pub const DEFAULT_UDP_TIMEOUT: Duration = Duration::from_secs(3);

/// Why an exchange with an echo server failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection could not be made: nothing listens there (refused), or
    /// the address is unreachable.
    #[error("cannot connect to {endpoint}")]
    Connect {
        /// Where the client tried to connect.
        endpoint: Endpoint,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// Nothing moved in either direction for the whole timeout, or the
    /// connection could not be made in that time.
    #[error("no progress from {endpoint} for {after:?}")]
    Timeout {
        /// The server that went quiet.
        endpoint: Endpoint,
        /// The timeout that expired.
        after: Duration,
    },
    /// The connection failed while the message or reply was on its way (a reset, typically).
    #[error("connection to {endpoint} failed")]
    Io {
        /// The server the connection was to.
        endpoint: Endpoint,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The server closed the connection before the whole message was sent.
    #[error("{endpoint} closed the connection before the whole message was sent")]
    ClosedEarly {
        /// The server that closed.
        endpoint: Endpoint,
    },
    /// The server sent back more bytes than the message has, which no echo
    /// does: [`Client::echo`] stops reading there rather than hold a reply
    /// that may never end.
    #[error("{endpoint} sent more than the {sent} bytes of the message")]
    ReplyTooLong {
        /// The server that sent too much.
        endpoint: Endpoint,
        /// The message's length, which the reply exceeded.
        sent: usize,
    },
    /// Reading the message from its source (stdin, say) failed.
    #[error("cannot read the message")]
    Input(#[source] io::Error),
    /// Writing the reply to its destination (stdout, say) failed.
    #[error("cannot write the reply")]
    Output(#[source] io::Error),
    /// The reply is not valid UTF-8, so it cannot be returned as text.
    #[error("the reply ({len} bytes) is not valid UTF-8")]
    NotUtf8 {
        /// The length of the reply.
        len: usize,
    },
    /// The message does not fit in one UDP datagram.
    #[error("a UDP message is at most {max} bytes; this one is {len}")]
    DatagramTooLarge {
        /// The message's length.
        len: usize,
        /// The largest datagram payload.
        max: usize,
    },
    /// UDP needs an IP address, and a Unix socket path was given.
    #[error("UDP needs an IP:PORT address, not {0}")]
    UdpNeedsIp(Endpoint),
}

/// Sends `message` to the echo server at the default address
/// ([`echo_proto::DEFAULT_ADDR`]) and returns the reply.
///
/// Gives up after [`DEFAULT_TIMEOUT`] without progress.
///
/// # Errors
/// Any [`Error`]: the server is not there, the connection fails or goes
/// quiet, the reply is longer than the message, or it is not valid UTF-8.
///
/// # Examples
/// ```no_run
/// let reply = echo_client::client("this is the message to send")?;
/// assert_eq!(reply, "this is the message to send");
/// # Ok::<(), echo_client::Error>(())
/// ```
pub fn client(message: &str) -> Result<String, Error> {
    Client::new(DEFAULT_ADDR).echo_text(message)
}

/// A client for one echo server, with its settings.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: Endpoint,
    timeout: Option<Duration>,
}

impl Client {
    /// A client for the server at `endpoint`, with the [`DEFAULT_TIMEOUT`].
    pub fn new(endpoint: impl Into<Endpoint>) -> Self {
        Client {
            endpoint: endpoint.into(),
            timeout: Some(DEFAULT_TIMEOUT),
        }
    }

    /// Gives up when connecting, or when no byte moves either way, takes
    /// longer than `timeout` (by default [`DEFAULT_TIMEOUT`]); `None`, or
    /// zero, waits as long as the server does.
    ///
    /// Bytes moving one way keep the other way waiting: a server that reads
    /// the whole message before it answers is not given up on while the
    /// message is still going out. For [`Client::echo_udp`] it is the whole
    /// wait for a reply instead, [`DEFAULT_UDP_TIMEOUT`] when `None`.
    #[must_use]
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = timeout.filter(|t| !t.is_zero());
        self
    }

    /// The server this client talks to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Sends `message` as text and returns the reply as text, decoded once
    /// the whole reply has arrived.
    ///
    /// # Errors
    /// As [`Client::echo`], plus [`Error::NotUtf8`].
    pub fn echo_text(&self, message: &str) -> Result<String, Error> {
        let reply = self.echo(message.as_bytes())?;
        String::from_utf8(reply).map_err(|err| Error::NotUtf8 {
            len: err.as_bytes().len(),
        })
    }

    /// Sends `message` over TCP or a Unix socket, half-closes, and returns
    /// every byte read back until the server closes.
    ///
    /// A reply longer than the message is an error as soon as its first
    /// extra byte arrives, so memory stays bounded by the message's size.
    ///
    /// # Errors
    /// [`Error::Connect`], [`Error::Timeout`], [`Error::Io`],
    /// [`Error::ClosedEarly`] or [`Error::ReplyTooLong`].
    pub fn echo(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let connection = self.connect()?;
        let writer_side = connection
            .try_clone()
            .map_err(|source| self.io_error(source))?;
        let activity = Activity::new();
        let writer_activity = &activity;
        let timeout = self.timeout;
        let (results, outcome) = mpsc::sync_channel(1);
        let mut reply = Vec::with_capacity(message.len());
        thread::scope(|scope| {
            scope.spawn(move || {
                send(
                    &writer_side,
                    writer_activity,
                    timeout,
                    &mut &message[..],
                    &results,
                );
            });
            // Leaving the scope joins the writer; on failure `exchange` has
            // shut the socket down, so the writer cannot stay blocked.
            finish(
                &connection,
                &activity,
                self.timeout,
                &outcome,
                &mut reply,
                Some(message.len()),
            )
            .map_err(|failure| self.error(failure))
        })?;
        Ok(reply)
    }

    /// Streams `input` to the server and everything it sends back to
    /// `output`, nothing added, in memory bounded by a few buffers whatever
    /// the size.
    ///
    /// `input` is read on a thread of its own, which is left behind if the
    /// exchange fails while it is blocked reading (on a terminal, say).
    ///
    /// # Errors
    /// [`Error::Input`] and [`Error::Output`] when the two ends fail, and the
    /// errors of [`Client::echo`] but [`Error::ReplyTooLong`]: a stream has
    /// no length to exceed.
    pub fn stream<R, W>(&self, mut input: R, output: &mut W) -> Result<Transfer, Error>
    where
        R: Read + Send + 'static,
        W: Write + ?Sized,
    {
        let connection = self.connect()?;
        let writer_side = connection
            .try_clone()
            .map_err(|source| self.io_error(source))?;
        let activity = Arc::new(Activity::new());
        let writer_activity = Arc::clone(&activity);
        let timeout = self.timeout;
        let (results, outcome) = mpsc::sync_channel(1);
        thread::spawn(move || {
            send(
                &writer_side,
                &writer_activity,
                timeout,
                &mut input,
                &results,
            );
        });
        finish(&connection, &activity, self.timeout, &outcome, output, None)
            .map_err(|failure| self.error(failure))
    }

    /// Sends `message` as one UDP datagram and returns the datagram that
    /// comes back, resending a few times within the timeout (UDP may lose
    /// either datagram).
    ///
    /// # Errors
    /// [`Error::UdpNeedsIp`], [`Error::DatagramTooLarge`], [`Error::Timeout`]
    /// when no reply came, [`Error::Connect`] when the server's port is closed.
    pub fn echo_udp(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        udp::echo(
            &self.endpoint,
            self.timeout.unwrap_or(DEFAULT_UDP_TIMEOUT),
            message,
        )
    }

    fn connect(&self) -> Result<Connection, Error> {
        Connection::open(&self.endpoint, self.timeout).map_err(|source| match self.timeout {
            Some(after) if is_timeout(&source) => Error::Timeout {
                endpoint: self.endpoint.clone(),
                after,
            },
            _ => Error::Connect {
                endpoint: self.endpoint.clone(),
                source,
            },
        })
    }

    fn error(&self, failure: Failure) -> Error {
        match failure {
            Failure::Network(err) => self.io_error(err),
            Failure::Input(err) => Error::Input(err),
            Failure::Output(err) => Error::Output(err),
            Failure::ClosedEarly => Error::ClosedEarly {
                endpoint: self.endpoint.clone(),
            },
            Failure::ReplyTooLong { sent } => Error::ReplyTooLong {
                endpoint: self.endpoint.clone(),
                sent,
            },
            Failure::WriterLost => self.io_error(io::Error::other("the writer thread panicked")),
        }
    }

    /// An I/O error in terms of the endpoint; a timeout only if one was set,
    /// since without one a timed-out socket is the kernel giving up.
    fn io_error(&self, source: io::Error) -> Error {
        match self.timeout {
            Some(after) if is_timeout(&source) => Error::Timeout {
                endpoint: self.endpoint.clone(),
                after,
            },
            _ => Error::Io {
                endpoint: self.endpoint.clone(),
                source,
            },
        }
    }
}
