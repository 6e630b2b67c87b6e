//! `persistent`: long-lived connections, each sending a message and waiting
//! for exactly that many bytes back, over and over: the ping-pong load that
//! tokio, monoio and rust-echo-bench publish figures for.

use std::sync::Arc;

use echo_proto::verify;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::backoff::{Backoff, pauses_after};
use super::connect::connect_within;
use super::stream::{Stream, split};
use super::workers::run_budgeted;
use super::{Shared, alternating_messages};
use crate::tally::{ExchangeError, Mismatch, Outcome, Recorder, Tally};

/// Runs `persistent` for `shared`'s plan until its budget is spent.
pub(crate) async fn run(shared: Arc<Shared>) -> Outcome {
    run_budgeted(shared, worker).await
}

async fn worker(id: usize, shared: Arc<Shared>) -> Tally {
    let plan = &shared.plan;
    let mut recorder = Recorder::new(id, Arc::clone(&shared.live));
    let messages = alternating_messages(id, plan.size);
    let mut reply = vec![0u8; plan.size];
    let mut connection: Option<Stream> = None;
    let mut backoff = Backoff::new();
    let mut n = 0;
    while let Some(slot) = shared.next_slot().await {
        let mut stream = match connection.take() {
            Some(stream) => stream,
            None => match connect_within(&shared.addr, shared.tls.as_ref(), plan.timeout).await {
                Ok((stream, handshake)) => {
                    if let Some(handshake) = &handshake {
                        recorder.handshook(handshake);
                    }
                    stream
                }
                Err(err) => {
                    recorder.failed(&err);
                    shared.exchange_ended();
                    shared.pause(backoff.failed()).await;
                    continue;
                }
            },
        };
        let message = &messages[n % 2];
        n += 1;
        // In a closed loop only the echo is timed; at a fixed rate the
        // latency counts from when the exchange was due, a new connection's
        // setup included.
        let started = slot.counted_from(Instant::now());
        let result = tokio::time::timeout(plan.timeout, exchange(&mut stream, message, &mut reply))
            .await
            .unwrap_or(Err(ExchangeError::Timeout {
                during: "waiting for the whole reply",
                after: plan.timeout,
            }));
        shared.exchange_ended();
        match result {
            Ok(()) => {
                // Only an echo proves the target well: one that accepts and
                // then resets must not reset the pauses with every connect.
                backoff.succeeded();
                recorder.succeeded(message.len() as u64, started.elapsed());
                connection = Some(stream);
            }
            // The connection's state is unknown after a failure: the next
            // exchange starts on a new one.
            Err(err) => {
                recorder.failed(&err);
                if pauses_after(&err) {
                    shared.pause(backoff.failed()).await;
                }
            }
        }
    }
    if let Some(stream) = connection {
        let result = tokio::time::timeout(plan.timeout, close(stream))
            .await
            .unwrap_or(Err(ExchangeError::Timeout {
                during: "waiting for the server to close after our half-close",
                after: plan.timeout,
            }));
        if let Err(err) = result {
            recorder.failed(&err);
        }
    }
    recorder.finish()
}

/// Sends `message` and reads exactly as many bytes back, at the same time
/// (a message larger than the socket buffers would stall a send-then-read).
pub(super) async fn exchange(
    stream: &mut Stream,
    message: &[u8],
    reply: &mut [u8],
) -> Result<(), ExchangeError> {
    let (mut reader, mut writer) = split(stream);
    let (sent, received) = tokio::join!(writer.write_all(message), reader.read_exact(reply));
    sent.map_err(ExchangeError::io("sending the message"))?;
    received.map_err(ExchangeError::io("reading the reply"))?;
    verify(message, reply).map_err(|mismatch| ExchangeError::Mismatch(Mismatch::Message(mismatch)))
}

/// Ends a connection the RFC 862 way: half-close, then expect the server to
/// close too, with nothing more to say.
pub(super) async fn close(mut stream: Stream) -> Result<(), ExchangeError> {
    stream
        .shutdown()
        .await
        .map_err(ExchangeError::io("half-closing"))?;
    let mut rest = Vec::new();
    (&mut stream)
        .take(1)
        .read_to_end(&mut rest)
        .await
        .map_err(ExchangeError::io("waiting for the server to close"))?;
    if rest.is_empty() {
        Ok(())
    } else {
        Err(ExchangeError::Mismatch(Mismatch::AfterLastReply))
    }
}
