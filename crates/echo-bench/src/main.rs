//! The `echo-bench` command: parses flags into a [`Plan`], runs it, and prints
//! the report as a table or a JSON line, perhaps with a histogram log;
//! `plot` turns JSON lines into an SVG, and `merge` histogram logs into one report.

use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use clap::error::ErrorKind;
use clap::{Args, CommandFactory as _, Parser, Subcommand};
use echo_bench::histogram_log::{LogError, LogWriter, Recording, STANDARD_STREAM, merge_logs};
use echo_bench::plan::{TlsPlan, Trust, parse_rate, time_limit};
use echo_bench::progress::Progress;
use echo_bench::size::{format_size, group_thousands, parse_size};
use echo_bench::start_at::{self, StartAtError};
use echo_bench::{BenchError, Live, Plan, Report, Scenario, Unanswered, floor, host, limits, plot};
use echo_proto::{Human, Target, parse_duration};

// Counts each thread's live heap bytes, so tls-floor can weigh an idle
// connection; one thread-local addition per allocation, no shared state.
#[global_allocator]
static ALLOCATOR: floor::memory::Counting = floor::memory::Counting;

/// Load generator for RFC 862 echo servers (ours, socat, xinetd, any):
/// every reply is checked byte for byte, every exchange's latency recorded.
///
/// The load goes where --addr says, on this machine or off it; when it
/// leaves this machine, a note on stderr says so, and --dry-run shows the
/// plan without sending anything to the server. One connection before the load proves a
/// server is there, so a target where nothing listens fails at once; during
/// the run a worker whose exchange gets no answer waits before it tries
/// again (each scenario's --help says how long). Every run ends at its
/// duration or count, and a hung server is given up on after the timeout.
#[derive(Debug, Parser)]
#[command(
    version,
    after_help = AFTER_HELP,
    arg_required_else_help = true,
    // What clap would say were the scenario required, and the one way to do without.
    override_usage = "echo-bench <COMMAND>\n       echo-bench --generate <KIND> [--generate-dir <DIR>]"
)]
struct Cli {
    /// A scenario, plot or merge: not needed with --generate alone.
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    generate: echo_generate::Generate,

    #[command(flatten)]
    color: echo_generate::Color,
}

const AFTER_HELP: &str = "\
Exit status: 0 the run passed (or --dry-run); 1 the run met errors (mismatches,
resets, timeouts, UDP datagrams answered twice, too much UDP loss, a rate short
of --rate) or could not run (nothing listens, a name that does not resolve);
2 bad command line.

Manual and completions, without a scenario:
  echo-bench --generate man | man -l -     this page; each scenario has its own,
                                           written with --generate-dir DIR
  echo-bench --generate complete-bash      bash's completions (also complete-zsh,
                                           complete-fish, complete-powershell)
  docs/install.md says where each goes; `cargo xtask dist` lays them all out.";

/// What every scenario's --help ends with: where the load goes and what
/// happens when nothing answers there.
const SCENARIO_AFTER_HELP: &str = "\
The load goes where --addr says. When that is not this machine (not loopback,
not one of its own addresses, not a Unix socket), one line on stderr says so
before anything is sent, and the run goes on; --dry-run prints the plan and
sends nothing to the server. One connection before the load (udp: one
datagram) checks that a server is there: if nothing listens, the command ends
at once with one error line. During the run, a worker whose exchange gets
no answer (refused, reset, timed out; a wrong reply is no reason) waits
before it tries again: 10 ms, doubling up to 1s, and 10 ms again after an
echo comes back. A bulk stream that fails ends its worker.

Every report gives echo-bench's own CPU time per exchange and the cores it
kept busy: on a machine it shares with the server, the rate measures the
client as much as the server, and --server-pid's cost per exchange tells
servers apart better.

Exit status: 0 the run passed (or --dry-run); 1 it met errors, fell short of
--rate or could not run; 2 bad command line.";

