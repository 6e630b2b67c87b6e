//! What the echo binaries and their tests ask of the operating system, written once:
//! the open-files limit ([`fd_limit`]), and a process's memory, CPU time,
//! descriptors and ignored signals as `/proc` tells them ([`process`]).
//!
//! The server, the load generator and the functional tests all need these;
//! `echo-proto` must stay free of I/O, and the load generator should not
//! depend on the server, so they live here.

#![warn(missing_docs)]

pub mod fd_limit;
pub mod process;
