//! An RFC 862 echo server: every byte a client sends comes back, in order,
//! unchanged, in bounded memory, whatever the client does.
//!
//! [`server`] is the one-call form (default address, stops on Ctrl-C, SIGTERM
//! or Ctrl-D), and [`serve`] the same with [`Options`]: the `echo-server`
//! command is `serve` behind its flags, so the two cannot start differently.
//! [`Server::run`] is the seam both use: it takes sockets that are already
//! bound and a shutdown future, so a test can bind port 0 and decide when the
//! server stops.

#![warn(missing_docs)]

// Better one clear error than a page of missing items.
#[cfg(not(target_os = "linux"))]
compile_error!(
    "echo-server runs on Linux only: it uses epoll (through mio's Linux backend), \
     splice(2), SIOCOUTQ, /proc and Linux's errno values"
);

#[cfg(target_os = "linux")]
pub mod connection;
#[cfg(target_os = "linux")]
mod engine;
#[cfg(target_os = "linux")]
pub mod limits;
#[cfg(target_os = "linux")]
pub mod listen;
#[cfg(target_os = "linux")]
pub mod log;
#[cfg(target_os = "linux")]
pub mod notify;
#[cfg(target_os = "linux")]
pub mod send_queue;
#[cfg(target_os = "linux")]
mod server;
#[cfg(target_os = "linux")]
pub mod signals;
#[cfg(target_os = "linux")]
mod start;
#[cfg(target_os = "linux")]
pub mod stats;
#[cfg(target_os = "linux")]
mod udp;

#[cfg(target_os = "linux")]
pub use listen::{ListenError, Listener};
#[cfg(target_os = "linux")]
pub use server::{
    Config, DEFAULT_EVENT_LOOPS, DEFAULT_GRACE, DEFAULT_IDLE_TIMEOUT, DEFAULT_UDP_RATE, Server,
    ServerError, announce,
};
#[cfg(target_os = "linux")]
pub use start::{Options, serve, server};
#[cfg(target_os = "linux")]
pub use stats::{Stats, Totals};
#[cfg(target_os = "linux")]
pub use udp::REPEATS_ANSWERED;
