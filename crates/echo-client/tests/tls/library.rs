//! The library over TLS: exact echoes of every size over TLS 1.3 and 1.2,
//! how a message ends over each, mutual TLS, and every refusal with its reason.

use std::io;
use std::ops::ControlFlow;
use std::time::Duration;

use echo_client::probe::{Event, Payload, Plan, Prober, Transport};
use echo_client::tls::{Negotiated, Roots, Tls, Version};
use echo_client::{Client, Endpoint, Error, Target};
use echo_proto::pattern;

use crate::support::{Cut, Options, PATIENCE, Pki, Server};

const TLS12: Option<&rustls::SupportedProtocolVersion> = Some(&rustls::version::TLS12);
const TLS13: Option<&rustls::SupportedProtocolVersion> = Some(&rustls::version::TLS13);

fn trusting(pki: &Pki, server: &Server) -> Client {
    Client::new(server.addr)
        .timeout(Some(PATIENCE))
        .tls(&Tls::default().roots(Roots::File(pki.ca.clone())))
        .expect("TLS settings")
}

fn exact_echoes_over(version: Option<&'static rustls::SupportedProtocolVersion>) {
    let pki = Pki::new();
    let server = Server::start(
        &pki,
        Options {
            version,
            ..Options::default()
        },
    );
    let client = trusting(&pki, &server);
    for size in [0, 1, 64 << 10, 8 << 20] {
        let message = pattern(size as u64, size);
        let reply = client.echo(&message).expect("an echo over TLS");
        assert!(reply == message, "{size} bytes: the reply differs");
        let seen = server.next_seen();
        assert_eq!(seen.version, Ok(version.expect("pinned").version), "{size}");
        assert_eq!(seen.echoed, size);
        assert!(
            seen.close_notify,
            "{size}: the message ends with close_notify"
        );
        assert!(!seen.client_cert);
        assert_eq!(seen.sni, None, "an IP address is sent as no SNI");
    }
}

#[test]
fn messages_of_every_size_come_back_exactly_over_tls13() {
    exact_echoes_over(TLS13);
}

#[test]
fn messages_of_every_size_come_back_exactly_over_tls12() {
    exact_echoes_over(TLS12);
}

#[test]
fn a_stream_comes_back_exactly_over_both_versions() {
    for version in [TLS13, TLS12] {
        let pki = Pki::new();
        let server = Server::start(
            &pki,
            Options {
                version,
                ..Options::default()
            },
        );
        let message = pattern(7, 8 << 20);
        let mut reply = Vec::new();
        let transfer = trusting(&pki, &server)
            .stream(io::Cursor::new(message.clone()), &mut reply)
            .expect("a stream over TLS");
        assert_eq!((transfer.sent, transfer.received), (8 << 20, 8 << 20));
        assert!(reply == message, "the streamed reply differs");
        assert!(server.next_seen().close_notify);
    }
}

#[test]
fn a_host_name_is_the_server_name_by_default() {
    let pki = Pki::new();
    let server = Server::start(&pki, Options::default());
    let target: Target = format!("localhost:{}", server.addr.port())
        .parse()
        .expect("a target");
    let client = Client::new(target)
        .family(echo_client::Family::V4)
        .timeout(Some(PATIENCE))
        .tls(&Tls::default().roots(Roots::File(pki.ca.clone())))
        .expect("TLS settings");
    assert_eq!(client.echo_text("by name").expect("an echo"), "by name");
    assert_eq!(server.next_seen().sni.as_deref(), Some("localhost"));
}

#[test]
fn a_client_certificate_is_presented_to_a_server_that_requires_one() {
    for version in [TLS13, TLS12] {
        let pki = Pki::new();
        let server = Server::start(
            &pki,
            Options {
                version,
                require_client_cert: true,
                ..Options::default()
            },
        );
        let tls = Tls::default()
            .roots(Roots::File(pki.ca.clone()))
            .identity(&pki.client_cert, &pki.client_key);
        let client = Client::new(server.addr)
            .timeout(Some(PATIENCE))
            .tls(&tls)
            .expect("TLS settings");
        assert_eq!(client.echo_text("mutual").expect("an echo"), "mutual");
        let seen = server.next_seen();
        assert!(seen.client_cert);
        assert!(seen.close_notify);

        // Without one, the server refuses: in the handshake under 1.2, at
        // the first read under 1.3, where the client has finished first.
        let error = trusting(&pki, &server)
            .echo(b"anonymous")
            .expect_err("refused without a certificate");
        let endpoint = Endpoint::Ip(server.addr);
        match &error {
            Error::Handshake {
                endpoint: at,
                source,
            }
            | Error::Tls {
                endpoint: at,
                source,
            } => {
                assert_eq!(*at, endpoint);
                assert!(
                    matches!(source, rustls::Error::AlertReceived(_)),
                    "{source:?}"
                );
            }
            other => panic!("not a TLS refusal: {other:?}"),
        }
        assert!(server.next_seen().version.is_err());
    }
}

