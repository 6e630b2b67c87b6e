//! The next step after an error that says what went wrong but not what to
//! do: a server that is not there, over TCP, a Unix socket or UDP, or a TLS
//! handshake refused for a reason a flag can change.
//!
//! The library's errors state facts about any echo server; only the command
//! knows that the user may start ours, and with which flags.

use std::io;

use echo_client::{Endpoint, Error};
use echo_proto::DEFAULT_ADDR;
use rustls::CertificateError;

/// What to try after `error`, when it is one that says no server is
/// there, or a handshake a flag can mend; `udp` and `tls` are whether the
/// exchange was over UDP, or TLS.
pub(crate) fn next_step(error: &Error, udp: bool, tls: bool) -> Option<String> {
    let nobody_there = |err: &io::Error| {
        matches!(
            err.kind(),
            io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
        )
    };
    let flags = if tls { TLS_FLAGS } else { "" };
    match error {
        Error::Handshake { source, .. } => tls_step(source),
        Error::PortUnreachable { endpoint } => Some(start_udp(endpoint)),
        Error::Connect { endpoint, source } if nobody_there(source) => Some(start(endpoint, flags)),
        // A name whose every address refused: the first is where to start one.
        Error::Unreachable { attempts, .. }
            if attempts.iter().all(|attempt| nobody_there(&attempt.error)) =>
        {
            let first = Endpoint::Ip(attempts.first()?.addr);
            Some(if udp {
                start_udp(&first)
            } else {
                start(&first, flags)
            })
        }
        _ => None,
    }
}

/// The server's flags for TLS, before its address; its certificate and
/// key are the user's to name.
const TLS_FLAGS: &str = "--tls-cert CERT.pem --tls-key KEY.pem";

/// What a refused handshake's reason suggests, when a flag can change it.
fn tls_step(source: &rustls::Error) -> Option<String> {
    let step = match source {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "if a CA of your own signed the server's certificate, trust it with --tls-ca FILE"
        }
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => "--tls-server-name NAME checks the certificate against another name",
        rustls::Error::InappropriateHandshakeMessage {
            got_type: rustls::HandshakeType::ClientHello,
            ..
        } => "the server sent the client's hello back: it echoes in the clear, so leave out --tls",
        _ => return None,
    };
    Some(step.to_owned())
}

/// The next step when no stream server answers at `endpoint`; `flags` are
/// the server's for TLS, if the client spoke it.
fn start(endpoint: &Endpoint, flags: &str) -> String {
    let listen = if flags.is_empty() {
        listen(endpoint, "")
    } else {
        format!(" -- {flags} --listen tls:{endpoint}")
    };
    format!(
        "is an echo server running there? start one with `cargo run -p echo-server{listen}`, \
         or pick another with --addr"
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
            next_step(&default, false, false).as_deref(),
            Some(
                "is an echo server running there? start one with `cargo run -p echo-server`, \
                 or pick another with --addr"
            )
        );
        let other = Error::Connect {
            endpoint: endpoint("[::1]:9000"),
            source: refused(),
        };
        let step = next_step(&other, false, false).expect("a step");
        assert!(
            step.contains("`cargo run -p echo-server -- --listen [::1]:9000`"),
            "{step}"
        );
        let timeout = Error::Connect {
            endpoint: endpoint("[::1]:9000"),
            source: io::ErrorKind::TimedOut.into(),
        };
        assert_eq!(
            next_step(&timeout, false, false),
            None,
            "a server may be there"
        );
    }

    #[test]
    fn a_refused_tls_connection_says_how_to_start_a_tls_server() {
        let refused = Error::Connect {
            endpoint: endpoint("127.0.0.1:7443"),
            source: refused(),
        };
        let step = next_step(&refused, false, true).expect("a step");
        assert!(
            step.contains(
                "`cargo run -p echo-server -- --tls-cert CERT.pem --tls-key KEY.pem \
                 --listen tls:127.0.0.1:7443`"
            ),
            "{step}"
        );
    }

    #[test]
    fn a_refused_handshake_names_the_flag_that_changes_it() {
        let handshake = |source| Error::Handshake {
            endpoint: endpoint("127.0.0.1:7443"),
            source,
        };
        let untrusted = handshake(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ));
        let step = next_step(&untrusted, false, true).expect("a step");
        assert!(step.contains("--tls-ca FILE"), "{step}");
        let misnamed = handshake(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName,
        ));
        let step = next_step(&misnamed, false, true).expect("a step");
        assert!(step.contains("--tls-server-name NAME"), "{step}");
        let expired = handshake(rustls::Error::InvalidCertificate(CertificateError::Expired));
        assert_eq!(next_step(&expired, false, true), None, "no flag mends it");
    }

    #[test]
    fn a_closed_udp_port_says_the_server_needs_udp() {
        let closed = Error::PortUnreachable {
            endpoint: Endpoint::Ip(DEFAULT_ADDR),
        };
        assert_eq!(
            next_step(&closed, true, false).as_deref(),
            Some(
                "echo-server answers UDP only when started with --udp, as in \
                 `cargo run -p echo-server -- --udp`"
            )
        );
        let elsewhere = Error::PortUnreachable {
            endpoint: endpoint("127.0.0.1:9000"),
        };
        let step = next_step(&elsewhere, true, false).expect("a step");
        assert!(
            step.ends_with("`cargo run -p echo-server -- --udp --listen 127.0.0.1:9000`"),
            "{step}"
        );
    }
}
