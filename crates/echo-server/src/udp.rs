//! UDP echo: each datagram goes back to its sender unchanged, unless answering
//! could feed a reflection loop or the sender exceeds its rate.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use echo_proto::udp;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::stats::Stats;

/// The window over which `--udp-rate` is counted.
const RATE_WINDOW: Duration = Duration::from_secs(1);
/// Sources remembered by the rate limiter before stale ones are swept, which
/// bounds its memory under a flood of spoofed addresses.
const RATE_TABLE_SWEEP_AT: usize = 16_384;
/// How many times in a row one source address gets the same datagram
/// answered, when each copy comes within `REPEAT_GAP` of the last.
///
/// Two echo services made to answer each other (one spoofed datagram is
/// enough) send the same datagram back and forth at the speed of the path;
/// this is what ends such a loop whatever its speed: after at most this many
/// answers from each side.
pub const REPEATS_ANSWERED: u32 = 8;
/// Copies of one datagram further apart than this are not a loop: a health
/// checker sending the same probe every second or slower is answered forever.
const REPEAT_GAP: Duration = Duration::from_secs(1);

/// A table of what is known of each source, bounded under a flood of
/// spoofed ones: when full, the entries older than `window` are swept out,
/// at most once a window (a flood costs a sweep a second, not one per
/// datagram), and a new source that still finds no room is not answered.
#[derive(Debug)]
struct Sources<K, V> {
    seen: HashMap<K, V>,
    last_sweep: Option<Instant>,
    window: Duration,
}

impl<K: Eq + Hash, V> Sources<K, V> {
    fn new(window: Duration) -> Self {
        Sources {
            seen: HashMap::new(),
            last_sweep: None,
            window,
        }
    }

    /// The entry of `key`, made with `new` if it has none; `None` when the
    /// table is full of sources seen within the window (`last_seen` says when).
    fn entry(
        &mut self,
        key: K,
        now: Instant,
        last_seen: impl Fn(&V) -> Instant,
        new: impl FnOnce() -> V,
    ) -> Option<&mut V> {
        if self.seen.len() >= RATE_TABLE_SWEEP_AT && !self.seen.contains_key(&key) {
            if self
                .last_sweep
                .is_none_or(|at| now.duration_since(at) >= self.window)
            {
                let window = self.window;
                self.seen
                    .retain(|_, value| now.duration_since(last_seen(value)) < window);
                self.last_sweep = Some(now);
            }
            if self.seen.len() >= RATE_TABLE_SWEEP_AT {
                return None;
            }
        }
        Some(self.seen.entry(key).or_insert_with(new))
    }
}

/// Counts datagrams per source IP in fixed one-second windows.
///
/// Keyed by IP rather than IP and port: a spoofing attacker picks ports freely,
/// and one host is one host.
#[derive(Debug)]
pub(crate) struct RateLimit {
    per_window: u32,
    /// When each source's window started, and its datagrams in it.
    sources: Sources<IpAddr, (Instant, u32)>,
}

impl RateLimit {
    /// Allows `per_second` datagrams per source IP; 0 allows any number.
    pub(crate) fn new(per_second: u32) -> Self {
        RateLimit {
            per_window: per_second,
            sources: Sources::new(RATE_WINDOW),
        }
    }

    /// Records a datagram from `source` at `now`, and says whether it may be answered.
    pub(crate) fn allow(&mut self, source: IpAddr, now: Instant) -> bool {
        if self.per_window == 0 {
            return true;
        }
        // More live sources than we track, as under a spoofed flood: a
        // source we cannot count is not answered.
        let Some((start, count)) =
            self.sources
                .entry(source, now, |(start, _)| *start, || (now, 0))
        else {
            return false;
        };
        if now.duration_since(*start) >= RATE_WINDOW {
            *start = now;
            *count = 0;
        }
        *count += 1;
        *count <= self.per_window
    }
}

/// Tells a loop between two echo services from a client: the same datagram
/// from the same address (IP and port), again and again, in quick succession.
#[derive(Debug)]
pub(crate) struct Repeats {
    streaks: Sources<SocketAddr, Streak>,
    /// Keyed afresh in each process, so a sender cannot craft two different
    /// datagrams that look the same here.
    hasher: RandomState,
}

#[derive(Debug, Clone, Copy)]
struct Streak {
    fingerprint: u64,
    count: u32,
    last: Instant,
}

impl Repeats {
    pub(crate) fn new() -> Self {
        Repeats {
            streaks: Sources::new(REPEAT_GAP),
            hasher: RandomState::new(),
        }
    }

    /// Records `datagram` from `source` at `now`, and says whether it may be
    /// answered: not once it is the same datagram more than
    /// [`REPEATS_ANSWERED`] times in a row, each within `REPEAT_GAP`.
    pub(crate) fn allow(&mut self, source: SocketAddr, datagram: &[u8], now: Instant) -> bool {
        let fingerprint = self.hasher.hash_one(datagram);
        // As with the rate: a source we cannot follow is not answered.
        let Some(streak) = self.streaks.entry(
            source,
            now,
            |streak| streak.last,
            || Streak {
                fingerprint,
                count: 0,
                last: now,
            },
        ) else {
            return false;
        };
        if streak.fingerprint == fingerprint && now.duration_since(streak.last) < REPEAT_GAP {
            streak.count = streak.count.saturating_add(1);
        } else {
            streak.fingerprint = fingerprint;
            streak.count = 1;
        }
        streak.last = now;
        streak.count <= REPEATS_ANSWERED
    }
}

