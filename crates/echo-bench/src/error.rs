//! The library's one error type, in a module of its own so that every module
//! can name it without depending on the crate root, which depends on them all.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why a benchmark could not be run at all (as opposed to a run that met errors,
/// which [`Report::ok`](crate::Report::ok) tells).
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
        source: echo_os::process::ProcessError,
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
