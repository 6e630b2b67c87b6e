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
/// Sources followed one by one, each with a rate budget and a streak of its
/// own: this bounds the tables' memory under a flood of spoofed sources.
///
/// A flood of more new sources a second than this keeps the tables full
/// whatever they sweep, so the sources that find no room are not refused but
/// counted together, in `SHARED_BUDGETS` and `SHARED_STREAKS`.
pub const TRACKED_SOURCES: usize = 16_384;
/// Budgets of `--udp-rate` a window shared by the source IPs not in the
/// rate table, each IP's chosen by a keyed hash: a flood's sources spread over
/// all of them, so a newcomer shares its budget with about a 1,024th of the
/// flood, and all answers stay within `TRACKED_SOURCES + SHARED_BUDGETS`
/// budgets a window.
const SHARED_BUDGETS: usize = 1_024;
/// Streak counters shared by the sources not in the table of streaks, each
/// source and datagram's chosen by a keyed hash. The more of them, the faster
/// a flood must be before its own datagrams, landing on a newcomer's
/// counter, make the newcomer look like a loop.
const SHARED_STREAKS: usize = 131_072;
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
/// `REPEAT_GAP` as the shared streak counters keep time.
const REPEAT_GAP_NANOS: u64 = REPEAT_GAP.as_nanos() as u64;

/// A table of what is known of each source, bounded under a flood of
/// spoofed ones: when full, the entries older than `window` are swept out,
/// at most once a window (a flood costs a sweep a second, not one per
/// datagram), and a new source that still finds no room has no entry.
///
/// An entry goes only once it is older than `window`, so a source's budget
/// or streak is never cut short by the others, however many they are: a
/// flood cannot reset the count of a loop followed here.
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
        if self.seen.len() >= TRACKED_SOURCES && !self.seen.contains_key(&key) {
            if self
                .last_sweep
                .is_none_or(|at| now.duration_since(at) >= self.window)
            {
                let window = self.window;
                self.seen
                    .retain(|_, value| now.duration_since(last_seen(value)) < window);
                self.last_sweep = Some(now);
            }
            if self.seen.len() >= TRACKED_SOURCES {
                return None;
            }
        }
        Some(self.seen.entry(key).or_insert_with(new))
    }
}

/// Which of `slots` shared counters `hash` falls on.
fn slot(hash: u64, slots: usize) -> usize {
    // Truncating the hash on a 32-bit target still spreads it evenly.
    hash as usize % slots
}

/// Datagrams counted in one window of `RATE_WINDOW`, which opens with the
/// first datagram after the last window closed: windows never overlap, and
/// each lasts at least `RATE_WINDOW`.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    count: u32,
}

impl Window {
    fn new(now: Instant) -> Self {
        Window {
            start: now,
            count: 0,
        }
    }

    /// Counts a datagram at `now`, and says whether it is within `limit` for
    /// its window.
    fn admit(&mut self, now: Instant, limit: u32) -> bool {
        if now.duration_since(self.start) >= RATE_WINDOW {
            *self = Window::new(now);
        }
        self.count = self.count.saturating_add(1);
        self.count <= limit
    }
}

/// Counts datagrams per source IP in one-second windows.
///
/// Keyed by IP rather than IP and port: a spoofing attacker picks ports freely,
/// and one host is one host.
#[derive(Debug)]
pub(crate) struct RateLimit {
    per_window: u32,
    /// The window of each source followed one by one.
    sources: Sources<IpAddr, Window>,
    /// The windows of every source not in `sources`, `SHARED_BUDGETS` of them.
    shared: Box<[Window]>,
    /// Keyed afresh in each process, so a flood cannot be aimed at the shared
    /// budget of a given source.
    hasher: RandomState,
}

impl RateLimit {
    /// Allows `per_second` datagrams per source IP; 0 allows any number.
    pub(crate) fn new(per_second: u32) -> Self {
        RateLimit {
            per_window: per_second,
            sources: Sources::new(RATE_WINDOW),
            shared: vec![Window::new(Instant::now()); SHARED_BUDGETS].into_boxed_slice(),
            hasher: RandomState::new(),
        }
    }

    /// Records a datagram from `source` at `now`, and says whether it may be answered.
    ///
    /// Every answer is counted in one window of one of at most
    /// `TRACKED_SOURCES` entries alive at a time (an entry goes only once its
    /// window is over, so those of one place in the table never overlap) or
    /// of `SHARED_BUDGETS` shared ones, each allowing `per_window`: that
    /// bounds the answers of a flood of any number of sources.
    pub(crate) fn allow(&mut self, source: IpAddr, now: Instant) -> bool {
        if self.per_window == 0 {
            return true;
        }
        if let Some(window) =
            self.sources
                .entry(source, now, |window| window.start, || Window::new(now))
        {
            return window.admit(now, self.per_window);
        }
        // More live sources than we follow, as under a spoofed flood: this
        // one shares a budget with the others that find no room, rather than
        // going unanswered until the flood stops.
        let index = slot(self.hasher.hash_one(source), SHARED_BUDGETS);
        self.shared
            .get_mut(index)
            .is_some_and(|window| window.admit(now, self.per_window))
    }
}

