//! The `echo-client` command: sends a message (or stdin) to an echo server
//! and prints what comes back, or, in probe mode, probes it as ping does.

use std::ffi::OsString;
use std::hash::{DefaultHasher, Hasher};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::LazyLock;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::builder::BoolishValueParser;
use clap::error::ErrorKind;
use clap::{ArgAction, ArgGroup, CommandFactory as _, Parser, ValueEnum};
use echo_client::probe::{Payload, Plan, Transport, UDP_HEADER};
use echo_client::tls::{Roots, Tls};
use echo_client::{Client, DEFAULT_TIMEOUT, Error, Family};
use echo_proto::udp::MAX_DATAGRAM_V6;
use echo_proto::{Endpoint, Target, parse_duration, verify};

mod cli {
    pub(crate) mod hint;
    pub(crate) mod logging;
    pub(crate) mod probe;
}

/// Sends a message to an RFC 862 echo server and prints the reply, or
/// probes the server again and again, as ping does a host.
///
/// The message goes out over TCP (or a Unix socket), the client half-closes
/// to mark its end, and everything the server sends back until it closes is
/// the reply. With `-` as the message, stdin is streamed to the server and the
/// reply to stdout, byte for byte, whatever its size. A message that starts
/// with `-` goes after `--`, as in `echo-client -- -x`; anything else that
/// starts with `-` is a flag, and an unknown flag is an error.
///
/// Any of -c, -i, -s and -w starts probe mode: one line per probe with its
/// size, sequence number and round-trip time, then a summary in ping's shape
/// (also on Ctrl-C, and at the -w deadline). Every reply is checked byte for byte. MESSAGE, if given, is
/// every probe's payload, instead of --size bytes of a pattern.
///
/// With --tls the exchange is over TLS (1.3 or 1.2): over TLS 1.3 the client's
/// close_notify ends the message as the half-close does in the clear; over
/// TLS 1.2 it goes once the whole echo is back.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = AFTER_HELP,
    group(ArgGroup::new("probe").args(["count", "interval", "size", "deadline"]).multiple(true))
)]
struct Cli {
    /// The message to send, or `-` to stream stdin to the server and the reply
    /// to stdout. Put a message that starts with `-` after `--`. In probe mode,
    /// the payload of every probe.
    #[arg(value_name = "MESSAGE", required_unless_present_any = ["probe", echo_generate::ARG_ID])]
    message: Option<OsString>,

