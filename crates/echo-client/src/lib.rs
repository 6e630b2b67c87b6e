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
//!
//! A client may be given a host name ([`Target::Name`]): it is resolved when
//! connecting, and its addresses are raced in the manner of Happy Eyeballs
//! (RFC 8305), all within the one timeout, so that an address that never
//! answers does not cost a whole timeout before the next is tried.
//! Which address answered, and why others failed, is logged through
//! `tracing` at debug level.
//!
//! [`probe`] sends probe after probe, as `ping` does, and reports each.
//!
//! Over TCP a client may speak TLS ([`Client::tls`] with [`tls::Tls`]
//! settings): the same exchanges, with the same guarantees, where a TLS
//! close_notify ends the message as a half-close does in the clear.
//!
//! The library needs neither clap nor anyhow: those come with the `cli`
//! feature (on by default), which only the `echo-client` command needs, so
//! a library user can depend on this crate with `default-features = false`.

#![warn(missing_docs)]

// Unix sockets and Unix signals are part of what the client is.
#[cfg(not(unix))]
compile_error!(
    "echo-client runs on Unix only: it uses Unix domain sockets and, for the command, Unix signals"
);

mod activity;
mod connection;
mod error;
mod exchange;
mod eyeballs;
pub mod probe;
pub mod tls;
mod udp;

use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use echo_proto::DEFAULT_ADDR;
use tracing::debug;

use crate::activity::Activity;
use crate::connection::{Connection, is_timeout};
use crate::exchange::{Ceiling, Failure, finish, send};
use crate::eyeballs::{ATTEMPT_DELAY, connect_tcp};
use crate::tls::session::{self, Inbound, Session};
use crate::tls::{Connector, Negotiated, Tls};

pub use crate::error::Error;
pub use crate::exchange::Transfer;
pub use crate::eyeballs::Attempt;
pub use echo_proto::{Endpoint, Target};

/// How long a [`Client`] waits for a connection to be made, or for any byte
/// to move either way, unless [`Client::timeout`] says otherwise; also the
/// default of `echo-client --timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the UDP client waits for replies in all, when no timeout is set.
pub const DEFAULT_UDP_TIMEOUT: Duration = Duration::from_secs(3);

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

/// Which of a host name's addresses a client uses, as `ping -4` and `-6` choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    /// Both families, raced as Happy Eyeballs does.
    #[default]
    Any,
    /// IPv4 addresses only.
    V4,
    /// IPv6 addresses only.
    V6,
}

