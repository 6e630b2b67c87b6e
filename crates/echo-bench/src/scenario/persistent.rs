//! `persistent`: long-lived connections, each sending a message and waiting
//! for exactly that many bytes back, over and over: the ping-pong load that
//! tokio, monoio and rust-echo-bench publish figures for.

use std::sync::Arc;

use echo_proto::verify;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::connect::connect_within;
use super::workers::run_budgeted;
use super::{Shared, alternating_messages};
use crate::tally::{ExchangeError, Outcome, Recorder, Tally};

/// Runs `persistent` for `shared`'s plan until its budget is spent.
pub(crate) async fn run(shared: Arc<Shared>) -> Outcome {
    run_budgeted(shared, worker).await
}

async fn worker(id: usize, shared: Arc<Shared>) -> Tally {
    let plan = &shared.plan;
    let mut recorder = Recorder::new(id, Arc::clone(&shared.live));
    let messages = alternating_messages(id, plan.size);
    let mut reply = vec![0u8; plan.size];
    let mut connection: Option<TcpStream> = None;
    let mut n = 0;
    while shared.budget.take() {
        let mut stream = match connection.take() {
            Some(stream) => stream,
            None => match connect_within(plan.addr, plan.timeout).await {
                Ok(stream) => stream,
                Err(err) => {
                    recorder.failed(&err);
                    continue;
                }
            },
        };
        let message = &messages[n % 2];
        n += 1;
        let started = Instant::now();
        let result = tokio::time::timeout(plan.timeout, exchange(&mut stream, message, &mut reply))
            .await
            .unwrap_or(Err(ExchangeError::Timeout {
                during: "waiting for the whole reply",
                after: plan.timeout,
            }));
        match result {
            Ok(()) => {
                recorder.succeeded(message.len() as u64, started.elapsed());
                connection = Some(stream);
            }
            // The connection's state is unknown after a failure: the next
            // exchange starts on a new one.
            Err(err) => recorder.failed(&err),
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
    stream: &mut TcpStream,
    message: &[u8],
    reply: &mut [u8],
) -> Result<(), ExchangeError> {
    let (mut reader, mut writer) = stream.split();
    let (sent, received) = tokio::join!(writer.write_all(message), reader.read_exact(reply));
    sent.map_err(ExchangeError::io("sending the message"))?;
    received.map_err(ExchangeError::io("reading the reply"))?;
    verify(message, reply).map_err(|mismatch| ExchangeError::Mismatch(mismatch.to_string()))
}

/// Ends a connection the RFC 862 way: half-close, then expect the server to
/// close too, with nothing more to say.
async fn close(mut stream: TcpStream) -> Result<(), ExchangeError> {
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
        Err(ExchangeError::Mismatch(
            "the server sent bytes after the last reply".into(),
        ))
    }
}
