//! Echoing one stream connection: the byte mover, apart from accepting and bookkeeping.
//!
//! It is generic over the transport so that TCP and Unix streams share it, and
//! so that tests can drive it through an in-memory stream that reads and writes
//! in random short pieces.

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use echo_proto::BUFFER_SIZE;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::task::coop::cooperative;

use crate::send_queue::SendQueue;

/// A byte stream the server can echo on.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send {
    /// Resolves once a read would return data or end-of-stream.
    ///
    /// Waiting on readiness instead of inside `read` lets an idle connection
    /// hold no buffer at all, which is what keeps 10,000 idle clients cheap.
    fn wait_readable(&mut self) -> impl Future<Output = io::Result<()>> + Send;

    /// The kernel's count of bytes written and not yet taken by the peer.
    fn send_queue(&self) -> SendQueue;
}

impl Transport for tokio::net::TcpStream {
    async fn wait_readable(&mut self) -> io::Result<()> {
        self.readable().await
    }

    fn send_queue(&self) -> SendQueue {
        SendQueue::of(self)
    }
}

impl Transport for tokio::net::UnixStream {
    async fn wait_readable(&mut self) -> io::Result<()> {
        self.readable().await
    }

    fn send_queue(&self) -> SendQueue {
        SendQueue::of(self)
    }
}

/// Why an echo ended before the peer's end of input.
#[derive(Debug, thiserror::Error)]
pub enum EchoError {
    /// For the whole idle timeout the connection read nothing and its peer
    /// took none of the bytes written to it.
    #[error("idle for {0:?}")]
    Idle(Duration),
    /// The peer reset the connection, or another I/O error ended it.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Echoes everything read from `stream` back to it until the peer half-closes;
/// the caller then drops the stream, and the peer reads a clean end of stream.
///
/// `moved` is called with the size of each write once it is done, so totals
/// stay right even when the connection later fails.
/// Memory stays bounded by one [`BUFFER_SIZE`] buffer, and none while the
/// connection waits for input; a peer that stops reading stops the server from
/// reading, and holds the buffer until the write completes or times out.
///
/// The idle timeout closes a connection only when, for the whole timeout, it
/// has read nothing and the peer has taken none of the bytes queued for it:
/// a slow reader is never cut while it drains the send queue.
///
/// # Errors
/// [`EchoError::Idle`] when `idle_timeout` passes with no progress, and
/// [`EchoError::Io`] when the stream fails (a reset, typically).
pub async fn echo<T: Transport>(
    stream: &mut T,
    idle_timeout: Option<Duration>,
    mut moved: impl FnMut(usize),
) -> Result<(), EchoError> {
    let mut idle = IdleWatch::new(idle_timeout, stream.send_queue());
    let mut written_total = 0u64;
    // Uninitialised on purpose: zeroing 64 KiB for every burst of a small
    // request-response exchange would cost more than the exchange itself.
    let mut buffer: Option<Box<[MaybeUninit<u8>]>> = None;
    loop {
        if buffer.is_none() {
            // Readiness futures do not count against tokio's cooperative
            // budget, but reads do: once the budget is spent a read says
            // "not yet" while readiness says "ready", and without this the
            // task would spin between the two and starve its worker thread.
            idle.bound(written_total, cooperative(stream.wait_readable()))
                .await??;
        }
        let storage = buffer.get_or_insert_with(|| Box::new_uninit_slice(BUFFER_SIZE));
        let mut chunk = ReadBuf::uninit(storage);
        // Readiness can be a false positive, and after a burst the socket is
        // drained: either way a read that would wait gives the buffer back first.
        let Some(read) = poll_read_once(stream, &mut chunk).await else {
            buffer = None;
            continue;
        };
        read?;
        let data = chunk.filled();
        if data.is_empty() {
            break;
        }
        let mut written = 0;
        while written < data.len() {
            let n = idle
                .bound(written_total, stream.write(&data[written..]))
                .await??;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::WriteZero).into());
            }
            written += n;
            written_total += n as u64;
            moved(n);
        }
    }
    // Nothing is left unread, so the caller's close sends a FIN after the
    // last byte, never a reset; a separate shutdown(2) would only cost a syscall.
    Ok(())
}

/// Polls one read without waiting: `None` when it would have to wait.
async fn poll_read_once<T: Transport>(
    stream: &mut T,
    chunk: &mut ReadBuf<'_>,
) -> Option<io::Result<()>> {
    std::future::poll_fn(|cx| {
        Poll::Ready(match Pin::new(&mut *stream).poll_read(cx, chunk) {
            Poll::Ready(result) => Some(result),
            Poll::Pending => None,
        })
    })
    .await
}

