//! Where listening sockets come from: bound from `--listen` addresses, or
//! inherited from systemd socket activation.
//!
//! Whatever their origin, they end up as one [`Listener`] list that the server
//! serves with one connection limit, one set of timeouts and one drain.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use echo_proto::Endpoint;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::UnixListener;

/// How many connections the kernel may queue before the server accepts them.
///
/// When the connection limit is reached the server stops accepting and
/// clients wait in this queue, so it is sized for bursts, not just a trickle.
const BACKLOG: i32 = 1024;

/// How often a port-0 listen with `--udp` is retried when the TCP port the
/// kernel picked is already taken for UDP by someone else.
const SAME_PORT_ATTEMPTS: usize = 16;

/// One `--listen` address: a plain stream endpoint, or TLS over TCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// `IP:PORT` (TCP, and UDP with `--udp`) or `unix:PATH`.
    Plain(Endpoint),
    /// `tls:IP:PORT`: TLS echo over TCP.
    Tls(SocketAddr),
}

/// How a `tls:` address must be written.
const TLS_FORM: &str = "TLS is served over TCP: expected tls:IP:PORT or tls:[IPV6]:PORT";

impl std::str::FromStr for ListenAddr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let Some(rest) = text.trim().strip_prefix("tls:") else {
            return text
                .parse::<Endpoint>()
                .map(ListenAddr::Plain)
                .map_err(|err| err.to_string());
        };
        match rest.parse::<Endpoint>() {
            Ok(Endpoint::Ip(addr)) => Ok(ListenAddr::Tls(addr)),
            Ok(Endpoint::Unix(_)) => Err(format!("invalid address '{text}': {TLS_FORM}")),
            Err(err) => Err(format!("{err} ({TLS_FORM})")),
        }
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Plain(endpoint) => write!(f, "{endpoint}"),
            ListenAddr::Tls(addr) => write!(f, "tls:{addr}"),
        }
    }
}

impl From<Endpoint> for ListenAddr {
    fn from(endpoint: Endpoint) -> Self {
        ListenAddr::Plain(endpoint)
    }
}

/// One socket the server serves.
#[derive(Debug)]
pub enum Listener {
    /// A TCP listening socket.
    Tcp(TcpListener),
    /// A TCP listening socket whose connections speak TLS.
    Tls(TcpListener),
    /// A Unix domain stream listening socket, with the file to remove at exit
    /// when the server created it.
    Unix(UnixListener, Option<SocketFile>),
    /// A UDP socket, echoing datagrams.
    Udp(UdpSocket),
}

impl fmt::Display for Listener {
    /// The announcement form, `tcp 127.0.0.1:7007`, `udp [::1]:7007` or `unix /run/echo.sock`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn show(
            f: &mut fmt::Formatter<'_>,
            kind: &str,
            addr: io::Result<SocketAddr>,
        ) -> fmt::Result {
            match addr {
                Ok(addr) => write!(f, "{kind} {addr}"),
                Err(_) => write!(f, "{kind} (address unknown)"),
            }
        }
        match self {
            Listener::Tcp(listener) => show(f, "tcp", listener.local_addr()),
            Listener::Tls(listener) => show(f, "tls", listener.local_addr()),
            Listener::Udp(socket) => show(f, "udp", socket.local_addr()),
            Listener::Unix(listener, _) => match listener.local_addr() {
                Ok(addr) => match addr.as_pathname() {
                    Some(path) => write!(f, "unix {}", path.display()),
                    None => write!(f, "unix (unnamed)"),
                },
                Err(_) => write!(f, "unix (address unknown)"),
            },
        }
    }
}

