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

// Better one clear error than a page of missing items.
cfg_if::cfg_if! {
    if #[cfg(target_os = "linux")] {
        mod config;
        mod connection;
        mod engine;
        mod limits;
        pub mod listen;
        pub mod log;
        mod notify;
        mod send_queue;
        mod server;
        mod signals;
        mod start;
        mod stats;
        mod udp;

        pub use listen::{ListenError, Listener};
        pub use config::{
            Config, DEFAULT_EVENT_LOOPS, DEFAULT_GRACE, DEFAULT_IDLE_TIMEOUT, DEFAULT_UDP_RATE,
            Splice,
        };
        pub use server::{Server, ServerError, announce};
        pub use start::{serve, server};
        pub use stats::{COUNTERS, Counter, CounterKind, Stats, Totals};
        pub use udp::{REPEATS_ANSWERED, TRACKED_SOURCES};
    } else {
        compile_error!(
            "echo-server runs on Linux only: it uses epoll (through mio's Linux backend), \
            splice(2), SIOCOUTQ, /proc and Linux's errno values"
        );
    }
}