#[derive(Debug, Subcommand)]
enum Command {
    /// A new connection per message: connect, send, half-close, read to the
    /// end, check, close. Reports connections per second.
    /// Defaults: 50 workers, 64 B.
    #[command(after_help = SCENARIO_AFTER_HELP)]
    Conn(Paced),
    /// Long-lived connections, each sending a message and waiting for exactly
    /// that many bytes back, over and over. Reports messages per second and MB/s.
    /// Defaults: 50 connections, 64 B.
    #[command(after_help = SCENARIO_AFTER_HELP)]
    Persistent(Paced),
    /// A few connections streaming a large total, writing and reading at the
    /// same time. Reports GB/s. Defaults: 1 connection, 64 KiB writes.
    #[command(after_help = SCENARIO_AFTER_HELP)]
    Bulk(BulkArgs),
    /// Opens many connections, holds them for --duration, then checks each
    /// still echoes. With --server-pid, reports the server's memory per connection.
    /// Defaults: 1,000 connections opened by 50 workers, 64 B first message.
    #[command(after_help = SCENARIO_AFTER_HELP)]
    Idle(IdleArgs),
    /// Datagrams to a UDP echo server, each waiting for its reply; unanswered
    /// ones count as lost, a second reply to one as an error. Reports
    /// datagrams per second.
    /// An echo-server answers each source address at most --udp-rate times a
    /// second (1000 by default), so against a default one this measures that
    /// limit, with the rest lost: start it with --udp-rate 0 to measure it
    /// unlimited.
    /// Defaults: 8 sockets, 64 B, 1 s timeout.
    #[command(after_help = SCENARIO_AFTER_HELP)]
    Udp(UdpArgs),
    /// Draws the latency percentiles of JSON reports (from --json) as an SVG,
    /// one panel per scenario and one line per --label.
    Plot(PlotArgs),
    /// Adds up the histogram logs (--histogram-log) of generators that ran
    /// together, on one machine or many, into one report: exchanges, bytes,
    /// errors by kind and CPU summed, latency percentiles from the sum of
    /// every histogram (never an average of percentiles), and how many
    /// generators joined and how far apart they started. Prints the table,
    /// JSON or plot of a single run, and exits 1 if the merged run failed.
    Merge(MergeArgs),
    /// The crypto floor of TLS, with no socket: a rustls client and server
    /// in this one process (TLS 1.3, X25519, TLS13_AES_128_GCM_SHA256,
    /// ECDSA P-256, all pinned) pass records through memory, and the
    /// server's side alone is timed by its thread's CPU clock. Reports the
    /// server's CPU per full and per resumed handshake (medians over runs),
    /// the CPU to seal and to open a GiB in 16 KiB records, and the heap one
    /// idle server connection holds: what no TLS echo server can go below.
    TlsFloor(FloorArgs),
}

/// `tls-floor`'s flags.
#[derive(Debug, Args)]
struct FloorArgs {
    /// Handshakes per run, each on a new pair of connections.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    handshakes: u32,
    /// Runs of --handshakes handshakes, full and resumed; the figures are their medians.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// GiB of application data to seal and open, as 1 or 0.25.
    #[arg(long, value_name = "GIB", default_value_t = 1.0, value_parser = parse_gib)]
    gib: f64,
    /// Idle server connections held at once to weigh one (0: not weighed).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    idle: u32,
    /// Print one JSON object on one line instead of the table.
    #[arg(long)]
    json: bool,
}

/// Reads a positive, finite number of GiB.
fn parse_gib(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(gib) if gib.is_finite() && gib > 0.0 && gib <= 1024.0 => Ok(gib),
        _ => Err(format!(
            "'{text}' is not a number of GiB above 0 and up to 1024, as 1 or 0.25"
        )),
    }
}

