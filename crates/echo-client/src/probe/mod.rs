//! Probing a server again and again, as `ping` does a host: a probe at every
//! interval, each reply timed and checked byte for byte, every outcome
//! reported as it happens and counted in a [`Tally`].
//!
//! Over TCP each probe is either a whole exchange on a new connection
//! ([`Transport::Connect`], what `tcping` and `echoping` measure: the time
//! includes the handshake) or one message on a connection kept for the run
//! ([`Transport::Persistent`]: the time is the server's echo alone).
//! Stream probes go one at a time.
//! Over TLS ([`Client::tls`]) each stream probe that makes a connection
//! reports its handshake's time too, and the run's first connection is made
//! before the first probe, to say what TLS version and cipher suite the
//! server speaks ([`Prober::tls`]).
//! Over UDP ([`Transport::Udp`]) probes go out at the interval whether or not
//! earlier ones have come back, as ping's do, each stamped with the run's
//! random id and its sequence number, so that a lost, duplicated, reordered
//! or late reply, or another run's, is recognised as such.
//!
//! ```no_run
//! use std::ops::ControlFlow;
//! use std::time::Duration;
//! use echo_client::probe::{Payload, Plan, Prober, Tally, Transport};
//!
//! let client = echo_client::Client::new("127.0.0.1:7007".parse::<std::net::SocketAddr>()?);
//! let plan = Plan {
//!     transport: Transport::Connect,
//!     count: Some(3),
//!     interval: Duration::from_secs(1),
//!     payload: Payload::Size(64),
//! };
//! let mut tally = Tally::default();
//! Prober::new(&client, plan)?.run(|event| {
//!     tally.record(&event);
//!     ControlFlow::Continue(())
//! });
//! assert!(tally.all_exact());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod stream;
mod tally;
mod udp;

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::thread;
use std::time::{Duration, Instant};

use echo_proto::{Endpoint, Mismatch, pattern};

use crate::tls::Negotiated;
use crate::{Client, Error, Opened};

pub use tally::{Rtt, Tally};

/// How probes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A new connection per probe: connect, send, half-close, read the reply
    /// to the end, close. The round trip includes the connect.
    Connect,
    /// One connection for the whole run: each probe is written, and exactly
    /// its length read back. After a failure or a corrupt reply, whose
    /// bytes may have left the stream out of step, the next probe connects anew.
    Persistent,
    /// One datagram per probe, from one socket for the whole run.
    Udp,
}

/// What each probe carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// This many bytes in all, of a pattern that differs from one sequence
    /// number to the next, so that a reply to another probe fails the check.
    Size(usize),
    /// These bytes in every probe; over UDP, after the 16-byte header.
    Message(Vec<u8>),
}

/// What a run of probes does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// How probes travel.
    pub transport: Transport,
    /// How many probes to send; `None` goes on until the event handler breaks.
    pub count: Option<u64>,
    /// The time from the start of one probe to the start of the next.
    /// Stream probes never overlap, so one that takes longer delays the next;
    /// a zero interval sends each probe as soon as the previous is done with.
    /// Once its last probe is answered or lost, a UDP run listens on for one
    /// more interval (at most the timeout), so that a duplicate of the last
    /// reply is seen too.
    pub interval: Duration,
    /// What each probe carries.
    pub payload: Payload,
}

/// The length of the header every UDP probe starts with: the run's id and
/// the sequence number, 8 bytes each, big-endian.
pub const UDP_HEADER: usize = 16;

/// Something that happened to a probe (or to a datagram nobody sent).
#[derive(Debug)]
pub enum Event {
    /// A reply to a probe came back, exact or not.
    Reply(Reply),
    /// A probe failed before a reply could come: refused, reset, a stream
    /// that went quiet, or a reply longer than the probe.
    Failed {
        /// The probe's sequence number.
        seq: u64,
        /// Why.
        error: Error,
    },
    /// No reply to a UDP probe came within the timeout.
    Lost {
        /// The probe's sequence number.
        seq: u64,
        /// The timeout that ran out.
        after: Duration,
    },
    /// A datagram came back that is no probe of this run: another run's, or
    /// one whose header was damaged on the way.
    Stray {
        /// Where it came from.
        from: SocketAddr,
        /// Its length.
        bytes: usize,
    },
}