/// The idle rule for one connection: a wait may go on past the timeout for
/// as long as the peer keeps taking bytes from the send queue.
///
/// The queue is looked at only when a wait has lasted the whole timeout, so
/// the fast path costs no system call; the price is that the first look
/// after a write has nothing to compare with (see [`Look::peer_took_bytes`]).
#[derive(Debug)]
struct IdleWatch {
    limit: Option<Duration>,
    queue: SendQueue,
    last_look: Option<Look>,
}

/// What the send queue held when the idle deadline last fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Look {
    /// Bytes written to the connection so far.
    written: u64,
    /// Bytes of those the peer had not taken.
    unsent: u64,
}

impl Look {
    /// Whether the peer took bytes since `earlier`, as far as the kernel tells.
    ///
    /// After a write there is no earlier length to compare with: a queue
    /// that still holds bytes gets the benefit of the doubt once, so a
    /// connection is never cut early, and a peer that has stopped taking
    /// bytes is closed at the next deadline, within two timeouts.
    fn peer_took_bytes(self, earlier: Option<Look>) -> bool {
        match earlier {
            Some(earlier) if earlier.written == self.written => self.unsent < earlier.unsent,
            _ => self.unsent > 0,
        }
    }
}

impl IdleWatch {
    fn new(limit: Option<Duration>, queue: SendQueue) -> Self {
        IdleWatch {
            limit,
            queue,
            last_look: None,
        }
    }