/// Flags every scenario takes.
#[derive(Debug, Args)]
struct Common {
    /// The echo server: IP:PORT, [IPV6]:PORT, HOST:PORT, or unix:PATH (not
    /// for udp). A name's addresses are tried in turn with one connection
    /// before the load starts, and the first that answers gets the load.
    /// Where that is not this machine, stderr says so.
    #[arg(
        short,
        long,
        env = "ECHO_ADDR",
        default_value = "127.0.0.1:7007",
        value_name = "ADDR"
    )]
    addr: Target,

    /// Concurrent workers (connections, connectors or sockets).
    #[arg(short = 'c', long, value_name = "N")]
    workers: Option<usize>,

    /// Bytes per message, as 64, 16KiB, 1MiB (per write for bulk).
    #[arg(short, long, value_name = "SIZE", value_parser = parse_size)]
    size: Option<u64>,

    /// How long the load goes on, as 500ms, 10s, 1m (idle: how long connections
    /// are held). Default 5s, or up to 60s with --count.
    #[arg(short, long, value_name = "DURATION", value_parser = parse_duration)]
    duration: Option<Duration>,

    /// Stop after this many exchanges over all workers (or at --duration,
    /// whichever is first). The rate of a run that ends at its count is
    /// taken up to the end of its last exchange.
    #[arg(short = 'n', long, value_name = "N")]
    count: Option<u64>,

    /// The longest wait for one exchange (bulk: for any progress), and for
    /// resolving a name or making the first connection. Default 5s (udp: 1s).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    timeout: Option<Duration>,

    /// Print one JSON object on one line instead of the table (with
    /// --dry-run, the plan's, named as in a report where the two share a figure).
    #[arg(long)]
    json: bool,

    /// Resolve the address, check the flags, print the plan (target,
    /// addresses, scenario, workers, size, duration or count, rate, whether
    /// the load would leave this machine) and exit without sending anything
    /// to the server (a name's lookup still asks the resolver).
    #[arg(long)]
    dry_run: bool,

    /// The server's process on this machine: its CPU time (user + system,
    /// from /proc/PID/stat) is read before and after the load and reported
    /// per exchange (bulk: per GiB too), to the digits its 10 ms clock ticks
    /// allow; a run that costs it under 10 ticks is too short to say. Its
    /// resident memory (VmRSS) is reported too (idle: per connection).
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,

    /// Name the run in reports and plots, as the server's name.
    #[arg(long, value_name = "NAME")]
    label: Option<String>,

    /// Also draw this run's latency percentiles as an SVG here.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,

    /// Also write every exchange's latency here as an HdrHistogram interval
    /// log, one histogram per --histogram-interval, ending with the run's
    /// JSON report; `echo-bench merge` adds such logs up exactly. `-` writes
    /// it to stdout, which then carries the log alone: the table, the start
    /// line, notes and hints go into it as comments, and --json is refused.
    #[arg(long, value_name = "FILE")]
    histogram_log: Option<PathBuf>,

    /// The length of each interval of the histogram log.
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = parse_interval,
        default_value = "1s",
        requires = "histogram_log"
    )]
    histogram_interval: Duration,

    /// Begin the load at this instant, as RFC 3339 (2030-06-01T12:00:00Z,
    /// or with an offset, +02:00) or Unix seconds, at most a day ahead: the
    /// name is resolved, the plan checked and the first connection made
    /// first, then the load waits for it. Give every generator the same
    /// instant to start them together. Ready only after it, the run fails,
    /// saying by how much.
    #[arg(long, value_name = "TIME", env = "ECHO_BENCH_START_AT", value_parser = parse_start_at)]
    start_at: Option<SystemTime>,

    /// With --start-at, run even when ready only after it, starting at once
    /// (a note says how late), instead of failing.
    #[arg(long, requires = "start_at")]
    late_ok: bool,

    #[command(flatten)]
    tls: TlsArgs,
}

/// How to speak TLS to the server.
#[derive(Debug, Args)]
#[command(next_help_heading = "TLS")]
struct TlsArgs {
    /// Speak TLS over every connection (conn, persistent, bulk, idle; not
    /// udp, nor a unix: target). Trusts the system's roots unless told
    /// otherwise; the report gives the version and suite negotiated, the
    /// handshakes, and for conn their latency apart from the echo's.
    #[arg(long)]
    tls: bool,

