//! `conn`: one connection per message, the whole RFC 862 exchange each time:
//! connect, send, half-close, read to the end, check, close.
//!
//! The client half-closes first, so every connection leaves a TIME_WAIT entry
//! on the client's side, and Linux recycles such a port for the same
//! destination only after a second: from one source address that caps the
//! rate near 14,000 connections per second whatever the server.
//! Workers therefore connect from up to [`SOURCE_ADDRESSES`] source addresses
//! in turn where the target answers to several (see [`Spread`]); towards `::1`
//! or another machine there is one, and the cap stands.

use std::sync::Arc;

use echo_proto::{Endpoint, verify};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::either::Either;

use super::backoff::{Backoff, pauses_after};
use super::conn_tls;
use super::connect::{Spread, connect, connect_from, tcp_for_tls};
use super::stream::{Stream, split};
use super::workers::run_budgeted;
use super::{Shared, alternating_messages};
use crate::tally::{ExchangeError, Mismatch, Outcome, Recorder, Tally};
use crate::tls::Connector;

/// How many source addresses (127.0.0.1, 127.0.0.2, ... for an IPv4 loopback
/// target) the workers spread over at most.
pub const SOURCE_ADDRESSES: usize = 8;

/// Runs `conn` for `shared`'s plan until its budget is spent.
pub(crate) async fn run(shared: Arc<Shared>) -> Outcome {
    let spread = Arc::new(Spread::towards(&shared.addr, &shared.plan.own_addresses));
    run_budgeted(shared, move |id, shared| {
        worker(id, shared, Arc::clone(&spread))
    })
    .await
}

async fn worker(id: usize, shared: Arc<Shared>, spread: Arc<Spread>) -> Tally {
    let plan = &shared.plan;
    let mut recorder = Recorder::new(id, Arc::clone(&shared.live));
    let messages = alternating_messages(id, plan.size);
    let mut reply = Vec::with_capacity(plan.size + 1);
    let mut backoff = Backoff::new();
    // With --tls-resume, the worker's own session cache.
    let tls = shared.tls.as_ref().map(Connector::for_worker);
    let sources = spread.len(SOURCE_ADDRESSES);
    let source = (sources > 0)
        .then(|| spread.address(id % sources))
        .flatten();
    let mut n = 0;
    while let Some(slot) = shared.next_slot().await {
        let message = &messages[n % 2];
        n += 1;
        let started = slot.counted_from(Instant::now());
        let result = tokio::time::timeout(
            plan.timeout,
            exchange(
                &shared.addr,
                source,
                tls.as_ref(),
                message,
                &mut reply,
                &mut recorder,
            ),
        )
        .await
        .unwrap_or(Err(ExchangeError::Timeout {
            during: "connecting, the TLS handshake if any, sending and reading to the end of the reply",
            after: plan.timeout,
        }));
        shared.exchange_ended();
        match result {
            Ok(()) => {
                backoff.succeeded();
                recorder.succeeded(message.len() as u64, started.elapsed());
            }
            Err(err) => {
                recorder.failed(&err);
                // A target that fails every exchange at once, refusing or
                // resetting, must not be hammered.
                if pauses_after(&err) {
                    shared.pause(backoff.failed()).await;
                }
            }
        }
    }
    recorder.finish()
}

/// One full exchange on a new connection to `addr`, from `source` if given,
/// over TLS with `tls`, whose handshake goes to `recorder`; `reply` is
/// scratch space.
async fn exchange(
    addr: &Endpoint,
    source: Option<std::net::IpAddr>,
    tls: Option<&Connector>,
    message: &[u8],
    reply: &mut Vec<u8>,
    recorder: &mut Recorder,
) -> Result<(), ExchangeError> {
    let plain = match (addr, source) {
        (Endpoint::Ip(target), Some(source)) => connect_from(source, *target)
            .await
            .map_err(ExchangeError::Connect)?,
        _ => connect(addr).await?,
    };
    match tls {
        Some(tls) => {
            let tcp = tcp_for_tls(plain)?;
            conn_tls::exchange(tls, tcp, Instant::now(), message, reply, |handshake| {
                recorder.handshook(handshake);
            })
            .await
        }
        None => exchange_on(&mut Either::Left(plain), message, reply).await,
    }
}

/// Sends `message` on `stream`, half-closes, and reads the reply to its end.
///
/// Sending and receiving run together: a message larger than the socket
/// buffers would otherwise stall both ends.
pub(super) async fn exchange_on(
    stream: &mut Stream,
    message: &[u8],
    reply: &mut Vec<u8>,
) -> Result<(), ExchangeError> {
    let (mut reader, mut writer) = split(stream);
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
    verify(message, reply).map_err(|mismatch| ExchangeError::Mismatch(Mismatch::Message(mismatch)))
}
