//! The kinds of stream the event loop serves, TCP, Unix and TLS, each saying
//! what the loop must know of it: how to accept one, whether it may splice,
//! whether a short read drains it, how the peer's progress is seen, whether
//! a handshake is overdue, and how it ends early.
//!
//! The loop knows streams only through [`Listen`] and [`Stream`], so a new
//! kind is a new pair of implementations here, not a change there.

use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::Interest;
use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::connection::Socket;
use crate::listen::{Listener, SocketFile};
use crate::send_queue;
use crate::tls::{self, TlsStream};

/// A listening socket the event loop accepts streams on.
pub(crate) trait Listen: Source + Send + fmt::Debug {
    /// Its name in log lines, as announced.
    fn name(&self) -> &str;

    /// The next connection waiting, with the peer's name for the log.
    ///
    /// # Errors
    /// As `accept(2)`: `WouldBlock` when none waits.
    fn accept(&self) -> io::Result<(Held, Peer)>;

    /// Another listener on the same address for another event loop, among
    /// which the kernel deals new connections; `None` for a kind that only
    /// the first loop serves.
    fn sibling(&self) -> Option<io::Result<Box<dyn Listen>>> {
        None
    }
}

/// One accepted connection as the event loop serves it.
///
/// Whether it may splice is [`Socket::splice_fd`].
pub(crate) trait Stream: Socket + Source + Send + fmt::Debug {
    /// The events it is registered for.
    fn interest(&self) -> Interest {
        Interest::READABLE | Interest::WRITABLE
    }

    /// Whether a read that fills less than the buffer means nothing more is
    /// queued, so the echo may wait for the next event without reading again.
    fn short_read_drains(&self) -> bool;

    /// Bytes written and not yet taken by the peer, as the kernel counts
    /// them, for the idle rule; `None` when it cannot tell.
    fn unsent(&self) -> Option<u64>;

    /// The peer's name for a log line; asked only when one is written.
    fn peer(&self) -> String;

    /// Whether a handshake still under way is past its deadline at `now`
    /// (counted as failed then, and the connection is to be closed); kinds
    /// without a handshake never are.
    fn handshake_overdue(&mut self, _now: Instant) -> bool {
        false
    }

    /// Ends a connection the server closes early: with a clean end of stream
    /// when the peer is owed nothing; when it is still owed bytes, as
    /// loudly as the kind allows, so a cut echo never passes for a whole one.
    fn end_early(&mut self, owed: bool);
}

/// An accepted connection as the event loop holds it: the kinds this server
/// serves, inline, so that an idle connection costs no allocation of its
/// own (a boxed stream cost 30 bytes more per idle connection); a kind of
/// its own, such as the engine tests', boxed.
#[derive(Debug)]
pub(crate) enum Held {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A Unix stream connection.
    Unix(UnixStream),
    /// A TLS connection, boxed: its state is larger than the others', and
    /// an enum is as big as its biggest kind.
    Tls(Box<TlsStream>),
    /// Any other kind.
    #[cfg(test)]
    Other(Box<dyn Stream>),
}

/// Evaluates `$body` with `$stream` bound to the stream `$held` holds,
/// whatever its kind.
macro_rules! each {
    ($held:expr, $stream:ident => $body:expr) => {
        match $held {
            Held::Tcp($stream) => $body,
            Held::Unix($stream) => $body,
            Held::Tls($stream) => $body,
            #[cfg(test)]
            Held::Other($stream) => $body,
        }
    };
}

impl io::Read for Held {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        each!(self, stream => stream.read(buffer))
    }
}

impl io::Write for Held {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        each!(self, stream => stream.write(bytes))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Socket for Held {
    fn splice_fd(&self) -> Option<BorrowedFd<'_>> {
        each!(self, stream => stream.splice_fd())
    }

    fn holds_output(&self) -> bool {
        each!(self, stream => stream.holds_output())
    }

    fn start_turn(&mut self, drain_to_the_end: bool) {
        each!(self, stream => stream.start_turn(drain_to_the_end));
    }

    fn take_moved(&mut self) -> bool {
        each!(self, stream => stream.take_moved())
    }
}

impl Source for Held {
    fn register(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: Interest,
    ) -> io::Result<()> {
        each!(self, stream => stream.register(registry, token, interests))
    }

    fn reregister(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: Interest,
    ) -> io::Result<()> {
        each!(self, stream => stream.reregister(registry, token, interests))
    }

