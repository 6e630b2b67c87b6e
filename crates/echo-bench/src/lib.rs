//! A load generator for any RFC 862 TCP or UDP echo server, ours or anyone's.
//!
//! A [`Plan`] names a scenario, a loopback address and the load's shape
//! (workers, message size, duration or count); [`run`] drives it and returns a
//! [`Report`]: counts, bytes, every error by kind, and the latency of every
//! exchange in an HDR histogram.
//! Every reply is checked byte for byte against what was sent, so a fast
//! server that corrupts data fails the run instead of winning it.
//!
//! Every loop stops at the plan's duration or count, every wait has a
//! timeout, and the run as a whole has a hard deadline past which workers are
//! abandoned: a hung server never hangs the tool.
//! Only loopback addresses are accepted, since a load generator pointed at
//! someone else's machine is an attack.

#![warn(missing_docs)]

mod check;
pub mod limits;
pub mod plot;
pub mod progress;
pub mod report;
pub mod scenario;
pub mod size;
pub mod tally;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

pub use report::Report;
pub use scenario::{Plan, Scenario, run};
pub use tally::{ErrorCounts, ExchangeError, FailureKind, Live, Tally};

/// Why a benchmark could not be run at all (as opposed to a run that met errors,
/// which [`Report::ok`] tells).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The target is not a loopback address; load is only ever sent to this machine.
    #[error("refusing to load {0}: echo-bench only targets loopback addresses (127.0.0.0/8, ::1)")]
    NotLoopback(SocketAddr),
    /// The plan is inconsistent (zero workers, a size the scenario cannot send, ...).
    #[error("invalid plan: {0}")]
    InvalidPlan(String),
    /// The server's memory use could not be read from `/proc/PID/status`.
    #[error("cannot read the resident memory of process {pid}")]
    Rss {
        /// The process asked about.
        pid: u32,
        /// What reading its status said.
        #[source]
        source: io::Error,
    },
    /// A plot could not be drawn or written.
    #[error("cannot draw the plot {}: {message}", path.display())]
    Plot {
        /// Where the plot was to go.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}
