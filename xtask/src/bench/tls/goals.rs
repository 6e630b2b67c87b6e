//! Issue 20's goals for TLS as arithmetic on one round's figures: what TLS
//! costs our server, over what it costs at the least (the crypto floor plus
//! our own cost of the same work in the clear), and whether that holds.
//!
//! Each ratio is taken per round, from runs made back to back, and only then
//! summarised over rounds, so that the shared machine's drift between rounds
//! cancels out (as the plain table's ratio columns do).

use crate::bench::rounds::{median, spread};

/// How far above the floor plus our plain cost a TLS connection or GiB may
/// cost our server: 15% for what TLS adds beyond the crypto (records made
/// and opened, session tickets, bigger writes).
pub(super) const CPU_ALLOWANCE: f64 = 1.15;

/// The most memory an idle TLS connection may hold, in bytes.
pub(super) const IDLE_LIMIT_BYTES: f64 = 4096.0;

/// One round's figures the goals are judged by; NaN for one not measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct RoundFigures {
    /// Our server's CPU per TLS connection (full handshake, 64 B echo, close), µs.
    pub(super) tls_connection_us: f64,
    /// Our server's CPU per plain TCP connection of the same shape, µs.
    pub(super) plain_connection_us: f64,
    /// The floor's server CPU per full handshake (`server_handshake_us`), µs.
    pub(super) floor_handshake_us: f64,
    /// Our server's CPU per GiB echoed over TLS, s.
    pub(super) tls_gib_s: f64,
    /// Our server's CPU per GiB echoed over TCP with `--splice never`, s.
    pub(super) plain_gib_s: f64,
    /// The floor's open plus seal of a GiB (`echo_s_per_gib`), s.
    pub(super) floor_echo_gib_s: f64,
    /// Our server's memory per idle TLS connection, bytes.
    pub(super) idle_tls_bytes: f64,
}

/// A goal of issue 20 for TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Goal {
    /// Server CPU per TLS connection ≤ 1.15 × (floor handshake + plain connection).
    Connection,
    /// Server CPU per GiB over TLS ≤ 1.15 × (floor echo + plain GiB without splicing).
    Gib,
    /// An idle TLS connection ≤ 4 KiB.
    Idle,
}

impl Goal {
    /// Every goal, in the order the table lists them.
    pub(super) const ALL: [Goal; 3] = [Goal::Connection, Goal::Gib, Goal::Idle];

    /// The goal as the table states it.
    pub(super) fn statement(self) -> &'static str {
        match self {
            Goal::Connection => {
                "server CPU per TLS connection ≤ 1.15 × (floor server_handshake_us + plain CPU per connection)"
            }
            Goal::Gib => {
                "server CPU per GiB over TLS ≤ 1.15 × (floor echo_s_per_gib + plain CPU per GiB, --splice never)"
            }
            Goal::Idle => "memory per idle TLS connection ≤ 4,096 B",
        }
    }

    /// The highest ratio at which the goal holds.
    pub(super) fn limit(self) -> f64 {
        match self {
            Goal::Connection | Goal::Gib => CPU_ALLOWANCE,
            Goal::Idle => 1.0,
        }
    }

    /// What was measured over what it is measured against, for one round:
    /// the TLS cost over the floor plus the plain cost, or the idle
    /// connection's bytes over 4,096; NaN when a figure is missing or the
    /// base is not above zero.
    pub(super) fn ratio(self, round: &RoundFigures) -> f64 {
        let (measured, base) = match self {
            Goal::Connection => (
                round.tls_connection_us,
                round.floor_handshake_us + round.plain_connection_us,
            ),
            Goal::Gib => (round.tls_gib_s, round.floor_echo_gib_s + round.plain_gib_s),
            Goal::Idle => (round.idle_tls_bytes, IDLE_LIMIT_BYTES),
        };
        if base > 0.0 {
            measured / base
        } else {
            f64::NAN
        }
    }

    /// Whether a ratio meets the goal; `None` for no ratio.
    pub(super) fn holds(self, ratio: f64) -> Option<bool> {
        (!ratio.is_nan()).then_some(ratio <= self.limit())
    }
}

