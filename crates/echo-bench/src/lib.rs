//! A load generator for any RFC 862 TCP, Unix-socket or UDP echo server, ours or anyone's.
//!
//! A [`Plan`] names a scenario, a target (an address, a `HOST:PORT` name or
//! a Unix socket path) with what [`resolve`](resolve::resolve) found it to
//! be, and the load's shape (workers, message size, duration or count, and
//! perhaps a fixed rate); [`reach`] makes one connection to prove a server is
//! there, and [`run`] drives the load and returns a [`Report`]: counts, bytes,
//! every error by kind, the latency of every exchange in an HDR histogram,
//! and with the server's pid its CPU time per exchange.
//! Every reply is checked byte for byte against what was sent, so a fast
//! server that corrupts data fails the run instead of winning it.
//!
//! Every loop stops at the plan's duration or count, every wait has a
//! timeout, and the run as a whole has a hard deadline past which workers are
//! abandoned: a hung server never hangs the tool. A worker whose exchange
//! the target did not answer pauses before it tries again, so a dead target
//! costs almost nothing; `scenario::backoff` holds the pauses, and
//! `scenario::backoff::pauses_after` which failures call for one.
//! At a fixed rate each latency counts from when its exchange was due, not
//! from when it was sent, so a server that stalls shows in the percentiles
//! (the correction for coordinated omission that wrk2 makes).
//! The load goes wherever the plan says; whether it stays on this machine is
//! part of the plan ([`Destination::on_this_host`](plan::Destination)) and of
//! the report, for the command to tell its user.
//!
//! The modules depend on one another one way only; from the top down:
//! - `run` holds [`reach`] and [`run`], the one module that knows both how
//!   scenarios run and how runs are reported.
//! - `scenario` has one module per scenario, over `scenario::budget` (the
//!   time and count a run may use), `scenario::schedule` (the timetable of a
//!   fixed rate), `scenario::backoff` (the pauses after failures),
//!   `scenario::workers` (the pool of workers and its hard deadline),
//!   `scenario::connect` (the client side of a stream connection and the
//!   first one) and `scenario::stream` (TCP or Unix).
//! - `histogram_log` writes a run's latencies as an HdrHistogram interval
//!   log, one interval at a time from [`Intervals`](tally::Intervals), ending
//!   with its report, and reads logs back to merge them.
//! - `report` makes a [`Report`] from a plan and an [`Outcome`](tally::Outcome)
//!   for JSON, `report::verdict` judges whether it passed, `report::table`
//!   writes it for people and `report::merge` joins the reports of
//!   generators that ran together; it knows nothing of how scenarios run.
//! - `floor` measures, for `tls-floor`, what TLS costs a server with no
//!   socket in the way: a rustls client and server in memory, the server's
//!   side timed alone; `floor::memory` is the counting allocator it weighs
//!   connections with.
//! - `tls` holds the one crypto provider (ring) and how versions are named.
//! - `dry_run` describes a plan for `--dry-run`, as text or JSON.
//! - `resolve` turns a target into the plan's destinations, judged here or
//!   elsewhere by `host`, which looks up this machine's own addresses.
//! - `start_at` reads the instant generators start together at, and waits
//!   for it.
//! - `plan` holds what to run, [`Plan`] and [`Scenario`], and checks it once
//!   before anything is sent, making it a [`ValidPlan`]; it knows nothing of
//!   runs or reports and does no I/O.
//! - `tally` counts exchanges, errors and latencies; `check` verifies streams
//!   and datagrams byte for byte; `cost` turns the server's CPU time into
//!   figures with no more digits than its clock ticks carry.
//! - `plot` draws reports as an SVG, `progress` shows a bar on a terminal,
//!   `size` reads and writes byte counts, `limits` raises the open-files limit
//!   and reads a server's memory and CPU time, and `error` holds [`BenchError`].

#![warn(missing_docs)]

// Better one clear error than a page of missing items: every module is
// Linux's alone, and any other target stops at this one message. The
// modules are plain `mod` items, never inside a macro, so that tools that
// read the source (cargo-mutants) follow them; xtask's tidy test keeps it so.
#[cfg(not(target_os = "linux"))]
compile_error!(
    "echo-bench runs on Linux only: it uses IP_BIND_ADDRESS_NO_PORT, the whole \
    127.0.0.0/8 loopback range, Linux's errno values and /proc (through echo-os)"
);

#[cfg(target_os = "linux")]
mod check;
#[cfg(target_os = "linux")]
pub mod cost;
#[cfg(target_os = "linux")]
pub mod dry_run;
#[cfg(target_os = "linux")]
mod error;
#[cfg(target_os = "linux")]
pub mod floor;
#[cfg(target_os = "linux")]
pub mod histogram_log;
#[cfg(target_os = "linux")]
pub mod host;
#[cfg(target_os = "linux")]
pub mod limits;
#[cfg(target_os = "linux")]
pub mod plan;
#[cfg(target_os = "linux")]
pub mod plot;
#[cfg(target_os = "linux")]
pub mod progress;
#[cfg(target_os = "linux")]
pub mod report;
#[cfg(target_os = "linux")]
pub mod resolve;
#[cfg(target_os = "linux")]
mod run;
#[cfg(target_os = "linux")]
mod scenario;
#[cfg(target_os = "linux")]
pub mod size;
#[cfg(target_os = "linux")]
pub mod start_at;
#[cfg(target_os = "linux")]
pub mod tally;
#[cfg(target_os = "linux")]
pub mod tls;

#[cfg(target_os = "linux")]
pub use crate::{
    error::{BenchError, PlanError, Unanswered},
    plan::{Destination, Plan, Scenario, ValidPlan},
    report::Report,
    run::{reach, run},
    tally::{ErrorCounts, ExchangeError, FailureKind, Live, Tally},
};