    /// The server: HOST:PORT, IP:PORT, [IPV6]:PORT or unix:PATH; the port is
    /// always needed. A host name's addresses are raced over TCP, IPv6 and IPv4
    /// in turn from the resolver's first choice, a new attempt 250 ms after
    /// the last (at once if it failed), all within --timeout; over UDP they
    /// are tried one after the other, and in probe mode only the first is used.
    #[arg(
        short,
        long,
        value_name = "ADDR",
        env = "ECHO_ADDR",
        default_value = "127.0.0.1:7007"
    )]
    addr: Target,

    /// Give up when connecting (resolving a name included), or when no byte
    /// moves either way, takes longer than this (0s: wait forever). With
    /// --udp, the whole wait for a reply (0s: 3s). In probe mode, per probe.
    #[arg(long, value_name = "DURATION", env = "ECHO_TIMEOUT",
          default_value = DEFAULT_TIMEOUT_TEXT.as_str(), value_parser = parse_duration)]
    timeout: Duration,

    /// Exit 1 with a message if the reply differs from what was sent: a
    /// health probe. Probe mode and --udp always check: a datagram is the
    /// whole reply, and one that is not the message is no echo of it.
    #[arg(long)]
    check: bool,

    /// Send the message as one UDP datagram (at most 65,507 bytes over IPv4,
    /// 65,527 over IPv6), resending it a few times within --timeout until the
    /// reply comes. In probe mode, each probe is one datagram, never resent.
    /// ECHO_UDP takes 1/0, yes/no, on/off, true/false.
    #[arg(long, env = "ECHO_UDP", action = ArgAction::SetTrue,
          value_parser = BoolishValueParser::new())]
    udp: bool,

    /// Use only a host name's IPv4 addresses; an IPv6 --addr is a usage error.
    #[arg(short = '4', long = "ipv4", conflicts_with = "ipv6")]
    ipv4: bool,

    /// Use only a host name's IPv6 addresses; an IPv4 --addr is a usage error.
    #[arg(short = '6', long = "ipv6")]
    ipv6: bool,

    /// Send N probes, then the summary (0: until Ctrl-C, the default when
    /// only -i or -s is given).
    #[arg(short = 'c', long, value_name = "N", help_heading = "Probe mode")]
    count: Option<u64>,

    /// The time from the start of one probe to the start of the next
    /// [default: 1s]. TCP probes go one at a time, so a slow one delays
    /// the next; UDP probes go out on time whatever came back, except at
    /// 0s, where each waits for the one before to be answered or lost.
    #[arg(short = 'i', long, value_name = "DURATION", value_parser = parse_duration,
          help_heading = "Probe mode")]
    interval: Option<Duration>,

    /// Bytes per probe, a pattern that differs from probe to probe
    /// [default: 64]. With --udp, at least 16: the run's id and the sequence number.
    #[arg(short = 's', long, value_name = "BYTES", conflicts_with = "message",
          value_parser = clap::value_parser!(u32).range(..=i64::from(MAX_PROBE_SIZE)),
          help_heading = "Probe mode")]
    size: Option<u32>,

    /// Stop probing DURATION after the first probe, as ping's -w does, and
    /// print the summary; with -c, at whichever comes first. A probe still
    /// in flight then is in no count, as on Ctrl-C.
    #[arg(short = 'w', long, value_name = "DURATION", value_parser = parse_duration,
          help_heading = "Probe mode")]
    deadline: Option<Duration>,

    /// Print no line per probe: only the header and the summary, as ping's -q
    /// does (with --json, only the summary).
    #[arg(short = 'q', long, requires = "probe", help_heading = "Probe mode")]
    quiet: bool,

    /// Over TCP or a Unix socket: a new connection per probe, whose time
    /// includes the connect, as tcping measures (connect, the default); or
    /// one connection for all probes, each written and exactly its length
    /// read back (persistent).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = Mode::Connect,
          requires = "probe", help_heading = "Probe mode")]
    mode: Mode,

    /// Print one JSON object per line, for each probe and for the summary.
    /// Each probe's has `unix_time_s`, the wall-clock time it was reported
    /// at, in seconds since 1970 to the microsecond (ping -D's timestamp).
    #[arg(long, requires = "probe", help_heading = "Probe mode")]
    json: bool,

    /// Speak TLS to the server (over TCP), trusting the system's root
    /// certificates (SSL_CERT_FILE and SSL_CERT_DIR count) unless --tls-ca says
    /// otherwise. ECHO_TLS takes 1/0, yes/no, on/off, true/false.
    #[arg(long, env = "ECHO_TLS", action = ArgAction::SetTrue,
          value_parser = BoolishValueParser::new(), help_heading = "TLS")]
    tls: bool,

    /// Trust the CA certificates of this PEM file, and no others.
    #[arg(
        long,
        value_name = "FILE",
        env = "ECHO_TLS_CA",
        requires = "tls",
        conflicts_with = "tls_insecure",
        help_heading = "TLS"
    )]
    tls_ca: Option<PathBuf>,

    /// The name the server's certificate must hold, also sent as SNI
    /// [default: the host name of --addr, or its IP address].
    #[arg(
        long,
        value_name = "NAME",
        env = "ECHO_TLS_SERVER_NAME",
        requires = "tls",
        help_heading = "TLS"
    )]
    tls_server_name: Option<String>,

    /// Present the certificate chain of this PEM file to a server that asks
    /// for one (mutual TLS), with --tls-key.
    #[arg(long, value_name = "FILE", env = "ECHO_TLS_CLIENT_CERT",
          requires_all = ["tls", "tls_key"], help_heading = "TLS")]
    tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert, a PEM file.
    #[arg(long, value_name = "FILE", env = "ECHO_TLS_CLIENT_KEY",
          requires_all = ["tls", "tls_cert"], help_heading = "TLS")]
    tls_key: Option<PathBuf>,

    /// Check nothing of the server's certificate, neither who signed it nor
    /// the name it holds: the server is not authenticated, and anyone on the
    /// path can read and change the bytes. Says so on stderr.
    /// ECHO_TLS_INSECURE takes 1/0, yes/no, on/off, true/false.
    #[arg(long, env = "ECHO_TLS_INSECURE", action = ArgAction::SetTrue,
          value_parser = BoolishValueParser::new(), requires = "tls", help_heading = "TLS")]
    tls_insecure: bool,

    #[command(flatten)]
    color: echo_generate::Color,

    #[command(flatten)]
    generate: echo_generate::Generate,
}

