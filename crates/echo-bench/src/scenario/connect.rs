//! The client side of a stream connection as every scenario makes it: TCP with
//! Nagle's algorithm off or a Unix socket, within a timeout, and from a chosen
//! source address when the target answers to several; then, for a run over
//! TLS, the handshake.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use echo_proto::Endpoint;
use tokio::net::{TcpSocket, TcpStream, UnixStream};
use tokio_util::either::Either;

use super::stream::{Plain, Stream};
use crate::error::Unanswered;
use crate::tally::{ExchangeError, Handshake};
use crate::tls::Connector;

/// Connects to `endpoint`; over TCP with Nagle's algorithm off, since every
/// exchange waits for its answer and Nagle would hold small messages back
/// for the peer's delayed ACK.
pub(crate) async fn connect(endpoint: &Endpoint) -> Result<Plain, ExchangeError> {
    match endpoint {
        Endpoint::Ip(addr) => {
            let stream = TcpStream::connect(addr)
                .await
                .map_err(ExchangeError::Connect)?;
            stream
                .set_nodelay(true)
                .map_err(ExchangeError::io("setting TCP_NODELAY"))?;
            Ok(Either::Left(stream))
        }
        Endpoint::Unix(path) => UnixStream::connect(path)
            .await
            .map(Either::Right)
            .map_err(ExchangeError::Connect),
    }
}

/// Connects from `source` (port chosen at connect time) to `target`, with
/// Nagle's algorithm off as in [`connect`].
///
/// With the port left to `connect`, the kernel may reuse a source port towards
/// other destinations and recycle ports from TIME_WAIT, as it does for an
/// unbound socket; a plain `bind` to port 0 would reserve a port outright.
pub(crate) async fn connect_from(source: IpAddr, target: SocketAddr) -> io::Result<Plain> {
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    nix::sys::socket::setsockopt(
        &socket,
        nix::sys::socket::sockopt::IpBindAddressNoPort,
        &true,
    )
    .map_err(io::Error::from)?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(target).await?;
    stream.set_nodelay(true)?;
    Ok(Either::Left(stream))
}

/// With `tls`, runs the handshake on `plain`, just connected, and says how
/// it went; without, hands `plain` back as it is.
///
/// # Errors
/// [`ExchangeError::Tls`] when the handshake fails, or when `plain` is a
/// Unix socket (which the plan's checks rule out).
pub(crate) async fn secure(
    plain: Plain,
    tls: Option<&Connector>,
) -> Result<(Stream, Option<Handshake>), ExchangeError> {
    let Some(tls) = tls else {
        return Ok((Either::Left(plain), None));
    };
    let (stream, handshake) = tls
        .handshake(tcp_for_tls(plain)?, tokio::time::Instant::now())
        .await?;
    Ok((Either::Right(Box::new(stream)), Some(handshake)))
}

/// The TCP stream under `plain`, for TLS to run over.
///
/// # Errors
/// [`ExchangeError::Tls`] when `plain` is a Unix socket (which the plan's
/// checks rule out).
pub(crate) fn tcp_for_tls(plain: Plain) -> Result<TcpStream, ExchangeError> {
    match plain {
        Either::Left(tcp) => Ok(tcp),
        Either::Right(_) => Err(ExchangeError::Tls(io::Error::other(
            "TLS is spoken over TCP only, not over a Unix socket",
        ))),
    }
}

/// Connects, with `tls` runs the handshake, all within `timeout`.
pub(crate) async fn connect_within(
    endpoint: &Endpoint,
    tls: Option<&Connector>,
    timeout: Duration,
) -> Result<(Stream, Option<Handshake>), ExchangeError> {
    let during = if tls.is_some() {
        "connecting and the TLS handshake"
    } else {
        "connecting"
    };
    tokio::time::timeout(timeout, async {
        secure(connect(endpoint).await?, tls).await
    })
    .await
    .map_err(|_| ExchangeError::Timeout {
        during,
        after: timeout,
    })?
}

