//! The accounting of a run: exchanges that came back intact, every failure by
//! kind, and how long each exchange took.
//!
//! Each worker keeps its own [`Tally`] (no sharing on the hot path) and the
//! run merges them at the end; [`Live`] holds the few shared counters a
//! progress display reads while the run goes on.
//! A scenario hands its merged tally on as an [`Outcome`], with the few things
//! it measured that are not counts, so that reports read what was measured
//! without knowing how it was.
//! For a histogram log, [`Intervals`] also gathers the latencies recorded
//! since it was last asked, one second of the run at a time.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::cost::{ClientCpu, ServerCpu};

/// The longest latency the histogram tells apart; longer ones are recorded as this.
/// Every exchange has a timeout far below it.
pub const LATENCY_CEILING: Duration = Duration::from_secs(100);
/// Significant decimal digits kept for each latency: 3 means within 0.1%.
const SIGNIFICANT_FIGURES: u8 = 3;
/// How many error messages a tally keeps verbatim, to show what went wrong.
pub const MAX_SAMPLES: usize = 5;

/// What kind of failure ended an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The reply differed from what was sent (content or length).
    Mismatch,
    /// The server reset the connection or closed it before the whole reply came.
    Reset,
    /// Nothing came back within the timeout.
    Timeout,
    /// The connection could not be made (refused, no ports left, ...).
    Connect,
    /// A UDP datagram already answered was answered again.
    Duplicate,
    /// The TLS handshake failed: an untrusted certificate, no common
    /// version or suite, an alert from the server, a close midway.
    Tls,
    /// Any other I/O error.
    Other,
}

/// How a reply departed from what was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    /// A message's reply (conn, persistent) differs from it or is not as long.
    #[error("{0}")]
    Message(echo_proto::Mismatch),
    /// A datagram (udp) came back neither intact nor as an earlier one's reply.
    #[error("datagram {0}")]
    Datagram(echo_proto::Mismatch),
    /// The server sent more after the last reply instead of closing (persistent).
    #[error("the server sent bytes after the last reply")]
    AfterLastReply,
    /// A stream's echo (bulk) differs from what was sent.
    #[error("reply stream differs from what was sent at byte {at}")]
    Stream {
        /// The first byte that differs, counted from the start of the stream.
        at: u64,
    },
    /// A stream's echo (bulk) ended, whole as far as it went, at another length.
    #[error("reply stream is {received} bytes long but {sent} were sent")]
    StreamLength {
        /// Bytes written.
        sent: u64,
        /// Bytes echoed.
        received: u64,
    },
}