/// A reply to one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The probe's sequence number, from 1.
    pub seq: u64,
    /// The address that answered.
    pub from: Endpoint,
    /// The reply's length.
    pub bytes: usize,
    /// From the probe's start (its connect, for [`Transport::Connect`]) to
    /// the reply's last byte.
    pub rtt: Duration,
    /// Over TLS, for a probe that made a connection, how long its handshake
    /// took: part of `rtt` for [`Transport::Connect`], before it for
    /// [`Transport::Persistent`], whose probes time the echo alone.
    pub handshake: Option<Duration>,
    /// Whether the reply is the probe, byte for byte, and if not, where it departs.
    pub check: Result<(), Mismatch>,
    /// A further reply to a probe already answered.
    pub duplicate: bool,
    /// It came after the reply to a later probe.
    pub reordered: bool,
    /// It came after its probe had been counted lost.
    pub late: bool,
}

impl Event {
    /// The probe's sequence number, when the event is about one.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Event::Reply(reply) => Some(reply.seq),
            Event::Failed { seq, .. } | Event::Lost { seq, .. } => Some(*seq),
            Event::Stray { .. } => None,
        }
    }

    /// Whether this is a reply that differs from its probe; a reply too
    /// long to read to its end counts as one.
    pub fn is_corrupt(&self) -> bool {
        match self {
            Event::Reply(reply) => reply.check.is_err(),
            Event::Failed { error, .. } => matches!(error, Error::ReplyTooLong { .. }),
            Event::Lost { .. } | Event::Stray { .. } => false,
        }
    }
}

/// A run of probes, set up and ready to go.
#[derive(Debug)]
pub struct Prober {
    plan: Plan,
    /// The client, its host name already resolved.
    client: Client,
    /// The UDP side, bound and connected; `None` for stream transports.
    udp: Option<udp::Socket>,
    /// Over TLS, what the first handshake agreed on.
    tls: Option<Negotiated>,
    /// The connection the first persistent probe goes over, made (over TLS)
    /// before the run.
    opened: Option<Opened>,
}

impl Prober {
    /// Resolves the client's host name (once, for the whole run), checks the
    /// plan against the transport, and for UDP binds the socket.
    ///
    /// Over UDP a host name's first address is used for the whole run, as
    /// `ping` does: there is no handshake to race, and sequence numbers only
    /// mean something on one path. Stream probes race the addresses anew
    /// on each connect.
    ///
    /// # Errors
    /// [`Error::Resolve`]; [`Error::ProbeTooSmall`] for an empty probe on a
    /// persistent connection or a UDP probe shorter than [`UDP_HEADER`];
    /// [`Error::UdpNeedsIp`] and [`Error::DatagramTooLarge`]; and
    /// [`Error::Io`] when the UDP socket cannot be made. Over TLS,
    /// [`Error::TlsNeedsTcp`] for UDP, and any error of connecting and
    /// making the first handshake ([`Error::Handshake`], say): a server that
    /// is not trusted fails the run before it starts.
    pub fn new(client: &Client, plan: Plan) -> Result<Prober, Error> {
        let client = client.clone().resolve_now()?;
        let len = probe_len(&plan);
        let udp = match plan.transport {
            Transport::Connect => None,
            Transport::Persistent => {
                if len == 0 {
                    return Err(Error::ProbeTooSmall { size: 0, min: 1 });
                }
                None
            }
            Transport::Udp => {
                if len < UDP_HEADER {
                    return Err(Error::ProbeTooSmall {
                        size: len,
                        min: UDP_HEADER,
                    });
                }
                if client.is_tls() {
                    return Err(Error::TlsNeedsTcp { over: "UDP" });
                }
                Some(udp::Socket::open(&client, len)?)
            }
        };
        let mut tls = None;
        let mut opened = None;
        if client.is_tls() && udp.is_none() {
            let first = client.open()?;
            tls = first.tls.as_ref().map(|secured| secured.negotiated.clone());
            if plan.transport == Transport::Persistent {
                opened = Some(first);
            } else {
                // A new connection per probe: this one only said what TLS
                // the server speaks (and left a session to resume). An
                // empty exchange ends it as any other, with close_notify
                // both ways, where a bare close with the server's session
                // tickets unread would reset it.
                client.exchange(first, &[])?;
            }
        }
        Ok(Prober {
            plan,
            client,
            udp,
            tls,
            opened,
        })
    }