    /// Trust the CA certificates in this PEM file instead of the system's.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls",
        conflicts_with = "tls_insecure"
    )]
    tls_ca: Option<PathBuf>,

    /// The name to ask the server for and to verify its certificate
    /// against. Default: the host name given in --addr, or its IP address.
    #[arg(long, value_name = "NAME", requires = "tls")]
    tls_server_name: Option<String>,

    /// Accept any certificate for any name: checks nothing, and says so on
    /// stderr. The server still proves it holds its key, so its handshakes
    /// cost what verified ones do.
    #[arg(long, requires = "tls")]
    tls_insecure: bool,

    /// A client certificate chain (PEM), for a server that requires one; with --tls-key.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_key"])]
    tls_cert: Option<PathBuf>,

    /// The client certificate's private key (PEM); with --tls-cert.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_cert"])]
    tls_key: Option<PathBuf>,

    /// conn only: every connection after each worker's first resumes that
    /// worker's last session (a cache per worker), and the report counts
    /// the handshakes resumed; a run where the server resumed none fails.
    #[arg(long, requires = "tls")]
    tls_resume: bool,
}

impl TlsArgs {
    /// The plan's TLS settings, or `None` without --tls.
    fn plan(&self) -> Option<TlsPlan> {
        self.tls.then(|| TlsPlan {
            trust: if self.tls_insecure {
                Trust::Insecure
            } else if let Some(path) = &self.tls_ca {
                Trust::Roots(path.clone())
            } else {
                Trust::System
            },
            server_name: self.tls_server_name.clone(),
            client_cert: self.tls_cert.clone().zip(self.tls_key.clone()),
            resume: self.tls_resume,
        })
    }
}

/// The flags of scenarios that send one exchange after another.
#[derive(Debug, Args)]
struct Paced {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    rate: RateArg,
}

#[derive(Debug, Args)]
struct RateArg {
    /// Exchanges per second over all workers, on a fixed schedule: exchange k
    /// is due k/N seconds after the start, and whichever worker is free takes
    /// it. Each latency counts from when its exchange was due, not from when it
    /// was sent, so a server that stalls shows in the percentiles instead of
    /// hiding (coordinated omission, corrected as wrk2 does). With --count
    /// the timetable has that many exchanges, and the run ends with the last.
    /// The run fails when it achieves less than 95% of N. Without it, each
    /// worker sends as soon as its last reply is in (a closed loop). N is
    /// this generator's own: to share a total among G generators, give each
    /// the total over G.
    #[arg(long, value_name = "N", value_parser = parse_rate)]
    rate: Option<f64>,
}

#[derive(Debug, Args)]
struct BulkArgs {
    #[command(flatten)]
    common: Common,
    /// Bytes to stream over all connections together.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "1GiB")]
    total: u64,
}

#[derive(Debug, Args)]
struct IdleArgs {
    #[command(flatten)]
    common: Common,
    /// Connections to open and hold.
    #[arg(long, value_name = "K", default_value_t = 1_000)]
    connections: u64,
}

#[derive(Debug, Args)]
struct UdpArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    rate: RateArg,
    /// The percentage of datagrams that may go unanswered before the run fails.
    #[arg(long, value_name = "PERCENT", default_value_t = 1.0)]
    max_loss: f64,
}

#[derive(Debug, Args)]
struct MergeArgs {
    /// Print one JSON object on one line instead of the table.
    #[arg(long)]
    json: bool,
    /// Also draw the merged latency percentiles as an SVG here.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// The histogram logs, one per generator; `-` reads one from stdin.
    #[arg(value_name = "LOG", required = true)]
    logs: Vec<PathBuf>,
}

/// Reads `--start-at` as of now.
fn parse_start_at(text: &str) -> Result<SystemTime, StartAtError> {
    start_at::parse_start_at(text, SystemTime::now())
}

