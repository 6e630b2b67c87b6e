//! The next step after an error that says what went wrong but not what to
//! do: a server that is not there, over TCP, a Unix socket or UDP.
//!
//! The library's errors state facts about any echo server; only the command
//! knows that the user may start ours, and with which flags.

use std::io;

use echo_client::{Endpoint, Error};
use echo_proto::DEFAULT_ADDR;

/// What to try after `error`, when it is one that says no server is
/// there; `udp` is whether the exchange was over UDP.
pub(crate) fn next_step(error: &Error, udp: bool) -> Option<String> {
    let nobody_there = |err: &io::Error| {
        matches!(
            err.kind(),
            io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
        )
    };
    match error {
        Error::PortUnreachable { endpoint } => Some(start_udp(endpoint)),
        Error::Connect { endpoint, source } if nobody_there(source) => Some(start(endpoint)),
        // A name whose every address refused: the first is where to start one.
        Error::Unreachable { attempts, .. }
            if attempts.iter().all(|attempt| nobody_there(&attempt.error)) =>
        {
            let first = Endpoint::Ip(attempts.first()?.addr);
            Some(if udp {
                start_udp(&first)
            } else {
                start(&first)
            })
        }
        _ => None,
    }
}

/// The next step when no stream server answers at `endpoint`.
fn start(endpoint: &Endpoint) -> String {
    format!(
        "is an echo server running there? start one with `cargo run -p echo-server{}`, \
         or pick another with --addr",
        listen(endpoint, "")
    )
}

/// The next step when nothing listens on UDP at `endpoint`.
fn start_udp(endpoint: &Endpoint) -> String {
    format!(
        "echo-server answers UDP only when started with --udp, as in \
         `cargo run -p echo-server{}`",
        listen(endpoint, "--udp")
    )
}

/// The server's arguments for `endpoint` after `flags`, none when both are
/// the server's defaults.
fn listen(endpoint: &Endpoint, flags: &str) -> String {
    let mut args: Vec<String> = Vec::new();
    if !flags.is_empty() {
        args.push(flags.to_owned());
    }
    if *endpoint != Endpoint::Ip(DEFAULT_ADDR) {
        args.push(format!("--listen {endpoint}"));
    }
    if args.is_empty() {
        String::new()
    } else {
        format!(" -- {}", args.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(text: &str) -> Endpoint {
        text.parse().expect("literal")
    }

    fn refused() -> io::Error {
        io::ErrorKind::ConnectionRefused.into()
    }

    #[test]
    fn a_refused_connection_says_how_to_start_a_server_there() {
        let default = Error::Connect {
            endpoint: Endpoint::Ip(DEFAULT_ADDR),
            source: refused(),
        };
        assert_eq!(
            next_step(&default, false).as_deref(),
            Some(
                "is an echo server running there? start one with `cargo run -p echo-server`, \
                 or pick another with --addr"
            )
        );
        let other = Error::Connect {
            endpoint: endpoint("[::1]:9000"),
            source: refused(),
        };
        let step = next_step(&other, false).expect("a step");
        assert!(
            step.contains("`cargo run -p echo-server -- --listen [::1]:9000`"),
            "{step}"
        );
        let timeout = Error::Connect {
            endpoint: endpoint("[::1]:9000"),
            source: io::ErrorKind::TimedOut.into(),
        };
        assert_eq!(next_step(&timeout, false), None, "a server may be there");
    }

    #[test]
    fn a_closed_udp_port_says_the_server_needs_udp() {
        let closed = Error::PortUnreachable {
            endpoint: Endpoint::Ip(DEFAULT_ADDR),
        };
        assert_eq!(
            next_step(&closed, true).as_deref(),
            Some(
                "echo-server answers UDP only when started with --udp, as in \
                 `cargo run -p echo-server -- --udp`"
            )
        );
        let elsewhere = Error::PortUnreachable {
            endpoint: endpoint("127.0.0.1:9000"),
        };
        let step = next_step(&elsewhere, true).expect("a step");
        assert!(
            step.ends_with("`cargo run -p echo-server -- --udp --listen 127.0.0.1:9000`"),
            "{step}"
        );
    }
}