    /// Runs `operation`, failing with [`EchoError::Idle`] once a whole timeout
    /// passes in which it did not finish and the peer took no byte;
    /// `written` is the connection's total so far.
    async fn bound<F: Future>(
        &mut self,
        written: u64,
        operation: F,
    ) -> Result<F::Output, EchoError> {
        let Some(limit) = self.limit else {
            return Ok(operation.await);
        };
        let mut operation = pin!(operation);
        let mut deadline = pin!(tokio::time::sleep(limit));
        loop {
            tokio::select! {
                biased;
                output = &mut operation => return Ok(output),
                () = &mut deadline => {}
            }
            let Some(unsent) = self.queue.unsent() else {
                return Err(EchoError::Idle(limit));
            };
            let look = Look { written, unsent };
            if !look.peer_took_bytes(self.last_look.replace(look)) {
                return Err(EchoError::Idle(limit));
            }
            deadline.as_mut().reset(tokio::time::Instant::now() + limit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::task::Context;
    use tokio::io::{AsyncReadExt, DuplexStream};

    /// An in-memory transport that reads and writes at most a few bytes at a
    /// time and now and then answers "not yet" (waking itself at once), as a
    /// congested socket does.
    struct Choppy {
        inner: DuplexStream,
        steps: Vec<(usize, bool)>,
        next: usize,
        stalled: bool,
        /// A byte read ahead by `wait_readable`, which must really wait for
        /// data as a socket's readiness does, yet cannot look without reading.
        peeked: Option<u8>,
        at_end: bool,
    }

    impl Choppy {
        fn new(inner: DuplexStream, steps: Vec<(usize, bool)>) -> Self {
            Choppy {
                inner,
                steps,
                next: 0,
                stalled: false,
                peeked: None,
                at_end: false,
            }
        }

        /// The next call's size limit, and whether it answers "not yet";
        /// never two stalls in a row, so progress is always possible.
        fn step(&mut self) -> (usize, bool) {
            let (limit, stall) = self.steps[self.next % self.steps.len()];
            self.next += 1;
            self.stalled = stall && !self.stalled;
            (limit, self.stalled)
        }
    }

    impl AsyncRead for Choppy {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let (limit, stall) = self.step();
            if stall {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            // Like tokio's sockets, take part in the cooperative budget: once it
            // is spent, say "not yet" even though data is there.
            let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
            coop.made_progress();
            if let Some(byte) = self.peeked.take() {
                buf.put_slice(&[byte]);
                return Poll::Ready(Ok(()));
            }
            if self.at_end {
                return Poll::Ready(Ok(()));
            }
            let limit = limit.min(buf.remaining());
            let mut small = ReadBuf::new(buf.initialize_unfilled_to(limit));
            let poll = Pin::new(&mut self.inner).poll_read(cx, &mut small);
            let n = small.filled().len();
            buf.advance(n);
            poll
        }
    }

    impl AsyncWrite for Choppy {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            let (limit, stall) = self.step();
            if stall {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let limit = limit.min(data.len());
            Pin::new(&mut self.inner).poll_write(cx, &data[..limit])
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    impl Transport for Choppy {
        fn send_queue(&self) -> SendQueue {
            SendQueue::unknown()
        }

        async fn wait_readable(&mut self) -> io::Result<()> {
            if self.peeked.is_none() && !self.at_end {
                let mut byte = [0u8; 1];
                // Unconstrained, as socket readiness is: it ignores the budget.
                match tokio::task::coop::unconstrained(self.inner.read(&mut byte)).await? {
                    0 => self.at_end = true,
                    _ => self.peeked = Some(byte[0]),
                }
            }
            Ok(())
        }
    }

    /// Sends `message` through `echo` over a choppy transport while reading
    /// the reply concurrently, and returns the reply and the bytes counted.
    async fn round_trip(
        message: Vec<u8>,
        steps: Vec<(usize, bool)>,
        pipe: usize,
    ) -> (Vec<u8>, usize) {
        let (client, server) = tokio::io::duplex(pipe);
        let mut server = Choppy::new(server, steps);
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let writer = tokio::spawn(async move {
            client_write
                .write_all(&message)
                .await
                .expect("client write");
            client_write.shutdown().await.expect("client half-close");
        });
        let echo_task = tokio::spawn(async move {
            let mut counted = 0;
            echo(&mut server, None, |n| counted += n)
                .await
                .expect("echo");
            counted
        });
        let mut reply = Vec::new();
        client_read
            .read_to_end(&mut reply)
            .await
            .expect("client read");
        writer.await.expect("writer task");
        let counted = echo_task.await.expect("echo task");
        (reply, counted)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn every_byte_comes_back_in_order(
            message in proptest::collection::vec(any::<u8>(), 0..(3 * BUFFER_SIZE)),
            steps in proptest::collection::vec((1usize..5000, proptest::bool::weighted(0.2)), 1..16),
            pipe in 1usize..4096,
        ) {
            // On a thread of its own, so an echo that spins instead of
            // yielding fails the case instead of hanging the suite.
            let (done, outcome) = std::sync::mpsc::channel();
            let sent = message.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
                let _ = done.send(runtime.block_on(round_trip(sent, steps, pipe)));
            });
            let outcome = outcome.recv_timeout(Duration::from_secs(30));
            prop_assert!(outcome.is_ok(), "the echo stalled");
            let (reply, counted) = outcome.expect("checked above");
            prop_assert_eq!(counted, message.len());
            prop_assert!(reply == message, "reply of {} bytes differs from message of {}", reply.len(), message.len());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_times_out() {
        let (_client, server) = tokio::io::duplex(64);
        let mut server = Choppy::new(server, vec![(64, false)]);
        let limit = Duration::from_millis(300);
        let result = echo(&mut server, Some(limit), |_| {}).await;
        assert!(
            matches!(result, Err(EchoError::Idle(d)) if d == limit),
            "{result:?}"
        );
    }

    #[test]
    fn the_peer_took_bytes_only_if_the_queue_shrank_with_no_write_between() {
        let look = |written, unsent| Look { written, unsent };
        // The queue shrank since the last look, with no write in between.
        assert!(look(100, 10).peer_took_bytes(Some(look(100, 60))));
        // Nothing moved: idle, whether something is queued or not.
        assert!(!look(100, 60).peer_took_bytes(Some(look(100, 60))));
        assert!(!look(100, 0).peer_took_bytes(Some(look(100, 0))));
        // Nothing queued and no earlier look: there is nothing left to take.
        assert!(!look(0, 0).peer_took_bytes(None));
        assert!(!look(100, 0).peer_took_bytes(Some(look(50, 20))));
        // Written since the last look, something queued: the benefit of the doubt.
        assert!(look(100, 30).peer_took_bytes(Some(look(50, 20))));
        assert!(look(100, 30).peer_took_bytes(None));
    }

    /// A peer that always has more to send and takes every reply at once,
    /// and whose reads, like tokio's sockets, spend the cooperative budget.
    struct Firehose {
        left: usize,
        echoed: usize,
    }

    impl AsyncRead for Firehose {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
            coop.made_progress();
            let n = self.left.min(buf.remaining()).min(1024);
            buf.put_slice(&vec![b'x'; n]);
            self.left -= n;
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Firehose {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.echoed += data.len();
            Poll::Ready(Ok(data.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl Transport for Firehose {
        fn send_queue(&self) -> SendQueue {
            SendQueue::unknown()
        }

        async fn wait_readable(&mut self) -> io::Result<()> {
            // Readiness ignores the budget, as tokio's does.
            Ok(())
        }
    }

    /// Once a long burst has spent the task's budget, reads say "not yet"
    /// while readiness says "ready"; the echo must yield then, not spin.
    #[test]
    fn a_long_burst_yields_instead_of_spinning() {
        let (done, outcome) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            let mut peer = Firehose {
                left: 4 << 20,
                echoed: 0,
            };
            let result = runtime.block_on(echo(&mut peer, None, |_| {}));
            let _ = done.send((result.is_ok(), peer.echoed));
        });
        let outcome = outcome.recv_timeout(Duration::from_secs(30));
        assert_eq!(
            outcome.ok(),
            Some((true, 4 << 20)),
            "the echo spun instead of yielding"
        );
    }
}
