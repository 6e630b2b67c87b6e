//! TLS as the load generator speaks it: the one crypto provider, ring; the
//! client configuration a run builds once from its plan's trust, name and
//! certificate; and the handshake on a connection made, timed and told apart
//! from the echo.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use echo_client::tls::insecure;
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, HandshakeKind, RootCertStore};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::plan::{TlsPlan, Trust};
use crate::tally::{ExchangeError, Handshake};

/// Sessions a worker's cache keeps with `--tls-resume`: it talks to one
/// server, and each connection needs one.
const SESSIONS_PER_WORKER: usize = 8;

/// rustls's ring provider, the workspace's one (aws-lc-rs costs minutes of
/// cold build); its kx groups are X25519 and the NIST curves, suites AES-GCM
/// and ChaCha20-Poly1305.
///
/// rustls 0.23.48 deprecates it for lacking post-quantum groups, which our
/// server's ring build lacks too: a client that offered them would measure
/// nothing more.
///
/// X25519 is offered first: rustls 0.23.48 lists P-384 first among ring's
/// groups, and a TLS 1.3 server takes the client's first group it supports,
/// so every handshake would cost both sides about 0.6 ms more (ring's P-384
/// is slow), and the load generator would measure a curve no browser leads with.
/// AES-128-GCM is offered first, as browsers do, where rustls leads with
/// AES-256-GCM: a server that follows the client's order (ours, rustls's)
/// then runs the suite the floor (`tls-floor`) is pinned to, so their costs
/// compare.
#[allow(deprecated)]
pub fn ring_provider() -> CryptoProvider {
    use rustls::crypto::ring::{cipher_suite, kx_group};
    let mut provider = rustls::crypto::ring::default_provider();
    provider.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1];
    let preferred = [
        cipher_suite::TLS13_AES_128_GCM_SHA256,
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ];
    provider
        .cipher_suites
        .sort_by_key(|suite| !preferred.iter().any(|p| p.suite() == suite.suite()));
    provider
}

/// A protocol version as people write it: `TLSv1.3`.
pub fn version_name(version: rustls::ProtocolVersion) -> String {
    match version {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
        other => format!("{other:?}"),
    }
}

/// Why a run's TLS client could not be set up from its plan.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file of `--tls-ca`, `--tls-cert` or `--tls-key` could not be read or held nothing usable.
    #[error("cannot read {what} from {}: {reason}", path.display())]
    File {
        /// Which flag's file.
        what: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The system's trust store held no usable certificate.
    #[error("no usable root certificate in the system's trust store ({0}); give --tls-ca")]
    NoSystemRoots(String),
    /// The server name is neither a DNS name nor an IP address.
    #[error("invalid TLS server name '{0}': give --tls-server-name")]
    ServerName(String),
    /// rustls refused the configuration (a client key that does not match its certificate, say).
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The TLS side of a run's connections: its client configuration, built
/// once, and the name it asks the server for.
#[derive(Debug, Clone)]
pub struct Connector {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    resume: bool,
}

impl Connector {
    /// The connector `plan` describes, towards a server called `name`:
    /// reads its files once.
    ///
    /// # Errors
    /// A [`TlsError`] naming the file, name or setting that cannot serve.
    pub fn new(plan: &TlsPlan, name: &str) -> Result<Connector, TlsError> {
        let provider = Arc::new(ring_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?;
        let builder = match &plan.trust {
            Trust::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(insecure::Verifier::new(provider))),
            Trust::System => builder.with_root_certificates(system_roots()?),
            Trust::Roots(path) => builder.with_root_certificates(file_roots(path)?),
        };
        let mut config = match &plan.client_cert {
            Some((cert, key)) => {
                builder.with_client_auth_cert(read_certs(cert, "--tls-cert")?, read_key(key)?)?
            }
            None => builder.with_no_client_auth(),
        };
        config.resumption = Resumption::disabled();
        let name = ServerName::try_from(name.to_owned())
            .map_err(|_| TlsError::ServerName(name.to_owned()))?;
        Ok(Connector {
            config: Arc::new(config),
            name,
            resume: plan.resume,
        })
    }

    /// The connector one worker uses: with `--tls-resume`, its own session
    /// cache, so that every connection after its first can resume; else
    /// this one, every handshake full.
    pub(crate) fn for_worker(&self) -> Connector {
        if !self.resume {
            return self.clone();
        }
        let mut config = (*self.config).clone();
        config.resumption = Resumption::in_memory_sessions(SESSIONS_PER_WORKER);
        Connector {
            config: Arc::new(config),
            ..self.clone()
        }
    }

    /// Runs the handshake on `tcp`, made at `connected`, and says what it negotiated.
    ///
    /// # Errors
    /// [`ExchangeError::Tls`] with rustls's reason, or the socket's.
    pub(crate) async fn handshake(
        &self,
        tcp: TcpStream,
        connected: Instant,
    ) -> Result<(TlsStream<TcpStream>, Handshake), ExchangeError> {
        let stream = TlsConnector::from(Arc::clone(&self.config))
            .connect(self.name.clone(), tcp)
            .await
            .map_err(ExchangeError::Tls)?;
        let handshake = describe(stream.get_ref().1, connected.elapsed());
        Ok((stream, handshake))
    }

    /// A client connection of this connector's, its handshake to come.
    ///
    /// # Errors
    /// rustls could not make one (out of memory, in practice).
    pub(crate) fn client(&self) -> Result<ClientConnection, rustls::Error> {
        ClientConnection::new(Arc::clone(&self.config), self.name.clone())
    }
}

/// What the handshake of `connection`, over after `took`, negotiated.
pub(crate) fn describe(connection: &ClientConnection, took: Duration) -> Handshake {
    Handshake {
        took,
        resumed: connection.handshake_kind() == Some(HandshakeKind::Resumed),
        version: connection
            .protocol_version()
            .map(version_name)
            .unwrap_or_default(),
        cipher_suite: connection
            .negotiated_cipher_suite()
            .and_then(|suite| suite.suite().as_str())
            .unwrap_or_default()
            .to_owned(),
    }
}

fn system_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
        return Err(TlsError::NoSystemRoots(if errors.is_empty() {
            "none found".to_owned()
        } else {
            errors.join("; ")
        }));
    }
    Ok(roots)
}

fn file_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(read_certs(path, "--tls-ca")?);
    if added == 0 {
        return Err(TlsError::File {
            what: "--tls-ca",
            path: path.to_owned(),
            reason: "no usable CA certificate".to_owned(),
        });
    }
    Ok(roots)
}

fn read_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |reason: String| TlsError::File {
        what,
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|err| error(err.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| error(err.to_string()))?;
    if certs.is_empty() {
        return Err(error("no PEM certificate in it".to_owned()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|err| TlsError::File {
        what: "--tls-key",
        path: path.to_owned(),
        reason: err.to_string(),
    })
}
