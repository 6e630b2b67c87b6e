//! The tables `cargo xtask bench --tls` ends with: each scenario's figures
//! for our server over TLS and over TCP, the peers and the floor, as medians
//! with the spread of the rounds; then the goals, as ratios with their
//! spreads and verdicts; and the footnotes that say why a cell is `-`.

use echo_bench::floor::Floor;

use super::goals::{self, Goal};
use super::peers::{PEERS, Scenario};
use super::{Column, Results, Row};
use crate::bench::cases::Figure;
use crate::bench::rounds::{median, spread};

/// Width of a figure's cell.
const CELL: usize = 26;

/// The floor's figure for `figure` of `row`, if the floor has one.
fn floor_value(row: Row, figure: Figure, floor: &Floor) -> Option<f64> {
    match (row, figure) {
        (Row::Conn, Figure::CpuPerExchange(_)) => Some(floor.server_handshake_us),
        (Row::Conn, Figure::ClientCpuPerExchange(_)) => Some(floor.client_handshake_us),
        (Row::Resumed, Figure::CpuPerExchange(_)) => Some(floor.server_resumed_handshake_us),
        (Row::Bulk, Figure::CpuPerGib) => Some(floor.echo_s_per_gib),
        (Row::Idle, Figure::BytesPerConnection) => {
            floor.idle_connection_bytes.map(|bytes| bytes as f64)
        }
        _ => None,
    }
}

/// `median (low–high)` of `values`, or an empty cell for none.
fn cell(figure: Figure, values: &[f64]) -> String {
    if values.is_empty() {
        return String::new();
    }
    let (low, high) = spread(values.iter().copied());
    format!(
        "{} ({}–{})",
        figure.show(median(values.iter().copied())),
        figure.show(low),
        figure.show(high)
    )
}

/// Numbers footnotes in the order they are first used.
#[derive(Default)]
struct Footnotes(Vec<&'static str>);

impl Footnotes {
    /// The marker of `note`, adding it if new.
    fn mark(&mut self, note: &'static str) -> String {
        let index = match self.0.iter().position(|n| *n == note) {
            Some(index) => index,
            None => {
                self.0.push(note);
                self.0.len() - 1
            }
        };
        format!("[{}]", index + 1)
    }
}

/// Prints the figures and the goals of `results`, with the peers of `PEERS`
/// at indices `peers` (those installed), over `rounds` rounds.
pub(super) fn print(results: &Results, peers: &[usize], rounds: usize) {
    let mut columns = vec![
        (Column::OursTls, "ours TLS".to_owned()),
        (Column::OursTcp, "ours TCP".to_owned()),
    ];
    columns.extend(
        peers
            .iter()
            .map(|&index| (Column::Peer(index), format!("{} TLS", PEERS[index].name))),
    );
    let mut header = format!("\n{:<30} {:<20}", "case", "figure");
    for (_, name) in &columns {
        header.push_str(&format!(" {name:>CELL$}"));
    }
    header.push_str(&format!(" {:>CELL$}", "floor"));
    println!("{header}");
    let mut notes = Footnotes::default();
    for row in Row::ALL {
        for (index, &figure) in row.figures().iter().enumerate() {
            let name = if index == 0 {
                row.name()
            } else {
                String::new()
            };
            let mut line = format!("{name:<30} {:<20}", figure.unit());
            for &(column, _) in &columns {
                let values: Vec<f64> = results
                    .runs
                    .get(&(row, column))
                    .map(|runs| runs.iter().map(|run| run.value(figure)).collect())
                    .unwrap_or_default();
                let mut text = cell(figure, &values);
                if let Column::Peer(peer) = column {
                    let scenario = match row {
                        Row::Conn => Some(PEERS[peer].conn),
                        Row::Bulk => Some(PEERS[peer].bulk),
                        Row::Idle => Some(PEERS[peer].idle),
                        Row::Resumed => None,
                    };
                    match scenario {
                        Some(Scenario::Skipped(why)) => text = format!("- {}", notes.mark(why)),
                        Some(Scenario::Runs(Some(note))) if index == 0 => {
                            text = format!("{text} {}", notes.mark(note));
                        }
                        _ => {}
                    }
                }
                line.push_str(&format!(" {text:>CELL$}"));
            }
            let floor: Vec<f64> = results
                .floors
                .iter()
                .filter_map(|floor| floor_value(row, figure, floor))
                .collect();
            line.push_str(&format!(" {:>CELL$}", cell(figure, &floor)));
            println!("{line}");
        }
    }
    println!(
        "\nEach cell is the median over {rounds} rounds, with the lowest and highest round in parentheses.\n\
         Server CPU is user plus system time from /proc in 10 ms ticks, read once the server's\n\
         children are reaped (socat forks a process per connection), so forking servers count whole.\n\
         Ours runs with --splice never, so its TCP bytes are copied as its TLS bytes must be.\n\
         The floor (echo-bench tls-floor, each round) is rustls alone, in memory: server CPU per full\n\
         and resumed handshake, client CPU per handshake, open plus seal per GiB, heap per idle connection."
    );
    for (number, note) in notes.0.iter().enumerate() {
        println!("[{}] {note}", number + 1);
    }

    let figures: Vec<_> = (0..rounds).map(|round| results.round(round)).collect();
    println!(
        "\n{:<100} {:>22} {:>6} {:>6}",
        "goal", "ratio (rounds)", "limit", "holds"
    );
    for goal in Goal::ALL {
        let verdict = goals::judge(goal, &figures);
        let ratio = if verdict.median.is_nan() {
            "-".to_owned()
        } else {
            format!(
                "{:.2} ({:.2}–{:.2})",
                verdict.median, verdict.spread.0, verdict.spread.1
            )
        };
        let holds = match verdict.holds {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        println!(
            "{:<100} {ratio:>22} {:>6.2} {holds:>6}",
            goal.statement(),
            goal.limit()
        );
    }
    println!(
        "\nEach ratio is taken in its round, from runs made back to back, then the median of the rounds:\n\
         TLS cost / (floor + plain cost) for CPU, bytes / 4,096 for memory."
    );
}