/// Tells a loop between two echo services from a client: the same datagram
/// from the same address (IP and port), again and again, in quick succession.
#[derive(Debug)]
pub(crate) struct Repeats {
    streaks: Sources<SocketAddr, Streak>,
    /// The streaks of the sources not in `streaks`.
    shared: SharedStreaks,
    /// Keyed afresh in each process, so a sender cannot craft two different
    /// datagrams that look the same here, nor aim at a given shared streak.
    hasher: RandomState,
}

#[derive(Debug, Clone, Copy)]
struct Streak {
    fingerprint: u64,
    count: u32,
    last: Instant,
}

/// Streaks of the sources not in the table, counted in `SHARED_STREAKS`
/// counters chosen by a keyed hash of source address and datagram.
///
/// A counter counts every datagram that falls on it, and starts again only
/// after `REPEAT_GAP` without one, so it never counts fewer than the streak
/// of any one of them: a collision can make a datagram look like a loop
/// sooner, never let a loop go on longer.
#[derive(Debug)]
struct SharedStreaks {
    /// Allocated with the first source that finds no room in the table, so
    /// a server that is never flooded does not pay for it.
    counters: Vec<SharedStreak>,
    /// What `SharedStreak::last` counts from.
    epoch: Instant,
}

#[derive(Debug, Clone, Copy, Default)]
struct SharedStreak {
    /// Nanoseconds from `SharedStreaks::epoch` to the last datagram counted:
    /// half the size of an `Instant`, and enough for 584 years.
    last: u64,
    count: u32,
}

impl SharedStreaks {
    fn new() -> Self {
        SharedStreaks {
            counters: Vec::new(),
            epoch: Instant::now(),
        }
    }

    fn nanos(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(since).unwrap_or(u64::MAX)
    }

    /// The streak of counter `index` at `now`, without counting anything.
    fn peek(&self, index: usize, now: Instant) -> u32 {
        let now = self.nanos(now);
        self.counters
            .get(index)
            .filter(|counter| now.saturating_sub(counter.last) < REPEAT_GAP_NANOS)
            .map_or(0, |counter| counter.count)
    }

    /// Counts a datagram at `now` on counter `index`, and returns its streak.
    fn record(&mut self, index: usize, now: Instant) -> u32 {
        if self.counters.is_empty() {
            self.counters = vec![SharedStreak::default(); SHARED_STREAKS];
        }
        let count = self.peek(index, now).saturating_add(1);
        let last = self.nanos(now);
        if let Some(counter) = self.counters.get_mut(index) {
            *counter = SharedStreak { last, count };
        }
        count
    }
}

impl Repeats {
    pub(crate) fn new() -> Self {
        Repeats {
            streaks: Sources::new(REPEAT_GAP),
            shared: SharedStreaks::new(),
            hasher: RandomState::new(),
        }
    }

