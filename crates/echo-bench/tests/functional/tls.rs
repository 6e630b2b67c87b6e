//! TLS: the scenarios over TLS against an in-test rustls echo server and
//! against echo-server, their usage errors, and `tls-floor`'s figures.

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::util::{TempDir, echo_bench, json_report, show};

/// A CA, and a server certificate for `localhost` and 127.0.0.1 signed by
/// it, with the CA's PEM and the server's certificate and key written into `dir`.
struct Certs {
    ca_pem: PathBuf,
    cert_pem: PathBuf,
    key_pem: PathBuf,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn certs(dir: &TempDir) -> Certs {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("server certificate");
    let ca_pem = dir.path().join("ca.pem");
    std::fs::write(&ca_pem, ca.pem()).expect("write the CA");
    let cert_pem = dir.path().join("cert.pem");
    std::fs::write(&cert_pem, cert.pem()).expect("write the certificate");
    let key_pem = dir.path().join("key.pem");
    std::fs::write(&key_pem, key.serialize_pem()).expect("write the key");
    Certs {
        ca_pem,
        cert_pem,
        key_pem,
        chain: vec![cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

/// A TLS echo server on 127.0.0.1, a thread per connection, offering only
/// `version`, with resumption on (rustls's stateful cache): echoes until
/// close_notify or a bare FIN, then sends its own close_notify and closes.
/// Counts the connections whose handshake it finished.
/// A rustls server configuration with `certs`, speaking `version` only.
fn server_config(
    certs: &Certs,
    version: &'static rustls::SupportedProtocolVersion,
) -> Arc<ServerConfig> {
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs.chain.clone(), certs.key.clone_key())
        .expect("server config");
    Arc::new(config)
}

fn tls_server(
    certs: &Certs,
    version: &'static rustls::SupportedProtocolVersion,
) -> (SocketAddr, Arc<AtomicU64>) {
    let config = server_config(certs, version);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handshakes = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&handshakes);
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let config = Arc::clone(&config);
            let counted = Arc::clone(&counted);
            std::thread::spawn(move || {
                let _ = echo_one(config, tcp, &counted);
            });
        }
    });
    (addr, handshakes)
}