/// A goal judged over rounds: the median of the rounds' ratios, their
/// spread, and whether the median holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Verdict {
    /// The goal judged.
    pub(super) goal: Goal,
    /// The median of the rounds' ratios.
    pub(super) median: f64,
    /// The lowest and highest round's ratio.
    pub(super) spread: (f64, f64),
    /// Whether the median meets the goal; `None` when no round measured it.
    pub(super) holds: Option<bool>,
}

/// Judges `goal` over `rounds`.
pub(super) fn judge(goal: Goal, rounds: &[RoundFigures]) -> Verdict {
    let ratios = || rounds.iter().map(|round| goal.ratio(round));
    let middle = median(ratios());
    Verdict {
        goal,
        median: middle,
        spread: spread(ratios()),
        holds: goal.holds(middle),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round() -> RoundFigures {
        RoundFigures {
            tls_connection_us: 141.0,
            plain_connection_us: 29.0,
            floor_handshake_us: 106.0,
            tls_gib_s: 0.83,
            plain_gib_s: 0.51,
            floor_echo_gib_s: 0.36,
            idle_tls_bytes: 3835.0,
        }
    }

    #[test]
    fn ratios_divide_the_tls_cost_by_the_floor_plus_the_plain_cost() {
        let round = round();
        assert_eq!(Goal::Connection.ratio(&round), 141.0 / 135.0);
        assert_eq!(Goal::Gib.ratio(&round), 0.83 / (0.36 + 0.51));
        assert_eq!(Goal::Idle.ratio(&round), 3835.0 / 4096.0);
    }

    #[test]
    fn goals_hold_up_to_their_limit_and_not_above() {
        assert_eq!(Goal::Connection.holds(1.15), Some(true));
        assert_eq!(Goal::Connection.holds(1.150_001), Some(false));
        assert_eq!(Goal::Gib.holds(0.5), Some(true));
        assert_eq!(Goal::Idle.holds(1.0), Some(true));
        assert_eq!(Goal::Idle.holds(1.01), Some(false));
        assert_eq!(Goal::Idle.holds(f64::NAN), None);
        // 4,096 bytes exactly is the limit, one more is over.
        let mut at_limit = round();
        at_limit.idle_tls_bytes = 4096.0;
        assert_eq!(Goal::Idle.holds(Goal::Idle.ratio(&at_limit)), Some(true));
        at_limit.idle_tls_bytes = 4097.0;
        assert_eq!(Goal::Idle.holds(Goal::Idle.ratio(&at_limit)), Some(false));
    }

    #[test]
    fn a_missing_figure_gives_no_ratio() {
        let mut missing = round();
        missing.floor_handshake_us = f64::NAN;
        assert!(Goal::Connection.ratio(&missing).is_nan());
        missing.plain_gib_s = 0.0;
        missing.floor_echo_gib_s = 0.0;
        assert!(Goal::Gib.ratio(&missing).is_nan());
    }

    #[test]
    fn verdicts_take_the_median_of_the_rounds_ratios() {
        let mut rounds = [round(), round(), round()];
        rounds[0].tls_connection_us = 135.0; // 1.00
        rounds[1].tls_connection_us = 162.0; // 1.20
        rounds[2].tls_connection_us = 148.5; // 1.10
        let verdict = judge(Goal::Connection, &rounds);
        assert_eq!(verdict.median, 148.5 / 135.0);
        assert_eq!(verdict.spread, (1.0, 162.0 / 135.0));
        assert_eq!(verdict.holds, Some(true));
        rounds[0].tls_connection_us = 160.0;
        assert_eq!(judge(Goal::Connection, &rounds).holds, Some(false));
        assert_eq!(judge(Goal::Idle, &[]).holds, None);
    }
}