/// Makes one connection to `endpoint` and closes it again: the proof, before
/// any worker starts, that something listens there.
pub(crate) async fn probe(endpoint: &Endpoint, timeout: Duration) -> Result<(), Unanswered> {
    let addr = endpoint.to_string();
    match connect_within(endpoint, None, timeout).await {
        Ok(_stream) => Ok(()),
        Err(ExchangeError::Timeout { after, .. }) => Err(Unanswered::Timeout { addr, after }),
        Err(ExchangeError::Connect(source)) | Err(ExchangeError::Io { source, .. }) => {
            Err(unanswered(addr, source))
        }
        // connect_within fails in no other way; a mismatch needs a reply.
        Err(other) => Err(Unanswered::Failed {
            addr,
            source: io::Error::other(other.to_string()),
        }),
    }
}

/// What a failed first connection (or datagram) says about `addr`.
pub(crate) fn unanswered(addr: String, source: io::Error) -> Unanswered {
    match source.kind() {
        io::ErrorKind::ConnectionRefused => Unanswered::NothingListens {
            addr,
            reason: "connection refused",
        },
        io::ErrorKind::NotFound => Unanswered::NothingListens {
            addr,
            reason: "no such socket file",
        },
        _ => Unanswered::Failed { addr, source },
    }
}

/// The source addresses a run's connections may come from besides the
/// kernel's own choice, which always picks one address per destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Spread {
    /// The kernel's choice alone: a Unix socket, `::1` (IPv6 has one
    /// loopback address), or a target elsewhere, which other source addresses
    /// of this machine might not reach.
    None,
    /// 127.0.0.1, 127.0.0.2, ...: an IPv4 loopback target answers from all
    /// of 127.0.0.0/8.
    Loopback,
    /// These IPv6 addresses of this machine: the target is one of them, and
    /// a machine reaches its own addresses from any other.
    Own(Vec<IpAddr>),
}

impl Spread {
    /// The spread for connections to `target` on a machine whose addresses are `own`.
    pub(crate) fn towards(target: &Endpoint, own: &[IpAddr]) -> Spread {
        let Endpoint::Ip(addr) = target else {
            return Spread::None;
        };
        match addr.ip().to_canonical() {
            IpAddr::V4(ip) if ip.is_loopback() => Spread::Loopback,
            IpAddr::V4(_) => Spread::None,
            IpAddr::V6(ip) => {
                // Link-local addresses need a scope, and loopback has one address.
                let usable = |candidate: &IpAddr| match candidate {
                    IpAddr::V6(v6) => {
                        !v6.is_loopback() && !v6.is_unicast_link_local() && !v6.is_multicast()
                    }
                    IpAddr::V4(_) => false,
                };
                let target = IpAddr::V6(ip);
                if !usable(&target) || !own.contains(&target) {
                    return Spread::None;
                }
                let mut sources = vec![target];
                sources.extend(own.iter().filter(|&&a| a != target && usable(&a)).copied());
                if sources.len() < 2 {
                    Spread::None
                } else {
                    Spread::Own(sources)
                }
            }
        }
    }

    /// How many source addresses there are to spread over, at most `cap`;
    /// 0 means the kernel's choice alone.
    pub(crate) fn len(&self, cap: usize) -> usize {
        match self {
            Spread::None => 0,
            Spread::Loopback => cap.min(0x00FF_FFFE),
            Spread::Own(sources) => sources.len().min(cap),
        }
    }

    /// The `index`th source address, counted from 0 and wrapping around;
    /// `None` for the kernel's choice.
    pub(crate) fn address(&self, index: usize) -> Option<IpAddr> {
        match self {
            Spread::None => None,
            Spread::Loopback => Some(IpAddr::V4(loopback_address(index))),
            Spread::Own(sources) => Some(sources[index % sources.len()]),
        }
    }
}

