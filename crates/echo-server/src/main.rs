//! The `echo-server` command: parses flags, sets up logging, and hands over
//! to the library's `serve`, the start-up path `server()` uses too.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory as _, Parser};
use echo_proto::{Endpoint, parse_duration};
use echo_server::{Options, log};

/// An RFC 862 echo server: every byte a client sends comes back unchanged.
///
/// A TCP message ends when the client half-closes its side; the server then
/// finishes echoing and closes. Start it, then try
/// `echo-client "hello"` or `printf hello | nc -N 127.0.0.1 7007`.
#[derive(Debug, Parser)]
#[command(version, after_long_help = AFTER_HELP, after_help = "See --help for signals, exit codes and socket activation.")]
struct Cli {
    /// Where to listen: IP:PORT, [IPV6]:PORT or unix:PATH; repeat for several.
    ///
    /// Port 0 picks a free port; the line `listening on <kind> <address>` on
    /// stdout tells which. `[::]:PORT` is IPv6 only, so it can sit beside
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
    listen: Vec<Endpoint>,

    /// Also echo UDP datagrams on every IP address listened on (same port).
    ///
    /// Datagrams from the ports of services that answer automatically
    /// (7, 9, 11, 13, 15, 17, 19, 37, 53, 69, 123, 137, 138, 161, 162), from
    /// port 0, from broadcast, multicast or unspecified addresses, and from
    /// the port of any of this server's UDP listeners are never answered, so
    /// the server cannot be made to talk to itself or to a well-known responder.
    /// In the environment, 1, yes, on or true (0, no, off, false) turn it on (off).
    #[arg(long, env = "ECHO_UDP", value_parser = clap::builder::BoolishValueParser::new())]
    udp: bool,

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
    #[arg(long, value_name = "N", env = "ECHO_UDP_RATE", default_value_t = echo_server::DEFAULT_UDP_RATE)]
    udp_rate: u32,

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
    #[arg(long, value_name = "N", env = "ECHO_MAX_CONNECTIONS",
          value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: Option<u64>,

    /// Close a connection once, for this long, it has read nothing and the peer
    /// has taken none of the bytes queued for it (0s: never).
    ///
    /// A peer still owed bytes gets two timeouts. A reader that takes at least
    /// 64 KiB per timeout (about 1.1 KB/s with the default) is never cut,
    /// however slow; a stopped reader, or a vanished peer, is closed within two
    /// timeouts, and reset when it is still owed bytes.
    #[arg(long, value_name = "DURATION", env = "ECHO_IDLE_TIMEOUT", default_value = "60s",
          value_parser = parse_duration)]
    idle_timeout: Duration,

    /// At shutdown, how long connections in flight may take to finish before they are closed.
    #[arg(long, value_name = "DURATION", env = "ECHO_GRACE", default_value = "5s",
          value_parser = parse_duration)]
    grace: Duration,

    /// Event loops serving stream connections, each a thread of its own.
    ///
    /// One is the cheapest per operation; more spread connections over more
    /// cores (each TCP listener then gets one SO_REUSEPORT socket per loop, and
    /// the kernel deals new connections among them), at some cost per
    /// operation in wake-ups. SO_REUSEPORT also lets another process of the
    /// same user bind the port and take a share of its clients, so with one
    /// loop it is not set. Unix and socket-activated listeners are served by
    /// the first.
    // The default is echo_server::DEFAULT_EVENT_LOOPS (asserted below).
    #[arg(long, value_name = "N", env = "ECHO_THREADS", default_value = "1",
          value_parser = clap::value_parser!(u8).range(1..=64))]
    threads: u8,

    /// When TCP connections move bytes with splice(2), inside the kernel:
    /// `bulk`, once a connection keeps filling the read buffer, or `never`.
    ///
    /// Splicing roughly halves the server's CPU per byte of a bulk stream.
    /// Its cost moves to a client on the same machine, whose own pages come
    /// back to it, so a loopback test rig that needs the most bytes per
    /// second, not the cheapest server, may go faster with `never`.
    #[arg(long, value_name = "WHEN", env = "ECHO_SPLICE", default_value = "bulk")]
    splice: Splice,

    /// How log lines on stderr are written: `human`, a line of text each, or
    /// `json`, one JSON object each, with the totals as numeric fields, for
    /// log shippers.
    #[arg(
        long,
        value_name = "FORMAT",
        env = "ECHO_LOG_FORMAT",
        default_value = "human"
    )]
    log_format: LogFormat,

    #[command(flatten)]
    generate: echo_generate::Generate,
}

