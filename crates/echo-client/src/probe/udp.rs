//! UDP probes, sent at the interval whether or not earlier ones came back,
//! as ping sends its: each carries the run's random id and its sequence
//! number, so every datagram that comes back is matched to its probe, or
//! known to be no probe of this run.

use std::collections::{BTreeMap, VecDeque};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::ops::ControlFlow;
use std::time::{Duration, Instant, SystemTime};

use echo_proto::udp::{MAX_DATAGRAM_V6, max_datagram};
use echo_proto::{Endpoint, Target, pattern, verify};

use super::{Event, Payload, Plan, Reply, UDP_HEADER};
use crate::connection::is_timeout;
use crate::udp::refused_or;
use crate::{Client, Error};

/// How many probes are remembered for matching replies: a reply to an
/// older probe is taken for a stray. Enough for minutes of a fast run, in
/// a few megabytes at most.
const REMEMBERED: usize = 65_536;

/// The run's socket, connected to the one address probed.
#[derive(Debug)]
pub(crate) struct Socket {
    socket: UdpSocket,
    peer: SocketAddr,
    /// Tells this run's probes from any other's that reach the same socket
    /// address: a run before, or a run of another client on the same port.
    run_id: u64,
}

impl Socket {
    /// Binds a socket of the right family and connects it to the client's
    /// (resolved) first address.
    pub(crate) fn open(client: &Client, len: usize) -> Result<Socket, Error> {
        let peer = match client.target() {
            Target::Endpoint(endpoint @ Endpoint::Unix(_)) => {
                return Err(Error::UdpNeedsIp(endpoint.clone()));
            }
            Target::Endpoint(Endpoint::Ip(addr)) => *addr,
            // Resolved by the caller, which never yields an empty list.
            Target::Name { host, .. } => {
                *client.addresses().first().ok_or_else(|| Error::Resolve {
                    host: host.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "the name has no addresses",
                    ),
                })?
            }
        };
        let max = max_datagram(peer);
        if len > max {
            return Err(Error::DatagramTooLarge { len, max });
        }
        let io_error = |source| Error::Io {
            endpoint: Endpoint::Ip(peer),
            source,
        };
        let local: SocketAddr = match peer {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local).map_err(io_error)?;
        // Only the server's datagrams come through, and an ICMP "port
        // unreachable" comes back as a refusal.
        socket.connect(peer).map_err(io_error)?;
        Ok(Socket {
            socket,
            peer,
            run_id: run_id(),
        })
    }

    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }
}

/// A random id for a run: std's hasher keys come from the operating
/// system's randomness, and the process id and the time make two runs of
/// one process differ too.
fn run_id() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.write_u128(now.as_nanos());
    hasher.finish()
}

/// Probe `seq` of run `run_id`: the header, then the payload's bytes.
pub(crate) fn datagram(run_id: u64, seq: u64, payload: &Payload) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(UDP_HEADER + 64);
    bytes.extend_from_slice(&run_id.to_be_bytes());
    bytes.extend_from_slice(&seq.to_be_bytes());
    match payload {
        Payload::Size(size) => {
            // Multiplied, so that no two (run, seq) pairs likely share a seed.
            let seed = run_id ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            bytes.extend(pattern(seed, size.saturating_sub(UDP_HEADER)));
        }
        Payload::Message(message) => bytes.extend_from_slice(message),
    }
    bytes
}

/// The run id and sequence number a datagram says it carries.
pub(crate) fn header(bytes: &[u8]) -> Option<(u64, u64)> {
    let run_id = bytes.get(..8)?.try_into().ok().map(u64::from_be_bytes)?;
    let seq = bytes.get(8..16)?.try_into().ok().map(u64::from_be_bytes)?;
    Some((run_id, seq))
}

/// What became of a probe sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Waiting,
    Answered,
    /// Lost, or failed with an error: a reply now is late.
    GivenUp,
}

#[derive(Debug)]
struct Flight {
    sent_at: Instant,
    fate: Fate,
}