    fn deregister(&mut self, registry: &mio::Registry) -> io::Result<()> {
        each!(self, stream => stream.deregister(registry))
    }
}

impl Stream for Held {
    fn interest(&self) -> Interest {
        each!(self, stream => stream.interest())
    }

    fn short_read_drains(&self) -> bool {
        each!(self, stream => stream.short_read_drains())
    }

    fn unsent(&self) -> Option<u64> {
        each!(self, stream => stream.unsent())
    }

    fn peer(&self) -> String {
        each!(self, stream => stream.peer())
    }

    fn handshake_overdue(&mut self, now: Instant) -> bool {
        each!(self, stream => stream.handshake_overdue(now))
    }

    fn end_early(&mut self, owed: bool) {
        each!(self, stream => stream.end_early(owed));
    }
}

/// How a peer is named in logs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Peer {
    /// An IP peer, by its address.
    Ip(SocketAddr),
    /// A peer with no address of its own, by its kind; the listener's name
    /// is in its own log lines.
    Unnamed(&'static str),
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Ip(addr) => write!(f, "{addr}"),
            Peer::Unnamed(kind) => f.write_str(kind),
        }
    }
}

/// How Unix peers are named.
const UNIX_PEER: Peer = Peer::Unnamed("unix peer");

/// A bound stream listener of [`Listener`] as the event loop takes it, with
/// the TLS context its connections use if it is a TLS one; a UDP socket,
/// which the loop does not serve, is given back, and so is a TLS listener
/// with no context.
pub(crate) fn stream_listener(
    listener: Listener,
    tls: Option<&Arc<tls::Context>>,
) -> Result<Box<dyn Listen>, Listener> {
    let name = listener.to_string();
    match listener {
        Listener::Tls(tcp) => match tls {
            Some(context) => Ok(Box::new(Tls {
                tcp: Tcp {
                    listener: TcpListener::from_std(tcp),
                    name,
                },
                context: Arc::clone(context),
            })),
            None => Err(Listener::Tls(tcp)),
        },
        Listener::Tcp(tcp) => Ok(Box::new(Tcp {
            listener: TcpListener::from_std(tcp),
            name,
        })),
        Listener::Unix(unix, file) => Ok(Box::new(Unix {
            listener: UnixListener::from_std(unix),
            _file: file,
            name,
        })),
        Listener::Udp(udp) => Err(Listener::Udp(udp)),
    }
}

/// A TCP listener.
#[derive(Debug)]
struct Tcp {
    listener: TcpListener,
    name: String,
}

impl Tcp {
    /// The next connection waiting, ready to serve.
    fn accept_tcp(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = self.listener.accept()?;
        // Each exchange is a request waiting for its answer (a TLS flight
        // too): Nagle's algorithm would hold small replies back until the
        // peer's delayed ACK. It fails only on a connection already dead,
        // which the echo then finds out.
        let _ = stream.set_nodelay(true);
        Ok((stream, peer))
    }

    /// Another listener on the same address, for another event loop.
    fn sibling_tcp(&self) -> io::Result<Tcp> {
        crate::listen::sibling(&self.listener).map(|sibling| Tcp {
            listener: TcpListener::from_std(sibling),
            name: self.name.clone(),
        })
    }
}

impl Listen for Tcp {
    fn name(&self) -> &str {
        &self.name
    }

    fn accept(&self) -> io::Result<(Held, Peer)> {
        let (stream, peer) = self.accept_tcp()?;
        Ok((Held::Tcp(stream), Peer::Ip(peer)))
    }

    fn sibling(&self) -> Option<io::Result<Box<dyn Listen>>> {
        Some(
            self.sibling_tcp()
                .map(|sibling| Box::new(sibling) as Box<dyn Listen>),
        )
    }
}

/// A TCP listener whose connections speak TLS.
#[derive(Debug)]
struct Tls {
    tcp: Tcp,
    context: Arc<tls::Context>,
}

impl Listen for Tls {
    fn name(&self) -> &str {
        &self.tcp.name
    }

    fn accept(&self) -> io::Result<(Held, Peer)> {
        let (stream, peer) = self.tcp.accept_tcp()?;
        // The handshake is questions and answers, each answered at once:
        // in the kernel's interactive mode the ACK of a flight rides on our
        // answer instead of going alone when the read empties the socket
        // (one segment less per connection). Best effort, as above.
        let _ = socket2::SockRef::from(&stream).set_tcp_quickack(false);
        let stream = TlsStream::accept(stream, Arc::clone(&self.context))?;
        Ok((Held::Tls(Box::new(stream)), Peer::Ip(peer)))
    }