/// Why the server could not get its sockets.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// Another socket holds the address (another server, most likely).
    #[error(
        "cannot listen on {0}: the address is in use (is another server running there? \
         stop it, or pick another port: port 0 picks a free one)"
    )]
    InUse(ListenAddr),
    /// Binding or listening on an address failed for another reason than
    /// its being in use (permission denied, address not available on this machine).
    #[error("cannot listen on {endpoint}")]
    Bind {
        /// The address as given.
        endpoint: ListenAddr,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// With `--udp`, the UDP socket beside a TCP listener could not be bound
    /// on its port (another program holds that UDP port, say).
    #[error(
        "cannot listen on udp {addr} (--udp echoes UDP on the port of each TCP address: \
         free that UDP port, pick another port, or leave out --udp)"
    )]
    BindUdp {
        /// The address, as the TCP listener got it.
        addr: SocketAddr,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// A Unix socket path is taken by a server that still answers.
    #[error("cannot listen on unix:{}: another server is listening there", .0.display())]
    UnixInUse(PathBuf),
    /// A socket file exists at the path and connecting to it failed in a way
    /// other than "refused" (permission denied, say), so whether a server
    /// still listens there cannot be told, and the file is left alone.
    #[error("cannot listen on unix:{}: a socket file is there and it cannot be told whether a server still listens on it", path.display())]
    UnixUncertain {
        /// The socket file's path.
        path: PathBuf,
        /// What connecting to it said.
        #[source]
        source: io::Error,
    },
    /// A Unix socket path exists and is not a socket, so it is not ours to replace.
    #[error("cannot listen on unix:{}: the path exists and is not a socket", .0.display())]
    NotASocket(PathBuf),
    /// `LISTEN_FDS` named a descriptor that is not a TCP, UDP or Unix stream socket.
    #[error("socket activation: inherited descriptor {fd} is not a TCP, UDP or Unix stream socket")]
    Activation {
        /// The inherited descriptor number.
        fd: usize,
    },
    /// Preparing an inherited socket (making it non-blocking, urgent data inline) failed.
    #[error("socket activation: cannot use inherited descriptor {fd}")]
    Inherited {
        /// The inherited descriptor number.
        fd: usize,
        /// What went wrong.
        #[source]
        source: io::Error,
    },
}

