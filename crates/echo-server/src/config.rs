//! The server's settings, written once: each field's doc comment is its
//! `--help` text, its attribute its flag, environment variable and default,
//! so the `echo-server` command and the library's `server()` start alike.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use echo_proto::{DEFAULT_ADDR, Endpoint, parse_duration};

use crate::limits;
use crate::listen::ListenAddr;

/// How long connections in flight may take to finish after shutdown starts, by default.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);
/// How long a connection may sit with no byte moving before it is closed, by default.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How many UDP datagrams per second one source IP gets answered, by default.
pub const DEFAULT_UDP_RATE: u32 = 1_000;
/// How long a TLS handshake may take, by default.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How many event loops serve stream connections, by default: one is the
/// cheapest per operation (see BENCHMARKS.md for what a second buys).
pub const DEFAULT_EVENT_LOOPS: usize = 1;
/// The most event loops `--threads` may ask for, `auto` included.
pub const MAX_EVENT_LOOPS: usize = 64;

/// What to serve and how: `echo-server`'s flags, parsed straight into this
/// type, and `Config::default()` is what a bare `echo-server` runs (a test
/// holds the two together).
// The defaults are written as clap's strings and again in `Default`: the
// test `a_bare_command_line_is_the_default_config` in main.rs keeps them equal.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct Config {
    /// Where to listen: IP:PORT, [IPV6]:PORT, unix:PATH, or tls:IP:PORT for
    /// TLS echo (with --tls-cert and --tls-key); repeat for several.
    ///
    /// Port 0 picks a free port; the line `listening on <kind> <address>` on
    /// stdout tells which (kind tcp, udp, unix or tls). `[::]:PORT` is IPv6 only, so it can sit beside
    /// `0.0.0.0:PORT`. A Unix socket file is created with the process's umask
    /// (restrict who may connect with the directory's permissions); an existing
    /// one is replaced only if connecting to it is refused (nothing listens),
    /// and the file is removed at exit if it is still the one created.
    /// In the environment, separate several addresses with commas.
    #[arg(
        short,
        long = "listen",
        value_name = "ADDR",
        env = "ECHO_LISTEN",
        value_delimiter = ',',
        default_value = "127.0.0.1:7007"
    )]
    pub listen: Vec<ListenAddr>,

    /// Also echo UDP datagrams on every IP address listened on (same port).
    ///
    /// Datagrams from the ports of services that answer automatically
    /// (7, 9, 11, 13, 15, 17, 19, 37, 53, 69, 123, 137, 138, 161, 162), from
    /// port 0, from broadcast, multicast or unspecified addresses, and from
    /// the port of any of this server's UDP listeners are never answered, so
    /// the server cannot be made to talk to itself or to a well-known responder.
    /// In the environment, 1, yes, on or true (0, no, off, false) turn it on (off).
    #[arg(long, env = "ECHO_UDP", value_parser = clap::builder::BoolishValueParser::new())]
    pub udp: bool,

    /// UDP datagrams answered per second for each source IP; the excess is
    /// dropped and counted.
    ///
    /// Each UDP listener follows 16,384 source IPs one by one; while a flood
    /// of new sources keeps all of those places taken, the other sources share
    /// 1,024 budgets of N a second, so a newcomer is still answered and all
    /// answers stay within 17,408 times N a second (counted in one-second
    /// windows).
    /// With a limit, the same datagram from the same address is also answered
    /// at most 8 times in a row (copies within a second of each other), which
    /// ends a loop between two echo services, flood or not. 0 removes every
    /// limit: only for trusted networks, such as a benchmark's loopback.
    #[arg(long, value_name = "N", env = "ECHO_UDP_RATE", default_value_t = DEFAULT_UDP_RATE)]
    pub udp_rate: u32,

    /// Stream connections served at once, over all listeners.
    ///
    /// At the limit the server stops accepting: further clients wait in the
    /// kernel's queue and are served as connections finish; none is refused
    /// while the server runs.
    /// Default: the open-files limit (raised to its hard limit at start) minus
    /// 32, and minus 130 per event loop for its own descriptors and pipes (2
    /// with --splice never). When that leaves fewer than 256 connections, the
    /// server runs fewer event loops than --threads asks, with a warning; when
    /// even one loop cannot, it refuses to start.
    // `None` in a `Server` of the library's own is `limits::DEFAULT_MAX_CONNECTIONS`.
    #[arg(long, value_name = "N", env = "ECHO_MAX_CONNECTIONS",
          value_parser = clap::builder::TypedValueParser::map(
              clap::value_parser!(u64).range(1..),
              |n| usize::try_from(n).unwrap_or(usize::MAX)))]
    pub max_connections: Option<usize>,

    /// Close a connection once, for this long, it has read nothing and the peer
    /// has taken none of the bytes queued for it (0s: never).
    ///
    /// A peer still owed bytes gets two timeouts. A reader that takes at least
    /// 64 KiB per timeout (about 1.1 KB/s with the default) is never cut,
    /// however slow; a stopped reader, or a vanished peer, is closed within two
    /// timeouts, and reset when it is still owed bytes.
    #[arg(long, value_name = "DURATION", env = "ECHO_IDLE_TIMEOUT", default_value = "60s",
          value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// At shutdown, how long connections in flight may take to finish before they are closed.
    #[arg(long, value_name = "DURATION", env = "ECHO_GRACE", default_value = "5s",
          value_parser = parse_duration)]
    pub grace: Duration,

    /// Event loops serving stream connections, each a thread of its own: 1 to
    /// 64, or `auto`, one per CPU this process may use (its CPU affinity and
    /// cgroup quota included), at most 64.
    ///
    /// One is the cheapest per operation; more spread connections over more
    /// cores (each TCP listener then gets one SO_REUSEPORT socket per loop, and
    /// the kernel deals new connections among them), at some cost per
    /// operation in wake-ups. SO_REUSEPORT also lets another process of the
    /// same user bind the port and take a share of its clients, so with one
    /// loop it is not set. Unix and socket-activated listeners are served by
    /// the first.
    #[arg(long = "threads", value_name = "N", env = "ECHO_THREADS", default_value = "1",
          value_parser = parse_event_loops)]
    pub event_loops: usize,

    /// When TCP connections move bytes with splice(2), inside the kernel:
    /// `bulk`, once a connection keeps filling the read buffer, or `never`.
    ///
    /// Splicing roughly halves the server's CPU per byte of a bulk stream.
    /// Its cost moves to a client on the same machine, whose own pages come
    /// back to it, so a loopback test rig that needs the most bytes per
    /// second, not the cheapest server, may go faster with `never`.
    #[arg(long, value_name = "WHEN", env = "ECHO_SPLICE", default_value = "bulk")]
    pub splice: Splice,

    /// Serve Prometheus metrics at http://ADDR/metrics (ADDR is IP:PORT;
    /// off unless given).
    ///
    /// The counters of the totals line, the connections active and their
    /// limit, and the process's CPU time, memory, descriptors and start time,
    /// in Prometheus's text format. Served from a thread of its own, never an
    /// event loop's, to 8 connections at once (more are closed at once), each
    /// with 5 seconds to send its request and 10 in all; they do not count
    /// against --max-connections, and the endpoint closes when the drain
    /// starts. Port 0 picks a free port; the line `listening on metrics
    /// <address>` on stdout tells which. It answers anyone who can reach
    /// ADDR: keep it on an address only the scraper reaches.
    #[arg(long, value_name = "ADDR", env = "ECHO_METRICS", value_parser = parse_metrics_addr)]
    pub metrics: Option<SocketAddr>,

    /// How `tls:` listeners serve.
    #[command(flatten)]
    pub tls: TlsConfig,
}

