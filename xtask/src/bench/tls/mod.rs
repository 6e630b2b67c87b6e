//! `cargo xtask bench --tls`: what TLS costs our server, judged against the
//! crypto floor (`echo-bench tls-floor`, measured in the same run) plus our
//! own cost of the same work in the clear, and against the TLS echo servers a
//! user would otherwise pick; issue 20's three goals with their verdicts.
//!
//! One module per concern: `certs` makes the run's certificates, `peers`
//! says how socat and ncat are run and what they can pass, `goals` is the
//! goals' arithmetic, and `table` prints the result; this module runs the
//! interleaved rounds.

mod certs;
mod goals;
mod peers;
mod table;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::Context as _;
use echo_bench::Report;
use echo_bench::floor::Floor;

use self::certs::Certs;
use self::goals::RoundFigures;
use self::peers::{PEERS, Scenario};
use super::cases::{CASES, Case, Figure};
use super::conntrack;
use super::rounds::json_run;
use super::servers::Server;

/// Bytes in a GiB, as echo-bench counts its per-GiB figures.
const GIB: f64 = (1u64 << 30) as f64;

/// A scenario of the TLS benchmark: a row group of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Row {
    /// `conn 64 B × 50`, a full handshake per connection.
    Conn,
    /// The same with `--tls-resume`: all but each worker's first resumed.
    Resumed,
    /// `bulk 1 GiB × 1`.
    Bulk,
    /// `idle 10,000`, on a server started for it.
    Idle,
}

impl Row {
    /// Every row, in table order.
    const ALL: [Row; 4] = [Row::Conn, Row::Resumed, Row::Bulk, Row::Idle];

    /// The plain case whose echo-bench arguments it runs, so that the TLS and
    /// the plain benchmarks measure the same shapes.
    fn case(self) -> &'static Case {
        let scenario = match self {
            Row::Conn | Row::Resumed => "conn",
            Row::Bulk => "bulk",
            Row::Idle => "idle",
        };
        CASES
            .iter()
            .find(|case| case.args.first() == Some(&scenario))
            .unwrap_or(&CASES[0])
    }

    /// The row's name in the table.
    fn name(self) -> String {
        match self {
            Row::Resumed => format!("{} resumed", self.case().name),
            _ => self.case().name.to_owned(),
        }
    }

    /// The figures shown for it, the headline first.
    fn figures(self) -> &'static [Figure] {
        match self {
            Row::Conn => &[
                Figure::Rate("conn/s"),
                Figure::CpuPerExchange("server CPU µs/conn"),
                Figure::ClientCpuPerExchange("client CPU µs/conn"),
            ],
            Row::Resumed => &[
                Figure::Rate("conn/s"),
                Figure::CpuPerExchange("server CPU µs/conn"),
            ],
            Row::Bulk => &[
                Figure::Gigabytes,
                Figure::CpuPerGib,
                Figure::ClientCpuPerGib,
            ],
            Row::Idle => &[Figure::BytesPerConnection],
        }
    }
}

/// Who was measured: a column of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Column {
    /// Our server over TLS.
    OursTls,
    /// Our server over plain TCP, on its other listener.
    OursTcp,
    /// A peer, by its index in [`PEERS`].
    Peer(usize),
}

/// One echo-bench run, with the server's CPU read whole.
#[derive(Debug, Clone)]
struct Measured {
    /// The report, read through echo-bench's own type.
    report: Report,
    /// The JSON line as echo-bench printed it.
    line: String,
    /// The server's CPU time over the run, its reaped children's included,
    /// in seconds.
    server_cpu_s: f64,
}

impl Measured {
    /// A figure of the run: the server's CPU from [`peers::settled_cpu`],
    /// anything else from echo-bench's report; NaN when not measured.
    fn value(&self, figure: Figure) -> f64 {
        let per = |count: f64| {
            if count > 0.0 {
                self.server_cpu_s / count
            } else {
                f64::NAN
            }
        };
        match figure {
            Figure::CpuPerExchange(_) => per(self.report.exchanges as f64) * 1e6,
            Figure::CpuPerGib => per(self.report.bytes as f64 / GIB),
            other => other.read(&self.report).unwrap_or(f64::NAN),
        }
    }
}

/// Everything a run measured: one entry per round in each series.
#[derive(Debug, Default)]
struct Results {
    /// The floor of each round.
    floors: Vec<Floor>,
    /// Each scenario against each server, round by round.
    runs: BTreeMap<(Row, Column), Vec<Measured>>,
    /// Every report and floor as echo-bench printed it, one a line, in the order run.
    lines: String,
}

