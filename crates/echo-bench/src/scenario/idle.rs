//! `idle`: opens many connections, holds them, then checks that each still
//! echoes; with the server's pid, the memory each held connection costs it.
//!
//! One source address has about 28,000 ephemeral ports towards one server
//! port; past that the connections come from the next source address the
//! target answers to (127.0.0.2, 127.0.0.3 and on for an IPv4 loopback
//! target, see [`Spread`]); where there is no other, connections past the
//! ports' end fail, each counted as a connect error.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use echo_proto::{Endpoint, pattern};
use tokio::time::Instant;

use super::backoff::{Backoff, pause_until, pauses_after};
use super::connect::{Spread, connect, connect_from, secure};
use super::stream::{Plain, Stream};
use super::workers::run_workers_with;
use super::{HARD_GRACE, conn, first_address, persistent, seed};
use crate::error::BenchError;
use crate::limits;
use crate::plan::Plan;
use crate::tally::{ExchangeError, Live, Outcome, Recorder, Tally};
use crate::tls::Connector;

/// The longest the opening of all connections may take.
const OPEN_PHASE_LIMIT: Duration = Duration::from_secs(60);
/// The longest the final check of all connections may take, past one timeout.
const CLOSE_PHASE_LIMIT: Duration = Duration::from_secs(30);
/// The most local addresses connections are spread over.
pub const MAX_SOURCE_ADDRESSES: usize = 256;

/// Opens `connections` connections, holds them for the plan's duration and
/// checks that each still echoes; reads the server's memory with all of them open.
///
/// # Errors
/// [`BenchError::Rss`] when the server's memory cannot be read, and
/// [`BenchError::InvalidPlan`] when the plan has no address.
pub(crate) async fn run(
    plan: &Plan,
    live: Arc<Live>,
    tls: Option<Connector>,
    connections: u64,
) -> Result<Outcome, BenchError> {
    let started = Instant::now();
    let workers = usize::try_from(connections).map_or(plan.workers, |n| plan.workers.min(n));
    let share = |id: usize| {
        let workers = workers as u64;
        connections / workers + u64::from((id as u64) < connections % workers)
    };
    let sources = Arc::new(Sources::new(first_address(plan)?, &plan.own_addresses));
    let opening = Arc::new(Phase {
        plan: plan.clone(),
        live: Arc::clone(&live),
        tls,
        deadline: started + OPEN_PHASE_LIMIT,
    });
    let (mut tally, opened) = run_workers_with(
        workers,
        opening.deadline + plan.timeout + HARD_GRACE,
        |id| open(id, share(id), Arc::clone(&opening), Arc::clone(&sources)),
    )
    .await;
    let opening_time = started.elapsed();
    // Every connection has been accepted and has echoed once, so the
    // server's memory now includes whatever it keeps per connection.
    let rss_after_kib = plan.server_pid.map(limits::resident_kib).transpose()?;

    tokio::time::sleep(plan.duration).await;

    let closing = Arc::new(Phase {
        plan: plan.clone(),
        live,
        tls: None,
        deadline: Instant::now() + plan.timeout + CLOSE_PHASE_LIMIT,
    });
    // Each worker checks the connections one opening worker opened.
    let batches = std::sync::Mutex::new(opened);
    let (closed_tally, held) = run_workers_with(workers, closing.deadline + HARD_GRACE, |id| {
        let streams = batches
            .lock()
            .ok()
            .and_then(|mut batches| batches.pop())
            .unwrap_or_default();
        check_and_close(id, streams, Arc::clone(&closing))
    })
    .await;
    tally.merge(&closed_tally);
    Ok(Outcome {
        tally,
        rate_window: Some(opening_time),
        held: Some(held.iter().sum()),
        source_addresses: Some(sources.used()),
        rss_after_kib,
        ..Outcome::default()
    })
}

/// What the workers of one phase share.
#[derive(Debug)]
struct Phase {
    plan: Plan,
    live: Arc<Live>,
    /// The TLS client connections are opened with, if any.
    tls: Option<Connector>,
    /// No connection is opened or checked after this.
    deadline: Instant,
}