    fn sibling(&self) -> Option<io::Result<Box<dyn Listen>>> {
        Some(self.tcp.sibling_tcp().map(|tcp| {
            Box::new(Tls {
                tcp,
                context: Arc::clone(&self.context),
            }) as Box<dyn Listen>
        }))
    }
}

/// A Unix stream listener, and the socket file to remove when it closes.
#[derive(Debug)]
struct Unix {
    listener: UnixListener,
    /// Held only to be dropped with the listener, which removes the file.
    _file: Option<SocketFile>,
    name: String,
}

impl Listen for Unix {
    fn name(&self) -> &str {
        &self.name
    }

    fn accept(&self) -> io::Result<(Held, Peer)> {
        let (stream, _) = self.listener.accept()?;
        Ok((Held::Unix(stream), UNIX_PEER))
    }
}

/// Implements mio's `Source` for `$kind` by handing each call to its
/// `$field`, or to what its method `$method` lends.
macro_rules! forward_source {
    ($kind:ty, fn $method:ident) => {
        forward_source!(@impl $kind, self => self.$method());
    };
    ($kind:ty, $field:ident) => {
        forward_source!(@impl $kind, self => self.$field);
    };
    (@impl $kind:ty, $self:ident => $target:expr) => {
        impl mio::event::Source for $kind {
            fn register(
                &mut $self,
                registry: &mio::Registry,
                token: mio::Token,
                interests: mio::Interest,
            ) -> std::io::Result<()> {
                $target.register(registry, token, interests)
            }

            fn reregister(
                &mut $self,
                registry: &mio::Registry,
                token: mio::Token,
                interests: mio::Interest,
            ) -> std::io::Result<()> {
                $target.reregister(registry, token, interests)
            }

            fn deregister(&mut $self, registry: &mio::Registry) -> std::io::Result<()> {
                $target.deregister(registry)
            }
        }
    };
}
#[cfg(test)]
pub(super) use forward_source;

forward_source!(Tcp, listener);
forward_source!(Tls, tcp);
forward_source!(Unix, listener);

/// TCP bulk streams splice.
impl Socket for TcpStream {
    fn splice_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.as_fd())
    }
}

impl Stream for TcpStream {
    /// Urgent data raises EPOLLPRI: it tells the echo that a short read
    /// stopped at the urgent mark rather than at the end of the queue.
    fn interest(&self) -> Interest {
        Interest::READABLE | Interest::WRITABLE | Interest::PRIORITY
    }

    fn short_read_drains(&self) -> bool {
        true
    }

    fn unsent(&self) -> Option<u64> {
        send_queue::unsent(self)
    }

    fn peer(&self) -> String {
        self.peer_addr()
            .map_or_else(|_| "a peer gone".to_owned(), |addr| addr.to_string())
    }

    /// A reset when the peer is still owed bytes.
    fn end_early(&mut self, owed: bool) {
        // Best effort either way: both fail only on a connection already dead.
        let _ = if owed {
            // A zero linger makes the close a reset, and throws the send queue away.
            socket2::SockRef::from(&*self).set_linger(Some(Duration::ZERO))
        } else {
            self.shutdown(Shutdown::Write)
        };
    }
}

/// Unix streams copy, as they are rarely bulk.
impl Socket for UnixStream {}

impl Stream for UnixStream {
    fn short_read_drains(&self) -> bool {
        false
    }

    fn unsent(&self) -> Option<u64> {
        send_queue::unsent(self)
    }

    fn peer(&self) -> String {
        UNIX_PEER.to_string()
    }

    /// A Unix socket has no reset: its peer reads a plain end of stream,
    /// unless input was left unread, which the kernel reports to it as
    /// `ECONNRESET`.
    fn end_early(&mut self, _owed: bool) {
        // Fails only on a connection already dead.
        let _ = self.shutdown(Shutdown::Write);
    }
}

/// TLS connections copy: records are made and opened in user space (the
/// kernel's own TLS is not there to splice through on every machine).
impl Socket for Box<TlsStream> {
    fn holds_output(&self) -> bool {
        TlsStream::holds_output(self)
    }

    fn start_turn(&mut self, drain_to_the_end: bool) {
        TlsStream::start_turn(self, drain_to_the_end);
    }