#[test]
fn a_server_certificate_from_an_untrusted_ca_is_refused_with_the_reason() {
    let pki = Pki::new();
    let server = Server::start(&pki, Options::default());
    let client = Client::new(server.addr)
        .timeout(Some(PATIENCE))
        .tls(&Tls::default().roots(Roots::File(pki.other_ca.clone())))
        .expect("TLS settings");
    let error = client.echo(b"hello").expect_err("untrusted");
    let Error::Handshake { endpoint, source } = &error else {
        panic!("not a handshake error: {error:?}");
    };
    assert_eq!(*endpoint, Endpoint::Ip(server.addr));
    assert_eq!(
        *source,
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
    );
    assert_eq!(
        error.to_string(),
        format!("TLS handshake with {} failed", server.addr)
    );
    assert!(server.next_seen().version.is_err(), "the server was told");
}

#[test]
fn a_server_name_the_certificate_does_not_hold_is_refused() {
    let pki = Pki::new();
    let server = Server::start(&pki, Options::default());
    let tls = Tls::default()
        .roots(Roots::File(pki.ca.clone()))
        .server_name("elsewhere.example");
    let client = Client::new(server.addr)
        .timeout(Some(PATIENCE))
        .tls(&tls)
        .expect("TLS settings");
    let error = client.echo(b"hello").expect_err("wrong name");
    let Error::Handshake { source, .. } = &error else {
        panic!("not a handshake error: {error:?}");
    };
    assert!(
        matches!(
            source,
            rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. }
            )
        ),
        "{source:?}"
    );
    assert_eq!(server.next_seen().sni.as_deref(), None, "refused before");

    // The right name, given explicitly, is sent as SNI and checked.
    let tls = Tls::default()
        .roots(Roots::File(pki.ca.clone()))
        .server_name("localhost");
    let client = Client::new(server.addr).tls(&tls).expect("TLS settings");
    assert_eq!(client.echo(b"named").expect("an echo"), b"named");
    assert_eq!(server.next_seen().sni.as_deref(), Some("localhost"));
}

#[test]
fn insecure_trusts_any_certificate_for_any_name() {
    let pki = Pki::new();
    let server = Server::start(&pki, Options::default());
    let tls = Tls::default()
        .roots(Roots::Insecure)
        .server_name("elsewhere.example");
    let client = Client::new(server.addr)
        .timeout(Some(PATIENCE))
        .tls(&tls)
        .expect("TLS settings");
    assert_eq!(client.echo(b"unchecked").expect("an echo"), b"unchecked");
    assert_eq!(server.next_seen().echoed, 9);
}

