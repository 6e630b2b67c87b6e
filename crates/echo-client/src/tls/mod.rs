//! TLS for stream exchanges: the settings a library user gives a
//! [`Client`](crate::Client) ([`Tls`]), the rustls configuration made from
//! them once ([`Connector`]), and what a handshake agreed on ([`Negotiated`]).
//!
//! The provider is ring, as everywhere in the workspace; resumption is on
//! (rustls's in-memory cache lives in the configuration, which every
//! connection of a client shares).

pub mod insecure;
pub(crate) mod session;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use echo_proto::{Endpoint, Target};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tracing::{debug, warn};

use crate::Error;

/// How a TLS client decides to trust a server's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Roots {
    /// The system's roots, as `rustls-native-certs` finds them (it honours
    /// `SSL_CERT_FILE` and `SSL_CERT_DIR`).
    #[default]
    System,
    /// The certificates of this PEM file, and no others.
    File(PathBuf),
    /// Trust any certificate for any name: nothing is checked, so the server
    /// is not authenticated and anyone on the path can read and change the
    /// bytes. For tests against a server with a throwaway certificate.
    Insecure,
}

/// TLS settings for a [`Client`](crate::Client): whom to trust, the name to
/// check the server's certificate against, and a client certificate for
/// servers that ask for one.
///
/// Building one reads no file; [`Client::tls`](crate::Client::tls) does.
///
/// ```no_run
/// use echo_client::{Client, Target};
/// use echo_client::tls::{Roots, Tls};
///
/// let target: Target = "localhost:7443".parse()?;
/// let tls = Tls::default().roots(Roots::File("ca.pem".into()));
/// let client = Client::new(target).tls(&tls)?;
/// assert_eq!(client.echo_text("hello")?, "hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    roots: Roots,
    server_name: Option<String>,
    identity: Option<Identity>,
}

/// A client certificate chain and its private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    certificate: PathBuf,
    key: PathBuf,
}

impl Tls {
    /// Trusts `roots` (by default [`Roots::System`]).
    #[must_use]
    pub fn roots(mut self, roots: Roots) -> Self {
        self.roots = roots;
        self
    }

    /// Checks the server's certificate against `name`, and sends it as SNI
    /// (a DNS name or an IP address); by default the host name of the
    /// client's target, or its IP address.
    #[must_use]
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Presents the certificate chain of the PEM file `certificate`, whose
    /// private key is in the PEM file `key`, to a server that asks for one.
    #[must_use]
    pub fn identity(mut self, certificate: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.identity = Some(Identity {
            certificate: certificate.into(),
            key: key.into(),
        });
        self
    }

    /// The rustls configuration these settings make, for connections to `target`.
    pub(crate) fn connector(&self, target: &Target) -> Result<Connector, Error> {
        let provider = Arc::new(ring_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|source| Error::TlsSettings { source })?;
        let builder = match &self.roots {
            Roots::System => builder.with_root_certificates(system_roots()?),
            Roots::File(path) => builder.with_root_certificates(file_roots(path)?),
            Roots::Insecure => {
                warn!(
                    "TLS certificates are not checked: the server is not authenticated, \
                     and anyone on the path can read and change the bytes"
                );
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(insecure::Verifier::new(provider)))
            }
        };
        let config = match &self.identity {
            None => builder.with_no_client_auth(),
            Some(identity) => {
                let chain = read_certificates(&identity.certificate, "client certificate")?;
                let key = PrivateKeyDer::from_pem_file(&identity.key).map_err(|source| {
                    Error::TlsFile {
                        path: identity.key.clone(),
                        what: "client private key",
                        source: pem_error(source, "private key"),
                    }
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|source| Error::TlsIdentity {
                        certificate: identity.certificate.clone(),
                        key: identity.key.clone(),
                        source,
                    })?
            }
        };
        let server_name = match &self.server_name {
            Some(name) => ServerName::try_from(name.clone())
                .map_err(|_| Error::TlsServerName { name: name.clone() })?,
            None => match target {
                Target::Endpoint(Endpoint::Ip(addr)) => ServerName::from(addr.ip()),
                Target::Name { host, .. } => ServerName::try_from(host.clone())
                    .map_err(|_| Error::TlsServerName { name: host.clone() })?,
                Target::Endpoint(Endpoint::Unix(_)) => {
                    return Err(Error::TlsNeedsTcp {
                        over: "a Unix socket",
                    });
                }
            },
        };
        Ok(Connector {
            config: Arc::new(config),
            server_name,
        })
    }
}