/// Why one exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The reply is not what was sent.
    #[error(transparent)]
    Mismatch(Mismatch),
    /// An operation did not finish within the timeout.
    #[error("timed out after {} {during}", echo_proto::Human(*.after))]
    Timeout {
        /// What was being waited for.
        during: &'static str,
        /// The timeout that expired.
        after: Duration,
    },
    /// The connection could not be made.
    #[error("cannot connect: {0}")]
    Connect(#[source] io::Error),
    /// The TLS handshake failed; rustls's reason, or the socket's, inside.
    #[error("TLS handshake failed: {0}")]
    Tls(#[source] io::Error),
    /// Another intact reply to a datagram that had its reply already.
    #[error("another reply to datagram {sequence}, already answered")]
    Duplicate {
        /// The datagram's sequence number, counted per worker from 1.
        sequence: u64,
    },
    /// An I/O error while the exchange was under way.
    #[error("{during}: {source}")]
    Io {
        /// What was being done.
        during: &'static str,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
}

impl ExchangeError {
    /// Wraps an I/O error with what was being done when it happened.
    pub fn io(during: &'static str) -> impl FnOnce(io::Error) -> ExchangeError {
        move |source| ExchangeError::Io { during, source }
    }

    /// The kind this failure is counted as.
    pub fn kind(&self) -> FailureKind {
        match self {
            ExchangeError::Mismatch(_) => FailureKind::Mismatch,
            ExchangeError::Timeout { .. } => FailureKind::Timeout,
            ExchangeError::Connect(_) => FailureKind::Connect,
            ExchangeError::Tls(_) => FailureKind::Tls,
            ExchangeError::Duplicate { .. } => FailureKind::Duplicate,
            ExchangeError::Io { source, .. } => match source.kind() {
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof => FailureKind::Reset,
                // A UDP socket learns of an unreachable port this way.
                io::ErrorKind::ConnectionRefused => FailureKind::Connect,
                io::ErrorKind::TimedOut => FailureKind::Timeout,
                _ => FailureKind::Other,
            },
        }
    }
}

/// How many exchanges failed, by kind (and, for UDP, how many replies came
/// to datagrams already answered).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCounts {
    /// Replies that differed from what was sent.
    pub mismatch: u64,
    /// Connections reset or closed before the whole reply came.
    pub reset: u64,
    /// Exchanges that did not finish within the timeout.
    pub timeout: u64,
    /// Connections that could not be made.
    pub connect: u64,
    /// UDP replies to datagrams that had their reply already; absent from
    /// reports written before it was counted, hence the default.
    #[serde(default)]
    pub duplicate: u64,
    /// TLS handshakes that failed; absent from reports written before TLS.
    #[serde(default)]
    pub tls: u64,
    /// Any other failure.
    pub other: u64,
}

impl ErrorCounts {
    /// All failures together.
    pub fn total(&self) -> u64 {
        self.mismatch
            + self.reset
            + self.timeout
            + self.connect
            + self.duplicate
            + self.tls
            + self.other
    }

    fn bump(&mut self, kind: FailureKind) {
        let counter = match kind {
            FailureKind::Mismatch => &mut self.mismatch,
            FailureKind::Reset => &mut self.reset,
            FailureKind::Timeout => &mut self.timeout,
            FailureKind::Connect => &mut self.connect,
            FailureKind::Duplicate => &mut self.duplicate,
            FailureKind::Tls => &mut self.tls,
            FailureKind::Other => &mut self.other,
        };
        *counter += 1;
    }

    /// Adds `other`'s counts, kind by kind.
    pub(crate) fn add(&mut self, other: &ErrorCounts) {
        self.mismatch += other.mismatch;
        self.reset += other.reset;
        self.timeout += other.timeout;
        self.connect += other.connect;
        self.duplicate += other.duplicate;
        self.tls += other.tls;
        self.other += other.other;
    }
}

/// An empty histogram of latencies in nanoseconds, as every tally, interval
/// and merge keeps them: from 1 ns to [`LATENCY_CEILING`], to
/// one precision (`SIGNIFICANT_FIGURES`). Histograms with the same lowest value and
/// digits share their buckets, so adding them together loses nothing.
pub fn latency_histogram() -> Histogram<u64> {
    let ceiling = u64::try_from(LATENCY_CEILING.as_nanos()).unwrap_or(u64::MAX);
    Histogram::new_with_bounds(1, ceiling, SIGNIFICANT_FIGURES)
        .expect("constant histogram bounds are valid")
}

/// A latency as the histograms record it: whole nanoseconds, at least one.
fn nanos(latency: Duration) -> u64 {
    u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).max(1)
}

/// Counters shared by all workers while a run goes on, for progress displays
/// and the histogram log; the final figures come from the merged [`Tally`].
#[derive(Debug, Default)]
pub struct Live {
    /// Exchanges completed and verified.
    pub exchanges: AtomicU64,
    /// Bytes echoed back and verified.
    pub bytes: AtomicU64,
    /// Failed exchanges.
    pub errors: AtomicU64,
    /// The latencies recorded since the histogram log last took them; `None`
    /// when no log is written, so that a run without one records nothing twice.
    pub intervals: Option<Intervals>,
}

impl Live {
    /// Live counters that also gather every latency for a histogram log.
    pub fn with_intervals() -> Live {
        Live {
            intervals: Some(Intervals::default()),
            ..Live::default()
        }
    }
}

