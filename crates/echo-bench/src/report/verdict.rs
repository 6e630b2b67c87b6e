//! Whether a run passed, and why not: the one place that judges a
//! [`Report`]'s figures, so that the table, the JSON and the exit code
//! cannot disagree.

use crate::plan::{MIN_RATE_PCT, format_rate};
use crate::size::group_thousands;
use crate::tally::ErrorCounts;

use super::Report;

/// Why `report` did not pass, one reason each, errors first; empty when it
/// passed: no errors, UDP loss within its limit, something exchanged, and
/// a fixed rate kept to within [`MIN_RATE_PCT`].
pub(super) fn failures(report: &Report) -> Vec<String> {
    let mut failures = Vec::new();
    if report.errors > 0 {
        failures.push(format!(
            "{} errors ({})",
            group_thousands(report.errors),
            describe(&report.error_counts)
        ));
    }
    if let (Some(loss), Some(max_loss)) = (report.loss_pct, report.max_loss_pct) {
        if loss > max_loss {
            failures.push(format!(
                "lost {loss:.2}% of datagrams, more than the {max_loss}% allowed"
            ));
        }
    }
    if let Some(tls) = &report.tls {
        // A worker's first handshake is full; the rest could have resumed.
        if tls.resume_asked && tls.handshakes > report.workers as u64 && tls.resumed == 0 {
            failures.push(format!(
                "--tls-resume asked, but the server resumed none of {} handshakes",
                group_thousands(tls.handshakes)
            ));
        }
    }
    if report.exchanges == 0 {
        failures.push("no exchange completed".to_owned());
    }
    if let Some(asked) = report.rate_asked {
        let achieved_pct = 100.0 * report.rate / asked;
        if achieved_pct < MIN_RATE_PCT {
            failures.push(format!(
                "achieved {}/s of the {}/s asked, {:.1}% short (at most {}% short passes)",
                format_rate(report.rate),
                format_rate(asked),
                100.0 - achieved_pct,
                100.0 - MIN_RATE_PCT
            ));
        }
    }
    failures
}

/// `mismatch 2, reset 1`: the kinds that occurred.
pub(super) fn describe(counts: &ErrorCounts) -> String {
    let kinds = [
        ("mismatch", counts.mismatch),
        ("reset or early close", counts.reset),
        ("timeout", counts.timeout),
        ("connect", counts.connect),
        ("duplicate", counts.duplicate),
        ("tls", counts.tls),
        ("other", counts.other),
    ];
    kinds
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| format!("{name} {}", group_thousands(*n)))
        .collect::<Vec<_>>()
        .join(", ")
}
