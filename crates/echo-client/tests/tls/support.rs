//! What the TLS tests share: certificates made with rcgen in a temporary
//! directory, and an in-process TLS echo server on 127.0.0.1 that ends a
//! message as the workspace's server does (tls-spec: echo until the
//! client's close_notify or a bare end of stream, then a close_notify of
//! its own) and says, for each connection, what it saw.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use echo_tests::TempDir;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    RootCertStore, ServerConfig, ServerConnection, StreamOwned, SupportedProtocolVersion,
};

/// How long any wait of the test server or of a test lasts at most.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A CA, a server certificate for "localhost" and 127.0.0.1 signed by it,
/// a client certificate signed by it, and a second CA that signed nothing
/// here, all as PEM files.
#[derive(Debug)]
pub struct Pki {
    pub dir: TempDir,
    /// The CA that signed the server's and the client's certificates.
    pub ca: PathBuf,
    /// A CA that signed neither: trusting it alone refuses the server.
    pub other_ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Pki {
    pub fn new() -> Self {
        let dir = TempDir::new("client-tls");
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("a PEM file written");
            path
        };
        let ca = authority("echo test CA");
        let other_ca = authority("another CA");
        let server = leaf(&["localhost", "127.0.0.1"], "echo test server", &ca);
        let client = leaf(&[], "echo test client", &ca);
        Pki {
            ca: write("ca.pem", &ca.pem()),
            other_ca: write("other-ca.pem", &other_ca.pem()),
            server_cert: write("server.pem", &server.0),
            server_key: write("server-key.pem", &server.1),
            client_cert: write("client.pem", &client.0),
            client_key: write("client-key.pem", &client.1),
            dir,
        }
    }
}

fn authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    // ECDSA P-256, rcgen's default.
    let key = KeyPair::generate().expect("a CA key");
    CertifiedIssuer::self_signed(params, key).expect("a CA certificate")
}

/// A certificate for `names` signed by `issuer`, and its key, as PEM.
fn leaf(
    names: &[&str],
    common_name: &str,
    issuer: &CertifiedIssuer<'_, KeyPair>,
) -> (String, String) {
    let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    let mut params = CertificateParams::new(names).expect("leaf parameters");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    let key = KeyPair::generate().expect("a leaf key");
    let cert = params.signed_by(&key, issuer).expect("a leaf certificate");
    (cert.pem(), key.serialize_pem())
}

/// How the test server behaves.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only this TLS version; both when `None`.
    pub version: Option<&'static SupportedProtocolVersion>,
    /// Require a client certificate signed by the Pki's CA.
    pub require_client_cert: bool,
    /// Echo only part of the message, then close without a close_notify.
    pub cut: Option<Cut>,
    /// Echo everything, then close without a close_notify of its own.
    pub no_close_notify: bool,
}

/// A reply cut short: the server echoes `echo` bytes of a message of
/// `len`, reads the rest (and over TLS 1.3 the client's close_notify, which
/// comes unasked), so that its close is a clean FIN and never a reset that
/// could overtake the bytes echoed.
#[derive(Debug, Clone, Copy)]
pub struct Cut {
    pub echo: usize,
    pub len: usize,
}

/// What the server saw of one connection.
#[derive(Debug)]
pub struct Seen {
    /// The handshake's outcome: the version agreed, or rustls's error.
    pub version: Result<rustls::ProtocolVersion, String>,
    pub echoed: usize,
    /// Whether the message ended with the client's close_notify (rather
    /// than a bare end of stream).
    pub close_notify: bool,
    /// Whether the client presented a certificate.
    pub client_cert: bool,
    pub sni: Option<String>,
}