    fn take_moved(&mut self) -> bool {
        TlsStream::take_moved(self)
    }
}

forward_source!(Box<TlsStream>, fn tcp_mut);

impl Stream for Box<TlsStream> {
    /// A short read proves nothing: a read stops when its buffer has no room
    /// left for the plaintext of more records, with more queued.
    fn short_read_drains(&self) -> bool {
        false
    }

    /// The records the kernel still holds, and those not yet written to it
    /// (`holds_output`): record bytes, a little more than the plaintext
    /// they carry.
    fn unsent(&self) -> Option<u64> {
        send_queue::unsent(self.tcp()).map(|queued| queued + self.held_output())
    }

    fn peer(&self) -> String {
        self.tcp().peer()
    }

    fn handshake_overdue(&mut self, now: Instant) -> bool {
        TlsStream::handshake_overdue(self, now)
    }

    fn end_early(&mut self, owed: bool) {
        TlsStream::end_early(self, owed);
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream as StdUnixStream;

    use mio::{Events, Poll, Token};

    use super::*;
    use crate::listen;

    /// Binds `endpoint` as the server does for `loops` event loops, and
    /// says how the server announces it.
    fn bound(endpoint: &str, loops: usize) -> (Box<dyn Listen>, String) {
        let endpoint: crate::listen::ListenAddr = endpoint.parse().expect("an endpoint");
        let mut listeners = listen::bind(&[endpoint], false, loops).expect("binds");
        let listener = listeners.pop().expect("one listener");
        let announced = listener.to_string();
        (
            stream_listener(listener, None).expect("a stream listener"),
            announced,
        )
    }

    /// Accepts the connection waiting on `listener`, once it is there.
    fn accept_one(listener: &mut Box<dyn Listen>) -> (Held, Peer) {
        let mut poll = Poll::new().expect("an epoll set");
        poll.registry()
            .register(listener, Token(0), Interest::READABLE)
            .expect("registered");
        let mut events = Events::with_capacity(1);
        poll.poll(&mut events, Some(Duration::from_secs(10)))
            .expect("waited");
        assert!(!events.is_empty(), "no connection came");
        listener.accept().expect("accepted")
    }

    /// What the loop knows of TCP: the listener's name as announced, for
    /// its log lines; a sibling on the same address for each other loop;
    /// the peer's address; and that a short read drains the socket, since
    /// every new segment raises a new edge, so a turn ends without another
    /// `read` that would find nothing.
    #[test]
    fn tcp_as_the_event_loop_sees_it() {
        let (mut listener, announced) = bound("127.0.0.1:0", 2);
        let addr: SocketAddr = announced
            .strip_prefix("tcp ")
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("announced as {announced}"));
        assert_eq!(listener.name(), announced);

        let client = std::net::TcpStream::connect(addr).expect("connects");
        let (held, peer) = accept_one(&mut listener);
        let client_addr = client.local_addr().expect("an address").to_string();
        assert_eq!(peer.to_string(), client_addr);
        assert_eq!(held.peer(), client_addr);
        assert!(held.short_read_drains());

        let mut sibling = listener
            .sibling()
            .expect("a TCP listener has siblings")
            .expect("a sibling is bound");
        assert_eq!(sibling.name(), announced);
        // With the first one closed, the address is the sibling's alone.
        drop(listener);
        let _client = std::net::TcpStream::connect(addr).expect("connects");
        accept_one(&mut sibling);
    }

    /// What the loop knows of Unix streams: the listener's name as
    /// announced; no sibling, so the first loop alone serves it; the peer
    /// by its kind; and that a short read proves nothing, since a read stops
    /// after a message that carried descriptors, with more queued behind it.
    #[test]
    fn unix_as_the_event_loop_sees_it() {
        let path = std::env::temp_dir().join(format!(
            "echo-server-stream-test-{}.sock",
            std::process::id()
        ));
        let (mut listener, announced) = bound(&format!("unix:{}", path.display()), 2);
        assert_eq!(announced, format!("unix {}", path.display()));
        assert_eq!(listener.name(), announced);
        assert!(listener.sibling().is_none());

        let _client = StdUnixStream::connect(&path).expect("connects");
        let (held, peer) = accept_one(&mut listener);
        assert_eq!(peer.to_string(), "unix peer");
        assert_eq!(held.peer(), "unix peer");
        assert!(!held.short_read_drains());
    }
}