/// The `index`th loopback address counted from 127.0.0.1 (index 0).
pub(crate) fn loopback_address(index: usize) -> Ipv4Addr {
    let offset = u32::try_from(index).unwrap_or(u32::MAX).min(0x00FF_FFFE);
    Ipv4Addr::from(u32::from(Ipv4Addr::LOCALHOST) + offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_count_up_from_loopback() {
        assert_eq!(loopback_address(1), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(loopback_address(254), Ipv4Addr::new(127, 0, 0, 255));
        assert_eq!(loopback_address(255), Ipv4Addr::new(127, 0, 1, 0));
        assert!(loopback_address(usize::MAX).is_loopback());
    }

    #[test]
    fn connections_spread_only_where_the_target_answers_every_source() {
        let ip = |text: &str| text.parse::<IpAddr>().expect("literal");
        let at = |text: &str| Endpoint::Ip(SocketAddr::new(ip(text), 7));
        let own = [
            ip("127.0.0.1"),
            ip("::1"),
            ip("10.0.0.5"),
            ip("fe80::1"),
            ip("2001:db8::1"),
            ip("2001:db8::2"),
        ];
        assert_eq!(Spread::towards(&at("127.0.0.1"), &own), Spread::Loopback);
        assert_eq!(Spread::towards(&at("127.3.0.1"), &own), Spread::Loopback);
        assert_eq!(Spread::towards(&at("::1"), &own), Spread::None);
        assert_eq!(Spread::towards(&at("10.0.0.5"), &own), Spread::None);
        assert_eq!(Spread::towards(&at("192.0.2.1"), &own), Spread::None);
        assert_eq!(Spread::towards(&at("2001:db8::9"), &own), Spread::None);
        assert_eq!(Spread::towards(&at("fe80::1"), &own), Spread::None);
        assert_eq!(
            Spread::towards(&Endpoint::Unix("/tmp/e.sock".into()), &own),
            Spread::None
        );
        let spread = Spread::towards(&at("2001:db8::2"), &own);
        assert_eq!(
            spread,
            Spread::Own(vec![ip("2001:db8::2"), ip("2001:db8::1")])
        );
        assert_eq!(spread.len(8), 2);
        assert_eq!(spread.address(3), Some(ip("2001:db8::1")));
        assert_eq!(
            Spread::towards(&at("2001:db8::1"), &[ip("2001:db8::1")]),
            Spread::None,
            "one address is no spread"
        );
        assert_eq!(Spread::Loopback.len(8), 8);
        assert_eq!(Spread::None.len(8), 0);
    }

    #[tokio::test]
    async fn connections_can_come_from_another_loopback_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let target = listener.local_addr().expect("addr");
        let connecting = connect_from(IpAddr::V4(loopback_address(5)), target);
        let (stream, accepted) = tokio::join!(connecting, listener.accept());
        let (_, peer) = accepted.expect("accept");
        assert_eq!(peer.ip(), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 6)));
        let Ok(Either::Left(stream)) = stream else {
            panic!("a TCP connection");
        };
        assert_eq!(stream.peer_addr().expect("peer"), target);
    }

    #[tokio::test]
    async fn the_first_connection_tells_refused_from_missing() {
        // Bound but not listening: the port refuses, and no one else can take it.
        let bound = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        let any: SocketAddr = "127.0.0.1:0".parse().expect("literal");
        bound.bind(&any.into()).expect("bind");
        let addr = bound
            .local_addr()
            .expect("addr")
            .as_socket()
            .expect("an IP address");
        let refused = probe(&Endpoint::Ip(addr), Duration::from_secs(1)).await;
        assert!(
            matches!(
                refused,
                Err(Unanswered::NothingListens {
                    reason: "connection refused",
                    ..
                })
            ),
            "{refused:?}"
        );
        let missing = probe(
            &Endpoint::Unix("/nonexistent/echo-bench.sock".into()),
            Duration::from_secs(1),
        )
        .await;
        assert!(
            matches!(
                missing,
                Err(Unanswered::NothingListens {
                    reason: "no such socket file",
                    ..
                })
            ),
            "{missing:?}"
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let open = Endpoint::Ip(listener.local_addr().expect("addr"));
        assert!(probe(&open, Duration::from_secs(1)).await.is_ok());
    }
}