/// How TCP probes use connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// A new connection per probe.
    Connect,
    /// One connection for all probes.
    Persistent,
}

/// The largest `--size`: more than any probe needs, small enough that a
/// slip of the finger does not allocate gigabytes.
const MAX_PROBE_SIZE: u32 = 16 << 20;

/// A probe's size when neither `--size` nor MESSAGE says otherwise: ping's
/// 64 bytes on the wire.
const DEFAULT_PROBE_SIZE: usize = 64;

/// The time between probes when `--interval` says nothing: ping's.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// The library's default timeout, as `--help` shows it and `--timeout` parses it.
static DEFAULT_TIMEOUT_TEXT: LazyLock<String> =
    LazyLock::new(|| format!("{}s", DEFAULT_TIMEOUT.as_secs()));

// Whole seconds, or the text above would not say the same duration.
const _: () = assert!(DEFAULT_TIMEOUT.subsec_nanos() == 0);

const AFTER_HELP: &str = "\
Examples:
  echo-client \"this is the message to send\"
  echo-client --addr [::1]:7007 --check ping
  echo-client --addr echo.example.org:7 hello       a host name, and the RFC 862 port
  echo-client - < big.bin | cmp - big.bin
  echo-client -- -x                                 a message that starts with '-'
  echo-client -c 5 -i 200ms --addr 127.0.0.1:7007   five probes, like ping
  echo-client -c 0 --udp -s 512 --addr [::1]:7007   UDP probes until Ctrl-C
  echo-client -c 3 --mode persistent --json         one connection, JSON lines
  echo-client -q -w 10s -6 --addr localhost:7007    IPv6 only, ten seconds, summary
  echo-client --tls --tls-ca ca.pem -a localhost:7443 hello    over TLS, a CA of your own

RUST_LOG=debug says which of a name's addresses answered, and why others failed.

Exit status: 0 success, 1 failure (refused, timeout, reply differs), 2 bad command line.
In probe mode, 0 only when every probe came back exactly once, byte for byte:
stricter than ping, which is content with any reply.

Manual and completions, without a MESSAGE:
  echo-client --generate man | man -l -    this help as a man page
  echo-client --generate complete-bash     bash's completions (also complete-zsh,
                                           complete-fish, complete-powershell)
  docs/install.md says where each goes; `cargo xtask dist` lays them all out.";

fn main() -> ExitCode {
    let cli: Cli = echo_generate::color::parse();
    if let Some(kind) = cli.generate.kind {
        return generate(kind, cli.generate.dir.as_deref());
    }
    cli::logging::init(cli.color.when.stderr());
    let udp = cli.udp;
    let tls = cli.tls;
    match run(cli) {
        Ok(code) => code,
        // A reader that went away (`echo-client msg | head -c1`) wanted no more.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let next_step = err
                .downcast_ref::<Error>()
                .and_then(|err| cli::hint::next_step(err, udp, tls))
                .map(|step| format!("; {step}"))
                .unwrap_or_default();
            // With stderr gone too there is no one left to tell: exit 1 all the same.
            let _ = writeln!(io::stderr().lock(), "error: {err:#}{next_step}");
            ExitCode::FAILURE
        }
    }
}

/// `--generate`: the man pages or a completion script, and nothing else, so
/// before logging starts and without a socket.
fn generate(kind: echo_generate::Kind, dir: Option<&Path>) -> ExitCode {
    echo_generate::run(Cli::command(), kind, dir)
}

