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
//!
//! The modules depend on one another one way only; from the top down:
//! - `run` holds [`run`], the one module that knows both how scenarios run
//!   and how runs are reported.
//! - `scenario` has one module per scenario, over `scenario::budget` (the
//!   time and count a run may use), `scenario::workers` (the pool of workers
//!   and its hard deadline) and `scenario::connect` (the client side of TCP).
//! - `report` makes a [`Report`] from a plan and an [`Outcome`](tally::Outcome),
//!   and prints it as a table or JSON; it knows nothing of how scenarios run.
//! - `plan` holds what to run, [`Plan`] and [`Scenario`], and checks it before
//!   anything is sent; it knows nothing of runs or reports.
//! - `tally` counts exchanges, errors and latencies; `check` verifies streams
//!   and datagrams byte for byte.
//! - `plot` draws reports as an SVG, `progress` shows a bar on a terminal,
//!   `size` reads and writes byte counts, `limits` raises the open-files limit
//!   and reads a server's memory, and `error` holds [`BenchError`].

#![warn(missing_docs)]

mod check;
mod error;
pub mod limits;
pub mod plan;
pub mod plot;
pub mod progress;
pub mod report;
mod run;
mod scenario;
pub mod size;
pub mod tally;

pub use error::BenchError;
pub use plan::{Plan, Scenario};
pub use report::Report;
pub use run::run;
pub use tally::{ErrorCounts, ExchangeError, FailureKind, Live, Tally};