/// Opens `count` connections, each proven live by one echoed message.
async fn open(
    id: usize,
    count: u64,
    phase: Arc<Phase>,
    sources: Arc<Sources>,
) -> (Tally, Vec<Stream>) {
    let plan = &phase.plan;
    let mut recorder = Recorder::new(id, Arc::clone(&phase.live));
    let message = pattern(seed(id, 0), plan.size);
    let mut reply = vec![0u8; plan.size];
    let mut streams = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut backoff = Backoff::new();
    for _ in 0..count {
        let started = Instant::now();
        let limit = (started + plan.timeout).min(phase.deadline);
        let opened = async {
            let (mut stream, handshake) =
                secure(sources.connect().await?, phase.tls.as_ref()).await?;
            if let Some(handshake) = &handshake {
                recorder.handshook(handshake);
            }
            persistent::exchange(&mut stream, &message, &mut reply).await?;
            Ok(stream)
        };
        match tokio::time::timeout_at(limit, opened).await {
            Ok(Ok(stream)) => {
                backoff.succeeded();
                recorder.succeeded(message.len() as u64, started.elapsed());
                streams.push(stream);
            }
            Ok(Err(err)) => {
                recorder.failed(&err);
                if pauses_after(&err) {
                    pause_until(backoff.failed(), phase.deadline).await;
                }
            }
            Err(_) => {
                recorder.failed(&ExchangeError::Timeout {
                    during: "opening a connection and echoing a first message",
                    after: limit - started,
                });
                pause_until(backoff.failed(), phase.deadline).await;
            }
        }
    }
    (recorder.finish(), streams)
}

/// Checks that each held connection still echoes, ending it the RFC 862 way;
/// returns how many passed.
async fn check_and_close(id: usize, streams: Vec<Stream>, phase: Arc<Phase>) -> (Tally, u64) {
    let plan = &phase.plan;
    let mut recorder = Recorder::new(id, Arc::clone(&phase.live));
    let message = pattern(seed(id, 1), plan.size);
    let mut reply = Vec::with_capacity(plan.size + 1);
    let mut held = 0;
    for mut stream in streams {
        let started = Instant::now();
        let limit = (started + plan.timeout).min(phase.deadline);
        match tokio::time::timeout_at(limit, conn::exchange_on(&mut stream, &message, &mut reply))
            .await
        {
            Ok(Ok(())) => held += 1,
            Ok(Err(err)) => recorder.failed(&err),
            Err(_) => recorder.failed(&ExchangeError::Timeout {
                during: "checking a held connection",
                after: limit - started,
            }),
        }
    }
    (recorder.finish(), held)
}

/// The local addresses connections come from: the kernel's choice until its
/// ports run out, then the next address of the target's [`Spread`].
#[derive(Debug)]
struct Sources {
    target: Endpoint,
    spread: Spread,
    /// 0 for the kernel's choice, n for the spread's `n`th address.
    current: AtomicUsize,
}

impl Sources {
    fn new(target: Endpoint, own: &[IpAddr]) -> Self {
        Sources {
            spread: Spread::towards(&target, own),
            target,
            current: AtomicUsize::new(0),
        }
    }

    /// How many source addresses have been used.
    fn used(&self) -> usize {
        self.current.load(Ordering::Relaxed) + 1
    }

    /// Connects to the target from the current source address, moving on to
    /// the next one when this one has no ports left.
    async fn connect(&self) -> Result<Plain, ExchangeError> {
        let addresses = self.spread.len(MAX_SOURCE_ADDRESSES);
        loop {
            let index = self.current.load(Ordering::Relaxed);
            let result = match (&self.target, self.spread.address(index)) {
                (Endpoint::Ip(target), Some(source)) if index > 0 => {
                    connect_from(source, *target).await
                }
                _ => match connect(&self.target).await {
                    Ok(stream) => Ok(stream),
                    Err(ExchangeError::Connect(err)) => Err(err),
                    Err(other) => return Err(other),
                },
            };
            match result {
                Ok(stream) => return Ok(stream),
                Err(err) if out_of_ports(&err) && index + 1 < addresses => {
                    // Another worker may have moved on already; either way the
                    // index only grows, so this loop ends.
                    let _ = self.current.compare_exchange(
                        index,
                        index + 1,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                }
                Err(err) => return Err(ExchangeError::Connect(err)),
            }
        }
    }
}

/// Whether a connect or bind failed for want of a free local port.
fn out_of_ports(err: &io::Error) -> bool {
    err.raw_os_error() == Some(nix::errno::Errno::EADDRNOTAVAIL as i32)
        || err.kind() == io::ErrorKind::AddrInUse
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_port_exhaustion_moves_to_the_next_address() {
        let no_ports = io::Error::from_raw_os_error(nix::errno::Errno::EADDRNOTAVAIL as i32);
        assert!(out_of_ports(&no_ports));
        assert!(out_of_ports(&io::Error::from(io::ErrorKind::AddrInUse)));
        assert!(!out_of_ports(&io::Error::from(
            io::ErrorKind::ConnectionRefused
        )));
    }
}