    /// Records `datagram` from `source` at `now`, and says whether it may be
    /// answered: not once it is the same datagram more than
    /// [`REPEATS_ANSWERED`] times in a row, each within `REPEAT_GAP`.
    pub(crate) fn allow(&mut self, source: SocketAddr, datagram: &[u8], now: Instant) -> bool {
        let fingerprint = self.hasher.hash_one(datagram);
        let hasher = &self.hasher;
        let shared_index = || slot(hasher.hash_one((source, fingerprint)), SHARED_STREAKS);
        let shared = &self.shared;
        let Some(streak) = self.streaks.entry(
            source,
            now,
            |streak| streak.last,
            // A source that had no room before may have a streak going in
            // the shared counters: it goes on from there, not from zero.
            || Streak {
                fingerprint,
                count: shared.peek(shared_index(), now),
                last: now,
            },
        ) else {
            // As many live sources as we follow, as under a spoofed flood:
            // this one is followed in the shared counters, which may refuse
            // it sooner than its own streak would, but never later.
            return self.shared.record(shared_index(), now) <= REPEATS_ANSWERED;
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
            debug!(%source, %refusal, "udp datagram not answered: reflection risk");
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

    /// The `n`th of many distinct source IPs.
    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    /// The `n`th of many distinct source addresses.
    fn addr(n: u32) -> SocketAddr {
        SocketAddr::new(ip(n), 40_000)
    }

    const TRACKED: u32 = TRACKED_SOURCES as u32;

    #[test]
    fn the_table_of_sources_stays_bounded() {
        let mut limit = RateLimit::new(1);
        let mut repeats = Repeats::new();
        let start = Instant::now();
        // Twice as many new sources as the tables hold in each of three
        // windows: they fill, are swept, overflow into the shared counters.
        for n in 0..(6 * TRACKED) {
            let later = start + RATE_WINDOW * (n / (2 * TRACKED) + 1);
            limit.allow(ip(n), later);
            repeats.allow(addr(n), b"once", later);
        }
        assert!(
            limit.sources.seen.len() <= TRACKED_SOURCES,
            "{}",
            limit.sources.seen.len()
        );
        assert!(
            repeats.streaks.seen.len() <= TRACKED_SOURCES,
            "{}",
            repeats.streaks.seen.len()
        );
        assert_eq!(limit.shared.len(), SHARED_BUDGETS);
        assert_eq!(repeats.shared.counters.len(), SHARED_STREAKS);
    }

    #[test]
    fn a_newcomer_is_answered_when_the_rate_table_is_full() {
        let mut limit = RateLimit::new(5);
        let now = Instant::now();
        for n in 0..TRACKED {
            assert!(limit.allow(ip(n), now));
        }
        let newcomer: IpAddr = "10.255.255.254".parse().expect("ip");
        let answered: Vec<bool> = (0..7).map(|_| limit.allow(newcomer, now)).collect();
        assert_eq!(
            answered,
            [true, true, true, true, true, false, false],
            "from a shared budget of 5 a window"
        );
        assert_eq!(limit.sources.seen.len(), TRACKED_SOURCES);
        assert!(limit.allow(ip(7), now), "known sources keep their budget");
        assert!(
            limit.allow(newcomer, now + RATE_WINDOW),
            "a new window starts afresh"
        );
    }

    #[test]
    fn answers_to_a_flood_of_any_number_of_sources_are_bounded() {
        let rate = 2;
        let mut limit = RateLimit::new(rate);
        let start = Instant::now();
        let bound = (TRACKED_SOURCES + SHARED_BUDGETS) as u32 * rate;
        // Enough that no shared budget is left without a source (about 43
        // sources on each, so one with none has odds near 1e-19): the keyed
        // hash differs in every run.
        let sources_per_window = 60_000;
        for window in 0..3 {
            let now = start + RATE_WINDOW * window;
            // New sources in each window, more than the table holds, each
            // sending more than its rate: those beyond the table spread over
            // the shared budgets and spend them all.
            let answered = (0..sources_per_window)
                .flat_map(|n| [ip(window * sources_per_window + n); 3])
                .filter(|&source| limit.allow(source, now))
                .count();
            assert_eq!(answered, bound as usize, "window {window}");
        }
    }

    /// Repeats whose table is full of sources seen at `now`.
    fn full_repeats(now: Instant) -> Repeats {
        let mut repeats = Repeats::new();
        for n in 0..TRACKED {
            assert!(repeats.allow(addr(n), b"first", now));
        }
        repeats
    }

    /// The shared streak counter of `datagram` from `source`.
    fn counter_of(repeats: &Repeats, source: SocketAddr, datagram: &[u8]) -> usize {
        let fingerprint = repeats.hasher.hash_one(datagram);
        slot(
            repeats.hasher.hash_one((source, fingerprint)),
            SHARED_STREAKS,
        )
    }

    #[test]
    fn a_newcomer_is_answered_when_the_table_of_streaks_is_full() {
        let now = Instant::now();
        let mut repeats = full_repeats(now);
        let newcomer: SocketAddr = "10.255.255.254:40000".parse().expect("addr");
        let tick = Duration::from_millis(1);
        assert!(
            (0..100u32).all(|n| repeats.allow(newcomer, &n.to_be_bytes(), now + tick * n)),
            "different datagrams are no loop"
        );
        assert!(!repeats.streaks.seen.contains_key(&newcomer));
    }

    #[test]
    fn a_loop_with_a_source_not_in_the_table_is_cut_after_8_answers() {
        let now = Instant::now();
        let mut repeats = full_repeats(now);
        let loop_peer: SocketAddr = "192.0.2.1:7008".parse().expect("addr");
        let loop_counter = counter_of(&repeats, loop_peer, b"bounce");
        let tick = Duration::from_millis(1);
        let mut fresh = TRACKED;
        let answered: Vec<bool> = (0..100u32)
            .map(|n| {
                let at = now + tick * n;
                // The flood goes on between the copies, from sources never
                // seen; any of it that falls on the loop's counter is left
                // out, as it could only cut the loop sooner (tested below).
                let mut flooded = 0;
                while flooded < 50 {
                    let (source, datagram) = (addr(fresh), fresh.to_be_bytes());
                    fresh += 1;
                    if counter_of(&repeats, source, &datagram) != loop_counter {
                        assert!(repeats.allow(source, &datagram, at));
                        flooded += 1;
                    }
                }
                repeats.allow(loop_peer, b"bounce", at)
            })
            .collect();
        let first_eight: Vec<bool> = (0..100).map(|n| n < 8).collect();
        assert_eq!(answered, first_eight);
        assert!(!repeats.streaks.seen.contains_key(&loop_peer));
    }

    #[test]
    fn a_collision_in_the_shared_counters_cuts_a_loop_sooner_never_later() {
        let now = Instant::now();
        let mut repeats = full_repeats(now);
        let loop_peer: SocketAddr = "192.0.2.1:7008".parse().expect("addr");
        let loop_counter = counter_of(&repeats, loop_peer, b"bounce");
        // Sources never seen whose datagram falls on the loop's counter.
        let colliders: Vec<_> = (TRACKED..)
            .map(|n| (addr(n), n.to_be_bytes()))
            .filter(|(source, datagram)| counter_of(&repeats, *source, datagram) == loop_counter)
            .take(10)
            .collect();
        let tick = Duration::from_millis(1);
        let answered = (0..10u32)
            .zip(&colliders)
            .filter(|&(n, (source, datagram))| {
                let at = now + tick * n;
                repeats.allow(*source, datagram, at);
                repeats.allow(loop_peer, b"bounce", at)
            })
            .count();
        // The counter goes 1 (collider), 2 (copy), 3, 4...: the loop gets
        // every other count up to 8.
        assert_eq!(answered, 4);
    }

    #[test]
    fn a_streak_begun_outside_the_table_goes_on_inside_it() {
        let now = Instant::now();
        let mut repeats = full_repeats(now);
        let loop_peer: SocketAddr = "192.0.2.1:7008".parse().expect("addr");
        // A slow loop: 200 ms a round. The table's entries, all from `now`,
        // go stale after a second, and the first sweep that finds them so
        // (a second after the first, made by the first copy) makes room for
        // the sixth copy, at now + 1.7 s.
        let first = now + Duration::from_millis(700);
        let round = Duration::from_millis(200);
        let answered: Vec<bool> = (0..20u32)
            .map(|n| repeats.allow(loop_peer, b"bounce", first + round * n))
            .collect();
        let first_eight: Vec<bool> = (0..20).map(|n| n < 8).collect();
        assert_eq!(answered, first_eight);
        assert!(repeats.streaks.seen.contains_key(&loop_peer));
    }

    #[test]
    fn a_flood_neither_locks_out_a_newcomer_nor_resets_a_loop() {
        let start = Instant::now();
        let mut repeats = Repeats::new();
        let loop_peer: SocketAddr = "192.0.2.1:7008".parse().expect("addr");
        let newcomer: SocketAddr = "10.255.255.254:40000".parse().expect("addr");
        let mut fresh = 0;
        // A slow loop followed in the table from its first copy, 200 ms a
        // round, with half a table of new sources before every copy: the
        // table is full from the second round on, and swept every second.
        let round = Duration::from_millis(200);
        let (mut loop_answers, mut newcomer_answers) = (Vec::new(), 0);
        for n in 0..12u32 {
            let at = start + round * n;
            loop_answers.push(repeats.allow(loop_peer, b"bounce", at));
            for _ in 0..TRACKED / 2 {
                repeats.allow(addr(fresh), &fresh.to_be_bytes(), at);
                fresh += 1;
            }
            // A client that comes once the table is full.
            if n >= 2 && repeats.allow(newcomer, &n.to_be_bytes(), at) {
                newcomer_answers += 1;
            }
        }
        let first_eight: Vec<bool> = (0..12).map(|n| n < 8).collect();
        assert_eq!(loop_answers, first_eight);
        assert_eq!(newcomer_answers, 10);
    }

    #[test]
    fn a_shared_streak_counts_every_datagram_on_it_and_starts_afresh_after_a_gap() {
        let mut shared = SharedStreaks::new();
        let start = Instant::now();
        let tick = Duration::from_millis(100);
        assert_eq!(shared.peek(0, start), 0, "nothing counted yet");
        let counts: Vec<u32> = (0..4u32)
            .map(|n| shared.record(0, start + tick * n))
            .collect();
        assert_eq!(counts, [1, 2, 3, 4]);
        let last = start + tick * 3;
        assert_eq!(shared.peek(0, last + REPEAT_GAP - tick), 4);
        assert_eq!(shared.record(1, last), 1, "another counter");
        assert_eq!(
            shared.record(0, last + REPEAT_GAP),
            1,
            "a gap starts afresh"
        );
    }
}