/// A TLS echo server on 127.0.0.1, serving one connection at a time until dropped.
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    seen: mpsc::Receiver<Seen>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(pki: &Pki, options: Options) -> Self {
        let config = Arc::new(server_config(pki, &options));
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port on loopback");
        let addr = listener.local_addr().expect("its address");
        let stop = Arc::new(AtomicBool::new(false));
        let (report, seen) = mpsc::channel();
        let thread = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let seen = serve(stream, Arc::clone(&config), &options);
                    if report.send(seen).is_err() {
                        return;
                    }
                }
            })
        };
        Server {
            addr,
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// What the server saw of its next connection, waiting for it to end.
    pub fn next_seen(&self) -> Seen {
        self.seen
            .recv_timeout(PATIENCE)
            .expect("the server reports the connection within the patience")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept; a connection in hand ends within its socket timeouts.
        let _ = TcpStream::connect_timeout(&self.addr, PATIENCE);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[allow(deprecated)] // ring's provider is the workspace's, deprecated in 0.23.48 only for want of post-quantum groups
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_config(pki: &Pki, options: &Options) -> ServerConfig {
    let builder = ServerConfig::builder_with_provider(provider());
    let builder = match options.version {
        Some(version) => builder.with_protocol_versions(&[version]),
        None => builder.with_safe_default_protocol_versions(),
    }
    .expect("protocol versions");
    let builder = if options.require_client_cert {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(&pki.ca).expect("the CA"))
            .expect("a root");
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .expect("a client verifier");
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let chain = CertificateDer::pem_file_iter(&pki.server_cert)
        .expect("the server certificate")
        .collect::<Result<Vec<_>, _>>()
        .expect("PEM certificates");
    let key = PrivateKeyDer::from_pem_file(&pki.server_key).expect("the server key");
    builder
        .with_single_cert(chain, key)
        .expect("a server config")
}

fn serve(stream: TcpStream, config: Arc<ServerConfig>, options: &Options) -> Seen {
    let _ = stream.set_read_timeout(Some(PATIENCE));
    let _ = stream.set_write_timeout(Some(PATIENCE));
    let mut seen = Seen {
        version: Err("no handshake".to_owned()),
        echoed: 0,
        close_notify: false,
        client_cert: false,
        sni: None,
    };
    let connection = match ServerConnection::new(config) {
        Ok(connection) => connection,
        Err(err) => {
            seen.version = Err(err.to_string());
            return seen;
        }
    };
    let mut tls = StreamOwned::new(connection, stream);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut read_so_far = 0;
    loop {
        let read = tls.read(&mut buffer);
        if seen.version.is_err() {
            if let Some(version) = tls
                .conn
                .protocol_version()
                .filter(|_| !tls.conn.is_handshaking())
            {
                seen.version = Ok(version);
                seen.client_cert = tls.conn.peer_certificates().is_some();
                seen.sni = tls.conn.server_name().map(str::to_owned);
            }
        }
        match read {
            Ok(0) => {
                seen.close_notify = true;
                break;
            }
            Ok(n) => {
                read_so_far += n;
                let tls12 = tls.conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_2);
                if tls12
                    && tls
                        .conn
                        .process_new_packets()
                        .is_ok_and(|io| io.peer_has_closed())
                {
                    // RFC 5246 7.2.1: a close_notify closes both ways at
                    // once, and the echo still owed is dropped, as a strict
                    // TLS 1.2 peer does: a client that sent its own before
                    // the whole echo came back loses the rest.
                    seen.close_notify = true;
                    break;
                }
                let echo = match options.cut {
                    Some(cut) => n.min(cut.echo - seen.echoed),
                    None => n,
                };
                if tls
                    .write_all(&buffer[..echo])
                    .and_then(|()| tls.flush())
                    .is_err()
                {
                    return seen;
                }
                seen.echoed += echo;
                if let Some(cut) = options.cut {
                    if read_so_far >= cut.len {
                        if tls.conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3) {
                            seen.close_notify = matches!(tls.read(&mut buffer), Ok(0));
                        }
                        // A bare close: no close_notify.
                        let _ = tls.sock.shutdown(std::net::Shutdown::Both);
                        return seen;
                    }
                }
            }
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(err) => {
                if seen.version.is_err() {
                    seen.version = Err(err.to_string());
                }
                // Sends the alert rustls queued, if any, as a real server would.
                let _ = tls.conn.complete_io(&mut tls.sock);
                return seen;
            }
        }
    }
    if !options.no_close_notify {
        tls.conn.send_close_notify();
        let _ = tls.flush();
        let _ = tls.conn.complete_io(&mut tls.sock);
    }
    seen
}
