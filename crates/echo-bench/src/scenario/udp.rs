//! `udp`: datagrams to a UDP echo server, each waiting for its reply.
//!
//! UDP may drop datagrams, so a reply that does not come within the timeout
//! is counted as lost rather than as an error; the run fails only when the
//! loss exceeds the plan's limit. A reply that does come must be intact, and
//! come once, as RFC 862 answers each datagram with one: another reply to a
//! datagram already answered is an error. A second reply to a worker's last
//! datagram is not waited for, since that would hold the run's end back.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use echo_proto::Endpoint;
use echo_proto::udp::MAX_DATAGRAM_V6;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::backoff::{Backoff, pauses_after};
use super::connect::unanswered;
use super::workers::run_budgeted;
use super::{Shared, seed};
use crate::check::{Datagrams, Reply};
use crate::error::Unanswered;
use crate::tally::{ExchangeError, Mismatch, Outcome, Recorder, Tally};

/// The longest the datagram sent before the load waits for its answer: a
/// refusal comes at once where the target's host says no one listens, and a
/// silence proves nothing either way, so it is not worth a long wait.
const PROBE_WAIT: Duration = Duration::from_secs(1);

/// Runs `udp` for `shared`'s plan until its budget is spent.
pub(crate) async fn run(shared: Arc<Shared>) -> Outcome {
    run_budgeted(shared, worker).await
}

/// A socket connected to `target`, so that only its datagrams are received;
/// the kernel picks the source address the route to the target calls for.
async fn socket_towards(target: SocketAddr) -> io::Result<UdpSocket> {
    let local: SocketAddr = match target {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(target).await?;
    Ok(socket)
}

/// The IP address of a udp plan; the plan's validation refuses Unix sockets.
fn ip_target(endpoint: &Endpoint) -> io::Result<SocketAddr> {
    match endpoint {
        Endpoint::Ip(addr) => Ok(*addr),
        Endpoint::Unix(path) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("udp cannot send to the Unix socket {}", path.display()),
        )),
    }
}

/// Sends one datagram of `size` bytes to `endpoint` and waits a moment for
/// anything back: a refusal means nothing listens, an answer or silence that
/// the load may go on (silence may be loss, which the run will count).
pub(crate) async fn probe(
    endpoint: &Endpoint,
    size: usize,
    timeout: Duration,
) -> Result<(), Unanswered> {
    let addr = endpoint.to_string();
    let failed = |source: io::Error| unanswered(addr.clone(), source);
    let target = ip_target(endpoint).map_err(failed)?;
    let socket = socket_towards(target).await.map_err(failed)?;
    let datagram = echo_proto::pattern(u64::MAX, size);
    socket.send(&datagram).await.map_err(failed)?;
    let mut buffer = vec![0u8; MAX_DATAGRAM_V6 + 1];
    match tokio::time::timeout(timeout.min(PROBE_WAIT), socket.recv(&mut buffer)).await {
        Ok(Err(err)) => Err(failed(err)),
        Ok(Ok(_)) | Err(_) => Ok(()),
    }
}

async fn worker(id: usize, shared: Arc<Shared>) -> Tally {
    let plan = &shared.plan;
    let mut recorder = Recorder::new(id, Arc::clone(&shared.live));
    let socket = match async { socket_towards(ip_target(&shared.addr)?).await }.await {
        Ok(socket) => socket,
        Err(err) => {
            recorder.failed(&ExchangeError::io("setting up a udp socket")(err));
            return recorder.finish();
        }
    };
    let mut datagrams = Datagrams::new(seed(id, 0), plan.size);
    // Room for the largest datagram and one byte more, so a reply longer
    // than any datagram sent is seen as such rather than cut to fit.
    let mut buffer = vec![0u8; MAX_DATAGRAM_V6 + 1];
    let mut backoff = Backoff::new();
    while let Some(slot) = shared.next_slot().await {
        let datagram = datagrams.next();
        let sent = Instant::now();
        let started = slot.counted_from(sent);
        if let Err(err) = socket.send(datagram).await {
            let err = ExchangeError::io("sending a datagram")(err);
            recorder.failed(&err);
            shared.exchange_ended();
            if pauses_after(&err) {
                shared.pause(backoff.failed()).await;
            }
            continue;
        }
        // The timeout is the server's to meet from the moment the datagram
        // left, however late that was.
        let give_up = sent + plan.timeout;
        // Late replies to earlier datagrams are skipped, and second replies
        // to answered ones counted; the loop ends by the timeout at the
        // latest, saying whether the worker is to pause.
        let pause = loop {
            match tokio::time::timeout_at(give_up, socket.recv(&mut buffer)).await {
                Err(_) => {
                    recorder.tally.lost += 1;
                    break false;
                }
                Ok(Err(err)) => {
                    // A refusal (an ICMP port unreachable) is the target's host
                    // saying no one listens: back off as a refused connect would.
                    let err = ExchangeError::io("receiving a datagram")(err);
                    recorder.failed(&err);
                    break pauses_after(&err);
                }
                Ok(Ok(len)) => match datagrams.judge(&buffer[..len]) {
                    Reply::Current => {
                        backoff.succeeded();
                        recorder.succeeded(len as u64, started.elapsed());
                        break false;
                    }
                    Reply::Late => recorder.tally.late += 1,
                    // The datagram it answers was counted once already; this
                    // one is the server's error, and the wait goes on.
                    Reply::Duplicate(sequence) => {
                        recorder.failed(&ExchangeError::Duplicate { sequence });
                    }
                    Reply::Corrupt(mismatch) => {
                        recorder.failed(&ExchangeError::Mismatch(Mismatch::Datagram(mismatch)));
                        break false;
                    }
                },
            }
        };
        shared.exchange_ended();
        if pause {
            shared.pause(backoff.failed()).await;
        }
    }
    recorder.finish()
}
