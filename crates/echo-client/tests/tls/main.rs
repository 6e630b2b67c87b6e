//! TLS in echo-client, against an in-process rustls echo server on
//! loopback: the library's exchanges and probes, and the command.

mod command;
mod library;
mod support;