/// Echoes datagrams on `socket` until `stop` is cancelled.
///
/// `own_ports` are the ports of every UDP socket of this server: a datagram
/// from one of them is the server talking to itself (a spoofed source), or
/// another echo service on the same port, and is never answered.
/// With `rate` 0 there is no per-source limit at all: neither the rate nor
/// the bound on repeats, which is what stops a loop between two echo services.
pub(crate) async fn serve(
    socket: UdpSocket,
    rate: u32,
    own_ports: Arc<[u16]>,
    stats: Arc<Stats>,
    stop: CancellationToken,
) {
    // Room for the largest datagram of either family (IPv6 allows a few bytes
    // more than IPv4), or longer ones would be cut silently.
    let mut buffer = vec![0u8; udp::MAX_DATAGRAM_V6];
    let mut limit = RateLimit::new(rate);
    let mut repeats = (rate > 0).then(Repeats::new);
    loop {
        let received = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            received = socket.recv_from(&mut buffer) => received,
        };
        let (len, source) = match received {
            Ok(received) => received,
            Err(err) => {
                // An ICMP error for an earlier reply (port unreachable, say)
                // surfaces here; it concerns that one peer, never the socket.
                debug!(error = %err, "udp receive error");
                if !is_transient(&err) {
                    warn!(error = %err, "udp receive failing, pausing");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
        };
        let datagram = &buffer[..len];
        if let Err(refusal) = udp::check_source(source, &own_ports) {
            Stats::bump(&stats.datagrams_refused);
            debug!(%source, ?refusal, "udp datagram not answered: reflection risk");
            continue;
        }
        let now = Instant::now();
        if !limit.allow(source.ip(), now) {
            Stats::bump(&stats.datagrams_limited);
            continue;
        }
        if let Some(repeats) = &mut repeats {
            if !repeats.allow(source, datagram, now) {
                Stats::bump(&stats.datagrams_looping);
                debug!(%source, "udp datagram not answered: the same one keeps coming back");
                continue;
            }
        }
        reply(&socket, datagram, source, &stats).await;
    }
}

async fn reply(socket: &UdpSocket, datagram: &[u8], destination: SocketAddr, stats: &Stats) {
    match socket.send_to(datagram, destination).await {
        Ok(_) => {
            Stats::bump(&stats.datagrams);
            Stats::add(&stats.datagram_bytes, datagram.len());
        }
        Err(err) => debug!(%destination, error = %err, "udp reply not sent"),
    }
}

/// Errors that concern one datagram or peer, after which the next receive may well succeed.
fn is_transient(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limit_counts_per_source_and_window() {
        let mut limit = RateLimit::new(3);
        let start = Instant::now();
        let a: IpAddr = "127.0.0.1".parse().expect("ip");
        let b: IpAddr = "127.0.0.2".parse().expect("ip");
        let allowed: Vec<bool> = (0..5).map(|_| limit.allow(a, start)).collect();
        assert_eq!(allowed, [true, true, true, false, false]);
        assert!(limit.allow(b, start), "another source has its own budget");
        assert!(
            limit.allow(a, start + RATE_WINDOW),
            "a new window starts afresh"
        );
    }

    #[test]
    fn a_rate_of_zero_means_unlimited() {
        let mut limit = RateLimit::new(0);
        let a: IpAddr = "::1".parse().expect("ip");
        assert!((0..10_000).all(|_| limit.allow(a, Instant::now())));
    }

    #[test]
    fn the_same_datagram_in_quick_succession_is_answered_a_bounded_number_of_times() {
        let mut repeats = Repeats::new();
        let start = Instant::now();
        let loop_peer: SocketAddr = "192.0.2.1:7008".parse().expect("addr");
        let tick = Duration::from_millis(1);
        let answered = (0..100u32)
            .filter(|&n| repeats.allow(loop_peer, b"bounce", start + tick * n))
            .count();
        assert_eq!(answered, REPEATS_ANSWERED as usize);
        // Something else from the same address is answered again.
        assert!(repeats.allow(loop_peer, b"something else", start + tick * 100));
        // Another address has a streak of its own.
        let other: SocketAddr = "192.0.2.1:7009".parse().expect("addr");
        assert!(repeats.allow(other, b"bounce", start + tick * 100));
    }

    #[test]
    fn a_probe_repeated_slowly_is_answered_forever() {
        let mut repeats = Repeats::new();
        let start = Instant::now();
        let checker: SocketAddr = "192.0.2.1:40000".parse().expect("addr");
        assert!(
            (0..100u32).all(|n| repeats.allow(checker, b"health?", start + REPEAT_GAP * n)),
            "a probe a second is not a loop"
        );
    }

    #[test]
    fn the_table_of_sources_stays_bounded() {
        let mut limit = RateLimit::new(1);
        let start = Instant::now();
        for n in 0..(3 * RATE_TABLE_SWEEP_AT as u32) {
            let later = start + RATE_WINDOW * (n / RATE_TABLE_SWEEP_AT as u32 + 1);
            limit.allow(IpAddr::from(n.to_be_bytes()), later);
        }
        assert!(
            limit.sources.seen.len() <= RATE_TABLE_SWEEP_AT,
            "{}",
            limit.sources.seen.len()
        );
    }

    #[test]
    fn a_flood_of_new_sources_within_one_window_is_not_answered() {
        let mut limit = RateLimit::new(5);
        let now = Instant::now();
        for n in 0..RATE_TABLE_SWEEP_AT as u32 {
            assert!(limit.allow(IpAddr::from(n.to_be_bytes()), now));
        }
        assert!(!limit.allow("10.255.255.255".parse().expect("ip"), now));
        assert!(
            limit.allow(IpAddr::from(7u32.to_be_bytes()), now),
            "known sources keep their budget"
        );
        assert!(limit.allow("10.255.255.255".parse().expect("ip"), now + RATE_WINDOW));
    }
}