/// Reads `--histogram-interval`: a duration above zero.
fn parse_interval(text: &str) -> Result<Duration, String> {
    match parse_duration(text) {
        Ok(interval) if interval.is_zero() => {
            Err("an interval must be longer than zero".to_owned())
        }
        Ok(interval) => Ok(interval),
        Err(error) => Err(error.to_string()),
    }
}

#[derive(Debug, Args)]
struct PlotArgs {
    /// Where to write the SVG; `-` writes it to stdout.
    #[arg(short, long, value_name = "FILE")]
    out: PathBuf,
    /// Files of JSON reports, one per line; none or `-` reads stdin.
    inputs: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let cli: Cli = echo_generate::color::parse();
    if let Some(kind) = cli.generate.kind {
        return generate(kind, cli.generate.dir.as_deref());
    }
    let Some(command) = cli.command else {
        // A bare `echo-bench` gets the help (arg_required_else_help), and
        // --generate-dir requires --generate, so only a future top-level flag
        // could come here: a usage error all the same.
        echo_generate::color::exit(
            Cli::command().error(
                ErrorKind::MissingSubcommand,
                "a scenario (conn, persistent, bulk, idle, udp), plot or merge is needed",
            ),
            Cli::command(),
        )
    };
    match run(command) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        // With stderr gone too there is no one left to tell; the exit code still says it.
        Err(err) if err.is::<UsageError>() => {
            let _ = writeln!(io::stderr().lock(), "error: {err:#}");
            ExitCode::from(2)
        }
        Err(err) => {
            let _ = writeln!(io::stderr().lock(), "error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--generate`: the man pages or a completion script, and nothing else, so
/// before logging starts and without a socket.
fn generate(kind: echo_generate::Kind, dir: Option<&Path>) -> ExitCode {
    echo_generate::run(Cli::command(), kind, dir)
}

/// Runs the command; `Ok(false)` means the run completed but did not pass.
fn run(command: Command) -> anyhow::Result<bool> {
    let (common, scenario, defaults, rate) = match command {
        Command::Plot(args) => return plot_reports(&args).map(|()| true),
        Command::Merge(args) => {
            let report = merge_logs(&args.logs)?;
            return publish(&report, args.json, args.plot.as_deref(), None);
        }
        Command::TlsFloor(args) => return tls_floor(&args).map(|()| true),
        Command::Conn(paced) => (
            paced.common,
            Scenario::Conn,
            Defaults::tcp(50, 64),
            paced.rate.rate,
        ),
        Command::Persistent(paced) => (
            paced.common,
            Scenario::Persistent,
            Defaults::tcp(50, 64),
            paced.rate.rate,
        ),
        Command::Bulk(args) => (
            args.common,
            Scenario::Bulk { total: args.total },
            Defaults::tcp(1, 64 * 1024),
            None,
        ),
        Command::Idle(args) => (
            args.common,
            Scenario::Idle {
                connections: args.connections,
            },
            Defaults::tcp(50, 64),
            None,
        ),
        Command::Udp(args) => (
            args.common,
            Scenario::Udp {
                max_loss: args.max_loss,
            },
            Defaults {
                workers: 8,
                size: 64,
                timeout: Duration::from_secs(1),
            },
            args.rate.rate,
        ),
    };
    let plan = Plan {
        scenario,
        target: common.addr.clone(),
        addrs: Vec::new(),
        workers: common.workers.unwrap_or(defaults.workers),
        size: usize::try_from(common.size.unwrap_or(defaults.size))
            .context("--size does not fit in memory")?,
        duration: time_limit(common.duration, common.count),
        count: common.count,
        rate,
        timeout: common.timeout.unwrap_or(defaults.timeout),
        server_pid: common.server_pid,
        label: common.label.clone(),
        own_addresses: Vec::new(),
        tls: common.tls.plan(),
    };
    // A bad command line is told before any name is looked up; each address
    // is checked as it is added.
    let plan = plan.validate().map_err(UsageError)?;
    let to_stdout = common
        .histogram_log
        .as_ref()
        .is_some_and(|path| path.as_os_str() == STANDARD_STREAM);
    if to_stdout && common.json && !common.dry_run {
        echo_generate::color::exit(
            Cli::command().error(
                ErrorKind::ArgumentConflict,
                "--json and --histogram-log - both want stdout: give the log a file, or \
                 leave out --json (the log ends with the JSON report)",
            ),
            Cli::command(),
        )
    }
    // Opened before anything is looked up, so that a log that cannot be
    // written costs nothing; a dry run writes none.
    let mut log = match &common.histogram_log {
        Some(path) if !common.dry_run => Some(LogWriter::create(path, common.histogram_interval)?),
        _ => None,
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcome = runtime.block_on(async {
        // Looked up once: which destinations are this machine, and which
        // source addresses the load may spread over.
        let own = host::own_addresses();
        let addrs = echo_bench::resolve::resolve(&plan.target, &own, plan.timeout).await?;
        let plan = plan.with_addrs(addrs, own).map_err(UsageError)?;
        note_off_host(&plan, &mut log);
        if common.tls.tls_insecure {
            say(
                "echo-bench: note: --tls-insecure: the server's certificate is not checked",
                &mut log,
            );
        }
        if common.dry_run {
            return print_dry_run(&plan, common.json).map(|()| None);
        }
        limits::raise_fd_limit();
        let plan = echo_bench::reach(&plan).await.map_err(with_next_step)?;
        if let Some(start) = common.start_at {
            check_ready(start, common.late_ok, &mut log)?;
        }
        say(&start_line(&plan, common.start_at), &mut log);
        if let Some(start) = common.start_at {
            start_at::wait_until(start).await;
        }
        let live = Arc::new(match log {
            Some(_) => Live::with_intervals(),
            None => Live::default(),
        });
        let progress = Progress::start(&plan, Arc::clone(&live));
        let recording = log
            .take()
            .map(|log| Recording::start(log, Arc::clone(&live), common.histogram_interval));
        let report = echo_bench::run(&plan, live).await;
        drop(progress);
        let log = recording.map(Recording::finish).transpose();
        anyhow::Ok(Some((report?, log?)))
    });
    // Workers abandoned at the hard deadline, or a lookup given up on, may
    // still hold threads and sockets; do not wait for them.
    runtime.shutdown_background();
    // A dry run has printed its plan, and passes.
    let Some((report, log)) = outcome? else {
        return Ok(true);
    };
    publish(&report, common.json, common.plot.as_deref(), log)
}

/// With a start time, whether the generator is ready in time: late, it
/// fails, or with `late_ok` says by how much and goes on.
fn check_ready(
    start: SystemTime,
    late_ok: bool,
    log: &mut Option<LogWriter>,
) -> anyhow::Result<()> {
    let Some(late) = start_at::late_by(start, SystemTime::now()) else {
        return Ok(());
    };
    if !late_ok {
        return Err(BenchError::Late {
            start: start_at::show(start),
            late,
        }
        .into());
    }
    say(
        &format!(
            "echo-bench: note: the load begins {} after the start time {} \
             (--late-ok), out of step with the other generators",
            Human(late),
            start_at::show(start)
        ),
        log,
    );
    Ok(())
}

/// Gives the report of a run or a merge: as a table or JSON on stdout, or
/// with a log on stdout as comments there; as a plot if asked; and ends the
/// log with it. Returns whether the run passed.
fn publish(
    report: &Report,
    json: bool,
    plot_path: Option<&Path>,
    mut log: Option<LogWriter>,
) -> anyhow::Result<bool> {
    match &mut log {
        Some(log) if log.is_stdout() => log.comment(&report.to_string())?,
        _ => {
            let mut stdout = io::stdout().lock();
            if json {
                writeln!(stdout, "{}", report.to_json())?;
            } else {
                write!(stdout, "{report}")?;
            }
            stdout.flush()?;
        }
    }
    if let Some(path) = plot_path {
        plot::latency_svg(std::slice::from_ref(report), path)?;
    }
    if let Some(hint) = udp_limit_hint(report) {
        say(&hint, &mut log);
    }
    if !report.ok {
        // The report already says it failed, and so will the exit code.
        let runs = if report.generators.is_some() {
            "merged runs"
        } else {
            "run"
        };
        say(
            &format!(
                "error: {} {runs} against {} FAILED: {}",
                report.scenario,
                report.addr,
                report.failures.join("; ")
            ),
            &mut log,
        );
    }
    if let Some(log) = log {
        log.finish(report)?;
    }
    Ok(report.ok)
}

/// What `echo-bench` says on stderr as the load starts, as wrk does:
/// `running 10s persistent test @ 127.0.0.1:7007, 50 workers`, and with a
/// start time, `at` it.
fn start_line(plan: &Plan, start: Option<SystemTime>) -> String {
    let scenario = plan.scenario.name();
    let how_long = Human(plan.duration);
    let test = match (&plan.scenario, plan.count) {
        (Scenario::Bulk { total }, _) => {
            format!(
                "{scenario} test of {} (at most {how_long})",
                format_size(*total)
            )
        }
        (Scenario::Idle { connections }, _) => format!(
            "{scenario} test of {} connections held {how_long}",
            group_thousands(*connections)
        ),
        (_, Some(count)) => format!(
            "{scenario} test of {} exchanges (at most {how_long})",
            group_thousands(count)
        ),
        (_, None) => format!("{how_long} {scenario} test"),
    };
    let addr = plan.destination().map_or_else(
        || plan.target.to_string(),
        |destination| destination.endpoint.to_string(),
    );
    let workers = match plan.workers {
        1 => "1 worker".to_owned(),
        n => format!("{} workers", group_thousands(n as u64)),
    };
    let at = start
        .map(|start| format!(", at {}", start_at::show(start)))
        .unwrap_or_default();
    format!("running {test} @ {addr}, {workers}{at}")
}

/// When a udp run lost datagrams, why that may be: an echo-server's
/// per-source limit, which a default server holds every load to.
fn udp_limit_hint(report: &Report) -> Option<String> {
    let lost = report.lost.filter(|&lost| lost > 0)?;
    Some(format!(
        "hint: {} datagrams were lost; an echo-server answers each source at most \
         --udp-rate times a second (1000 by default): start it with --udp-rate 0 \
         to measure it unlimited",
        group_thousands(lost)
    ))
}

/// The error of a target where nothing listens, with what to do about it.
fn with_next_step(err: BenchError) -> anyhow::Error {
    let nothing_listens = matches!(&err, BenchError::Unreachable { attempts, .. }
        if !attempts.is_empty()
            && attempts.iter().all(|attempt| matches!(attempt, Unanswered::NothingListens { .. })));
    if nothing_listens {
        anyhow::anyhow!(
            "{err}: is a server running there? start one with `cargo run -p echo-server` \
             (add `-- --udp` for udp), or pick another address with --addr"
        )
    } else {
        err.into()
    }
}

/// One line for people: on stderr, or as a comment of a histogram log on
/// stdout, which then carries nothing else; with either gone the run goes
/// on, as nothing is lost but the line (a log that cannot be written says
/// so at its next interval).
fn say(line: &str, log: &mut Option<LogWriter>) {
    match log {
        Some(log) if log.is_stdout() => {
            let _ = log.comment(line);
        }
        _ => {
            let _ = writeln!(io::stderr().lock(), "{line}");
        }
    }
}

/// `--dry-run`: the plan on stdout, as text or one JSON object.
fn print_dry_run(plan: &Plan, json: bool) -> anyhow::Result<()> {
    let mut stdout = io::stdout().lock();
    if json {
        // A struct of plain fields always serializes.
        let json = serde_json::to_string(&plan.dry_run()).unwrap_or_default();
        writeln!(stdout, "{json}")?;
    } else {
        write!(stdout, "{plan}")?;
    }
    stdout.flush()?;
    Ok(())
}

/// Says in one line when the load is to leave this machine, so that no one
/// loads another machine without knowing it.
fn note_off_host(plan: &Plan, log: &mut Option<LogWriter>) {
    let off_host = plan.off_host();
    if off_host.is_empty() {
        return;
    }
    let addrs: Vec<String> = off_host.iter().map(ToString::to_string).collect();
    let addrs = addrs.join(" or ");
    let place = match &plan.target {
        Target::Name { .. } => format!("{} ({addrs})", plan.target),
        Target::Endpoint(_) => addrs,
    };
    let goes = if off_host.len() == plan.addrs.len() {
        "goes"
    } else {
        "may go"
    };
    say(
        &format!("echo-bench: note: the load {goes} to {place}, off this machine"),
        log,
    );
}

/// A plan the flags describe but that cannot be run: a bad command line.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct UsageError(echo_bench::BenchError);

/// Per-scenario defaults for flags left out.
struct Defaults {
    workers: usize,
    size: u64,
    timeout: Duration,
}

impl Defaults {
    fn tcp(workers: usize, size: u64) -> Self {
        Defaults {
            workers,
            size,
            timeout: Duration::from_secs(5),
        }
    }
}

fn plot_reports(args: &PlotArgs) -> anyhow::Result<()> {
    let mut reports = Vec::new();
    let stdin_only = [PathBuf::from("-")];
    let inputs = if args.inputs.is_empty() {
        &stdin_only[..]
    } else {
        &args.inputs[..]
    };
    for input in inputs {
        let reader: Box<dyn BufRead> = if input.as_os_str() == "-" {
            Box::new(io::stdin().lock())
        } else {
            let file = std::fs::File::open(input)
                .with_context(|| format!("cannot open {}", input.display()))?;
            Box::new(io::BufReader::new(file))
        };
        for (number, line) in reader.lines().enumerate() {
            let line = line.with_context(|| format!("cannot read {}", input.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            let report: Report = serde_json::from_str(&line).with_context(|| {
                format!(
                    "{} line {}: not an echo-bench JSON report",
                    input.display(),
                    number + 1
                )
            })?;
            reports.push(report);
        }
    }
    if args.out.as_os_str() == "-" {
        let mut stdout = io::stdout().lock();
        stdout.write_all(plot::render_svg(&reports)?.as_bytes())?;
        stdout.flush()?;
    } else {
        plot::latency_svg(&reports, &args.out)?;
    }
    Ok(())
}

/// `tls-floor`: measures in this thread and prints the table or JSON.
fn tls_floor(args: &FloorArgs) -> anyhow::Result<()> {
    let settings = floor::Settings {
        handshakes: args.handshakes,
        runs: args.runs,
        bytes: (args.gib * (1u64 << 30) as f64).round() as u64,
        idle_connections: args.idle,
    };
    let floor = floor::measure(&settings).context("cannot measure the TLS floor")?;
    let mut stdout = io::stdout().lock();
    if args.json {
        writeln!(stdout, "{}", floor.to_json())?;
    } else {
        write!(stdout, "{floor}")?;
    }
    stdout.flush()?;
    Ok(())
}

/// Whether `err` is stdout closed under us, by the report or by a histogram
/// log written there: whoever read it has all they wanted.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    let broken = |err: &io::Error| err.kind() == io::ErrorKind::BrokenPipe;
    err.downcast_ref::<io::Error>().is_some_and(broken)
        || matches!(
            err.downcast_ref::<LogError>(),
            Some(LogError::Io { source, .. }) if broken(source)
        )
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
            Cli::try_parse_from(["echo-bench", "--generate", "complete-bash"]).expect("parses");
        assert_eq!(cli.generate.kind, Some(echo_generate::Kind::CompleteBash));
        assert!(cli.command.is_none(), "no scenario needed");
        let err = Cli::try_parse_from(["echo-bench"]).expect_err("neither");
        assert_eq!(
            err.kind(),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
        assert_eq!(err.exit_code(), 2);
    }
}