fn echo_one(config: Arc<ServerConfig>, tcp: TcpStream, handshakes: &AtomicU64) -> io::Result<()> {
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let conn = ServerConnection::new(config).map_err(io::Error::other)?;
    let mut tls = StreamOwned::new(conn, tcp);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut counted = false;
    loop {
        let n = match tls.read(&mut buffer) {
            Ok(n) => n,
            // A bare FIN ends the message too.
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(err) => return Err(err),
        };
        if !counted && !tls.conn.is_handshaking() {
            counted = true;
            handshakes.fetch_add(1, Ordering::Relaxed);
        }
        if n == 0 {
            break;
        }
        tls.write_all(&buffer[..n])?;
    }
    tls.conn.send_close_notify();
    tls.flush()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_floor_reports_positive_figures_for_the_pinned_suite() {
    let output = echo_bench(&[
        "tls-floor",
        "--handshakes",
        "20",
        "--runs",
        "3",
        "--gib",
        "0.01",
        "--idle",
        "50",
        "--json",
    ])
    .await;
    assert!(output.status.success(), "{}", show(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.lines().count(), 1, "{}", show(&output));
    let floor: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    assert_eq!(floor["protocol"], "TLSv1.3");
    assert_eq!(floor["cipher_suite"], "TLS13_AES_128_GCM_SHA256");
    assert_eq!(floor["group"], "X25519");
    assert_eq!(floor["certificate"], "ECDSA P-256");
    assert_eq!(floor["handshakes"], 20);
    assert_eq!(floor["runs"], 3);
    assert_eq!(floor["bytes"], 10_737_418);
    assert_eq!(floor["record_size"], 16_384);
    assert_eq!(floor["idle_connections"], 50);
    assert_eq!(
        floor["server_handshake_us_runs"].as_array().map(Vec::len),
        Some(3)
    );
    for key in [
        "server_handshake_us",
        "server_resumed_handshake_us",
        "client_handshake_us",
        "seal_s_per_gib",
        "open_s_per_gib",
        "echo_s_per_gib",
        "idle_connection_bytes",
    ] {
        assert!(
            floor[key].as_f64().is_some_and(|v| v > 0.0),
            "{key}: {stdout}"
        );
    }
    let table = echo_bench(&[
        "tls-floor",
        "--handshakes",
        "5",
        "--runs",
        "1",
        "--gib",
        "0.001",
        "--idle",
        "5",
    ])
    .await;
    assert!(table.status.success(), "{}", show(&table));
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.starts_with(
            "TLS crypto floor: TLSv1.3, TLS13_AES_128_GCM_SHA256, X25519, ECDSA P-256 certificate"
        ),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_floor_refuses_empty_measurements() {
    for args in [
        &["tls-floor", "--handshakes", "0"][..],
        &["tls-floor", "--runs", "0"],
        &["tls-floor", "--gib", "0"],
        &["tls-floor", "--gib", "lots"],
    ] {
        let output = echo_bench(args).await;
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", show(&output));
        assert!(output.stdout.is_empty(), "{args:?}: {}", show(&output));
    }
}

/// The segments carrying data that the kernel has received on `tcp`.
#[allow(unsafe_code)]
fn data_segments_in(tcp: &TcpStream) -> u32 {
    use std::os::fd::AsRawFd as _;
    // SAFETY: tcp_info is plain integers, for which zero is a value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is `len` bytes that getsockopt fills at most, and the
    // descriptor is `tcp`'s, open for the call.
    let rc = unsafe {
        libc::getsockopt(
            tcp.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "TCP_INFO: {}", io::Error::last_os_error());
    info.tcpi_data_segs_in
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conn_over_tls_13_sends_finished_message_and_close_notify_in_one_segment() {
    // A server that finds the client's Finished, message and close_notify
    // in separate segments acknowledges them in one of its own (echo-bench
    // through tokio-rustls sent 4 data segments a connection): the server's
    // side counts the client's data segments, the hello and one more.
    let dir = TempDir::new("tls-one-flight");
    let certs = certs(&dir);
    let config = server_config(&certs, &rustls::version::TLS13);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            let Ok(watched) = tcp.try_clone() else {
                continue;
            };
            let handshakes = AtomicU64::new(0);
            let echoed = echo_one(Arc::clone(&config), tcp, &handshakes).is_ok();
            let handshook = handshakes.load(Ordering::Relaxed) == 1;
            // Its close_notify came last: every data segment is in.
            let _ = sender.send((handshook && echoed, data_segments_in(&watched)));
        }
    });
    let ca = certs.ca_pem.display().to_string();
    let args = [
        "conn",
        "--addr",
        &addr,
        "-c",
        "1",
        "-n",
        "3",
        "--tls",
        "--tls-ca",
        &ca,
        "--tls-server-name",
        "localhost",
    ];
    let output = echo_bench(&args).await;
    assert!(output.status.success(), "{}", show(&output));
    let mut segments = Vec::new();
    while segments.len() < 3 {
        // The probe connection before the load has no handshake.
        let (echoed, data_segments) = receiver
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the server's account of each connection");
        if echoed {
            segments.push(data_segments);
        }
    }
    assert_eq!(segments, [2, 2, 2], "{}", show(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conn_over_tls_counts_full_and_resumed_handshakes() {
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let dir = TempDir::new("tls-conn");
        let certs = certs(&dir);
        let (addr, _) = tls_server(&certs, version);
        let addr = addr.to_string();
        let ca = certs.ca_pem.display().to_string();
        let expected = if std::ptr::eq(version, &rustls::version::TLS13) {
            "TLSv1.3"
        } else {
            "TLSv1.2"
        };
        for resume in [false, true] {
            let mut args = vec![
                "conn",
                "--addr",
                &addr,
                "-c",
                "2",
                "-n",
                "20",
                "-s",
                "3KiB",
                "--json",
                "--tls",
                "--tls-ca",
                &ca,
                "--tls-server-name",
                "localhost",
            ];
            if resume {
                args.push("--tls-resume");
            }
            let output = echo_bench(&args).await;
            assert!(
                output.status.success(),
                "{expected} resume {resume}: {}",
                show(&output)
            );
            let report = json_report(&output);
            assert_eq!(report["exchanges"], 20, "{}", show(&output));
            assert_eq!(report["bytes"], 20 * 3 * 1024);
            assert_eq!(report["errors"], 0);
            let tls = &report["tls"];
            assert_eq!(tls["version"], expected, "{}", show(&output));
            assert_eq!(tls["handshakes"], 20);
            assert_eq!(tls["resume_asked"], resume);
            // Each of the two workers' first handshakes is full.
            assert_eq!(
                tls["resumed"],
                if resume { 18 } else { 0 },
                "{}",
                show(&output)
            );
            for key in ["handshake_p50_us", "handshake_p99_us", "handshake_max_us"] {
                assert!(
                    tls[key].as_f64().is_some_and(|v| v > 0.0),
                    "{key}: {}",
                    show(&output)
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_over_tls_echoes_every_message() {
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let dir = TempDir::new("tls-persistent");
        let certs = certs(&dir);
        let (addr, handshakes) = tls_server(&certs, version);
        let addr = addr.to_string();
        let ca = certs.ca_pem.display().to_string();
        let output = echo_bench(&[
            "persistent",
            "--addr",
            &addr,
            "-c",
            "3",
            "-n",
            "300",
            "-s",
            "100",
            "--json",
            "--tls",
            "--tls-ca",
            &ca,
        ])
        .await;
        assert!(output.status.success(), "{}", show(&output));
        let report = json_report(&output);
        assert_eq!(report["exchanges"], 300);
        assert_eq!(report["bytes"], 300 * 100);
        assert_eq!(report["errors"], 0);
        assert_eq!(report["tls"]["handshakes"], 3, "{}", show(&output));
        let suite = report["tls"]["cipher_suite"].as_str().unwrap_or_default();
        assert!(
            suite.contains("_GCM_"),
            "ring's preferred suites are AES-GCM: {}",
            show(&output)
        );
        // The probe before the load is plain TCP: no handshake.
        assert_eq!(handshakes.load(Ordering::Relaxed), 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_a_tls_error() {
    let dir = TempDir::new("tls-untrusted");
    let certs = certs(&dir);
    let (addr, _) = tls_server(&certs, &rustls::version::TLS13);
    let addr = addr.to_string();
    // The system's roots do not hold the test's CA.
    let output = echo_bench(&[
        "conn", "--addr", &addr, "-c", "1", "-n", "3", "--json", "--tls",
    ])
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    let report = json_report(&output);
    assert_eq!(report["exchanges"], 0);
    assert_eq!(report["error_counts"]["tls"], 3, "{}", show(&output));
    let first = report["error_samples"][0].as_str().unwrap_or_default();
    assert!(
        first.contains("TLS handshake failed: invalid peer certificate: UnknownIssuer"),
        "{first}"
    );
    // --tls-insecure checks nothing, and says so.
    let output = echo_bench(&[
        "conn",
        "--addr",
        &addr,
        "-c",
        "1",
        "-n",
        "3",
        "--json",
        "--tls",
        "--tls-insecure",
    ])
    .await;
    assert!(output.status.success(), "{}", show(&output));
    assert_eq!(json_report(&output)["exchanges"], 3);
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("--tls-insecure: the server's certificate is not checked"),
        "{}",
        show(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_where_it_cannot_go_is_a_usage_error() {
    for args in [
        &["udp", "--tls", "--dry-run"][..],
        &[
            "conn",
            "--addr",
            "unix:/tmp/echo-bench-tls.sock",
            "--tls",
            "--dry-run",
        ],
        &["persistent", "--tls", "--tls-resume", "--dry-run"],
        &["conn", "--tls-ca", "ca.pem", "--dry-run"],
        &["conn", "--tls", "--tls-cert", "c.pem", "--dry-run"],
        &[
            "conn",
            "--tls",
            "--tls-insecure",
            "--tls-ca",
            "ca.pem",
            "--dry-run",
        ],
    ] {
        let output = echo_bench(args).await;
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", show(&output));
        assert!(output.stdout.is_empty(), "{args:?}: {}", show(&output));
    }
    let output = echo_bench(&[
        "conn",
        "--addr",
        "localhost:7",
        "--tls",
        "--tls-resume",
        "--dry-run",
        "--json",
    ])
    .await;
    assert!(output.status.success(), "{}", show(&output));
    let plan = json_report(&output);
    assert_eq!(plan["tls"]["server_name"], "localhost");
    assert_eq!(plan["tls"]["trust"], "system roots");
    assert_eq!(plan["tls"]["resume"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_and_idle_over_tls_13_echo_every_byte() {
    let dir = TempDir::new("tls-bulk");
    let certs = certs(&dir);
    let (addr, _) = tls_server(&certs, &rustls::version::TLS13);
    let addr = addr.to_string();
    let ca = certs.ca_pem.display().to_string();
    let output = echo_bench(&[
        "bulk", "--addr", &addr, "-c", "2", "--total", "3MiB", "--json", "--tls", "--tls-ca", &ca,
    ])
    .await;
    assert!(output.status.success(), "{}", show(&output));
    let report = json_report(&output);
    assert_eq!(report["bytes"], 3 * 1024 * 1024, "{}", show(&output));
    assert_eq!(report["errors"], 0);
    assert_eq!(report["tls"]["handshakes"], 2);
    assert_eq!(report["tls"]["version"], "TLSv1.3");
    let output = echo_bench(&[
        "idle",
        "--addr",
        &addr,
        "-c",
        "2",
        "--connections",
        "10",
        "-d",
        "100ms",
        "--json",
        "--tls",
        "--tls-ca",
        &ca,
    ])
    .await;
    assert!(output.status.success(), "{}", show(&output));
    let report = json_report(&output);
    assert_eq!(report["held"], 10, "{}", show(&output));
    assert_eq!(report["errors"], 0);
    assert_eq!(report["tls"]["handshakes"], 10);
}

/// bulk ends its stream with close_notify at once over TLS 1.3, and over
/// TLS 1.2, where close_notify closes both ways, only once the whole echo
/// is back: every byte comes back either way, from the in-test server
/// (which closes both ways at a TLS 1.2 close_notify) and from echo-server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_over_tls_1_2_and_1_3_echoes_every_byte() {
    let dir = TempDir::new("tls-bulk-versions");
    let certs = certs(&dir);
    let ca = certs.ca_pem.display().to_string();
    for (version, name) in [
        (&rustls::version::TLS12, "TLSv1.2"),
        (&rustls::version::TLS13, "TLSv1.3"),
    ] {
        let (addr, _) = tls_server(&certs, version);
        let addr = addr.to_string();
        let output = echo_bench(&[
            "bulk", "--addr", &addr, "-c", "2", "--total", "3MiB", "--json", "--tls", "--tls-ca",
            &ca,
        ])
        .await;
        assert!(output.status.success(), "{name}: {}", show(&output));
        let report = json_report(&output);
        assert_eq!(
            report["bytes"],
            3 * 1024 * 1024,
            "{name}: {}",
            show(&output)
        );
        assert_eq!(report["tls"]["version"], name);
    }
    let cert = certs.cert_pem.display().to_string();
    let key = certs.key_pem.display().to_string();
    let server = echo_tests::Server::start_with(
        &[
            "--listen",
            "tls:127.0.0.1:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
        1,
    );
    let addr = server.listener_addr("tls", 0).to_string();
    let output = echo_bench(&[
        "bulk", "--addr", &addr, "-c", "2", "--total", "5MiB", "--json", "--tls", "--tls-ca", &ca,
    ])
    .await;
    assert!(output.status.success(), "{}", show(&output));
    let report = json_report(&output);
    assert_eq!(report["bytes"], 5 * 1024 * 1024, "{}", show(&output));
    assert_eq!(report["tls"]["handshakes"], 2);
    assert!(
        echo_tests::eventually(echo_tests::WAIT, || server.total("tls_handshakes") == 2
            && server.total("bytes") == 5 * 1024 * 1024),
        "the server's totals: {}",
        server.stderr()
    );
}