impl Results {
    /// Keeps a run of `row` against `column`.
    fn record(&mut self, row: Row, column: Column, measured: Measured) {
        self.lines.push_str(&measured.line);
        self.lines.push('\n');
        self.runs.entry((row, column)).or_default().push(measured);
    }

    /// Keeps a round's floor and its JSON line.
    fn record_floor(&mut self, floor: Floor, line: &str) {
        self.floors.push(floor);
        self.lines.push_str(line);
        self.lines.push('\n');
    }

    /// Round `round`'s figures the goals are judged by.
    fn round(&self, round: usize) -> RoundFigures {
        let value = |row, column, figure| {
            self.runs
                .get(&(row, column))
                .and_then(|runs| runs.get(round))
                .map_or(f64::NAN, |run: &Measured| run.value(figure))
        };
        let per_conn = Figure::CpuPerExchange("");
        let floor = self.floors.get(round);
        RoundFigures {
            tls_connection_us: value(Row::Conn, Column::OursTls, per_conn),
            plain_connection_us: value(Row::Conn, Column::OursTcp, per_conn),
            floor_handshake_us: floor.map_or(f64::NAN, |f| f.server_handshake_us),
            tls_gib_s: value(Row::Bulk, Column::OursTls, Figure::CpuPerGib),
            plain_gib_s: value(Row::Bulk, Column::OursTcp, Figure::CpuPerGib),
            floor_echo_gib_s: floor.map_or(f64::NAN, |f| f.echo_s_per_gib),
            idle_tls_bytes: value(Row::Idle, Column::OursTls, Figure::BytesPerConnection),
        }
    }
}

/// How a run speaks to its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Speak {
    /// Plain TCP.
    Plain,
    /// TLS, a full handshake per connection.
    Tls,
    /// TLS, resuming each worker's last session.
    Resume,
}

/// The TLS benchmark's fixed inputs.
struct Bench<'a> {
    /// The echo-bench binary.
    echo_bench: &'a Path,
    /// The run's certificates.
    certs: &'a Certs,
}

impl Bench<'_> {
    /// Runs `row`'s scenario against `server` (its listener of `kind`) and
    /// reads its report and the server's CPU over it.
    fn measure(
        &self,
        row: Row,
        speak: Speak,
        server: &mut Server,
        kind: &str,
        label: &str,
    ) -> anyhow::Result<Measured> {
        let pid_text = server.pid();
        let pid: u32 = pid_text
            .parse()
            .context("a server pid that is not a number")?;
        let mut command = Command::new(self.echo_bench);
        command.args(row.case().args).args([
            "--addr",
            server.addr(kind),
            "--json",
            "--label",
            label,
            "--server-pid",
            &pid_text,
        ]);
        if speak != Speak::Plain {
            command
                .arg("--tls")
                .arg("--tls-ca")
                .arg(&self.certs.ca)
                .args(["--tls-server-name", "localhost"]);
        }
        if speak == Speak::Resume {
            command.arg("--tls-resume");
        }
        if row != Row::Bulk {
            conntrack::wait_for_room(conntrack::ROOM_FOR_A_RUN)?;
        }
        let before = peers::settled_cpu(pid)?;
        let (report, line) = json_run(&mut command, Some(server), "echo-bench report", |line| {
            serde_json::from_str::<Report>(line)
        })?;
        let after = peers::settled_cpu(pid)?;
        Ok(Measured {
            report,
            line,
            server_cpu_s: after.saturating_sub(before).as_secs_f64(),
        })
    }

    /// Runs `echo-bench tls-floor --json` and reads it.
    fn floor(&self) -> anyhow::Result<(Floor, String)> {
        let mut command = Command::new(self.echo_bench);
        command.args(["tls-floor", "--json"]);
        json_run(&mut command, None, "floor", |line| {
            serde_json::from_str::<Floor>(line)
        })
    }
}

/// Our server as the TLS benchmark runs it: TLS and TCP listeners, bytes
/// copied over both (TLS's always are), the run's certificate.
fn start_ours(release: &Path, out: &Path, certs: &Certs, log: &str) -> anyhow::Result<Server> {
    Server::start(
        "ours",
        Command::new(release.join("echo-server"))
            .args(["--listen", "tls:127.0.0.1:0", "--listen", "127.0.0.1:0"])
            .args(["--splice", "never", "--tls-cert"])
            .arg(&certs.cert)
            .arg("--tls-key")
            .arg(&certs.key),
        &out.join(log),
        &["tls", "tcp"],
    )
}

