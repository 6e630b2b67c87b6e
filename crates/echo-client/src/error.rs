//! Why an exchange with an echo server failed: the one error type of the
//! library, in a module of its own so that every module can name it.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use echo_proto::{Endpoint, Target};

use crate::Family;
use crate::eyeballs::{self, Attempt};

/// Why an exchange with an echo server failed.
///
/// The `endpoint` of a variant is where the exchange was: for a host name,
/// the address that answered the connect.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection could not be made: nothing listens there (refused), or
    /// the address is unreachable. Over UDP, a closed port is
    /// [`Error::PortUnreachable`] instead.
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
    #[error("no progress from {endpoint} for {}", echo_proto::Human(*.after))]
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
    /// The server sent back more bytes than it was sent, which no echo does:
    /// more than the message has (a UDP reply included), or, for
    /// [`Client::stream`](crate::Client::stream), more than had gone out so
    /// far. The client stops reading there rather than take a reply that
    /// may never end.
    #[error("{endpoint} sent more than the {sent} bytes of the message")]
    ReplyTooLong {
        /// The server that sent too much.
        endpoint: Endpoint,
        /// The bytes sent, which the reply exceeded: the message's length,
        /// or a stream's length so far.
        sent: u64,
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
    /// A datagram to the server met a closed port: an ICMP port unreachable
    /// came back, so nothing listens on UDP there (though something may on TCP).
    #[error("nothing listens on UDP at {endpoint}: an ICMP port unreachable came back")]
    PortUnreachable {
        /// Where the datagram went.
        endpoint: Endpoint,
    },
    /// UDP needs an IP address, and a Unix socket path was given.
    #[error("UDP needs an IP:PORT address, not {0}")]
    UdpNeedsIp(Endpoint),
    /// The host name could not be resolved: the resolver does not know it,
    /// has no address for it, or did not answer within the timeout.
    #[error("cannot resolve host name '{host}'")]
    Resolve {
        /// The host name as given.
        host: String,
        /// What the resolver said.
        #[source]
        source: io::Error,
    },
    /// The host name resolved, but to no address of the [`Family`] the
    /// client was limited to ([`Client::family`](crate::Client::family)).
    #[error(
        "host name '{host}' has no {family} address: it resolves to {}",
        list(found)
    )]
    NoAddressOfFamily {
        /// The host name as given.
        host: String,
        /// The family asked for.
        family: Family,
        /// The addresses it does have.
        found: Vec<SocketAddr>,
    },
    /// None of the addresses a host name resolved to could be reached:
    /// each was refused, unreachable, or unanswered when the timeout ran out.
    #[error("cannot connect to {target}: {}", eyeballs::describe(attempts))]
    Unreachable {
        /// The host name and port.
        target: Target,
        /// Each address tried (or not tried, for want of time), in the order of trying.
        attempts: Vec<Attempt>,
    },
    /// The TLS handshake failed: the server's certificate is not trusted
    /// or not valid for the server name, the server refused the client (or
    /// its certificate), or the two share no protocol version or cipher suite.
    #[error("TLS handshake with {endpoint} failed")]
    Handshake {
        /// The server the handshake was with.
        endpoint: Endpoint,
        /// Why, as rustls says it.
        #[source]
        source: rustls::Error,
    },
    /// After the handshake, rustls refused what the server sent (a bad
    /// record, an alert such as a refused client certificate under TLS 1.3).
    #[error("TLS with {endpoint} failed")]
    Tls {
        /// The server the connection was to.
        endpoint: Endpoint,
        /// Why, as rustls says it.
        #[source]
        source: rustls::Error,
    },
    /// Over TLS, the connection closed without the server's close_notify
    /// before the whole echo came back, so the reply may have been cut short
    /// by anyone on the path.
    #[error(
        "{endpoint} closed the connection without a TLS close_notify after {received} of the {sent} bytes came back"
    )]
    Truncated {
        /// The server that closed.
        endpoint: Endpoint,
        /// The bytes that came back.
        received: u64,
        /// The bytes sent.
        sent: u64,
    },
    /// A PEM file of the TLS settings cannot be read, or holds nothing usable.
    #[error("cannot read the {what} from {}", .path.display())]
    TlsFile {
        /// The file as given.
        path: PathBuf,
        /// What the file was to hold: CA certificates, a client certificate or key.
        what: &'static str,
        /// What went wrong: the operating system's error, or what the file lacks.
        #[source]
        source: io::Error,
    },
    /// The client certificate and key were read, but rustls cannot use them:
    /// the key is of a kind it does not support, or does not match.
    #[error(
        "cannot use the client certificate {} with the key {}",
        .certificate.display(),
        .key.display()
    )]
    TlsIdentity {
        /// The certificate file.
        certificate: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why, as rustls says it.
        #[source]
        source: rustls::Error,
    },
    /// The TLS settings cannot be made into a configuration (the provider
    /// supports none of the protocol versions, say).
    #[error("the TLS settings cannot be used")]
    TlsSettings {
        /// Why, as rustls says it.
        #[source]
        source: rustls::Error,
    },
    /// The system has no root certificate to trust a server by.
    #[error("no system root certificates to check a TLS server with: {why}")]
    TlsSystemRoots {
        /// What the search for them found.
        why: String,
    },
    /// The name to check the server's certificate against is neither a DNS
    /// name nor an IP address.
    #[error("'{name}' is not a name a TLS server's certificate can be checked against")]
    TlsServerName {
        /// The name as given.
        name: String,
    },
    /// TLS was asked for where it is not spoken: over UDP or a Unix socket.
    #[error("TLS runs over TCP only, not over {over}")]
    TlsNeedsTcp {
        /// What the exchange was over.
        over: &'static str,
    },
    /// A probe too small for what it must carry: a UDP probe's sequence
    /// header, or at least one byte on a persistent connection, where an
    /// empty probe would measure nothing.
    #[error("a probe of this kind is at least {min} bytes; this one is {size}")]
    ProbeTooSmall {
        /// The probe's size.
        size: usize,
        /// The smallest size possible.
        min: usize,
    },
}

/// Addresses without their port, one after the other: the port is the one given.
fn list(addresses: &[SocketAddr]) -> String {
    addresses
        .iter()
        .map(|addr| addr.ip().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
