//! `--metrics`: the totals, the connection limit and the process's own
//! figures as Prometheus scrapes them (`GET /metrics`, text format 0.0.4),
//! served over HTTP by hyper from a thread of its own, so a scrape never
//! runs on an event loop or a UDP task and a hostile scraper can hold no
//! more than this endpoint's own few places.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::stats::{
    CAUSED_METRICS, CONNECTION_LIMIT, COUNTERS, Counter, CounterKind, LOG_LINES_DROPPED, Stats,
};

/// Connections served at once; one more is closed as soon as it is
/// accepted, so scrapers, slow or not, hold at most this many descriptors.
pub const MAX_CONNECTIONS: usize = 8;
/// Descriptors the endpoint may hold at once, which a default connection
/// limit leaves to it: its listener, its runtime's epoll set and wakers,
/// its connections, one more being closed, and a `/proc` directory being
/// read, with a few to spare.
pub const DESCRIPTORS: usize = MAX_CONNECTIONS + 8;
/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may last in all, request and response: one
/// request each (no keep-alive), so a scraper that stops reading lets go too.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// The most a request's headers may take: a scrape needs a few hundred bytes.
const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// How long accepting pauses after an error that is not the connection's
/// own (out of descriptors), which would otherwise recur at once.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// The media type of the text exposition format written here.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The endpoint's thread, stopped and joined when dropped.
#[derive(Debug)]
pub struct Metrics {
    stop: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl Metrics {
    /// Serves `/metrics` on `listener` (bound, non-blocking) from a thread
    /// of its own with a current-thread tokio runtime, reading `stats` and
    /// reporting `connection_limit`, until [`Metrics::stop`].
    ///
    /// # Errors
    /// The runtime or the thread could not be made, or the listener could
    /// not be registered with the runtime (out of descriptors or memory).
    pub fn start(
        listener: TcpListener,
        stats: Arc<Stats>,
        connection_limit: usize,
    ) -> io::Result<Metrics> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let pid = std::process::id();
        let figures = Arc::new(Figures {
            stats,
            connection_limit: u64::try_from(connection_limit).unwrap_or(u64::MAX),
            pid,
            // The start does not change: read once, so every scrape says the same.
            start_time: echo_os::process::start_time(pid)
                .inspect_err(|err| debug!(error = %err, "metrics: no process start time"))
                .ok(),
        });
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || runtime.block_on(accept(listener, figures, stopped)))?;
        Ok(Metrics {
            stop,
            thread: Some(thread),
        })
    }

    /// Closes the listener and every connection at once; the thread ends
    /// soon after (dropping `self` waits for it).
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for Metrics {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            // Nothing on the thread outlasts the cancellation but the
            // runtime's drop, which drops the connections' tasks.
            let _ = thread.join();
        }
    }
}

/// Accepts until `stop`, serving each connection in a task of its own while
/// a place is free; returning drops the listener, and the runtime's drop
/// the connections.
async fn accept(listener: tokio::net::TcpListener, figures: Arc<Figures>, stop: CancellationToken) {
    let places = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                debug!(error = %err, "metrics: accept failed, pausing");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(ACCEPT_PAUSE) => continue,
                }
            }
        };
        let Ok(place) = Arc::clone(&places).try_acquire_owned() else {
            debug!(%peer, "metrics: {MAX_CONNECTIONS} connections already, closing one more");
            continue;
        };
        let figures = Arc::clone(&figures);
        tokio::spawn(async move {
            let _place = place;
            let service = service_fn(move |request| {
                let response = respond(&request, &figures);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_REQUEST_BYTES)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => debug!(%peer, error = %err, "metrics: connection failed"),
                Err(_) => debug!(%peer, "metrics: connection timed out"),
            }
        });
    }
}

/// The answer to one request: the metrics for `GET` or `HEAD /metrics`
/// (hyper leaves out the body of an answer to `HEAD`), 404 for any other
/// path and 405 for any other method.
fn respond(request: &Request<Incoming>, figures: &Figures) -> Response<Full<Bytes>> {
    if request.uri().path() != "/metrics" {
        let body = Bytes::from_static(b"not found: the metrics are at /metrics\n");
        return answer(StatusCode::NOT_FOUND, body, (CONTENT_TYPE, "text/plain"));
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let body = Bytes::from_static(b"method not allowed: GET /metrics\n");
        return answer(StatusCode::METHOD_NOT_ALLOWED, body, (ALLOW, "GET, HEAD"));
    }
    let body = Bytes::from(exposition(&figures.read()));
    answer(StatusCode::OK, body, (CONTENT_TYPE, TEXT_FORMAT))
}

