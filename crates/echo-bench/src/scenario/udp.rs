//! `udp`: datagrams to a UDP echo server, each waiting for its reply.
//!
//! UDP may drop datagrams, so a reply that does not come within the timeout
//! is counted as lost rather than as an error; the run fails only when the
//! loss exceeds the plan's limit. A reply that does come must be intact.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use echo_proto::udp::MAX_DATAGRAM_V6;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::workers::run_budgeted;
use super::{Shared, seed};
use crate::check::{Datagrams, Reply};
use crate::tally::{ExchangeError, Outcome, Recorder, Tally};

/// Runs `udp` for `shared`'s plan until its budget is spent.
pub(crate) async fn run(shared: Arc<Shared>) -> Outcome {
    run_budgeted(shared, worker).await
}

/// A socket on the loopback address of the target's family, connected to the
/// target so that only its datagrams are received.
async fn socket_towards(target: SocketAddr) -> std::io::Result<UdpSocket> {
    let local: SocketAddr = match target {
        SocketAddr::V4(_) => (Ipv4Addr::LOCALHOST, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::LOCALHOST, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(target).await?;
    Ok(socket)
}

async fn worker(id: usize, shared: Arc<Shared>) -> Tally {
    let plan = &shared.plan;
    let mut recorder = Recorder::new(id, Arc::clone(&shared.live));
    let socket = match socket_towards(plan.addr).await {
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
    while shared.budget.take() {
        let datagram = datagrams.next();
        let started = Instant::now();
        if let Err(err) = socket.send(datagram).await {
            recorder.failed(&ExchangeError::io("sending a datagram")(err));
            continue;
        }
        let give_up = started + plan.timeout;
        // Late replies to earlier datagrams are skipped; the loop ends by the
        // timeout at the latest.
        loop {
            match tokio::time::timeout_at(give_up, socket.recv(&mut buffer)).await {
                Err(_) => {
                    recorder.tally.lost += 1;
                    break;
                }
                Ok(Err(err)) => {
                    recorder.failed(&ExchangeError::io("receiving a datagram")(err));
                    break;
                }
                Ok(Ok(len)) => match datagrams.judge(&buffer[..len]) {
                    Reply::Current => {
                        recorder.succeeded(len as u64, started.elapsed());
                        break;
                    }
                    Reply::Late => recorder.tally.late += 1,
                    Reply::Corrupt(message) => {
                        recorder.failed(&ExchangeError::Mismatch(message));
                        break;
                    }
                },
            }
        }
    }
    recorder.finish()
}
