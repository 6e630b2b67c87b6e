//! The engine that serves every stream connection, TCP, Unix and TLS: event
//! loops on threads of their own, under one connection limit, told by the
//! rest of the server when to drain and when to cut.
//!
//! Who does what: [`stream`] holds the kinds of stream (the only place that
//! knows TCP from Unix and TLS), [`limit`] the connection limit, [`control`] the
//! phases and the handle the server holds, [`event_loop`] the loop itself;
//! this module spreads the listeners over the loops and starts them.

mod control;
mod event_loop;
mod limit;
mod stream;

use std::io;
use std::sync::Arc;

use tracing::debug;

use control::Control;
pub(crate) use control::Handle;
pub(crate) use event_loop::Shared;
pub(crate) use limit::{Limit, MAX_LOOPS};
pub(crate) use stream::{Listen, stream_listener};

/// Starts `loops` event loops (clamped to 1..=[`MAX_LOOPS`]), each on a
/// thread of its own, all under one limit: every listener is served by the
/// first, and those of a kind that can have siblings (TCP ones this server
/// bound) get one in each other loop, among which the kernel deals new
/// connections. A loop left with no listener is not started.
///
/// # Errors
/// An epoll set or its waker could not be made, or a listener could not be
/// registered (out of descriptors or memory); no loop is left running then.
pub(crate) fn start(
    listeners: Vec<Box<dyn Listen>>,
    loops: usize,
    shared: &Shared,
) -> io::Result<Handle> {
    let mut spread: Vec<Vec<Box<dyn Listen>>> =
        (0..loops.clamp(1, MAX_LOOPS)).map(|_| Vec::new()).collect();
    for listener in listeners {
        for (index, others) in spread.iter_mut().enumerate().skip(1) {
            match listener.sibling() {
                Some(Ok(sibling)) => others.push(sibling),
                Some(Err(err)) => {
                    debug!(listener = listener.name(), event_loop = index, error = %err,
                        "served by the first event loop alone");
                    break;
                }
                None => break,
            }
        }
        spread[0].push(listener);
    }
    // Those left are the first ones, in order: indexes stay bits of the limit.
    spread.retain(|listeners| !listeners.is_empty());
    let mut prepared = Vec::with_capacity(spread.len());
    for (index, listeners) in spread.into_iter().enumerate() {
        prepared.push(event_loop::prepare(index, listeners, shared.clone())?);
    }
    let controls: Vec<Arc<Control>> = prepared
        .iter()
        .map(|event_loop| Arc::clone(&event_loop.control))
        .collect();
    shared.limit.set_loops(controls.clone());
    let mut handle = Handle {
        controls,
        finished: Vec::with_capacity(prepared.len()),
    };
    for event_loop in prepared {
        let (done, receiver) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("echo-streams-{}", event_loop.index))
            .spawn(move || {
                event_loop.run();
                let _ = done.send(());
            });
        if let Err(err) = spawned {
            // The loops already running stop at once, before serving anyone.
            handle.cut();
            return Err(err);
        }
        handle.finished.push(receiver);
    }
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::Shutdown;
    use std::os::linux::net::SocketAddrExt as _;
    use std::os::unix::net::{SocketAddr, UnixListener as StdListener, UnixStream as StdStream};
    use std::sync::Mutex;
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::Duration;

    use mio::net::{UnixListener, UnixStream};

    use super::stream::{Held, Peer, Stream, forward_source};
    use super::*;
    use crate::connection::Socket;
    use crate::stats::Stats;

    /// The longest any step of the test may take.
    const WAIT: Duration = Duration::from_secs(10);

    /// How each `Marked` stream was ended early: `owed`, in order.
    type Endings = Arc<Mutex<Vec<bool>>>;

    /// A kind of stream the engine has never heard of: a Unix stream under
    /// another name that records how the loop ends it.
    #[derive(Debug)]
    struct Marked {
        stream: UnixStream,
        endings: Endings,
    }

    #[derive(Debug)]
    struct MarkedListener {
        listener: UnixListener,
        endings: Endings,
    }

    forward_source!(Marked, stream);
    forward_source!(MarkedListener, listener);

    impl Read for Marked {
        fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
            self.stream.read(buffer)
        }
    }

    impl Write for Marked {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.stream.write(bytes)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Socket for Marked {}

    impl Stream for Marked {
        fn short_read_drains(&self) -> bool {
            false
        }

        fn unsent(&self) -> Option<u64> {
            crate::send_queue::unsent(&self.stream)
        }

        fn peer(&self) -> String {
            "marked peer".to_owned()
        }

        fn end_early(&mut self, owed: bool) {
            self.endings.lock().expect("not poisoned").push(owed);
            let _ = self.stream.shutdown(Shutdown::Write);
        }
    }

    impl Listen for MarkedListener {
        fn name(&self) -> &str {
            "marked"
        }

        fn accept(&self) -> io::Result<(Held, Peer)> {
            let (stream, _) = self.listener.accept()?;
            let endings = Arc::clone(&self.endings);
            Ok((
                Held::Other(Box::new(Marked { stream, endings })),
                Peer::Unnamed("marked peer"),
            ))
        }
    }

    fn connect(addr: &SocketAddr) -> StdStream {
        let stream = StdStream::connect_addr(addr).expect("connects");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        stream
    }

    #[test]
    fn a_kind_of_stream_of_its_own_plugs_into_the_loop() {
        let name = format!("echo-server-engine-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("a name");
        let listener = StdListener::bind_addr(&addr).expect("binds");
        listener.set_nonblocking(true).expect("non-blocking");
        let endings = Endings::default();
        let listener = MarkedListener {
            listener: UnixListener::from_std(listener),
            endings: Arc::clone(&endings),
        };
        let stats = Arc::new(Stats::default());
        let shared = Shared {
            stats: Arc::clone(&stats),
            limit: Arc::new(Limit::new(8)),
            idle_timeout: None,
            splice: true,
            handshake_timeout: None,
        };
        // Two loops asked: a kind without siblings is served by the first alone.
        let mut handle = start(vec![Box::new(listener)], 2, &shared).expect("starts");
        assert_eq!(handle.controls.len(), 1);

        // A whole exchange: every byte back, then a clean end.
        let mut whole = connect(&addr);
        whole.write_all(b"hello, engine").expect("writes");
        whole.shutdown(Shutdown::Write).expect("half-closes");
        let mut reply = Vec::new();
        whole.read_to_end(&mut reply).expect("reads");
        assert_eq!(reply, b"hello, engine");

        // One still open at the cut is ended the kind's own way.
        let mut open = connect(&addr);
        open.write_all(b"abc").expect("writes");
        let mut echoed = [0; 3];
        open.read_exact(&mut echoed).expect("reads");
        assert_eq!(&echoed, b"abc");
        handle.cut();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        runtime
            .block_on(async { tokio::time::timeout(WAIT, handle.finished()).await })
            .expect("the loop ends once cut");
        let mut rest = Vec::new();
        open.read_to_end(&mut rest).expect("a clean end of stream");
        assert_eq!(rest, b"");
        assert_eq!(*endings.lock().expect("not poisoned"), [false]);
        assert_eq!(stats.accepted.load(Relaxed), 2);
        assert_eq!(stats.cut.load(Relaxed), 1);
        assert_eq!(stats.stream_bytes.load(Relaxed), 16);
        assert_eq!(stats.active.load(Relaxed), 0);
    }
}