impl Family {
    /// Whether `addr` is of this family.
    pub fn admits(self, addr: &SocketAddr) -> bool {
        match self {
            Family::Any => true,
            Family::V4 => addr.is_ipv4(),
            Family::V6 => addr.is_ipv6(),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Any => "IP",
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// A client for one echo server, with its settings.
#[derive(Debug, Clone)]
pub struct Client {
    target: Target,
    timeout: Option<Duration>,
    family: Family,
    /// The addresses to race, once [`Client::resolve_now`] has looked them
    /// up, so that later exchanges do not ask the resolver again.
    resolved: Option<Arc<[SocketAddr]>>,
    /// TLS, when [`Client::tls`] asked for it: one configuration for every
    /// connection, so that later ones resume the first one's session.
    tls: Option<Arc<Connector>>,
}

impl Client {
    /// A client for the server at `target` (a [`Target`], an [`Endpoint`]
    /// or a [`SocketAddr`]), with the [`DEFAULT_TIMEOUT`].
    ///
    /// A host name is resolved on each exchange, unless
    /// [`Client::resolve_now`] pins its addresses first.
    pub fn new(target: impl Into<Target>) -> Self {
        Client {
            target: target.into(),
            timeout: Some(DEFAULT_TIMEOUT),
            family: Family::Any,
            resolved: None,
            tls: None,
        }
    }

    /// Speaks TLS on every connection, as `settings` say: the files they
    /// name are read now, once, and their failures surface here rather than
    /// at the first exchange. Over TLS 1.3 the message ends with the
    /// client's close_notify, as a half-close ends it in the clear; over TLS
    /// 1.2, where a close_notify closes both ways, the client sends it only
    /// once the whole echo is back. Either way the reply ends with the
    /// server's close_notify; a server that closes without one is accepted
    /// only once the whole echo is back. The timeout bounds the handshake
    /// as a whole, after the connect.
    ///
    /// # Errors
    /// [`Error::TlsNeedsTcp`] for a Unix socket; [`Error::TlsFile`],
    /// [`Error::TlsIdentity`], [`Error::TlsSystemRoots`],
    /// [`Error::TlsServerName`] or [`Error::TlsSettings`] when the settings
    /// cannot be used.
    pub fn tls(mut self, settings: &Tls) -> Result<Self, Error> {
        if let Target::Endpoint(Endpoint::Unix(_)) = self.target {
            return Err(Error::TlsNeedsTcp {
                over: "a Unix socket",
            });
        }
        self.tls = Some(Arc::new(settings.connector(&self.target)?));
        Ok(self)
    }

    /// Whether the client speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Gives up when connecting (for a host name, resolving it and racing
    /// its addresses, together), or when no byte moves either way, takes
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

    /// Uses only a host name's addresses of `family` (by default
    /// [`Family::Any`]); an IP address or a Unix socket given as such is
    /// used as it is, so a caller that wants it refused checks it itself.
    #[must_use]
    pub fn family(mut self, family: Family) -> Self {
        self.family = family;
        self
    }

    /// The server this client talks to, as it was given.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Resolves a host name now, within the timeout, and keeps its
    /// addresses for every later exchange; an IP address is kept as it is.
    ///
    /// For a run of exchanges (as [`probe`] makes) this asks the resolver
    /// once instead of each time, and surfaces a name that does not
    /// resolve before anything is sent.
    ///
    /// # Errors
    /// [`Error::Resolve`] when the name does not resolve, and
    /// [`Error::NoAddressOfFamily`] when it has no address of the
    /// [`Client::family`].
    pub fn resolve_now(mut self) -> Result<Self, Error> {
        let addresses: Arc<[SocketAddr]> = match &self.target {
            Target::Endpoint(Endpoint::Ip(addr)) => Arc::new([*addr]),
            Target::Endpoint(Endpoint::Unix(_)) => return Ok(self),
            Target::Name { host, port } => self.lookup(host, *port, self.timeout)?,
        };
        self.resolved = Some(addresses);
        Ok(self)
    }

    /// The addresses [`Client::resolve_now`] found, in the order they are
    /// tried; empty before it ran, and for a Unix socket.
    pub fn addresses(&self) -> &[SocketAddr] {
        self.resolved.as_deref().unwrap_or_default()
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
    /// [`Error::ClosedEarly`] or [`Error::ReplyTooLong`]; for a host name,
    /// [`Error::Resolve`] or [`Error::Unreachable`] instead of the first two
    /// when no connection could be made.
    pub fn echo(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        self.echo_from(message).map(|echoed| echoed.reply)
    }

    /// [`Client::echo`], also saying which address answered and how long a
    /// TLS handshake took.
    pub(crate) fn echo_from(&self, message: &[u8]) -> Result<Echoed, Error> {
        self.exchange(self.open()?, message)
    }

    /// One whole exchange of `message` over a connection already `opened`.
    pub(crate) fn exchange(&self, opened: Opened, message: &[u8]) -> Result<Echoed, Error> {
        let Opened {
            connection,
            peer,
            tls,
        } = opened;
        let writer_side = connection
            .try_clone()
            .map_err(|source| io_error(&peer, self.timeout, source))?;
        let handshake = tls.as_ref().map(|secured| secured.handshake);
        let session = tls.map(|secured| secured.session);
        if let Some(session) = &session {
            session.expect(message.len() as u64);
        }
        let mut inbound = session
            .as_ref()
            .map(|session| Inbound::new(Arc::clone(session)));
        let activity = Activity::new();
        let writer_activity = &activity;
        let timeout = self.timeout;
        let (results, outcome) = mpsc::sync_channel(1);
        let mut reply = Vec::with_capacity(message.len());
        // The writer counts what it hands to the socket, but the ceiling
        // here is the whole message from the start: its length is known,
        // and it is what an error about a reply too long names.
        let offered = AtomicU64::new(0);
        let offered = &offered;
        thread::scope(|scope| {
            let session = session.as_deref();
            scope.spawn(move || {
                send(
                    &writer_side,
                    session,
                    writer_activity,
                    timeout,
                    &mut &message[..],
                    offered,
                    &results,
                );
            });
            // Leaving the scope joins the writer; on failure `finish` has
            // shut the socket down, so the writer cannot stay blocked.
            finish(
                &connection,
                inbound.as_mut(),
                &activity,
                self.timeout,
                &outcome,
                &mut reply,
                Ceiling::Message(message.len() as u64),
            )
            .map_err(|failure| exchange_error(&peer, self.timeout, failure))
        })?;
        Ok(Echoed {
            reply,
            peer,
            handshake,
        })
    }

    /// Streams `input` to the server and everything it sends back to
    /// `output`, nothing added, in memory bounded by a few buffers whatever
    /// the size.
    ///
    /// Each piece of the reply is written to `output` and flushed as it
    /// arrives, so a buffered `output` (stdout) shows the echo while `input`
    /// is still open. The reply may never be ahead of `input`: the first byte
    /// beyond what has gone out so far (beyond all of it, once `input` has
    /// ended) is [`Error::ReplyTooLong`], after the bytes before it have
    /// been written, so a server that never stops sending cannot keep the
    /// exchange going.
    ///
    /// `input` is read on a thread of its own, which is left behind if the
    /// exchange fails while it is blocked reading (on a terminal, say).
    ///
    /// # Errors
    /// [`Error::Input`] and [`Error::Output`] when the two ends fail, and the
    /// errors of [`Client::echo`].
    pub fn stream<R, W>(&self, mut input: R, output: &mut W) -> Result<Transfer, Error>
    where
        R: Read + Send + 'static,
        W: Write + ?Sized,
    {
        let Opened {
            connection,
            peer,
            tls,
        } = self.open()?;
        let writer_side = connection
            .try_clone()
            .map_err(|source| io_error(&peer, self.timeout, source))?;
        let session = tls.map(|secured| secured.session);
        let writer_session = session.clone();
        let mut inbound = session.map(Inbound::new);
        let activity = Arc::new(Activity::new());
        let writer_activity = Arc::clone(&activity);
        let timeout = self.timeout;
        let (results, outcome) = mpsc::sync_channel(1);
        let offered = Arc::new(AtomicU64::new(0));
        let writer_offered = Arc::clone(&offered);
        thread::spawn(move || {
            send(
                &writer_side,
                writer_session.as_deref(),
                &writer_activity,
                timeout,
                &mut input,
                &writer_offered,
                &results,
            );
        });
        finish(
            &connection,
            inbound.as_mut(),
            &activity,
            self.timeout,
            &outcome,
            output,
            Ceiling::Stream(&offered),
        )
        .map_err(|failure| exchange_error(&peer, self.timeout, failure))
    }

    /// Sends `message` as one UDP datagram and returns the datagram that
    /// comes back, resending a few times within the timeout (UDP may lose
    /// either datagram).
    ///
    /// A datagram longer than the message is an error, as a longer reply is
    /// for [`Client::echo`]; like it, a reply that differs within the
    /// message's length is returned for the caller to judge.
    ///
    /// A host name's addresses are tried one after the other, each with an
    /// even share of what is left of the timeout: without a handshake there
    /// is nothing to race, but a closed port (refused) moves on at once.
    ///
    /// # Errors
    /// [`Error::UdpNeedsIp`], [`Error::DatagramTooLarge`], [`Error::Timeout`]
    /// when no reply came, [`Error::PortUnreachable`] when the server's port
    /// is closed, [`Error::ReplyTooLong`]; for a host name [`Error::Resolve`],
    /// [`Error::NoAddressOfFamily`], or [`Error::Unreachable`] when no
    /// address answered; [`Error::TlsNeedsTcp`] for a client that speaks TLS.
    pub fn echo_udp(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        if self.tls.is_some() {
            return Err(Error::TlsNeedsTcp { over: "UDP" });
        }
        let timeout = self.timeout.unwrap_or(DEFAULT_UDP_TIMEOUT);
        let (host, port) = match &self.target {
            Target::Endpoint(endpoint) => return udp::echo(endpoint, timeout, message),
            Target::Name { host, port } => (host, *port),
        };
        let started = Instant::now();
        let addresses = self.addresses_of(host, port, Some(timeout))?;
        let mut attempts = Vec::new();
        for (index, &addr) in addresses.iter().enumerate() {
            let left = timeout.saturating_sub(started.elapsed());
            let share = left / u32::try_from(addresses.len() - index).unwrap_or(u32::MAX);
            if share.is_zero() {
                let what = format!(
                    "not tried: the {} timeout ran out first",
                    echo_proto::Human(timeout)
                );
                attempts.push(Attempt {
                    addr,
                    error: io::Error::new(io::ErrorKind::TimedOut, what),
                });
                continue;
            }
            let error = match udp::echo(&Endpoint::Ip(addr), share, message) {
                Ok(reply) => {
                    debug!(address = %addr, target = %self.target, "answered");
                    return Ok(reply);
                }
                Err(Error::Connect { source, .. } | Error::Io { source, .. }) => source,
                Err(Error::PortUnreachable { .. }) => {
                    io::Error::new(io::ErrorKind::ConnectionRefused, PORT_UNREACHABLE_ATTEMPT)
                }
                Err(Error::Timeout { after, .. }) => io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no reply within {}", echo_proto::Human(after)),
                ),
                Err(other) => return Err(other),
            };
            debug!(address = %addr, %error, "no reply from this address");
            attempts.push(Attempt { addr, error });
        }
        Err(Error::Unreachable {
            target: self.target.clone(),
            attempts,
        })
    }

    /// Connects to the server and, if the client speaks TLS, makes the
    /// handshake, within the timeout of its own.
    pub(crate) fn open(&self) -> Result<Opened, Error> {
        let (connection, peer) = self.connect()?;
        let Some(connector) = &self.tls else {
            return Ok(Opened {
                connection,
                peer,
                tls: None,
            });
        };
        let started = Instant::now();
        let (session, negotiated) = session::handshake(connector, &connection, self.timeout)
            .map_err(|failure| match failure {
                Failure::Tls(source) => Error::Handshake {
                    endpoint: peer.clone(),
                    source,
                },
                other => exchange_error(&peer, self.timeout, other),
            })?;
        let handshake = started.elapsed();
        debug!(address = %peer, %negotiated, ?handshake, "TLS handshake made");
        Ok(Opened {
            connection,
            peer,
            tls: Some(Secured {
                session: Arc::new(session),
                negotiated,
                handshake,
            }),
        })
    }

    /// Connects to the server, racing a host name's addresses, and says
    /// which address answered.
    pub(crate) fn connect(&self) -> Result<(Connection, Endpoint), Error> {
        let (host, port) = match &self.target {
            Target::Endpoint(endpoint) => {
                let connection = Connection::open(endpoint, self.timeout)
                    .map_err(|source| connect_error(endpoint, self.timeout, source))?;
                debug!(address = %endpoint, "connected");
                return Ok((connection, endpoint.clone()));
            }
            Target::Name { host, port } => (host, *port),
        };
        let started = Instant::now();
        let addresses = self.addresses_of(host, port, self.timeout)?;
        // Resolving took part of the one timeout; the race has the rest.
        let left = self.timeout.map(|t| t.saturating_sub(started.elapsed()));
        let (stream, addr) =
            eyeballs::race(&addresses, left, ATTEMPT_DELAY, connect_tcp).map_err(|attempts| {
                Error::Unreachable {
                    target: self.target.clone(),
                    attempts,
                }
            })?;
        debug!(address = %addr, target = %self.target, "connected");
        let peer = Endpoint::Ip(addr);
        let connection = Connection::tcp(stream, self.timeout)
            .map_err(|source| io_error(&peer, self.timeout, source))?;
        Ok((connection, peer))
    }

    /// The addresses of `host`: those [`Client::resolve_now`] kept, or
    /// those the resolver gives now, within `timeout`.
    fn addresses_of(
        &self,
        host: &str,
        port: u16,
        timeout: Option<Duration>,
    ) -> Result<Arc<[SocketAddr]>, Error> {
        match &self.resolved {
            Some(addresses) => Ok(Arc::clone(addresses)),
            None => self.lookup(host, port, timeout),
        }
    }

    fn lookup(
        &self,
        host: &str,
        port: u16,
        timeout: Option<Duration>,
    ) -> Result<Arc<[SocketAddr]>, Error> {
        let found = eyeballs::resolve(host, port, timeout).map_err(|source| Error::Resolve {
            host: host.to_owned(),
            source,
        })?;
        debug!(host, addresses = ?found, "resolved");
        let addresses = of_family(&found, self.family);
        if addresses.is_empty() {
            return Err(Error::NoAddressOfFamily {
                host: host.to_owned(),
                family: self.family,
                found,
            });
        }
        Ok(addresses.into())
    }
}

/// A connection made, ready for an exchange.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) connection: Connection,
    /// The address that answered.
    pub(crate) peer: Endpoint,
    /// The TLS side, for a client that speaks TLS.
    pub(crate) tls: Option<Secured>,
}

/// A connection's TLS side, once the handshake is made.
#[derive(Debug)]
pub(crate) struct Secured {
    pub(crate) session: Arc<Session>,
    pub(crate) negotiated: Negotiated,
    /// How long the handshake took.
    pub(crate) handshake: Duration,
}

/// What one exchange brought back.
#[derive(Debug)]
pub(crate) struct Echoed {
    pub(crate) reply: Vec<u8>,
    /// The address that answered.
    pub(crate) peer: Endpoint,
    /// How long the TLS handshake took, over TLS.
    pub(crate) handshake: Option<Duration>,
}

/// What a host name's address that answered a datagram with an ICMP port
/// unreachable says, among the attempts of [`Error::Unreachable`].
const PORT_UNREACHABLE_ATTEMPT: &str = "nothing listens on UDP there (ICMP port unreachable)";

/// The addresses of `family`, in the order given.
fn of_family(addresses: &[SocketAddr], family: Family) -> Vec<SocketAddr> {
    addresses
        .iter()
        .copied()
        .filter(|addr| family.admits(addr))
        .collect()
}

/// A failed connect in terms of the endpoint: a timeout only if one was set.
fn connect_error(endpoint: &Endpoint, timeout: Option<Duration>, source: io::Error) -> Error {
    match timeout {
        Some(after) if is_timeout(&source) => Error::Timeout {
            endpoint: endpoint.clone(),
            after,
        },
        _ => Error::Connect {
            endpoint: endpoint.clone(),
            source,
        },
    }
}

/// What went wrong in an exchange with `peer`, in the caller's terms.
pub(crate) fn exchange_error(
    peer: &Endpoint,
    timeout: Option<Duration>,
    failure: Failure,
) -> Error {
    match failure {
        Failure::Network(err) => io_error(peer, timeout, err),
        Failure::Input(err) => Error::Input(err),
        Failure::Output(err) => Error::Output(err),
        Failure::ClosedEarly => Error::ClosedEarly {
            endpoint: peer.clone(),
        },
        Failure::ReplyTooLong { sent } => Error::ReplyTooLong {
            endpoint: peer.clone(),
            sent,
        },
        Failure::WriterLost => io_error(
            peer,
            timeout,
            io::Error::other("the writer thread panicked"),
        ),
        Failure::Tls(source) => Error::Tls {
            endpoint: peer.clone(),
            source,
        },
        Failure::Truncated { received, sent } => Error::Truncated {
            endpoint: peer.clone(),
            received,
            sent,
        },
    }
}

/// An I/O error in terms of the endpoint; a timeout only if one was set,
/// since without one a timed-out socket is the kernel giving up.
pub(crate) fn io_error(peer: &Endpoint, timeout: Option<Duration>, source: io::Error) -> Error {
    match timeout {
        Some(after) if is_timeout(&source) => Error::Timeout {
            endpoint: peer.clone(),
            after,
        },
        _ => Error::Io {
            endpoint: peer.clone(),
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_keeps_its_own_addresses_in_order() {
        let addresses: Vec<SocketAddr> =
            ["[::1]:7", "127.0.0.1:7", "[2001:db8::1]:7", "192.0.2.1:7"]
                .iter()
                .map(|text| text.parse().expect("literal"))
                .collect();
        assert_eq!(of_family(&addresses, Family::Any), addresses);
        assert_eq!(
            of_family(&addresses, Family::V4),
            [addresses[1], addresses[3]]
        );
        assert_eq!(
            of_family(&addresses, Family::V6),
            [addresses[0], addresses[2]]
        );
        assert_eq!(of_family(&addresses[1..2], Family::V6), []);
    }

    #[test]
    fn a_name_without_the_family_names_what_it_has() {
        let error = Error::NoAddressOfFamily {
            host: "localhost".to_owned(),
            family: Family::V6,
            found: vec!["127.0.0.1:7007".parse().expect("literal")],
        };
        assert_eq!(
            error.to_string(),
            "host name 'localhost' has no IPv6 address: it resolves to 127.0.0.1"
        );
    }
}