const _: () = assert!(echo_server::DEFAULT_EVENT_LOOPS == 1);

/// The `--splice` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Splice {
    /// Connections that keep filling the read buffer splice.
    Bulk,
    /// Every byte is copied through user space.
    Never,
}

/// The `--log-format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// A line of text per event.
    Human,
    /// A JSON object per event.
    Json,
}

const AFTER_HELP: &str = "\
Shutdown:
  Ctrl-C (SIGINT), SIGTERM, SIGHUP, or Ctrl-D when stdin is a terminal stop
  accepting, let connections in flight finish within --grace, then exit.
  With stdin at /dev/null or a pipe, as under a process manager, end of input
  is ignored. SIGHUP ignored at start (`nohup echo-server &`) stays ignored.
  A second signal once the drain has started exits at once (signals that
  arrive together count as one).
  SIGUSR1 logs the running totals without stopping.

Exit status:
  0    stopped cleanly (after the drain, even if it had to close connections)
  1    could not start (address in use, permission denied, bad address)
  2    bad command line
  129  second SIGHUP once the drain has started
  130  second SIGINT once the drain has started
  143  second SIGTERM once the drain has started

Socket activation:
  With LISTEN_FDS set (systemd, or any launcher speaking its protocol), the
  inherited TCP, UDP and Unix stream sockets are served and --listen is ignored.

Logging:
  Logs go to stderr; RUST_LOG sets the level (default info; debug shows each
  connection). Stdout carries only the `listening on` lines. A stderr that
  is closed, full or not read never stops the server: lines that cannot be
  written are dropped, and their count is in the totals. With --log-format
  json every line the server logs is a JSON object, the start-up `error:`
  line included; only the command-line errors and --help, which come before
  logging starts, stay plain text.

Service manager:
  With NOTIFY_SOCKET set (systemd's Type=notify), the server sends READY=1
  once every listener is bound and announced, STOPPING=1 when the drain
  starts, each with a STATUS= line of what it is doing, and the totals as
  STATUS= on SIGUSR1. Notifications never block: when the service manager
  does not read, READY=1 and STOPPING=1 are retried until they go (the exit
  does not wait for them), and STATUS= lines that cannot go are dropped and
  counted in notify_dropped. NOTIFY_SOCKET may name a path, or an abstract
  socket as @name.

Manual and completions:
  echo-server --generate man | man -l -    this help as a man page
  echo-server --generate complete-bash     bash's completions (also complete-zsh,
                                           complete-fish, complete-powershell)
  The README says where each goes; `cargo xtask dist` lays them all out.";

/// How long the server waits at exit for its last log lines to be written.
const EXIT_LOG_FLUSH: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(kind) = cli.generate.kind {
        return generate(kind, cli.generate.dir.as_deref());
    }
    let format = match cli.log_format {
        LogFormat::Human => log::Format::Human,
        LogFormat::Json => log::Format::Json,
    };
    log::init(format);
    let options = Options {
        listen: cli.listen,
        udp: cli.udp,
        max_connections: cli
            .max_connections
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        idle_timeout: (!cli.idle_timeout.is_zero()).then_some(cli.idle_timeout),
        grace: cli.grace,
        udp_rate: cli.udp_rate,
        event_loops: usize::from(cli.threads),
        splice: cli.splice == Splice::Bulk,
    };
    let status = match echo_server::serve(&options) {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            log::error_line(&format!("{:#}", anyhow::Error::from(err)));
            ExitCode::FAILURE
        }
    };
    log::flush(EXIT_LOG_FLUSH);
    status
}

/// `--generate`: the man pages or a completion script, and nothing else, so
/// before logging starts and without a socket.
fn generate(kind: echo_generate::Kind, dir: Option<&Path>) -> ExitCode {
    echo_generate::run(Cli::command(), kind, dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn generate_is_a_flag_of_its_own() {
        let cli =
            Cli::try_parse_from(["echo-server", "--generate", "complete-bash"]).expect("parses");
        assert_eq!(cli.generate.kind, Some(echo_generate::Kind::CompleteBash));
    }
}