/// Runs the plan over `socket`, giving each probe `timeout` to come back.
pub(crate) fn run(
    socket: Socket,
    plan: &Plan,
    timeout: Duration,
    mut on_event: impl FnMut(Event) -> ControlFlow<()>,
) {
    let peer = socket.peer;
    let endpoint = Endpoint::Ip(peer);
    let mut flights: BTreeMap<u64, Flight> = BTreeMap::new();
    // Probes still waiting for a reply, oldest (and so first to expire) first.
    let mut waiting: VecDeque<u64> = VecDeque::new();
    let mut highest_answered = 0;
    let mut next_seq = 1;
    let mut next_send = Instant::now();
    // When a probe last went out or met its fate: the run ends an interval
    // after the last of these.
    let mut settled = Instant::now();
    // One byte more than any datagram, so a longer reply shows as such.
    let mut buffer = vec![0u8; MAX_DATAGRAM_V6 + 1];
    macro_rules! emit {
        ($event:expr) => {
            if on_event($event).is_break() {
                return;
            }
        };
    }
    loop {
        let now = Instant::now();
        let more = plan.count.is_none_or(|count| next_seq <= count);
        // A zero interval sends each probe once the one before is done with.
        let may_send = more && (!plan.interval.is_zero() || waiting.is_empty());
        if may_send && now >= next_send {
            let seq = next_seq;
            next_seq += 1;
            let probe = datagram(socket.run_id, seq, &plan.payload);
            let sent_at = Instant::now();
            settled = sent_at;
            let sent = socket.socket.send(&probe);
            let fate = if sent.is_ok() {
                Fate::Waiting
            } else {
                Fate::GivenUp
            };
            flights.insert(seq, Flight { sent_at, fate });
            while flights.len() > REMEMBERED {
                flights.pop_first();
            }
            // A run that fell behind (a slow handler) does not catch up in a burst.
            next_send = (next_send + plan.interval).max(now);
            match sent {
                Ok(_) => waiting.push_back(seq),
                Err(err) => emit!(Event::Failed {
                    seq,
                    error: refused_or(&endpoint, err),
                }),
            }
            continue;
        }
        while let Some(&seq) = waiting.front() {
            // A probe forgotten for want of room is given up on now.
            if let Some(flight) = flights.get_mut(&seq) {
                if now < flight.sent_at + timeout {
                    break;
                }
                flight.fate = Fate::GivenUp;
            }
            waiting.pop_front();
            settled = now;
            emit!(Event::Lost {
                seq,
                after: timeout
            });
        }
        // Once the last probe is answered or lost, the run listens on for
        // an interval, as if for another probe, so that a duplicate of the
        // last reply, or a stray, is seen too.
        let linger_until = (!more).then(|| settled + plan.interval.min(timeout));
        if waiting.is_empty() && linger_until.is_some_and(|until| now >= until) {
            return;
        }
        let may_send = more && (!plan.interval.is_zero() || waiting.is_empty());
        let expiry = waiting
            .front()
            .and_then(|seq| flights.get(seq))
            .map(|flight| flight.sent_at + timeout);
        let Some(wake) = [
            may_send.then_some(next_send),
            expiry,
            linger_until.filter(|_| waiting.is_empty()),
        ]
        .into_iter()
        .flatten()
        .min() else {
            continue;
        };
        let wait = wake.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            continue;
        }
        if let Err(err) = socket.socket.set_read_timeout(Some(wait)) {
            // Without a timeout the wait could not end: give up on the run's
            // probes, each with the reason.
            for seq in waiting.drain(..) {
                emit!(Event::Failed {
                    seq,
                    error: crate::io_error(&endpoint, Some(timeout), clone_error(&err)),
                });
            }
            return;
        }
        let len = match socket.socket.recv(&mut buffer) {
            Ok(len) => len,
            Err(err) if is_timeout(&err) || err.kind() == std::io::ErrorKind::Interrupted => {
                continue;
            }
            Err(err) => {
                // An ICMP error (port unreachable, say) belongs to some
                // datagram sent, and the kernel does not say which: the
                // oldest probe still waiting takes it.
                if let Some(seq) = waiting.pop_front() {
                    if let Some(flight) = flights.get_mut(&seq) {
                        flight.fate = Fate::GivenUp;
                    }
                    settled = Instant::now();
                    emit!(Event::Failed {
                        seq,
                        error: refused_or(&endpoint, err),
                    });
                }
                continue;
            }
        };
        let arrived = Instant::now();
        let reply = &buffer[..len];
        let matched = header(reply)
            .filter(|&(run_id, seq)| run_id == socket.run_id && (1..next_seq).contains(&seq))
            .and_then(|(_, seq)| flights.get_mut(&seq).map(|flight| (seq, flight)));
        let Some((seq, flight)) = matched else {
            emit!(Event::Stray {
                from: peer,
                bytes: len
            });
            continue;
        };
        let (duplicate, late) = match flight.fate {
            Fate::Waiting => {
                flight.fate = Fate::Answered;
                waiting.retain(|&waiting_seq| waiting_seq != seq);
                settled = arrived;
                (false, false)
            }
            Fate::Answered => (true, false),
            Fate::GivenUp => (false, true),
        };
        let rtt = arrived.saturating_duration_since(flight.sent_at);
        let first_answer = !duplicate && !late;
        let reordered = first_answer && seq < highest_answered;
        if first_answer {
            highest_answered = highest_answered.max(seq);
        }
        let check = verify(&datagram(socket.run_id, seq, &plan.payload), reply);
        emit!(Event::Reply(Reply {
            seq,
            from: endpoint.clone(),
            bytes: len,
            rtt,
            handshake: None,
            check,
            duplicate,
            reordered,
            late,
        }));
    }
}

/// A copy of an I/O error for each probe it ends: `io::Error` is not `Clone`.
fn clone_error(err: &std::io::Error) -> std::io::Error {
    std::io::Error::new(err.kind(), err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_carries_its_run_and_sequence_number_first() {
        let probe = datagram(0x0102_0304_0506_0708, 9, &Payload::Size(64));
        assert_eq!(probe.len(), 64);
        assert_eq!(&probe[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&probe[8..16], &[0, 0, 0, 0, 0, 0, 0, 9]);
        assert_eq!(header(&probe), Some((0x0102_0304_0506_0708, 9)));
        assert_eq!(header(&probe[..15]), None);
        let message = datagram(1, 2, &Payload::Message(b"ping".to_vec()));
        assert_eq!(&message[16..], b"ping");
        assert_eq!(datagram(1, 2, &Payload::Size(16)).len(), 16);
    }

    #[test]
    fn bodies_differ_between_probes_and_between_runs() {
        let body = |run, seq| datagram(run, seq, &Payload::Size(64))[16..].to_vec();
        assert_ne!(body(1, 1), body(1, 2));
        assert_ne!(body(1, 1), body(2, 1));
        assert_ne!(body(1, 2), body(2, 1));
        assert_eq!(body(1, 1), body(1, 1));
    }

    #[test]
    fn runs_get_different_ids() {
        assert_ne!(run_id(), run_id());
    }
}