/// ring's provider, the workspace's everywhere, offering X25519 first.
///
/// rustls 0.23.48 lists P-384 first among ring's groups, and a TLS 1.3
/// server takes the client's first group it supports: a handshake then
/// costs both sides about 0.6 ms more than over X25519, which every server
/// supports.
fn ring_provider() -> rustls::crypto::CryptoProvider {
    // Deprecated in rustls 0.23.48 for want of post-quantum groups, and
    // still the one way to have ring's provider whole.
    #[allow(deprecated)]
    let mut provider = rustls::crypto::ring::default_provider();
    use rustls::crypto::ring::kx_group;
    provider.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1];
    provider
}

/// What every TLS connection of a client starts from: the configuration
/// (shared, so sessions resume) and the name the server must prove.
#[derive(Debug)]
pub(crate) struct Connector {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) server_name: ServerName<'static>,
}

/// The version of TLS a handshake agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// TLS 1.2: a close_notify closes both ways, so the client sends its
    /// own only once the whole echo is back.
    Tls12,
    /// TLS 1.3: a close_notify closes the sender's side only, so the client
    /// sends it as soon as the whole message is out, as a TCP half-close.
    Tls13,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::Tls12 => "TLSv1.2",
            Version::Tls13 => "TLSv1.3",
        })
    }
}

/// What a TLS handshake agreed on; shown as `TLSv1.3 TLS13_AES_128_GCM_SHA256`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The protocol version.
    pub version: Version,
    /// The cipher suite, by its IANA name.
    pub cipher_suite: String,
}

impl fmt::Display for Negotiated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.version, self.cipher_suite)
    }
}

/// The system's roots; an error only when there is not one, since a store
/// with a few unreadable files among many is the usual case.
fn system_roots() -> Result<RootCertStore, Error> {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        debug!(%error, "skipped a system root certificate");
    }
    let mut store = RootCertStore::empty();
    let (added, ignored) = store.add_parsable_certificates(found.certs);
    debug!(added, ignored, "system root certificates");
    if store.is_empty() {
        let why = match found.errors.first() {
            Some(error) => error.to_string(),
            None => "none found".to_owned(),
        };
        return Err(Error::TlsSystemRoots { why });
    }
    Ok(store)
}

/// The roots of one PEM file, every certificate of which must be usable:
/// a root that is silently left out would fail later, far from its cause.
fn file_roots(path: &Path) -> Result<RootCertStore, Error> {
    let mut store = RootCertStore::empty();
    for certificate in read_certificates(path, "CA certificates")? {
        store.add(certificate).map_err(|err| Error::TlsFile {
            path: path.to_owned(),
            what: "CA certificates",
            source: io::Error::new(io::ErrorKind::InvalidData, err),
        })?;
    }
    Ok(store)
}

/// Every certificate of the PEM file at `path`, at least one.
fn read_certificates(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, Error> {
    let file_error = |source| Error::TlsFile {
        path: path.to_owned(),
        what,
        source,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|err| file_error(pem_error(err, "certificate")))?;
    if certificates.is_empty() {
        return Err(file_error(pem_error(
            pem::Error::NoItemsFound,
            "certificate",
        )));
    }
    Ok(certificates)
}

/// A PEM file's failure as an I/O error that says what was missing.
fn pem_error(err: pem::Error, item: &str) -> io::Error {
    match err {
        pem::Error::Io(err) => err,
        pem::Error::NoItemsFound => {
            io::Error::new(io::ErrorKind::InvalidData, format!("no PEM {item} in it"))
        }
        other => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not a valid PEM file: {other}"),
        ),
    }
}
