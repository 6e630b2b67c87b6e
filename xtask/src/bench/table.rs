//! The table `cargo xtask bench` ends with: one line per case, the medians of
//! both servers, the median of their ratios, and their p99 latencies.

use super::cases::{CASES, grouped};
use super::rounds::{Results, median};

/// Prints the table of `results` to stdout, with the notes that go with it.
pub(super) fn print(results: &Results) {
    println!(
        "\n{:<24} {:<26} {:>12} {:>12} {:>9} {:>12} {:>12}",
        "scenario", "metric", "ours", "reference", "ours/ref", "p99 µs ours", "p99 µs ref"
    );
    for (case, runs) in CASES.iter().zip(results) {
        let value = |which: usize| median(runs[which].iter().map(|m| m.value));
        let p99 = |which: usize| median(runs[which].iter().map(|m| m.p99_us));
        let (ours, reference) = (value(0), value(1));
        // Runs of one round were made back to back, so their ratio is taken
        // before the median: the machine's drift between rounds cancels out.
        let ratio = median(
            runs[0]
                .iter()
                .zip(&runs[1])
                .filter(|(_, theirs)| theirs.value.abs() > f64::EPSILON)
                .map(|(mine, theirs)| mine.value / theirs.value),
        );
        let ratio = if ratio.is_nan() {
            "-".to_owned()
        } else {
            format!("{ratio:.2}")
        };
        println!(
            "{:<24} {:<26} {:>12} {:>12} {:>9} {:>12} {:>12}",
            case.name,
            case.metric.unit(),
            case.metric.show(ours),
            case.metric.show(reference),
            ratio,
            grouped(p99(0)),
            grouped(p99(1))
        );
    }
    println!(
        "\nours/ref is the median over rounds of each round's ratio; the other columns are medians."
    );
    println!(
        "\nThe reference is the canonical tokio echo: a 4 KiB buffer and Nagle's algorithm on,\n\
         so messages longer than 4 KiB come back in pieces that may wait for a delayed ACK\n\
         (about 40 ms); that, not speed, is what a large ratio on such messages measures."
    );
}