/// Stops with a usage error (exit 2), as clap does for what it checks itself.
fn usage_error(kind: ErrorKind, message: &str) -> ! {
    echo_generate::color::exit(Cli::command().error(kind, message), Cli::command())
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut client = Client::new(cli.addr.clone())
        .timeout(Some(cli.timeout))
        .family(family(&cli));
    if let Some(settings) = tls_settings(&cli) {
        client = client.tls(&settings)?;
    }
    if let Some(plan) = probe_plan(&cli) {
        let output = cli::probe::Output {
            json: cli.json,
            quiet: cli.quiet,
            deadline: cli.deadline,
        };
        return cli::probe::run(&client, plan, output);
    }
    // Clap insists on a message outside probe mode.
    let Some(message) = cli.message.as_ref() else {
        usage_error(ErrorKind::MissingRequiredArgument, "a MESSAGE is needed");
    };
    if message == "-" {
        if cli.udp {
            usage_error(
                ErrorKind::ArgumentConflict,
                "--udp (or ECHO_UDP) sends one message; it cannot stream stdin (-)",
            );
        }
        stream_stdin(&client, cli.check)?;
        return Ok(ExitCode::SUCCESS);
    }
    let message = message.as_bytes();
    let reply = if cli.udp {
        client.echo_udp(message)?
    } else {
        client.echo(message)?
    };
    // Over TCP a reply that differs is still what the server sent back, to
    // print; a datagram that is not the message may be anything at all.
    if cli.check || cli.udp {
        verify(message, &reply).with_context(|| format!("{} answered wrongly", client.target()))?;
    }
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(&reply)
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush())
        .context(STDOUT_FAILED)?;
    Ok(ExitCode::SUCCESS)
}

/// The context of a failed write to stdout, whichever mode failed.
const STDOUT_FAILED: &str = "cannot write the reply to stdout";

/// The TLS settings the flags ask for, `None` without --tls; stops with a
/// usage error where TLS is not spoken.
fn tls_settings(cli: &Cli) -> Option<Tls> {
    if !cli.tls {
        return None;
    }
    if cli.udp {
        usage_error(
            ErrorKind::ArgumentConflict,
            "--tls speaks TLS over TCP; --udp (or ECHO_UDP) has no TLS to speak",
        );
    }
    if let Target::Endpoint(endpoint @ Endpoint::Unix(_)) = &cli.addr {
        usage_error(
            ErrorKind::ArgumentConflict,
            &format!("--tls speaks TLS over TCP; --addr {endpoint} is a Unix socket"),
        );
    }
    let roots = match (&cli.tls_ca, cli.tls_insecure) {
        (_, true) => Roots::Insecure,
        (Some(ca), false) => Roots::File(ca.clone()),
        (None, false) => Roots::System,
    };
    let mut tls = Tls::default().roots(roots);
    if let Some(name) = &cli.tls_server_name {
        tls = tls.server_name(name.clone());
    }
    if let (Some(certificate), Some(key)) = (&cli.tls_cert, &cli.tls_key) {
        tls = tls.identity(certificate, key);
    }
    Some(tls)
}

/// The address family -4 or -6 asks for; stops with a usage error when
/// --addr is itself an address of the other family, or a Unix socket.
fn family(cli: &Cli) -> Family {
    let (family, flag) = match (cli.ipv4, cli.ipv6) {
        (true, _) => (Family::V4, "-4"),
        (_, true) => (Family::V6, "-6"),
        _ => return Family::Any,
    };
    match &cli.addr {
        Target::Endpoint(Endpoint::Ip(addr)) if !family.admits(addr) => usage_error(
            ErrorKind::ArgumentConflict,
            &format!("{flag} uses {family} addresses only, and --addr {addr} is not one"),
        ),
        Target::Endpoint(endpoint @ Endpoint::Unix(_)) => usage_error(
            ErrorKind::ArgumentConflict,
            &format!("{flag} chooses among a host name's addresses; --addr {endpoint} has none"),
        ),
        _ => family,
    }
}

