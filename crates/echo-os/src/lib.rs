//! What the echo binaries and their tests ask of the operating system, written once:
//! the open-files limit ([`fd_limit`]), and a process's memory, CPU time,
//! descriptors, ignored signals and start time as `/proc` tells them ([`process`]).
//!
//! The server, the load generator and the functional tests all need these;
//! `echo-proto` must stay free of I/O, and the load generator should not
//! depend on the server, so they live here.

#![warn(missing_docs)]

// What the crate reads (`/proc`) exists only on Linux: better one clear error
// than a page of missing items.
#[cfg(not(target_os = "linux"))]
compile_error!(
    "echo-os runs on Linux only: it reads a process's memory, CPU time and descriptors \
     from /proc, so echo-server and echo-bench, which use it, are Linux-only too"
);

#[cfg(target_os = "linux")]
pub mod fd_limit;
#[cfg(target_os = "linux")]
pub mod process;
