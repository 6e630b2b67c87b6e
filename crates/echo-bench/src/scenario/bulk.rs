//! `bulk`: a few connections each streaming a large share of bytes, writing and
//! reading at the same time, with every byte checked as it comes back.
//!
//! Each write is also timed: its round trip ends when the last of its bytes has
//! come back, which shows how deep the queues between client and server run.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::connect::connect_within;
use super::stream::{ReadHalf, WriteHalf, half_close_ends_message, split};
use super::workers::run_workers;
use super::{Shared, seed};
use crate::check::Stream;
use crate::tally::{ExchangeError, Mismatch, Outcome, Recorder, Tally};

/// The smallest read buffer, whatever the write size: reading in large pieces
/// keeps the reader ahead of the server.
const MIN_READ_BUFFER: usize = 64 * 1024;

/// The end offset of a write in the stream and when it was handed to the kernel.
type Mark = (u64, Instant);

/// Streams `total` bytes over `shared`'s plan's connections, or as many as its time allows.
pub(crate) async fn run(shared: Arc<Shared>, total: u64) -> Outcome {
    let workers = shared.plan.workers as u64;
    let tally = run_workers(shared.plan.workers, shared.hard_deadline(), |id| {
        let share = total / workers + u64::from((id as u64) < total % workers);
        worker(id, share, Arc::clone(&shared))
    })
    .await;
    Outcome {
        tally,
        ..Outcome::default()
    }
}

async fn worker(id: usize, share: u64, shared: Arc<Shared>) -> Tally {
    let plan = &shared.plan;
    let mut recorder = Recorder::new(id, Arc::clone(&shared.live));
    if share == 0 || !shared.budget.take() {
        return recorder.finish();
    }
    let mut stream = match connect_within(&shared.addr, shared.tls.as_ref(), plan.timeout).await {
        Ok((stream, handshake)) => {
            if let Some(handshake) = &handshake {
                recorder.handshook(handshake);
            }
            stream
        }
        Err(err) => {
            recorder.failed(&err);
            return recorder.finish();
        }
    };
    // Over TLS 1.2 close_notify closes both ways, so the stream ends only
    // once its whole echo is back.
    let half_close = half_close_ends_message(&stream);
    let pattern = Stream::new(seed(id, 0));
    let (reader, writer) = split(&mut stream);
    let (marks, marks_back) = mpsc::unbounded_channel();
    // Both halves run in this one task, so a write's mark is always queued
    // before its bytes can be read back. The first failure drops the other half.
    let mut result = tokio::try_join!(
        send(writer, &pattern, share, &shared, marks, half_close),
        receive(
            reader,
            &pattern,
            &shared,
            &mut recorder,
            marks_back,
            half_close
        ),
    );
    if !half_close && result.is_ok() {
        if let Err(err) = close_after_echo(&mut stream, plan.timeout).await {
            result = Err(err);
        }
    }
    match result {
        Ok((written, received)) if written != received => {
            recorder.failed(&ExchangeError::Mismatch(Mismatch::StreamLength {
                sent: written,
                received,
            }));
        }
        Ok(_) => {}
        Err(err) => recorder.failed(&err),
    }
    recorder.finish()
}

/// Sends close_notify once the whole echo is back (TLS 1.2), and reads the
/// server's own to the end of the stream.
async fn close_after_echo(
    stream: &mut super::stream::Stream,
    timeout: std::time::Duration,
) -> Result<(), ExchangeError> {
    let stalled = |during| ExchangeError::Timeout {
        during,
        after: timeout,
    };
    tokio::time::timeout(timeout, stream.shutdown())
        .await
        .map_err(|_| stalled("sending close_notify after the echo"))?
        .map_err(ExchangeError::io("sending close_notify after the echo"))?;
    let mut rest = [0u8; 64];
    let n = tokio::time::timeout(timeout, stream.read(&mut rest))
        .await
        .map_err(|_| stalled("waiting for the server's close_notify"))?
        .map_err(ExchangeError::io("waiting for the server's close_notify"))?;
    if n > 0 {
        return Err(ExchangeError::io("reading after the whole echo")(
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{n} bytes more than were sent came back"),
            ),
        ));
    }
    Ok(())
}

/// Writes the stream until `share` bytes are out or the run's time is up,
/// then, if `half_close`, half-closes. Returns the bytes written.
async fn send(
    mut writer: WriteHalf<'_>,
    pattern: &Stream,
    share: u64,
    shared: &Shared,
    marks: mpsc::UnboundedSender<Mark>,
    half_close: bool,
) -> Result<u64, ExchangeError> {
    let timeout = shared.plan.timeout;
    let stalled = || ExchangeError::Timeout {
        during: "waiting to send more of the stream",
        after: timeout,
    };
    let mut written = 0u64;
    while written < share && Instant::now() < shared.budget.end {
        let want = usize::try_from(share - written)
            .map_or(shared.plan.size, |left| left.min(shared.plan.size));
        let chunk = pattern.chunk(written, want);
        let n = tokio::time::timeout(timeout, writer.write(chunk))
            .await
            .map_err(|_| stalled())?
            .map_err(ExchangeError::io("sending the stream"))?;
        if n == 0 {
            return Err(ExchangeError::io("sending the stream")(
                std::io::ErrorKind::WriteZero.into(),
            ));
        }
        written += n as u64;
        // The receiver outlives every send; if it is gone, the join is over anyway.
        let _ = marks.send((written, Instant::now()));
    }
    if half_close {
        tokio::time::timeout(timeout, writer.shutdown())
            .await
            .map_err(|_| stalled())?
            .map_err(ExchangeError::io("half-closing after the stream"))?;
    }
    Ok(written)
}

/// Reads the echoed stream to its end (without `half_close`, until the
/// echo of every byte the sender wrote, once it is done), checking every
/// byte and timing every write whose bytes have all come back. Returns the
/// bytes received.
async fn receive(
    mut reader: ReadHalf<'_>,
    pattern: &Stream,
    shared: &Shared,
    recorder: &mut Recorder,
    mut marks: mpsc::UnboundedReceiver<Mark>,
    half_close: bool,
) -> Result<u64, ExchangeError> {
    let timeout = shared.plan.timeout;
    let mut buffer = vec![0u8; shared.plan.size.max(MIN_READ_BUFFER)];
    let mut received = 0u64;
    let mut waiting: Option<Mark> = None;
    loop {
        let n = tokio::time::timeout(timeout, reader.read(&mut buffer))
            .await
            .map_err(|_| ExchangeError::Timeout {
                during: "waiting for more of the echoed stream",
                after: timeout,
            })?
            .map_err(ExchangeError::io("reading the echoed stream"))?;
        if n == 0 {
            return Ok(received);
        }
        pattern
            .check(received, &buffer[..n])
            .map_err(|at| ExchangeError::Mismatch(Mismatch::Stream { at }))?;
        received += n as u64;
        recorder.verified_bytes(n as u64);
        while let Some(mark) = waiting.take().or_else(|| marks.try_recv().ok()) {
            if mark.0 > received {
                waiting = Some(mark);
                break;
            }
            recorder.exchange_done(mark.1.elapsed());
        }
        // The sender drops its end of the marks when it is done: with every
        // mark met, every byte written is back.
        let sender_done = marks.is_closed() && marks.is_empty();
        if !half_close && waiting.is_none() && sender_done {
            return Ok(received);
        }
    }
}