/// A Unix socket file the server created, removed again when dropped, but
/// only if it is still that file.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    /// Device and inode of the file as bound: if another server has since
    /// replaced it, the path is that server's, and not ours to remove.
    identity: (u64, u64),
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let still_ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| (meta.dev(), meta.ino()) == self.identity);
        if still_ours {
            // Nothing useful can be done if it is already gone.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Binds every endpoint, and with `udp` a UDP socket on each IP address too
/// (on the same port as its TCP listener).
///
/// `event_loops` is how many event loops will serve (see
/// [`crate::Config::event_loops`]): with more than one, each TCP listener
/// allows `SO_REUSEPORT`, so that every loop can have a socket of its own
/// on the address. That also lets any other process of the same user bind
/// the port once it is ours and take a share of its clients, so with one
/// loop no listener allows it.
///
/// The sockets are non-blocking, ready for [`crate::Server::run`].
///
/// # Errors
/// The first [`ListenError`] met; sockets already bound are closed again.
pub fn bind(
    endpoints: &[ListenAddr],
    udp: bool,
    event_loops: usize,
) -> Result<Vec<Listener>, ListenError> {
    let shared = event_loops > 1;
    let mut listeners = Vec::new();
    for endpoint in endpoints {
        let fail = |source: io::Error| {
            if source.kind() == io::ErrorKind::AddrInUse {
                ListenError::InUse(endpoint.clone())
            } else {
                ListenError::Bind {
                    endpoint: endpoint.clone(),
                    source,
                }
            }
        };
        match endpoint {
            ListenAddr::Tls(addr) => {
                listeners.push(Listener::Tls(bind_tcp(*addr, shared).map_err(fail)?));
            }
            ListenAddr::Plain(Endpoint::Ip(addr)) if udp => {
                let (tcp, udp) = bind_tcp_and_udp(*addr, shared).map_err(|err| match err {
                    (Side::Tcp, source) => fail(source),
                    (Side::Udp(addr), source) => ListenError::BindUdp { addr, source },
                })?;
                listeners.push(Listener::Tcp(tcp));
                listeners.push(Listener::Udp(udp));
            }
            ListenAddr::Plain(Endpoint::Ip(addr)) => {
                listeners.push(Listener::Tcp(bind_tcp(*addr, shared).map_err(fail)?));
            }
            ListenAddr::Plain(Endpoint::Unix(path)) => listeners.push(bind_unix(path)?),
        }
    }
    Ok(listeners)
}

/// The name (systemd's `FileDescriptorName=`) that makes an inherited TCP
/// socket a TLS one.
pub const TLS_FD_NAME: &str = "tls";

/// Takes the sockets systemd (or any launcher speaking its protocol) passed
/// through `LISTEN_FDS`, or `None` when none were passed. A TCP socket named
/// [`TLS_FD_NAME`] in `LISTEN_FDNAMES` (`FileDescriptorName=tls` in its
/// socket unit) is served over TLS.
///
/// # Errors
/// [`ListenError::Activation`] for a descriptor of the wrong kind.
pub fn inherited() -> Result<Option<Vec<Listener>>, ListenError> {
    // One name per descriptor, separated by colons; absent, none is named.
    // Read first: taking the descriptors clears the variables.
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    let names: Vec<&str> = names.split(':').collect();
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 0 {
        return Ok(None);
    }
    let mut listeners = Vec::with_capacity(fds.len());
    for index in 0..fds.len() {
        let fd = index + 3;
        let fail = |source| ListenError::Inherited { fd, source };
        // Each take leaves the descriptor in place when it is of another kind.
        let listener = if let Ok(Some(tcp)) = fds.take_tcp_listener(index) {
            tcp.set_nonblocking(true).map_err(fail)?;
            socket2::SockRef::from(&tcp)
                .set_out_of_band_inline(true)
                .map_err(fail)?;
            if names.get(index) == Some(&TLS_FD_NAME) {
                Listener::Tls(tcp)
            } else {
                Listener::Tcp(tcp)
            }
        } else if let Ok(Some(unix)) = fds.take_unix_listener(index) {
            unix.set_nonblocking(true).map_err(fail)?;
            Listener::Unix(unix, None)
        } else if let Ok(Some(udp)) = fds.take_udp_socket(index) {
            udp.set_nonblocking(true).map_err(fail)?;
            Listener::Udp(udp)
        } else {
            return Err(ListenError::Activation { fd });
        };
        listeners.push(listener);
    }
    Ok(Some(listeners))
}

fn new_socket(addr: SocketAddr, kind: Type, protocol: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), kind, Some(protocol))?;
    if addr.is_ipv6() {
        // `[::]` then means IPv6 only, so it can sit beside `0.0.0.0` on the same port.
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn bind_tcp(addr: SocketAddr, shared: bool) -> io::Result<TcpListener> {
    if shared && addr.port() != 0 {
        // SO_REUSEPORT, which lets each event loop have a listener of its own
        // on the port, would also let a second server of the same user bind
        // it unnoticed: first make sure, with a plain bind, that no one holds it.
        let probe = new_socket(addr, Type::STREAM, Protocol::TCP)?;
        probe.set_reuse_address(true)?;
        probe.bind(&addr.into())?;
    }
    let socket = tcp_socket(addr, shared)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// A TCP listening socket as every one of ours is set up, not yet bound;
/// `shared` by several event loops, it allows `SO_REUSEPORT`.
fn tcp_socket(addr: SocketAddr, shared: bool) -> io::Result<Socket> {
    let socket = new_socket(addr, Type::STREAM, Protocol::TCP)?;
    // A restarted server must not wait out TIME_WAIT of its previous life.
    socket.set_reuse_address(true)?;
    if shared {
        socket.set_reuse_port(true)?;
    }
    // Urgent (MSG_OOB) bytes are bytes too: inline, they are read and echoed
    // in their place instead of dropped. Accepted sockets inherit it.
    socket.set_out_of_band_inline(true)?;
    Ok(socket)
}

/// Another listening socket on `listener`'s address, for another event
/// loop: the kernel spreads new connections over them. Only listeners this
/// server bound (with `SO_REUSEPORT`) can have one.
///
/// # Errors
/// The listener does not allow it (an inherited socket, say), or the kernel
/// is out of descriptors or memory.
pub(crate) fn sibling(listener: impl AsFd) -> io::Result<TcpListener> {
    let listener = socket2::SockRef::from(&listener);
    if !listener.reuse_port()? {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the listener does not allow SO_REUSEPORT",
        ));
    }
    let addr = listener.local_addr()?.as_socket().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the listener is not on an IP address",
        )
    })?;
    let socket = tcp_socket(addr, true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = new_socket(addr, Type::DGRAM, Protocol::UDP)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Which of the two sockets on one port could not be bound.
enum Side {
    Tcp,
    /// The UDP one, at the address the TCP one got.
    Udp(SocketAddr),
}

/// Binds TCP and UDP on one port; with port 0, retries until the port the
/// kernel picks for TCP is free for UDP too.
fn bind_tcp_and_udp(
    addr: SocketAddr,
    shared: bool,
) -> Result<(TcpListener, UdpSocket), (Side, io::Error)> {
    let mut attempts = 0;
    loop {
        let tcp = bind_tcp(addr, shared).map_err(|err| (Side::Tcp, err))?;
        let bound = tcp.local_addr().map_err(|err| (Side::Tcp, err))?;
        match bind_udp(bound) {
            Ok(udp) => return Ok((tcp, udp)),
            Err(err) if addr.port() == 0 && err.kind() == io::ErrorKind::AddrInUse => {
                attempts += 1;
                if attempts == SAME_PORT_ATTEMPTS {
                    return Err((Side::Udp(bound), err));
                }
            }
            Err(err) => return Err((Side::Udp(bound), err)),
        }
    }
}

/// Binds a Unix stream socket, replacing a socket file only when it is
/// provably stale (connecting to it is refused: nothing listens), never a
/// live server's, one whose state cannot be told, or a file that is not a socket.
fn bind_unix(path: &Path) -> Result<Listener, ListenError> {
    let fail = |source| ListenError::Bind {
        endpoint: ListenAddr::Plain(Endpoint::Unix(path.to_owned())),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match probe_unix(path) {
            Probe::Stale => match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(fail(err)),
            },
            Probe::Live => return Err(ListenError::UnixInUse(path.to_owned())),
            Probe::Unknown(source) => {
                return Err(ListenError::UnixUncertain {
                    path: path.to_owned(),
                    source,
                });
            }
        },
        Ok(_) => return Err(ListenError::NotASocket(path.to_owned())),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(fail(err)),
    }
    let listener = UnixListener::bind(path).map_err(fail)?;
    listener.set_nonblocking(true).map_err(fail)?;
    let meta = std::fs::symlink_metadata(path).map_err(fail)?;
    let file = SocketFile {
        path: path.to_owned(),
        identity: (meta.dev(), meta.ino()),
    };
    Ok(Listener::Unix(listener, Some(file)))
}