/// Says what a run measured, as the plain benchmark's progress lines do.
fn progress(round: usize, rounds: usize, row: Row, who: &str, measured: &Measured) {
    let headline = row.figures()[0];
    eprintln!(
        "round {}/{rounds}  {:<30} {:<10} {:>12} {}",
        round + 1,
        row.name(),
        who,
        headline.show(measured.value(headline)),
        headline.unit()
    );
}

/// Builds release binaries, makes certificates, measures the floor, our
/// server over TLS and TCP, and the peers that are installed, in `rounds`
/// interleaved rounds, and prints the table and the goals' verdicts.
///
/// # Errors
/// A failed build, certificate, server start or echo-bench run (any run with
/// errors: a server that corrupts data has no cost worth reporting).
pub(super) fn run(root: &Path, rounds: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    let (release, out) = super::build_release(root, &[], "tls")?;
    let certs = certs::make(&out)?;
    peers::prepare(&out)?;
    let echo_bench = release.join("echo-bench");
    let bench = Bench {
        echo_bench: &echo_bench,
        certs: &certs,
    };

    let mut ours = start_ours(&release, &out, &certs, "ours.log")?;
    let mut peer_servers = Vec::new();
    for (index, peer) in PEERS.iter().enumerate() {
        if !peer.runs_any() {
            continue;
        }
        if !peers::installed(peer.name) {
            eprintln!(
                "note: {} is not installed (Debian: apt-get install {}); its column is skipped",
                peer.name, peer.name
            );
            continue;
        }
        let server = peer.contender(&certs, &out).start(&release, &out, "")?;
        peer_servers.push((index, server));
    }

    let mut results = Results::default();
    for round in 0..rounds {
        let (floor, line) = bench.floor()?;
        eprintln!(
            "round {}/{rounds}  {:<30} {:<10} {:>12.1} server µs/handshake",
            round + 1,
            "tls-floor",
            "floor",
            floor.server_handshake_us
        );
        results.record_floor(floor, &line);
        // TLS and TCP take turns going first, so neither always meets a
        // machine still busy with the other's run.
        let pair = if round % 2 == 0 {
            [
                (Column::OursTls, Speak::Tls, "tls"),
                (Column::OursTcp, Speak::Plain, "tcp"),
            ]
        } else {
            [
                (Column::OursTcp, Speak::Plain, "tcp"),
                (Column::OursTls, Speak::Tls, "tls"),
            ]
        };
        for row in [Row::Conn, Row::Bulk] {
            for (column, speak, kind) in pair {
                let label = format!("ours {kind}");
                let measured = bench.measure(row, speak, &mut ours, kind, &label)?;
                progress(round, rounds, row, &label, &measured);
                results.record(row, column, measured);
            }
            if row == Row::Conn {
                let measured =
                    bench.measure(Row::Resumed, Speak::Resume, &mut ours, "tls", "ours tls")?;
                progress(round, rounds, Row::Resumed, "ours tls", &measured);
                results.record(Row::Resumed, Column::OursTls, measured);
            }
        }
        {
            let mut fresh = start_ours(&release, &out, &certs, "ours-fresh.log")?;
            let measured = bench.measure(Row::Idle, Speak::Tls, &mut fresh, "tls", "ours tls")?;
            progress(round, rounds, Row::Idle, "ours tls", &measured);
            results.record(Row::Idle, Column::OursTls, measured);
        }
        for (index, server) in &mut peer_servers {
            let peer = &PEERS[*index];
            for (row, scenario) in [(Row::Conn, peer.conn), (Row::Bulk, peer.bulk)] {
                if let Scenario::Runs(_) = scenario {
                    let measured = bench.measure(row, Speak::Tls, server, "tcp", peer.name)?;
                    progress(round, rounds, row, peer.name, &measured);
                    results.record(row, Column::Peer(*index), measured);
                }
            }
        }
    }

    let shown: Vec<usize> = peer_servers.iter().map(|(index, _)| *index).collect();
    table::print(&results, &shown, rounds);
    let runs_file = out.join("runs.jsonl");
    File::create(&runs_file)
        .and_then(|mut file| file.write_all(results.lines.as_bytes()))
        .with_context(|| format!("cannot write {}", runs_file.display()))?;
    println!(
        "\nmedians of {rounds} rounds; reports and floors: {}; certificates and logs: {}; took {:.0}s",
        runs_file.display(),
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
