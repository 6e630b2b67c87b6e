//! The table `cargo xtask bench` ends with: for each case and figure, every
//! server's median over rounds with the spread of the rounds, and our
//! server's ratio to each reference.

use super::cases::CASES;
use super::rounds::{Results, median, spread};
use super::servers::Contender;

/// Prints the table of `results` to stdout, with the notes that go with it.
pub(super) fn print(contenders: &[Contender], results: &Results) {
    let mut header = format!("\n{:<22} {:<20}", "case", "figure");
    for contender in contenders {
        header.push_str(&format!(" {:>26}", contender.name));
    }
    for reference in &contenders[1..] {
        header.push_str(&format!(" {:>10}", format!("/{}", reference.name)));
    }
    println!("{header}");
    for (case, runs) in CASES.iter().zip(results) {
        for (row, figure) in case.figures.iter().enumerate() {
            let name = if row == 0 { case.name } else { "" };
            let mut line = format!("{name:<22} {:<20}", figure.unit());
            let values = |which: usize| {
                runs[which]
                    .iter()
                    .map(|m| figure.read(&m.report).unwrap_or(f64::NAN))
            };
            for which in 0..contenders.len() {
                let (low, high) = spread(values(which));
                let cell = format!(
                    "{} ({}–{})",
                    figure.show(median(values(which))),
                    figure.show(low),
                    figure.show(high)
                );
                line.push_str(&format!(" {cell:>26}"));
            }
            for which in 1..contenders.len() {
                // Runs of one round were made back to back, so their ratio is
                // taken before the median: the machine's drift between rounds
                // cancels out.
                let ratio = median(
                    values(0)
                        .zip(values(which))
                        .filter(|(_, theirs)| theirs.abs() > f64::EPSILON)
                        .map(|(mine, theirs)| mine / theirs),
                );
                let ratio = if ratio.is_nan() {
                    "-".to_owned()
                } else {
                    format!("{ratio:.2}")
                };
                line.push_str(&format!(" {ratio:>10}"));
            }
            println!("{line}");
        }
    }
    println!(
        "\nEach cell is the median over rounds, with the lowest and highest round in parentheses;\n\
         /NAME is the median over rounds of each round's ratio of ours to NAME's\n\
         (below 1 is better for costs and latencies, above 1 for throughputs).\n\
         Server CPU is user plus system time from /proc, counted in 10 ms ticks."
    );
    if contenders.iter().any(|c| c.name == "tokio") {
        println!(
            "\nThe tokio reference is the canonical tokio echo: a 4 KiB buffer and Nagle's algorithm on,\n\
             so messages longer than 4 KiB come back in pieces that may wait for a delayed ACK\n\
             (about 40 ms); that, not speed, is what a large ratio on such messages measures."
        );
    }
}