/// What connecting to an existing socket file says about it.
#[derive(Debug)]
enum Probe {
    /// Refused: no one listens, the file is a dead server's.
    Stale,
    /// Accepted, or queued behind a full backlog: a server lives there.
    Live,
    /// Anything else (permission denied, say): no way to know.
    Unknown(io::Error),
}

/// Connects to the socket file at `path` without waiting, so a live server
/// with a full accept queue cannot stall the start-up.
fn probe_unix(path: &Path) -> Probe {
    let attempt = || -> io::Result<()> {
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        socket.connect(&socket2::SockAddr::unix(path)?)
    };
    match attempt() {
        Ok(()) => Probe::Live,
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => Probe::Live,
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => Probe::Stale,
        // Gone since it was looked at: nothing to replace.
        Err(err) if err.kind() == io::ErrorKind::NotFound => Probe::Stale,
        Err(err) => Probe::Unknown(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_listeners_are_ipv6_only_so_they_sit_beside_ipv4() {
        let endpoint: ListenAddr = "[::1]:0".parse().expect("literal");
        let listeners = bind(&[endpoint], true, 1).expect("bind");
        assert_eq!(listeners.len(), 2);
        for listener in &listeners {
            let only_v6 = match listener {
                Listener::Tcp(tcp) | Listener::Tls(tcp) => socket2::SockRef::from(tcp).only_v6(),
                Listener::Udp(udp) => socket2::SockRef::from(udp).only_v6(),
                Listener::Unix(..) => panic!("no Unix listener was asked for"),
            };
            assert!(
                only_v6.expect("readable option"),
                "{listener} accepts IPv4 too"
            );
        }
    }

    #[test]
    fn tcp_and_udp_share_the_port_the_kernel_picked() {
        let endpoint: ListenAddr = "127.0.0.1:0".parse().expect("literal");
        let listeners = bind(&[endpoint], true, 1).expect("bind");
        let [Listener::Tcp(tcp), Listener::Udp(udp)] = &listeners[..] else {
            panic!("a TCP and a UDP listener expected, got {listeners:?}");
        };
        assert_eq!(
            tcp.local_addr().expect("tcp").port(),
            udp.local_addr().expect("udp").port()
        );
    }

    #[test]
    fn only_a_listener_shared_by_several_loops_allows_sharing_its_port() {
        let endpoint: ListenAddr = "127.0.0.1:0".parse().expect("literal");
        for (loops, shared) in [(1, false), (2, true)] {
            let listeners = bind(std::slice::from_ref(&endpoint), false, loops).expect("bind");
            let [Listener::Tcp(tcp)] = &listeners[..] else {
                panic!("one TCP listener expected, got {listeners:?}");
            };
            let reuse_port = socket2::SockRef::from(tcp).reuse_port().expect("readable");
            assert_eq!(reuse_port, shared, "{loops} loops");
            assert_eq!(sibling(tcp).is_ok(), shared, "{loops} loops");
        }
    }

    #[test]
    fn tls_addresses_are_ip_addresses_behind_tls() {
        let parsed = |text: &str| text.parse::<ListenAddr>();
        assert_eq!(
            parsed("tls:127.0.0.1:7443"),
            Ok(ListenAddr::Tls("127.0.0.1:7443".parse().expect("literal")))
        );
        assert_eq!(
            parsed("tls:[::1]:0"),
            Ok(ListenAddr::Tls("[::1]:0".parse().expect("literal")))
        );
        assert_eq!(
            parsed("127.0.0.1:7"),
            Ok(ListenAddr::Plain(Endpoint::Ip(
                "127.0.0.1:7".parse().expect("literal")
            )))
        );
        assert_eq!(
            parsed("tls:unix:/run/e.sock"),
            Err(
                "invalid address 'tls:unix:/run/e.sock': TLS is served over TCP: \
                 expected tls:IP:PORT or tls:[IPV6]:PORT"
                    .to_owned()
            )
        );
        assert!(parsed("tls:nowhere").is_err());
        let tls = parsed("tls:127.0.0.1:0").expect("parses");
        assert_eq!(tls.to_string(), "tls:127.0.0.1:0");
        let listeners = bind(&[tls], true, 1).expect("bind");
        let [Listener::Tls(tcp)] = &listeners[..] else {
            panic!("one TLS listener and no UDP expected, got {listeners:?}");
        };
        let announced = Listener::Tls(tcp.try_clone().expect("cloned")).to_string();
        assert!(announced.starts_with("tls 127.0.0.1:"), "{announced}");
    }
}