    /// Over TLS, what the run's first handshake agreed on.
    pub fn tls(&self) -> Option<&Negotiated> {
        self.tls.as_ref()
    }

    /// Every probe's length in bytes, headers included.
    pub fn probe_len(&self) -> usize {
        probe_len(&self.plan)
    }

    /// Where probes go: the one address for UDP, the addresses raced for
    /// TCP; empty for a Unix socket.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        match &self.udp {
            Some(socket) => vec![socket.peer()],
            None => self.client.addresses().to_vec(),
        }
    }

    /// Sends the plan's probes and hands each event to `on_event`, which may
    /// end the run early by breaking; returns once the last probe is
    /// answered or given up on.
    ///
    /// Every wait is bounded by the client's timeout (for UDP, the
    /// [`DEFAULT_UDP_TIMEOUT`](crate::DEFAULT_UDP_TIMEOUT) when it has none),
    /// except the pacing between probes, which is the interval.
    pub fn run(self, mut on_event: impl FnMut(Event) -> ControlFlow<()>) {
        match self.udp {
            Some(socket) => udp::run(
                socket,
                &self.plan,
                self.client.timeout.unwrap_or(crate::DEFAULT_UDP_TIMEOUT),
                on_event,
            ),
            None => {
                let mut session =
                    stream::Session::new(&self.client, self.plan.transport, self.opened);
                let mut next_start = Instant::now();
                for seq in 1.. {
                    if self.plan.count.is_some_and(|count| seq > count) {
                        return;
                    }
                    // Pacing, not synchronisation: this is the interval.
                    thread::sleep(next_start.saturating_duration_since(Instant::now()));
                    next_start = Instant::now() + self.plan.interval;
                    let event = session.probe(seq, &stream_payload(&self.plan.payload, seq));
                    if on_event(event).is_break() {
                        return;
                    }
                }
            }
        }
    }
}

/// A probe's length in bytes, headers included.
fn probe_len(plan: &Plan) -> usize {
    match (&plan.payload, plan.transport) {
        (Payload::Size(size), _) => *size,
        (Payload::Message(message), Transport::Udp) => UDP_HEADER + message.len(),
        (Payload::Message(message), _) => message.len(),
    }
}

/// What stream probe `seq` carries.
fn stream_payload(payload: &Payload, seq: u64) -> Vec<u8> {
    match payload {
        Payload::Size(size) => pattern(seq, *size),
        Payload::Message(message) => message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_patterns_differ_from_one_probe_to_the_next() {
        let size = Payload::Size(32);
        assert_eq!(stream_payload(&size, 1).len(), 32);
        assert_ne!(stream_payload(&size, 1), stream_payload(&size, 2));
        let message = Payload::Message(b"ping".to_vec());
        assert_eq!(stream_payload(&message, 1), b"ping");
        assert_eq!(stream_payload(&message, 2), b"ping");
    }

    #[test]
    fn udp_probes_count_their_header() {
        let plan = |transport, payload| Plan {
            transport,
            count: None,
            interval: Duration::ZERO,
            payload,
        };
        assert_eq!(probe_len(&plan(Transport::Udp, Payload::Size(64))), 64);
        assert_eq!(
            probe_len(&plan(Transport::Udp, Payload::Message(b"ping".to_vec()))),
            20
        );
        assert_eq!(
            probe_len(&plan(
                Transport::Persistent,
                Payload::Message(b"ping".to_vec())
            )),
            4
        );
    }
}
