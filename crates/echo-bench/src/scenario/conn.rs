//! `conn`: one connection per message, the whole RFC 862 exchange each time:
//! connect, send, half-close, read to the end, check, close.
//!
//! The client half-closes first, so every connection leaves a TIME_WAIT entry
//! on the client's side, and Linux recycles such a port for the same
//! destination only after a second: from one source address that caps the
//! rate near 14,000 connections per second whatever the server.
//! Workers therefore connect from [`SOURCE_ADDRESSES`] loopback addresses in turn.

use std::net::SocketAddr;
use std::sync::Arc;

use echo_proto::verify;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::connect::{connect, connect_from, loopback_address};
use super::workers::run_budgeted;
use super::{Shared, alternating_messages};
use crate::tally::{ExchangeError, Outcome, Recorder, Tally};

/// How many loopback source addresses (127.0.0.1, 127.0.0.2, ...) the workers
/// spread over when the server is on IPv4 loopback.
pub const SOURCE_ADDRESSES: usize = 8;

/// Runs `conn` for `shared`'s plan until its budget is spent.
pub(crate) async fn run(shared: Arc<Shared>) -> Outcome {
    run_budgeted(shared, worker).await
}

async fn worker(id: usize, shared: Arc<Shared>) -> Tally {
    let plan = &shared.plan;
    let mut recorder = Recorder::new(id, Arc::clone(&shared.live));
    let messages = alternating_messages(id, plan.size);
    let mut reply = Vec::with_capacity(plan.size + 1);
    let mut n = 0;
    while shared.budget.take() {
        let message = &messages[n % 2];
        n += 1;
        let started = Instant::now();
        let result =
            tokio::time::timeout(plan.timeout, exchange(plan.addr, id, message, &mut reply))
                .await
                .unwrap_or(Err(ExchangeError::Timeout {
                    during: "connecting, sending and reading to the end of the reply",
                    after: plan.timeout,
                }));
        match result {
            Ok(()) => recorder.succeeded(message.len() as u64, started.elapsed()),
            Err(err) => recorder.failed(&err),
        }
    }
    recorder.finish()
}

/// One full exchange on a new connection from worker `id`'s source address;
/// `reply` is scratch space.
async fn exchange(
    addr: SocketAddr,
    id: usize,
    message: &[u8],
    reply: &mut Vec<u8>,
) -> Result<(), ExchangeError> {
    let mut stream = match addr {
        SocketAddr::V4(_) => connect_from(loopback_address(id % SOURCE_ADDRESSES), addr)
            .await
            .map_err(ExchangeError::Connect)?,
        SocketAddr::V6(_) => connect(addr).await?,
    };
    exchange_on(&mut stream, message, reply).await
}

/// Sends `message` on `stream`, half-closes, and reads the reply to its end.
///
/// Sending and receiving run together: a message larger than the socket
/// buffers would otherwise stall both ends.
pub(super) async fn exchange_on(
    stream: &mut TcpStream,
    message: &[u8],
    reply: &mut Vec<u8>,
) -> Result<(), ExchangeError> {
    let (mut reader, mut writer) = stream.split();
    let send = async {
        writer.write_all(message).await?;
        writer.shutdown().await
    };
    // One byte past the message is enough to know the reply is too long,
    // and keeps a server that never stops sending from filling memory.
    reply.clear();
    let limit = message.len() as u64 + 1;
    let mut limited = (&mut reader).take(limit);
    let receive = limited.read_to_end(reply);
    let (sent, received) = tokio::join!(send, receive);
    sent.map_err(ExchangeError::io("sending the message"))?;
    received.map_err(ExchangeError::io("reading the reply"))?;
    verify(message, reply).map_err(|mismatch| ExchangeError::Mismatch(mismatch.to_string()))
}