/// The probe run the flags ask for, `None` outside probe mode; stops with a
/// usage error for a combination that cannot be probed.
fn probe_plan(cli: &Cli) -> Option<Plan> {
    if cli.count.is_none() && cli.interval.is_none() && cli.size.is_none() && cli.deadline.is_none()
    {
        return None;
    }
    if cli.deadline.is_some_and(|deadline| deadline.is_zero()) {
        usage_error(
            ErrorKind::ValueValidation,
            "-w 0s would stop before the first probe; give a deadline longer than 0s",
        );
    }
    let transport = match (cli.udp, cli.mode) {
        (false, Mode::Connect) => Transport::Connect,
        (false, Mode::Persistent) => Transport::Persistent,
        (true, Mode::Connect) => Transport::Udp,
        (true, Mode::Persistent) => usage_error(
            ErrorKind::ArgumentConflict,
            "--mode persistent is for TCP and Unix sockets; UDP has no connection to keep",
        ),
    };
    let payload = match (&cli.message, cli.size) {
        (Some(message), _) if message == "-" => usage_error(
            ErrorKind::ArgumentConflict,
            "probes carry MESSAGE or --size bytes; stdin (-) cannot be probed",
        ),
        (Some(message), _) => Payload::Message(message.as_bytes().to_vec()),
        (None, Some(size)) => Payload::Size(size as usize),
        (None, None) => Payload::Size(DEFAULT_PROBE_SIZE),
    };
    let empty = match &payload {
        Payload::Size(size) => *size == 0,
        Payload::Message(message) => message.is_empty(),
    };
    match (&payload, transport) {
        (Payload::Size(size), Transport::Udp) if *size < UDP_HEADER => usage_error(
            ErrorKind::ValueValidation,
            &format!(
                "a UDP probe is at least {UDP_HEADER} bytes (the run's id and the \
                 sequence number); --size {size} is too small"
            ),
        ),
        (Payload::Size(size), Transport::Udp) if *size > MAX_DATAGRAM_V6 => usage_error(
            ErrorKind::ValueValidation,
            &format!("a UDP probe is at most {MAX_DATAGRAM_V6} bytes; --size {size} is too large"),
        ),
        (_, Transport::Persistent) if empty => usage_error(
            ErrorKind::ValueValidation,
            "a persistent probe needs at least one byte: an empty one would measure nothing",
        ),
        _ => {}
    }
    Some(Plan {
        transport,
        count: cli.count.filter(|&count| count > 0),
        interval: cli.interval.unwrap_or(DEFAULT_INTERVAL),
        payload,
    })
}

/// Streams stdin through the server to stdout; with `check`, compares the
/// length and a digest of both directions, since neither fits in memory.
fn stream_stdin(client: &Client, check: bool) -> anyhow::Result<()> {
    let (sent_digest, input) = Digesting::new(io::stdin());
    let stdout = io::stdout().lock();
    let (received_digest, mut output) = Digesting::new(stdout);
    let transfer = client.stream(input, &mut output).map_err(|err| match err {
        // The library cannot know that its output is stdout.
        Error::Output(source) => anyhow::Error::new(source).context(STDOUT_FAILED),
        other => other.into(),
    })?;
    if check {
        let sent = sent_digest.lock().map(|d| d.finish()).unwrap_or_default();
        let received = received_digest
            .lock()
            .map(|d| d.finish())
            .unwrap_or_default();
        if transfer.sent != transfer.received {
            bail!(
                "{} answered wrongly: reply is {} bytes long but {} were sent",
                client.target(),
                transfer.received,
                transfer.sent
            );
        }
        if sent != received {
            bail!(
                "{} answered wrongly: the reply's bytes differ from what was sent",
                client.target()
            );
        }
    }
    Ok(())
}

/// A reader or writer that digests the bytes passing through it.
struct Digesting<T> {
    inner: T,
    digest: SharedDigest,
}

type SharedDigest = std::sync::Arc<std::sync::Mutex<DefaultHasher>>;

impl<T> Digesting<T> {
    fn new(inner: T) -> (SharedDigest, Self) {
        let digest = SharedDigest::default();
        (std::sync::Arc::clone(&digest), Digesting { inner, digest })
    }

    fn absorb(&self, bytes: &[u8]) {
        if let Ok(mut digest) = self.digest.lock() {
            digest.write(bytes);
        }
    }
}

impl<T: Read> Read for Digesting<T> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buffer)?;
        self.absorb(&buffer[..n]);
        Ok(n)
    }
}