/// The settings of `tls:` listeners: what they present, whom they accept,
/// how long a handshake may take.
#[derive(Debug, Clone, PartialEq, Eq, Default, clap::Args)]
#[command(next_help_heading = "TLS")]
pub struct TlsConfig {
    /// The certificate chain TLS listeners present (PEM: the server's
    /// certificate first, then its intermediates).
    ///
    /// Re-read, with --tls-key, when either file changes (looked at when a
    /// handshake starts, at most once a second), so a certificate renewed in
    /// place (certbot, a Kubernetes secret) is served with no restart or
    /// signal; a new pair that does not load is logged and the old one kept.
    #[arg(long, value_name = "FILE", env = "ECHO_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS#8, SEC1 or RSA).
    #[arg(long, value_name = "FILE", env = "ECHO_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Require a TLS client certificate issued by one of these CAs (PEM),
    /// and refuse clients without one (mutual TLS).
    ///
    /// The client's subject is in the debug log (RUST_LOG=debug).
    #[arg(long, value_name = "FILE", env = "ECHO_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,

    /// Application protocols (ALPN) to agree on, in order of preference,
    /// comma-separated: an echo has none of its own, so name those your
    /// clients offer (h2,http/1.1, say).
    ///
    /// Unset, ALPN is ignored; set, a client that offers only others is
    /// refused, and one that offers none is served.
    #[arg(
        long,
        value_name = "LIST",
        env = "ECHO_TLS_ALPN",
        value_delimiter = ','
    )]
    pub tls_alpn: Vec<String>,

    /// How long a TLS handshake may take from accept, however steadily its
    /// bytes come; a slower one is closed and counted.
    #[arg(long, value_name = "DURATION", env = "ECHO_TLS_HANDSHAKE_TIMEOUT",
          default_value = "10s", value_parser = parse_nonzero_duration)]
    pub tls_handshake_timeout: Duration,
}