/// The latencies recorded since they were last taken, for the histogram log.
///
/// Each [`Recorder`] has a histogram of its own behind a lock that only it
/// and [`Intervals::take`] use: recording contends with no other worker,
/// and with the taker once an interval. A latency belongs to the interval in
/// which its exchange ended and was recorded.
#[derive(Debug, Default)]
pub struct Intervals {
    /// Every recorder's histogram, in the order they were made.
    recorders: Mutex<Vec<Arc<Mutex<Histogram<u64>>>>>,
    /// What the last interval taken held, for a progress line.
    last: Mutex<Option<IntervalSummary>>,
}

/// The figures of one interval of the histogram log, as a progress line shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntervalSummary {
    /// How long the interval was.
    pub length: Duration,
    /// Latencies recorded in it.
    pub count: u64,
    /// Its median latency, in nanoseconds (0 when empty).
    pub p50_ns: u64,
    /// Its 99th percentile latency, in nanoseconds (0 when empty).
    pub p99_ns: u64,
}

impl Intervals {
    /// A histogram for one more recorder, which it alone records into.
    fn recorder(&self) -> Arc<Mutex<Histogram<u64>>> {
        let histogram = Arc::new(Mutex::new(latency_histogram()));
        lock(&self.recorders).push(Arc::clone(&histogram));
        histogram
    }

    /// Every latency recorded since the last call, in one histogram, each
    /// recorder's emptied on the way; `length` is the time they cover, kept
    /// for [`Intervals::last`].
    pub fn take(&self, length: Duration) -> Histogram<u64> {
        let mut interval = latency_histogram();
        let recorders = lock(&self.recorders).clone();
        for recorder in recorders {
            let mut histogram = lock(&recorder);
            // Same bounds on both sides: adding cannot fail.
            let _ = interval.add(&*histogram);
            histogram.reset();
        }
        *lock(&self.last) = Some(IntervalSummary {
            length,
            count: interval.len(),
            p50_ns: interval.value_at_quantile(0.5),
            p99_ns: interval.value_at_quantile(0.99),
        });
        interval
    }

    /// The figures of the interval taken last, if any was.
    pub fn last(&self) -> Option<IntervalSummary> {
        *lock(&self.last)
    }
}

/// Locks `mutex`, even if a thread panicked holding it: a histogram or a
/// list is whole between any two calls, so what it holds is still good.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What one worker, or a whole run, achieved.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Exchanges whose reply came back whole and intact.
    pub exchanges: u64,
    /// Bytes echoed back and verified.
    pub bytes: u64,
    /// Failed exchanges by kind.
    pub errors: ErrorCounts,
    /// UDP datagrams whose reply did not come within the timeout.
    pub lost: u64,
    /// UDP replies that came after their datagram had been given up as lost.
    pub late: u64,
    /// The first few failures, as messages naming the worker.
    pub samples: Vec<String>,
    /// Latency of each successful exchange, in nanoseconds.
    latency: Histogram<u64>,
    /// TLS handshakes completed, and what the first negotiated.
    pub handshakes: Handshakes,
}

/// The TLS handshakes a worker or a run completed.
#[derive(Debug, Clone)]
pub struct Handshakes {
    /// Handshakes completed.
    pub count: u64,
    /// Of them, those that resumed a session.
    pub resumed: u64,
    /// The protocol version and cipher suite of the first, as `TLSv1.3` and
    /// `TLS13_AES_128_GCM_SHA256`.
    pub negotiated: Option<(String, String)>,
    /// How long each took, from the TCP connection to its end, in nanoseconds.
    latency: Histogram<u64>,
}

impl Default for Handshakes {
    fn default() -> Self {
        Handshakes {
            count: 0,
            resumed: 0,
            negotiated: None,
            latency: latency_histogram(),
        }
    }
}

/// One completed TLS handshake.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// From the TCP connection made to the handshake's end.
    pub took: Duration,
    /// Whether the server resumed the client's session.
    pub resumed: bool,
    /// The protocol version, as `TLSv1.3`.
    pub version: String,
    /// The cipher suite, as `TLS13_AES_128_GCM_SHA256`.
    pub cipher_suite: String,
}

