//! An RFC 862 echo server: every byte a client sends comes back, in order,
//! unchanged, in bounded memory, whatever the client does.
//!
//! [`server`] is the one-call form (default address, stops on Ctrl-C, SIGTERM
//! or Ctrl-D), and [`serve`] the same with a [`Config`]: the `echo-server`
//! command parses its flags into that `Config` and calls `serve`, so the two
//! cannot start differently.
//! [`Server::run`] is the seam both use: it takes sockets that are already
//! bound and a shutdown future, so a test can bind port 0 and decide when the
//! server stops.

#![warn(missing_docs)]

// Better one clear error than a page of missing items: every module is
// Linux's alone, and any other target stops at this one message. The
// modules are plain `mod` items, never inside a macro, so that tools that
// read the source (cargo-mutants) follow them; xtask's tidy test keeps it so.
#[cfg(not(target_os = "linux"))]
compile_error!(
    "echo-server runs on Linux only: it uses epoll (through mio's Linux backend), \
    splice(2), SIOCOUTQ, /proc and Linux's errno values"
);

#[cfg(target_os = "linux")]
mod config;
#[cfg(target_os = "linux")]
mod connection;
#[cfg(target_os = "linux")]
mod engine;
#[cfg(target_os = "linux")]
mod limits;
#[cfg(target_os = "linux")]
pub mod listen;
#[cfg(target_os = "linux")]
pub mod log;
#[cfg(target_os = "linux")]
mod metrics;
#[cfg(target_os = "linux")]
mod notify;
#[cfg(target_os = "linux")]
mod send_queue;
#[cfg(target_os = "linux")]
mod server;
#[cfg(target_os = "linux")]
mod signals;
#[cfg(target_os = "linux")]
mod start;
#[cfg(target_os = "linux")]
mod stats;
#[cfg(target_os = "linux")]
mod tls;
#[cfg(target_os = "linux")]
mod udp;

#[cfg(target_os = "linux")]
pub use crate::{
    config::{
        Config, DEFAULT_EVENT_LOOPS, DEFAULT_GRACE, DEFAULT_IDLE_TIMEOUT,
        DEFAULT_TLS_HANDSHAKE_TIMEOUT, DEFAULT_UDP_RATE, MAX_EVENT_LOOPS, Splice, TlsConfig,
    },
    listen::{ListenAddr, ListenError, Listener},
    server::{Server, ServerError, announce},
    start::{serve, server},
    stats::{
        CAUSED_METRICS, CONNECTION_LIMIT, COUNTERS, Counter, CounterKind, LOG_LINES_DROPPED, Stats,
        Totals,
    },
    tls::TlsError,
    udp::{REPEATS_ANSWERED, TRACKED_SOURCES},
};
