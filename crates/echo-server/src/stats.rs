//! Running totals of what the server did, cheap enough to bump on the hot path.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tracing::info;

/// Counters shared by every listener, event loop and UDP task.
///
/// Each is a relaxed atomic: they are independent tallies read only for
/// reporting, so no ordering between them is needed.
#[derive(Debug, Default)]
pub struct Stats {
    /// Stream connections accepted (TCP and Unix).
    pub accepted: AtomicU64,
    /// Stream connections being served right now.
    pub active: AtomicU64,
    /// Connections closed because nothing moved for the idle timeout.
    pub idle_closed: AtomicU64,
    /// Connections the kernel handed over already aborted or reset, so they
    /// could not be served at all.
    pub refused: AtomicU64,
    /// Connections that ended in an error (reset by the peer, mostly).
    pub failed: AtomicU64,
    /// Connections still open when the shutdown grace period ran out.
    pub cut: AtomicU64,
    /// Bytes echoed back over stream connections: written to the socket, less
    /// those still queued in it when the server closed the connection early.
    pub stream_bytes: AtomicU64,
    /// Bytes written back that were still queued in the socket when the server
    /// closed the connection early (idle, or cut at shutdown), so were likely
    /// never delivered: a peer that reads nothing is reset.
    pub stream_bytes_unsent: AtomicU64,
    /// UDP datagrams echoed.
    pub datagrams: AtomicU64,
    /// UDP bytes echoed.
    pub datagram_bytes: AtomicU64,
    /// UDP datagrams dropped because their source could start a reflection loop.
    pub datagrams_refused: AtomicU64,
    /// UDP datagrams dropped by the per-source rate limit.
    pub datagrams_limited: AtomicU64,
    /// UDP datagrams dropped because the same one kept coming back from the
    /// same address, as in a loop between two echo services.
    pub datagrams_looping: AtomicU64,
    /// `STATUS=` lines for the service manager dropped because its socket's
    /// queue was full: it was not reading, and waiting for it would stall the server.
    pub notify_dropped: AtomicU64,
}

impl Stats {
    /// Adds one to `counter`.
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Takes one from `counter`, for gauges such as `active`.
    pub(crate) fn drop_one(counter: &AtomicU64) {
        counter.fetch_sub(1, Relaxed);
    }

    /// Adds `n` to `counter`.
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Relaxed);
    }

    /// Moves `n` bytes from the echoed total to the unsent one, for a
    /// connection closed with them still queued.
    pub(crate) fn unsend(&self, n: u64) {
        self.stream_bytes.fetch_sub(n, Relaxed);
        self.stream_bytes_unsent.fetch_add(n, Relaxed);
    }

    /// Takes a consistent-enough copy of every counter for a log line.
    pub fn snapshot(&self) -> Totals {
        Totals {
            accepted: self.accepted.load(Relaxed),
            active: self.active.load(Relaxed),
            idle_closed: self.idle_closed.load(Relaxed),
            refused: self.refused.load(Relaxed),
            failed: self.failed.load(Relaxed),
            cut: self.cut.load(Relaxed),
            stream_bytes: self.stream_bytes.load(Relaxed),
            stream_bytes_unsent: self.stream_bytes_unsent.load(Relaxed),
            datagrams: self.datagrams.load(Relaxed),
            datagram_bytes: self.datagram_bytes.load(Relaxed),
            datagrams_refused: self.datagrams_refused.load(Relaxed),
            datagrams_limited: self.datagrams_limited.load(Relaxed),
            datagrams_looping: self.datagrams_looping.load(Relaxed),
            notify_dropped: self.notify_dropped.load(Relaxed),
        }
    }
}

/// A copy of [`Stats`] at one moment; its `Display` is the totals log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(missing_docs)] // The fields mirror `Stats`, documented there.
pub struct Totals {
    pub accepted: u64,
    pub active: u64,
    pub idle_closed: u64,
    pub refused: u64,
    pub failed: u64,
    pub cut: u64,
    pub stream_bytes: u64,
    pub stream_bytes_unsent: u64,
    pub datagrams: u64,
    pub datagram_bytes: u64,
    pub datagrams_refused: u64,
    pub datagrams_limited: u64,
    pub datagrams_looping: u64,
    pub notify_dropped: u64,
}

impl Totals {
    /// Logs the totals at info level with `message`, each count a field of
    /// its own (numbers a log shipper can read), with the log lines dropped so far.
    pub fn log(&self, message: &str) {
        info!(
            accepted = self.accepted,
            active = self.active,
            idle_closed = self.idle_closed,
            refused = self.refused,
            failed = self.failed,
            cut = self.cut,
            bytes = self.stream_bytes,
            bytes_unsent = self.stream_bytes_unsent,
            udp_datagrams = self.datagrams,
            udp_bytes = self.datagram_bytes,
            udp_refused = self.datagrams_refused,
            udp_rate_limited = self.datagrams_limited,
            udp_loops = self.datagrams_looping,
            notify_dropped = self.notify_dropped,
            log_lines_dropped = crate::log::dropped_lines(),
            "{message}"
        );
    }
}

impl fmt::Display for Totals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "accepted={} active={} idle_closed={} refused={} failed={} cut={} bytes={} bytes_unsent={} \
             udp_datagrams={} udp_bytes={} udp_refused={} udp_rate_limited={} udp_loops={} \
             notify_dropped={}",
            self.accepted,
            self.active,
            self.idle_closed,
            self.refused,
            self.failed,
            self.cut,
            self.stream_bytes,
            self.stream_bytes_unsent,
            self.datagrams,
            self.datagram_bytes,
            self.datagrams_refused,
            self.datagrams_limited,
            self.datagrams_looping,
            self.notify_dropped,
        )
    }
}