impl Handshakes {
    /// Counts `handshake`, keeping what it negotiated if it is the first.
    pub fn record(&mut self, handshake: &Handshake) {
        self.count += 1;
        self.resumed += u64::from(handshake.resumed);
        self.latency.saturating_record(nanos(handshake.took));
        if self.negotiated.is_none() {
            self.negotiated = Some((handshake.version.clone(), handshake.cipher_suite.clone()));
        }
    }

    /// Adds another's counts and latencies; its first negotiation stands if this has none.
    pub fn merge(&mut self, other: &Handshakes) {
        self.count += other.count;
        self.resumed += other.resumed;
        if self.negotiated.is_none() {
            self.negotiated.clone_from(&other.negotiated);
        }
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }

    /// How long the handshakes took, in nanoseconds.
    pub fn latency(&self) -> &Histogram<u64> {
        &self.latency
    }
}

impl Default for Tally {
    fn default() -> Self {
        Tally::new()
    }
}

impl Tally {
    /// An empty tally.
    pub fn new() -> Self {
        Tally {
            exchanges: 0,
            bytes: 0,
            errors: ErrorCounts::default(),
            lost: 0,
            late: 0,
            samples: Vec::new(),
            latency: latency_histogram(),
            handshakes: Handshakes::default(),
        }
    }

    /// Records an exchange that echoed `bytes` intact after `latency`.
    pub fn succeeded(&mut self, bytes: u64, latency: Duration) {
        self.exchanges += 1;
        self.bytes += bytes;
        self.latency.saturating_record(nanos(latency));
    }

    /// Records a failed exchange of `worker` (`None` for the run as a whole),
    /// keeping its message if it is among the first.
    pub fn failed(&mut self, worker: Option<usize>, error: &ExchangeError) {
        self.errors.bump(error.kind());
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push(match worker {
                Some(worker) => format!("worker {worker}: {error}"),
                None => error.to_string(),
            });
        }
    }

    /// Adds another tally's counts, samples and latencies to this one.
    pub fn merge(&mut self, other: &Tally) {
        self.exchanges += other.exchanges;
        self.bytes += other.bytes;
        self.errors.add(&other.errors);
        self.lost += other.lost;
        self.late += other.late;
        let room = MAX_SAMPLES.saturating_sub(self.samples.len());
        self.samples
            .extend(other.samples.iter().take(room).cloned());
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        self.handshakes.merge(&other.handshakes);
    }

    /// The latency histogram, in nanoseconds.
    pub fn latency(&self) -> &Histogram<u64> {
        &self.latency
    }
}

/// What a scenario hands to the report besides its tally.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Everything counted.
    pub tally: Tally,
    /// Whether the run ended because the count ran out (rather than the time).
    pub count_reached: bool,
    /// The time over which the rate is computed, if not the whole run (idle:
    /// the opening; a run ended by its count: up to its last exchange's end).
    pub rate_window: Option<Duration>,
    /// `idle`: connections that still echoed after the hold.
    pub held: Option<u64>,
    /// `idle`: how many local addresses the connections came from.
    pub source_addresses: Option<usize>,
    /// The server's resident memory before the run, in KiB.
    pub rss_before_kib: Option<u64>,
    /// The server's resident memory at the measuring point (idle: all connections open), in KiB.
    pub rss_after_kib: Option<u64>,
    /// The server's CPU time over the load.
    pub server_cpu: Option<ServerCpu>,
    /// This process's own CPU time over the load.
    pub client_cpu: Option<ClientCpu>,
    /// When the load began, by this machine's clock.
    pub started_at: Option<SystemTime>,
}

/// A worker's tally together with the run's live counters, kept in step.
#[derive(Debug)]
pub struct Recorder {
    /// The worker's number, named in error messages.
    pub worker: usize,
    /// The worker's own accounting.
    pub tally: Tally,
    live: Arc<Live>,
    /// This worker's latencies since the histogram log last took them.
    interval: Option<Arc<Mutex<Histogram<u64>>>>,
}