#[test]
fn a_reply_cut_short_without_close_notify_is_an_error() {
    for version in [TLS13, TLS12] {
        let pki = Pki::new();
        let server = Server::start(
            &pki,
            Options {
                version,
                cut: Some(Cut { echo: 3, len: 10 }),
                ..Options::default()
            },
        );
        let error = trusting(&pki, &server)
            .echo(b"0123456789")
            .expect_err("cut short");
        assert!(
            matches!(
                error,
                Error::Truncated {
                    received: 3,
                    sent: 10,
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            format!(
                "{} closed the connection without a TLS close_notify after 3 of the 10 bytes came back",
                server.addr
            )
        );
        server.next_seen();
    }
}

#[test]
fn a_whole_reply_without_close_notify_is_accepted() {
    for version in [TLS13, TLS12] {
        let pki = Pki::new();
        let server = Server::start(
            &pki,
            Options {
                version,
                no_close_notify: true,
                ..Options::default()
            },
        );
        let message = pattern(3, 100_000);
        let reply = trusting(&pki, &server).echo(&message).expect("an echo");
        assert!(reply == message);
        assert!(
            server.next_seen().close_notify,
            "the client's came all the same"
        );
    }
}

#[test]
fn unreadable_or_empty_pem_files_are_named() {
    let pki = Pki::new();
    let missing = pki.dir.path().join("missing.pem");
    let error = Client::new(Endpoint::Ip("127.0.0.1:7".parse().expect("literal")))
        .tls(&Tls::default().roots(Roots::File(missing.clone())))
        .expect_err("no such file");
    assert!(
        matches!(&error, Error::TlsFile { path, source, .. }
            if *path == missing && source.kind() == io::ErrorKind::NotFound),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("cannot read the CA certificates from {}", missing.display())
    );

    // A key is no certificate, and a certificate no key.
    let error = Client::new(Endpoint::Ip("127.0.0.1:7".parse().expect("literal")))
        .tls(&Tls::default().roots(Roots::File(pki.client_key.clone())))
        .expect_err("no certificate in it");
    assert_eq!(
        std::error::Error::source(&error).map(ToString::to_string),
        Some("no PEM certificate in it".to_owned())
    );
    let error = Client::new(Endpoint::Ip("127.0.0.1:7".parse().expect("literal")))
        .tls(
            &Tls::default()
                .roots(Roots::File(pki.ca.clone()))
                .identity(&pki.client_cert, &pki.client_cert),
        )
        .expect_err("no key in it");
    assert_eq!(
        error.to_string(),
        format!(
            "cannot read the client private key from {}",
            pki.client_cert.display()
        )
    );
}

#[test]
fn tls_is_refused_over_udp_and_unix_sockets() {
    let pki = Pki::new();
    let tls = Tls::default().roots(Roots::File(pki.ca.clone()));
    let unix = Client::new(Endpoint::Unix(pki.dir.path().join("echo.sock"))).tls(&tls);
    assert!(
        matches!(
            unix,
            Err(Error::TlsNeedsTcp {
                over: "a Unix socket"
            })
        ),
        "{unix:?}"
    );
    let client = Client::new(Endpoint::Ip("127.0.0.1:7".parse().expect("literal")))
        .tls(&tls)
        .expect("TLS settings");
    let udp = client.echo_udp(b"datagram");
    assert!(
        matches!(udp, Err(Error::TlsNeedsTcp { over: "UDP" })),
        "{udp:?}"
    );
}

/// Runs `count` probes of 1000 bytes; says what TLS the prober spoke.
fn probes(client: &Client, transport: Transport, count: u64) -> (Option<Negotiated>, Vec<Event>) {
    let plan = Plan {
        transport,
        count: Some(count),
        interval: Duration::ZERO,
        payload: Payload::Size(1000),
    };
    let prober = Prober::new(client, plan).expect("a prober");
    let negotiated = prober.tls().cloned();
    let mut events = Vec::new();
    prober.run(|event| {
        events.push(event);
        ControlFlow::Continue(())
    });
    (negotiated, events)
}

#[test]
fn probes_time_each_handshake_apart_and_name_the_version() {
    for (version, expected) in [(TLS13, Version::Tls13), (TLS12, Version::Tls12)] {
        let pki = Pki::new();
        let server = Server::start(
            &pki,
            Options {
                version,
                ..Options::default()
            },
        );
        let client = trusting(&pki, &server);

        let (negotiated, events) = probes(&client, Transport::Connect, 3);
        let negotiated = negotiated.expect("TLS");
        assert_eq!(negotiated.version, expected);
        assert!(negotiated.cipher_suite.starts_with("TLS"), "{negotiated}");
        assert_eq!(events.len(), 3);
        for event in &events {
            let Event::Reply(reply) = event else {
                panic!("not a reply: {event:?}");
            };
            assert_eq!(reply.check, Ok(()));
            let handshake = reply.handshake.expect("a handshake per probe");
            assert!(handshake <= reply.rtt, "the handshake is part of the probe");
        }

        let (_, events) = probes(&client, Transport::Persistent, 3);
        let handshakes: Vec<bool> = events
            .iter()
            .map(|event| match event {
                Event::Reply(reply) if reply.check.is_ok() => reply.handshake.is_some(),
                other => panic!("not an exact reply: {other:?}"),
            })
            .collect();
        assert_eq!(
            handshakes,
            [true, false, false],
            "one connection, one handshake"
        );
    }
}