/// A duration that is not zero, as `--tls-handshake-timeout` wants.
fn parse_nonzero_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text).map_err(|err| err.to_string())? {
        duration if duration.is_zero() => Err("must be more than 0s".to_owned()),
        duration => Ok(duration),
    }
}

/// `--threads`: a number of event loops from 1 to [`MAX_EVENT_LOOPS`], or
/// `auto`, one per CPU this process may use as
/// [`std::thread::available_parallelism`] counts them (CPU affinity and a
/// cgroup's quota included), at most [`MAX_EVENT_LOOPS`].
fn parse_event_loops(text: &str) -> Result<usize, String> {
    if text.trim() == "auto" {
        let cpus = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        return Ok(cpus.min(MAX_EVENT_LOOPS));
    }
    text.trim()
        .parse::<usize>()
        .ok()
        .filter(|loops| (1..=MAX_EVENT_LOOPS).contains(loops))
        .ok_or_else(|| format!("expected a number from 1 to {MAX_EVENT_LOOPS}, or auto"))
}

/// `--metrics`: an IP address and port, as `--listen` takes them (a Unix
/// socket is refused: Prometheus scrapes over TCP).
fn parse_metrics_addr(text: &str) -> Result<SocketAddr, String> {
    match text.parse::<Endpoint>() {
        Ok(Endpoint::Ip(addr)) => Ok(addr),
        Ok(Endpoint::Unix(_)) => Err(format!(
            "invalid address '{text}': metrics are served over TCP: expected IP:PORT or [IPV6]:PORT"
        )),
        Err(err) => Err(err.to_string()),
    }
}

/// The `--splice` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Splice {
    /// Connections that keep filling the read buffer splice.
    Bulk,
    /// Every byte is copied through user space.
    Never,
}

impl Config {
    /// The idle timeout, `None` when connections are never closed for idling (`0s`).
    pub fn idle_timeout(&self) -> Option<Duration> {
        (!self.idle_timeout.is_zero()).then_some(self.idle_timeout)
    }

    /// The connection limit a [`crate::Server`] applies: as given, or
    /// [`limits::DEFAULT_MAX_CONNECTIONS`] (`serve` derives it from the
    /// open-files limit before it gets here).
    pub(crate) fn connection_limit(&self) -> usize {
        self.max_connections
            .unwrap_or(limits::DEFAULT_MAX_CONNECTIONS)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![ListenAddr::Plain(Endpoint::Ip(DEFAULT_ADDR))],
            udp: false,
            udp_rate: DEFAULT_UDP_RATE,
            max_connections: None,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            grace: DEFAULT_GRACE,
            event_loops: DEFAULT_EVENT_LOOPS,
            splice: Splice::Bulk,
            metrics: None,
            tls: TlsConfig {
                tls_handshake_timeout: DEFAULT_TLS_HANDSHAKE_TIMEOUT,
                ..TlsConfig::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_auto_is_one_loop_per_cpu_this_process_may_use() {
        let cpus = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        assert_eq!(parse_event_loops("auto"), Ok(cpus.min(MAX_EVENT_LOOPS)));
        assert_eq!(parse_event_loops("1"), Ok(1));
        assert_eq!(parse_event_loops("64"), Ok(64));
        for refused in ["0", "65", "-1", "two", "", "Auto"] {
            assert_eq!(
                parse_event_loops(refused),
                Err("expected a number from 1 to 64, or auto".to_owned()),
                "{refused:?}"
            );
        }
    }

    #[test]
    fn metrics_take_an_ip_address_and_port_only() {
        assert_eq!(
            parse_metrics_addr("127.0.0.1:9100"),
            Ok("127.0.0.1:9100".parse().expect("literal"))
        );
        assert_eq!(
            parse_metrics_addr("unix:/tmp/m.sock"),
            Err(
                "invalid address 'unix:/tmp/m.sock': metrics are served over TCP: \
                 expected IP:PORT or [IPV6]:PORT"
                    .to_owned()
            )
        );
        // The port alone is shown the address meant, as for --listen.
        let message = parse_metrics_addr("9100").expect_err("a port alone");
        assert!(
            message.contains("127.0.0.1:9100 (this machine)"),
            "{message}"
        );
    }
}