impl Recorder {
    /// A recorder for `worker`, feeding `live`.
    pub fn new(worker: usize, live: Arc<Live>) -> Self {
        let interval = live.intervals.as_ref().map(Intervals::recorder);
        Recorder {
            worker,
            tally: Tally::new(),
            live,
            interval,
        }
    }

    /// Records an intact exchange of `bytes` that took `latency`.
    pub fn succeeded(&mut self, bytes: u64, latency: Duration) {
        self.tally.succeeded(bytes, latency);
        self.live.exchanges.fetch_add(1, Ordering::Relaxed);
        self.live.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.record_interval(latency);
    }

    /// Adds `latency` to the interval the histogram log will take next.
    fn record_interval(&self, latency: Duration) {
        if let Some(interval) = &self.interval {
            lock(interval).saturating_record(nanos(latency));
        }
    }

    /// Records bytes verified without completing an exchange (a bulk stream's progress).
    pub fn verified_bytes(&mut self, bytes: u64) {
        self.tally.bytes += bytes;
        self.live.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Records an exchange that completed, with its bytes already counted.
    pub fn exchange_done(&mut self, latency: Duration) {
        self.tally.succeeded(0, latency);
        self.live.exchanges.fetch_add(1, Ordering::Relaxed);
        self.record_interval(latency);
    }

    /// Records a completed TLS handshake.
    pub fn handshook(&mut self, handshake: &Handshake) {
        self.tally.handshakes.record(handshake);
    }

    /// Records a failed exchange.
    pub fn failed(&mut self, error: &ExchangeError) {
        self.tally.failed(Some(self.worker), error);
        self.live.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Hands back the worker's tally.
    pub fn finish(self) -> Tally {
        self.tally
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reset() -> ExchangeError {
        ExchangeError::Io {
            during: "reading the reply",
            source: io::Error::from(io::ErrorKind::ConnectionReset),
        }
    }

    #[test]
    fn successes_count_exchanges_bytes_and_latency() {
        let mut tally = Tally::new();
        for micros in 1..=100 {
            tally.succeeded(64, Duration::from_micros(micros));
        }
        assert_eq!(tally.exchanges, 100);
        assert_eq!(tally.bytes, 6_400);
        assert_eq!(tally.errors.total(), 0);
        let latency = tally.latency();
        assert_eq!(latency.len(), 100);
        // Within the histogram's 0.1% precision.
        let p50 = latency.value_at_quantile(0.5);
        assert!((49_950..=50_050).contains(&p50), "{p50}");
        let max = latency.max();
        assert!((99_900..=100_100).contains(&max), "{max}");
    }

    #[test]
    fn failures_are_counted_by_kind_with_a_few_samples() {
        let mut tally = Tally::new();
        tally.failed(
            Some(3),
            &ExchangeError::Mismatch(Mismatch::Stream { at: 7 }),
        );
        tally.failed(Some(4), &reset());
        let eof = ExchangeError::Io {
            during: "reading the reply",
            source: io::Error::from(io::ErrorKind::UnexpectedEof),
        };
        tally.failed(Some(4), &eof);
        tally.failed(
            Some(5),
            &ExchangeError::Timeout {
                during: "waiting for the reply",
                after: Duration::from_secs(1),
            },
        );
        tally.failed(
            Some(6),
            &ExchangeError::Connect(io::Error::from(io::ErrorKind::ConnectionRefused)),
        );
        let refused_datagram = ExchangeError::Io {
            during: "receiving a datagram",
            source: io::Error::from(io::ErrorKind::ConnectionRefused),
        };
        tally.failed(Some(7), &refused_datagram);
        tally.failed(
            Some(8),
            &ExchangeError::Io {
                during: "x",
                source: io::Error::other("strange"),
            },
        );
        tally.failed(Some(9), &ExchangeError::Duplicate { sequence: 3 });
        tally.failed(
            Some(9),
            &ExchangeError::Tls(io::Error::new(
                io::ErrorKind::InvalidData,
                "bad certificate",
            )),
        );
        assert_eq!(
            tally.errors,
            ErrorCounts {
                mismatch: 1,
                reset: 2,
                timeout: 1,
                connect: 2,
                duplicate: 1,
                tls: 1,
                other: 1
            }
        );
        assert_eq!(tally.errors.total(), 9);
        assert_eq!(tally.samples.len(), MAX_SAMPLES);
        assert_eq!(
            tally.samples[0],
            "worker 3: reply stream differs from what was sent at byte 7"
        );
        assert_eq!(tally.exchanges, 0, "a failure is not an exchange");
    }

    #[test]
    fn merging_adds_everything_and_keeps_samples_bounded() {
        let mut total = Tally::new();
        let mut parts = Vec::new();
        for worker in 0..4 {
            let mut part = Tally::new();
            part.succeeded(10, Duration::from_micros(10 * (worker as u64 + 1)));
            part.failed(Some(worker), &reset());
            part.failed(Some(worker), &reset());
            part.lost += 1;
            part.late += 2;
            parts.push(part);
        }
        for part in &parts {
            total.merge(part);
        }
        assert_eq!(total.exchanges, 4);
        assert_eq!(total.bytes, 40);
        assert_eq!(total.errors.reset, 8);
        assert_eq!((total.lost, total.late), (4, 8));
        assert_eq!(total.samples.len(), MAX_SAMPLES);
        assert_eq!(total.latency().len(), 4);
        let max = total.latency().max();
        assert!((39_960..=40_040).contains(&max), "{max}");
    }

    #[test]
    fn absurd_latencies_saturate_instead_of_failing() {
        let mut tally = Tally::new();
        tally.succeeded(1, Duration::from_secs(1_000_000));
        tally.succeeded(1, Duration::ZERO);
        assert_eq!(tally.exchanges, 2);
        assert_eq!(tally.latency().len(), 2);
        assert!(tally.latency().max() >= 99_000_000_000);
    }

    #[test]
    fn the_recorder_keeps_live_counters_in_step() {
        let live = Arc::new(Live::default());
        let mut recorder = Recorder::new(2, Arc::clone(&live));
        recorder.succeeded(64, Duration::from_micros(5));
        recorder.verified_bytes(100);
        recorder.exchange_done(Duration::from_micros(5));
        recorder.failed(&reset());
        let tally = recorder.finish();
        assert_eq!(live.exchanges.load(Ordering::Relaxed), 2);
        assert_eq!(live.bytes.load(Ordering::Relaxed), 164);
        assert_eq!(live.errors.load(Ordering::Relaxed), 1);
        assert_eq!((tally.exchanges, tally.bytes), (2, 164));
        assert_eq!(
            tally.samples,
            ["worker 2: reading the reply: connection reset"]
        );
        assert!(live.intervals.is_none(), "no log, no second histogram");
    }

    #[test]
    fn intervals_hold_every_latency_once_whatever_the_recorder() {
        let live = Arc::new(Live::with_intervals());
        let intervals = live.intervals.as_ref().expect("intervals");
        let mut first = Recorder::new(0, Arc::clone(&live));
        let mut second = Recorder::new(1, Arc::clone(&live));
        first.succeeded(64, Duration::from_micros(10));
        second.exchange_done(Duration::from_micros(30));
        second.failed(&reset());
        let taken = intervals.take(Duration::from_secs(1));
        assert_eq!(taken.len(), 2, "a failure has no latency");
        assert_eq!(taken.max(), taken.highest_equivalent(30_000));
        let summary = intervals.last().expect("a summary");
        assert_eq!(summary.count, 2);
        assert_eq!(summary.p50_ns, taken.highest_equivalent(10_000));
        first.succeeded(64, Duration::from_micros(20));
        let next = intervals.take(Duration::from_millis(500));
        assert_eq!(next.len(), 1, "taken latencies are not taken again");
        assert_eq!(
            intervals.last().map(|s| s.length),
            Some(Duration::from_millis(500))
        );
        let (first, second) = (first.finish(), second.finish());
        assert_eq!(
            first.latency().len() + second.latency().len(),
            3,
            "the tallies keep theirs"
        );
        assert!(intervals.take(Duration::ZERO).is_empty());
    }
}