fn answer(
    status: StatusCode,
    body: Bytes,
    (name, value): (HeaderName, &'static str),
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(name, HeaderValue::from_static(value));
    response
}

/// What a scrape reads from, shared by the endpoint's tasks.
#[derive(Debug)]
struct Figures {
    stats: Arc<Stats>,
    connection_limit: u64,
    pid: u32,
    start_time: Option<SystemTime>,
}

/// One scrape's values, read at one moment; a process figure that could not
/// be read is `None`, and left out.
#[derive(Debug)]
struct Reading {
    /// Each row of [`COUNTERS`], [`LOG_LINES_DROPPED`] and
    /// [`CONNECTION_LIMIT`], with its value, in that order.
    values: Vec<(Counter, u64)>,
    cpu_seconds: Option<f64>,
    resident_bytes: Option<u64>,
    open_fds: Option<u64>,
    max_fds: Option<u64>,
    start_time_seconds: Option<f64>,
}

impl Figures {
    /// Reads every figure now: the counters are atomics, the process's
    /// figures come from the kernel (`/proc`, `getrusage`, `getrlimit`), read
    /// on this thread only.
    fn read(&self) -> Reading {
        fn seen<T, E: std::fmt::Display>(what: &str, read: Result<T, E>) -> Option<T> {
            read.inspect_err(|err| debug!(error = %err, "metrics: no {what}"))
                .ok()
        }
        let totals = self.stats.snapshot();
        let values = COUNTERS
            .iter()
            .copied()
            .zip(totals.values())
            .chain([
                (LOG_LINES_DROPPED, crate::log::dropped_lines()),
                (CONNECTION_LIMIT, self.connection_limit),
            ])
            .collect();
        let process = echo_os::process::resident_kib(self.pid);
        Reading {
            values,
            cpu_seconds: seen("CPU time", echo_os::process::own_cpu_time())
                .map(|time| time.as_secs_f64()),
            resident_bytes: seen("resident memory", process).map(|kib| kib * 1024),
            open_fds: seen("open descriptors", echo_os::process::open_fds(self.pid))
                .map(|fds| fds as u64),
            max_fds: seen("descriptor limit", echo_os::fd_limit::soft()),
            start_time_seconds: self.start_time.map(|start| {
                start
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs_f64()
            }),
        }
    }
}

/// The standard process metrics, as Prometheus's own client libraries name
/// and describe them: (name, help, type).
const PROCESS_METRICS: [(&str, &str, &str); 5] = [
    (
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.",
        "counter",
    ),
    (
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        "gauge",
    ),
    (
        "process_open_fds",
        "Number of open file descriptors.",
        "gauge",
    ),
    (
        "process_max_fds",
        "Maximum number of open file descriptors.",
        "gauge",
    ),
    (
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        "gauge",
    ),
];

/// `reading` in the text exposition format 0.0.4: each metric once, with
/// `# HELP` and `# TYPE`, and its samples together, in the table's order.
fn exposition(reading: &Reading) -> String {
    let mut text = String::new();
    let mut written: Vec<&str> = Vec::new();
    for (counter, _) in &reading.values {
        if written.contains(&counter.metric) {
            continue;
        }
        written.push(counter.metric);
        let help = match counter.cause {
            None => counter.help,
            Some(_) => CAUSED_METRICS
                .iter()
                .find(|(metric, _)| *metric == counter.metric)
                .map_or(counter.help, |(_, help)| help),
        };
        let kind = match counter.kind {
            CounterKind::Counter => "counter",
            CounterKind::Gauge => "gauge",
        };
        header(&mut text, counter.metric, help, kind);
        for (member, value) in &reading.values {
            if member.metric != counter.metric {
                continue;
            }
            match member.cause {
                None => writeln!(text, "{} {value}", member.metric),
                Some(cause) => writeln!(text, "{}{{cause=\"{cause}\"}} {value}", member.metric),
            }
            .unwrap_or_default();
        }
    }
    let process = [
        reading.cpu_seconds.map(|value| value.to_string()),
        reading.resident_bytes.map(|value| value.to_string()),
        reading.open_fds.map(|value| value.to_string()),
        reading.max_fds.map(|value| value.to_string()),
        reading.start_time_seconds.map(|value| value.to_string()),
    ];
    for ((name, help, kind), value) in PROCESS_METRICS.iter().zip(process) {
        if let Some(value) = value {
            header(&mut text, name, help, kind);
            writeln!(text, "{name} {value}").unwrap_or_default();
        }
    }
    text
}

/// The `# HELP` and `# TYPE` lines of metric `name`.
fn header(text: &mut String, name: &str, help: &str, kind: &str) {
    // The format escapes only a backslash and a line break in help text.
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}").unwrap_or_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading() -> Reading {
        let values = COUNTERS
            .iter()
            .copied()
            .zip(1..)
            .chain([(LOG_LINES_DROPPED, 22), (CONNECTION_LIMIT, 1000)])
            .collect();
        Reading {
            values,
            cpu_seconds: Some(0.25),
            resident_bytes: Some(4096 * 1024),
            open_fds: Some(12),
            max_fds: Some(20_000),
            start_time_seconds: Some(1_700_000_000.5),
        }
    }

    #[test]
    fn each_metric_has_its_help_type_and_samples_together() {
        let text = exposition(&reading());
        let samples: Vec<&str> = text.lines().filter(|line| !line.starts_with('#')).collect();
        assert_eq!(
            samples,
            [
                "echo_connections_accepted_total 1",
                "echo_connections_active 2",
                "echo_connections_closed_total{cause=\"idle\"} 3",
                "echo_connections_closed_total{cause=\"error\"} 5",
                "echo_connections_closed_total{cause=\"cut\"} 6",
                "echo_connections_aborted_total 4",
                "echo_stream_echoed_bytes_total 7",
                "echo_stream_unsent_bytes_total 8",
                "echo_udp_echoed_datagrams_total 9",
                "echo_udp_echoed_bytes_total 10",
                "echo_udp_dropped_datagrams_total{cause=\"reflection\"} 11",
                "echo_udp_dropped_datagrams_total{cause=\"rate_limit\"} 12",
                "echo_udp_dropped_datagrams_total{cause=\"loop\"} 13",
                "echo_tls_handshakes_total 14",
                "echo_tls_handshakes_failed_total{cause=\"timeout\"} 15",
                "echo_tls_handshakes_failed_total{cause=\"protocol\"} 16",
                "echo_tls_handshakes_failed_total{cause=\"client_certificate\"} 17",
                "echo_tls_handshakes_failed_total{cause=\"peer_alert\"} 18",
                "echo_tls_handshakes_failed_total{cause=\"incompatible\"} 19",
                "echo_tls_handshakes_failed_total{cause=\"closed\"} 20",
                "echo_notifications_dropped_total 21",
                "echo_log_lines_dropped_total 22",
                "echo_connections_limit 1000",
                "process_cpu_seconds_total 0.25",
                "process_resident_memory_bytes 4194304",
                "process_open_fds 12",
                "process_max_fds 20000",
                "process_start_time_seconds 1700000000.5",
            ]
        );
        assert!(text.starts_with(
            "# HELP echo_connections_accepted_total Stream connections accepted (TCP, Unix and TLS).\n\
             # TYPE echo_connections_accepted_total counter\n\
             echo_connections_accepted_total 1\n\
             # HELP echo_connections_active Stream connections being served right now.\n\
             # TYPE echo_connections_active gauge\n"
        ));
        assert!(text.contains(
            "# HELP echo_connections_closed_total Stream connections that ended other than by \
             their client's end of stream, by cause: idle (the idle timeout), error (reset by the \
             peer, mostly), cut (still open when the shutdown grace period ran out).\n\
             # TYPE echo_connections_closed_total counter\n\
             echo_connections_closed_total{cause=\"idle\"} 3\n"
        ));
        // Every metric's HELP and TYPE come once, before its samples.
        for metric in samples.iter().map(|sample| sample.split(['{', ' ']).next()) {
            let metric = metric.expect("a name");
            for line in ["HELP", "TYPE"] {
                let once = text.matches(&format!("# {line} {metric} ")).count();
                assert_eq!(once, 1, "# {line} {metric}");
            }
        }
    }

    #[test]
    fn a_process_figure_that_cannot_be_read_is_left_out_whole() {
        let text = exposition(&Reading {
            open_fds: None,
            ..reading()
        });
        assert!(!text.contains("process_open_fds"), "{text}");
        assert!(text.contains("\nprocess_max_fds 20000\n"), "{text}");
    }

    #[test]
    fn help_text_escapes_what_the_format_needs() {
        let mut text = String::new();
        header(&mut text, "m", "a\\b\nc", "gauge");
        assert_eq!(text, "# HELP m a\\\\b\\nc\n# TYPE m gauge\n");
    }

    #[test]
    fn this_process_reads_as_the_kernel_says() {
        let figures = Figures {
            stats: Arc::default(),
            connection_limit: 7,
            pid: std::process::id(),
            start_time: echo_os::process::start_time(std::process::id()).ok(),
        };
        let reading = figures.read();
        assert!(reading.cpu_seconds.is_some_and(|cpu| cpu > 0.0));
        assert!(
            reading
                .resident_bytes
                .is_some_and(|bytes| bytes > 100 * 1024)
        );
        assert!(reading.open_fds.is_some_and(|fds| fds >= 3));
        assert!(
            reading
                .max_fds
                .is_some_and(|fds| fds >= reading.open_fds.unwrap_or(0))
        );
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970");
        assert!(
            reading
                .start_time_seconds
                .is_some_and(|start| start <= now.as_secs_f64() && start > 1.6e9)
        );
        assert_eq!(reading.values.last(), Some(&(CONNECTION_LIMIT, 7)));
    }
}
