//! Running totals of what the server did, cheap enough to bump on the hot path.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tracing::info;

/// Whether a number only grows, or goes up and down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterKind {
    /// A running total since the start.
    Counter,
    /// A level at the moment it is read.
    Gauge,
}

/// One of the totals, as reports name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    /// Its name in the log line, `STATUS=` and the JSON fields.
    pub name: &'static str,
    /// What it counts, one sentence.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: CounterKind,
    /// The Prometheus metric it is a sample of (`--metrics`), in base units,
    /// a counter's ending in `_total`.
    pub metric: &'static str,
    /// Its `cause` label, when the metric sums several totals that differ
    /// only in why they happened ([`CAUSED_METRICS`] has their help).
    pub cause: Option<&'static str>,
}

/// `Some` of a cause written in the table, or `None` where it has none.
macro_rules! cause {
    () => {
        None
    };
    ($cause:literal) => {
        Some($cause)
    };
}

/// Writes, from one table, [`Stats`], [`Totals`], [`COUNTERS`], the
/// snapshot and the totals log line, so that a count cannot be added to
/// one of them and forgotten in another.
macro_rules! totals {
    ($(
        $(#[doc = $help:literal])+
        $field:ident => $name:ident, $kind:ident, $metric:ident $({ cause: $cause:literal })?;
    )+) => {
        /// Counters shared by every listener, event loop and UDP task.
        ///
        /// Each is a relaxed atomic: they are independent tallies read only for
        /// reporting, so no ordering between them is needed.
        #[derive(Debug, Default)]
        pub struct Stats {
            $( $(#[doc = $help])+ pub $field: AtomicU64, )+
        }

        /// A copy of [`Stats`] at one moment; its `Display` is the totals line
        /// of `STATUS=`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct Totals {
            $( $(#[doc = $help])+ pub $field: u64, )+
        }

        /// Every total, in the order reports give them, with the name they
        /// give it (which is not always the field's: `bytes` is `stream_bytes`).
        pub const COUNTERS: &[Counter] = &[
            $( Counter {
                name: stringify!($name),
                help: concat!($($help),+).trim_ascii_start(),
                kind: CounterKind::$kind,
                metric: stringify!($metric),
                cause: cause!($($cause)?),
            }, )+
        ];

        impl Stats {
            /// Takes a consistent-enough copy of every counter for a log line.
            pub fn snapshot(&self) -> Totals {
                Totals { $( $field: self.$field.load(Relaxed), )+ }
            }
        }

        impl Totals {
            /// Each total's value, in the order of [`COUNTERS`].
            pub fn values(&self) -> [u64; COUNTERS.len()] {
                [ $( self.$field, )+ ]
            }

            /// Logs the totals at info level with `message`, each count a field of
            /// its own (numbers a log shipper can read), with the log lines dropped so far.
            pub fn log(&self, message: &str) {
                // tracing's field names are fixed at compile time: the table
                // writes them here, in its order.
                info!(
                    $( $name = self.$field, )+
                    log_lines_dropped = crate::log::dropped_lines(),
                    "{message}"
                );
            }
        }
    };
}

totals! {
    /// Stream connections accepted (TCP, Unix and TLS).
    accepted => accepted, Counter, echo_connections_accepted_total;
    /// Stream connections being served right now.
    active => active, Gauge, echo_connections_active;
    /// Connections closed because nothing moved for the idle timeout.
    idle_closed => idle_closed, Counter, echo_connections_closed_total { cause: "idle" };
    /// Connections the kernel handed over already aborted or reset, so they
    /// could not be served at all.
    refused => refused, Counter, echo_connections_aborted_total;
    /// Connections that ended in an error (reset by the peer, mostly).
    failed => failed, Counter, echo_connections_closed_total { cause: "error" };
    /// Connections still open when the shutdown grace period ran out.
    cut => cut, Counter, echo_connections_closed_total { cause: "cut" };
    /// Bytes echoed back over stream connections: written to the socket, less
    /// those still queued in it when the server closed the connection early.
    stream_bytes => bytes, Counter, echo_stream_echoed_bytes_total;
    /// Bytes written back that were still queued in the socket when the server
    /// closed the connection early (idle, or cut at shutdown), so were likely
    /// never delivered: a peer that reads nothing is reset.
    stream_bytes_unsent => bytes_unsent, Counter, echo_stream_unsent_bytes_total;
    /// UDP datagrams echoed.
    datagrams => udp_datagrams, Counter, echo_udp_echoed_datagrams_total;
    /// UDP bytes echoed.
    datagram_bytes => udp_bytes, Counter, echo_udp_echoed_bytes_total;
    /// UDP datagrams dropped because their source could start a reflection loop.
    datagrams_refused => udp_refused, Counter,
        echo_udp_dropped_datagrams_total { cause: "reflection" };
    /// UDP datagrams dropped by the per-source rate limit.
    datagrams_limited => udp_rate_limited, Counter,
        echo_udp_dropped_datagrams_total { cause: "rate_limit" };
    /// UDP datagrams dropped because the same one kept coming back from the
    /// same address, as in a loop between two echo services.
    datagrams_looping => udp_loops, Counter,
        echo_udp_dropped_datagrams_total { cause: "loop" };
    /// TLS handshakes completed.
    tls_handshakes => tls_handshakes, Counter, echo_tls_handshakes_total;
    /// TLS handshakes that did not finish within --tls-handshake-timeout.
    tls_failed_timeout => tls_handshake_failed_timeout, Counter,
        echo_tls_handshakes_failed_total { cause: "timeout" };
    /// TLS handshakes given what is not TLS (plaintext to a TLS port, say) or
    /// records that break the protocol.
    tls_failed_protocol => tls_handshake_failed_protocol, Counter,
        echo_tls_handshakes_failed_total { cause: "protocol" };
    /// TLS handshakes whose client presented no certificate, or one that
    /// --tls-client-ca did not issue.
    tls_failed_client_certificate => tls_handshake_failed_client_certificate, Counter,
        echo_tls_handshakes_failed_total { cause: "client_certificate" };
    /// TLS handshakes the client ended with an alert: it did not accept the
    /// server's certificate (expired, another name, an unknown issuer), mostly.
    tls_failed_peer_alert => tls_handshake_failed_peer_alert, Counter,
        echo_tls_handshakes_failed_total { cause: "peer_alert" };
    /// TLS handshakes with no version, cipher suite, group or application
    /// protocol (ALPN) in common.
    tls_failed_incompatible => tls_handshake_failed_incompatible, Counter,
        echo_tls_handshakes_failed_total { cause: "incompatible" };
    /// TLS handshakes whose client closed or reset the connection before the end.
    tls_failed_closed => tls_handshake_failed_closed, Counter,
        echo_tls_handshakes_failed_total { cause: "closed" };
    /// `STATUS=` lines for the service manager dropped because its socket's
    /// queue was full: it was not reading, and waiting for it would stall the server.
    notify_dropped => notify_dropped, Counter, echo_notifications_dropped_total;
}

/// The help of each metric that sums several rows of [`COUNTERS`] by their
/// `cause`, which no one row can give.
pub const CAUSED_METRICS: &[(&str, &str)] = &[
    (
        "echo_connections_closed_total",
        "Stream connections that ended other than by their client's end of stream, by cause: \
         idle (the idle timeout), error (reset by the peer, mostly), cut (still open when the \
         shutdown grace period ran out).",
    ),
    (
        "echo_tls_handshakes_failed_total",
        "TLS handshakes that failed, by cause: timeout (--tls-handshake-timeout), protocol \
         (not TLS, or records that break it), client_certificate (none, or not issued by \
         --tls-client-ca), peer_alert (the client refused ours), incompatible (no version, \
         suite, group or ALPN protocol in common), closed (the client left first).",
    ),
    (
        "echo_udp_dropped_datagrams_total",
        "UDP datagrams dropped unanswered, by cause: reflection (a source that could start a \
         reflection loop), rate_limit (the per-source rate limit), loop (the same datagram \
         kept coming back from the same address).",
    ),
];

/// Log lines dropped because stderr could not take them: kept by the log
/// writer ([`crate::log::dropped_lines`]), not in [`Stats`], and reported
/// beside the table (the totals line writes its name by hand, as `tracing`
/// needs).
pub const LOG_LINES_DROPPED: Counter = Counter {
    name: "log_lines_dropped",
    help: "Log lines dropped because stderr could not take them (not read, full or closed).",
    kind: CounterKind::Counter,
    metric: "echo_log_lines_dropped_total",
    cause: None,
};

/// The connection limit in force, a setting rather than a count: reported
/// beside the table, on `/metrics` only.
pub const CONNECTION_LIMIT: Counter = Counter {
    name: "max_connections",
    help: "Stream connections served at once at most, over all listeners (--max-connections).",
    kind: CounterKind::Gauge,
    metric: "echo_connections_limit",
    cause: None,
};

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
}

impl fmt::Display for Totals {
    /// `name=value` for each total, in the order of [`COUNTERS`], separated by spaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, (counter, value)) in COUNTERS.iter().zip(self.values()).enumerate() {
            let separator = if index == 0 { "" } else { " " };
            write!(f, "{separator}{}={value}", counter.name)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_every_total_once_in_the_table_order() {
        let totals = Totals {
            accepted: 1,
            active: 2,
            idle_closed: 3,
            refused: 4,
            failed: 5,
            cut: 6,
            stream_bytes: 7,
            stream_bytes_unsent: 8,
            datagrams: 9,
            datagram_bytes: 10,
            datagrams_refused: 11,
            datagrams_limited: 12,
            datagrams_looping: 13,
            tls_handshakes: 14,
            tls_failed_timeout: 15,
            tls_failed_protocol: 16,
            tls_failed_client_certificate: 17,
            tls_failed_peer_alert: 18,
            tls_failed_incompatible: 19,
            tls_failed_closed: 20,
            notify_dropped: 21,
        };
        assert_eq!(
            totals.to_string(),
            "accepted=1 active=2 idle_closed=3 refused=4 failed=5 cut=6 bytes=7 bytes_unsent=8 \
             udp_datagrams=9 udp_bytes=10 udp_refused=11 udp_rate_limited=12 udp_loops=13 \
             tls_handshakes=14 tls_handshake_failed_timeout=15 tls_handshake_failed_protocol=16 \
             tls_handshake_failed_client_certificate=17 tls_handshake_failed_peer_alert=18 \
             tls_handshake_failed_incompatible=19 tls_handshake_failed_closed=20 \
             notify_dropped=21"
        );
        let gauges: Vec<&str> = COUNTERS
            .iter()
            .filter(|counter| counter.kind == CounterKind::Gauge)
            .map(|counter| counter.name)
            .collect();
        assert_eq!(gauges, ["active"]);
        assert_eq!(COUNTERS[6].metric, "echo_stream_echoed_bytes_total");
        assert_eq!(
            COUNTERS[6].help,
            "Bytes echoed back over stream connections: written to the socket, less \
             those still queued in it when the server closed the connection early."
        );
    }

    #[test]
    fn every_metric_is_named_as_prometheus_wants_and_caused_ones_have_their_help() {
        let all = COUNTERS
            .iter()
            .chain([&LOG_LINES_DROPPED, &CONNECTION_LIMIT]);
        for counter in all.clone() {
            let name = counter.metric;
            assert!(name.starts_with("echo_"), "{name}");
            assert!(
                name.bytes()
                    .all(|byte| byte.is_ascii_lowercase() || byte == b'_'),
                "{name}"
            );
            assert_eq!(
                name.ends_with("_total"),
                counter.kind == CounterKind::Counter,
                "{name}: counters, and only they, end in _total"
            );
        }
        let caused: Vec<&str> = CAUSED_METRICS.iter().map(|(name, _)| *name).collect();
        for counter in all.clone() {
            assert_eq!(
                counter.cause.is_some(),
                caused.contains(&counter.metric),
                "{}: a metric split by cause has its help in CAUSED_METRICS, and no other",
                counter.name
            );
        }
        for metric in caused {
            let members: Vec<&Counter> = all.clone().filter(|c| c.metric == metric).collect();
            let mut causes: Vec<_> = members.iter().map(|c| c.cause).collect();
            causes.sort_unstable();
            causes.dedup();
            assert_eq!(causes.len(), members.len(), "{metric}: a cause twice");
            assert!(
                members.iter().all(|c| c.kind == members[0].kind),
                "{metric}"
            );
        }
        let closed: Vec<_> = COUNTERS
            .iter()
            .filter(|c| c.metric == "echo_connections_closed_total")
            .map(|c| (c.name, c.cause))
            .collect();
        assert_eq!(
            closed,
            [
                ("idle_closed", Some("idle")),
                ("failed", Some("error")),
                ("cut", Some("cut"))
            ]
        );
    }
}