impl<T: Write> Write for Digesting<T> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(bytes)?;
        self.absorb(&bytes[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Whether the failure is our own stdout having been closed by its reader,
/// which is how `| head` says it wants no more: only the reply's destination
/// counts, never a broken connection to the server.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    let broken = |e: &io::Error| e.kind() == io::ErrorKind::BrokenPipe;
    match err.downcast_ref::<Error>() {
        Some(Error::Output(e)) => broken(e),
        Some(_) => false,
        // An io::Error outside the library's comes only from writes to stdout.
        None => err.downcast_ref::<io::Error>().is_some_and(broken),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use echo_proto::Endpoint;

    #[test]
    fn the_default_timeout_text_parses_back_to_the_default() {
        assert_eq!(parse_duration(&DEFAULT_TIMEOUT_TEXT), Ok(DEFAULT_TIMEOUT));
    }

    #[test]
    fn only_a_closed_stdout_is_a_quiet_end() {
        let pipe = || io::Error::from(io::ErrorKind::BrokenPipe);
        assert!(is_broken_pipe(&anyhow::Error::from(pipe())));
        assert!(is_broken_pipe(&anyhow::Error::from(Error::Output(pipe()))));
        let on_stdout = Err::<(), _>(pipe()).context(STDOUT_FAILED);
        assert!(is_broken_pipe(&on_stdout.expect_err("failed")));
        let endpoint: Endpoint = "127.0.0.1:7".parse().expect("literal");
        let server_gone = Error::Io {
            endpoint,
            source: pipe(),
        };
        assert!(!is_broken_pipe(&anyhow::Error::from(server_gone)));
        assert!(!is_broken_pipe(&anyhow::Error::from(Error::Input(pipe()))));
    }

    #[test]
    fn the_command_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("echo-client").chain(args.iter().copied()))
    }

    #[test]
    fn probe_flags_start_probe_mode_and_message_is_the_payload() {
        let cli = parse(&["-c", "3", "ping"]).expect("parses");
        let plan = probe_plan(&cli).expect("probe mode");
        assert_eq!(plan.count, Some(3));
        assert_eq!(plan.interval, DEFAULT_INTERVAL);
        assert_eq!(plan.payload, Payload::Message(b"ping".to_vec()));
        assert_eq!(plan.transport, Transport::Connect);

        let cli = parse(&["-i", "200ms"]).expect("parses");
        let plan = probe_plan(&cli).expect("probe mode");
        assert_eq!(plan.count, None, "until Ctrl-C");
        assert_eq!(plan.payload, Payload::Size(DEFAULT_PROBE_SIZE));

        let cli = parse(&["-c", "0", "-s", "100", "--mode", "persistent"]).expect("parses");
        let plan = probe_plan(&cli).expect("probe mode");
        assert_eq!(plan.count, None, "0 is until Ctrl-C");
        assert_eq!(plan.payload, Payload::Size(100));
        assert_eq!(plan.transport, Transport::Persistent);

        let cli = parse(&["ping"]).expect("parses");
        assert_eq!(probe_plan(&cli), None, "a message alone is one exchange");
    }

    #[test]
    fn generate_needs_no_message_but_nothing_else_does_without_one() {
        let cli = parse(&["--generate", "man"]).expect("parses");
        assert_eq!(cli.generate.kind, Some(echo_generate::Kind::Man));
        let err = parse(&[]).expect_err("no message");
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        let err = parse(&["--generate-dir", "/tmp", "hi"]).expect_err("a directory alone");
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn unknown_flags_and_hyphenated_messages_are_usage_errors() {
        for args in [
            &["--chek"][..],
            &["--chek", "hi"],
            &["-x"],
            &["hi", "--chek"],
        ] {
            let err = parse(args).expect_err("unknown flag");
            assert_eq!(err.kind(), ErrorKind::UnknownArgument, "{args:?}");
        }
        let cli = parse(&["--", "-x"]).expect("after --, a message");
        assert_eq!(cli.message.as_deref(), Some("-x".as_ref()));
        let cli = parse(&["-"]).expect("stdin");
        assert_eq!(cli.message.as_deref(), Some("-".as_ref()));
        let err = parse(&["-s", "8", "ping"]).expect_err("size and message");
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
        let err = parse(&["--json", "ping"]).expect_err("json outside probe mode");
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        let err = parse(&["--mode", "connect", "ping"]).expect_err("mode outside probe mode");
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
    }
}
