//! The client side of a TCP connection as every scenario makes it: Nagle's
//! algorithm off, within a timeout, and from a chosen loopback source address
//! when one source address has too few ports.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};

use crate::tally::ExchangeError;

/// Connects to `addr` with Nagle's algorithm off: every exchange waits for its
/// answer, and Nagle would hold small messages back for the peer's delayed ACK.
pub(crate) async fn connect(addr: SocketAddr) -> Result<TcpStream, ExchangeError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(ExchangeError::Connect)?;
    stream
        .set_nodelay(true)
        .map_err(ExchangeError::io("setting TCP_NODELAY"))?;
    Ok(stream)
}

/// Connects from `source` (port chosen at connect time) to `target`, with
/// Nagle's algorithm off as in [`connect`].
///
/// With the port left to `connect`, the kernel may reuse a source port towards
/// other destinations and recycle ports from TIME_WAIT, as it does for an
/// unbound socket; a plain `bind` to port 0 would reserve a port outright.
pub(crate) async fn connect_from(source: Ipv4Addr, target: SocketAddr) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    nix::sys::socket::setsockopt(
        &socket,
        nix::sys::socket::sockopt::IpBindAddressNoPort,
        &true,
    )
    .map_err(io::Error::from)?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    let stream = socket.connect(target).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The `index`th loopback address counted from 127.0.0.1 (index 0).
pub(crate) fn loopback_address(index: usize) -> Ipv4Addr {
    let offset = u32::try_from(index).unwrap_or(u32::MAX).min(0x00FF_FFFE);
    Ipv4Addr::from(u32::from(Ipv4Addr::LOCALHOST) + offset)
}

/// Connects within `timeout`.
pub(crate) async fn connect_within(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<TcpStream, ExchangeError> {
    tokio::time::timeout(timeout, connect(addr))
        .await
        .map_err(|_| ExchangeError::Timeout {
            during: "connecting",
            after: timeout,
        })?
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

    #[tokio::test]
    async fn connections_can_come_from_another_loopback_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let target = listener.local_addr().expect("addr");
        let connecting = connect_from(loopback_address(5), target);
        let (stream, accepted) = tokio::join!(connecting, listener.accept());
        let (_, peer) = accepted.expect("accept");
        assert_eq!(peer.ip(), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 6)));
        assert_eq!(stream.expect("connect").peer_addr().expect("peer"), target);
    }
}
