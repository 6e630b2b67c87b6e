//! TLS echo: the settings of a `tls:` listener made into one rustls server
//! configuration, shared by every TLS connection of every event loop.
//!
//! Who does what: [`certs`] loads the certificate and key and re-reads them
//! when their files change, [`stream`] is the TLS connection as the event
//! loop serves it (rustls's unbuffered API, so an idle connection holds no
//! buffer), [`buffers`] the buffers connections borrow while bytes move.

mod buffers;
mod certs;
mod stream;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use rustls::server::WebPkiClientVerifier;

use crate::config::TlsConfig;
use crate::stats::Stats;

pub(crate) use stream::TlsStream;

/// How many TLS sessions the server remembers for resumption (each a few
/// hundred bytes): clients that come back within it skip the full handshake.
const SESSION_CACHE: usize = 4096;

/// Why TLS could not be set up at start.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A `tls:` address was given without a certificate and key.
    #[error("a tls: address needs --tls-cert and --tls-key (PEM files)")]
    NoCertificate,
    /// The certificate file could not be read or is not PEM.
    #[error("cannot read the TLS certificate chain from {}", path.display())]
    Certificates {
        /// The file, as given.
        path: PathBuf,
        /// What reading it said.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", .0.display())]
    NoCertificateInFile(PathBuf),
    /// The key file could not be read, or holds no private key.
    #[error("cannot read a private key (PKCS#8, SEC1 or RSA, PEM) from {}", path.display())]
    Key {
        /// The file, as given.
        path: PathBuf,
        /// What reading it said.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The key cannot sign, or is not the key of the certificate.
    #[error("cannot serve the certificate in {} with the key in {}", cert.display(), key.display())]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        #[source]
        source: rustls::Error,
    },
    /// The client CA file could not be read, or holds nothing usable.
    #[error("cannot use the client CAs in {} (--tls-client-ca)", path.display())]
    ClientCa {
        /// The file, as given.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// rustls refused the settings as a whole.
    #[error("cannot set up TLS")]
    Settings(#[source] rustls::Error),
}

/// What every TLS connection of the server shares: the rustls configuration,
/// the handshake deadline and the totals its handshakes are counted in.
#[derive(Debug)]
pub(crate) struct Context {
    config: Arc<ServerConfig>,
    handshake_timeout: Duration,
    stats: Arc<Stats>,
}

impl Context {
    /// Loads the certificate, key and client CAs `settings` name and makes
    /// the server's TLS configuration: TLS 1.3 and 1.2 with ring's suites,
    /// session resumption on, ALPN as listed.
    ///
    /// # Errors
    /// A file is missing or unusable, or the key does not match the certificate.
    pub(crate) fn load(settings: &TlsConfig, stats: Arc<Stats>) -> Result<Self, TlsError> {
        let (Some(cert), Some(key)) = (&settings.tls_cert, &settings.tls_key) else {
            return Err(TlsError::NoCertificate);
        };
        let provider = Arc::new(provider());
        let resolver = certs::Reloading::load(cert.clone(), key.clone(), Arc::clone(&provider))?;
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsError::Settings)?;
        let builder = match &settings.tls_client_ca {
            Some(path) => {
                builder.with_client_cert_verifier(client_verifier(path, Arc::clone(&provider))?)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = settings
            .tls_alpn
            .iter()
            .map(|protocol| protocol.as_bytes().to_vec())
            .collect();
        config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE);
        // One TLS 1.3 ticket per connection resumes the next one; rustls's
        // default of two (for browsers' parallel connections) would take
        // twice the cache, and sign and send a second ticket each time.
        config.send_tls13_tickets = 1;
        Ok(Context {
            config: Arc::new(config),
            handshake_timeout: settings.tls_handshake_timeout,
            stats,
        })
    }
}

/// ring's suites and groups, as rustls offers them: ring, not aws-lc-rs,
/// since a cold build costs 16 s + 62 s with it against 59 s + 99 s (debug +
/// release), and the post-quantum group that aws-lc-rs alone offers is not
/// worth that to an echo.
pub(crate) fn provider() -> CryptoProvider {
    // Deprecated in 0.23.48 for want of post-quantum groups, and still the
    // one way to have ring's provider whole.
    #[allow(deprecated)]
    rustls::crypto::ring::default_provider()
}

/// A verifier that requires a client certificate issued by one of the CAs in `path`.
fn client_verifier(
    path: &std::path::Path,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let fail = |source: Box<dyn std::error::Error + Send + Sync>| TlsError::ClientCa {
        path: path.to_owned(),
        source,
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|err| fail(Box::new(err)))?;
    for cert in certs {
        let cert = cert.map_err(|err| fail(Box::new(err)))?;
        roots.add(cert).map_err(|err| fail(Box::new(err)))?;
    }
    if roots.is_empty() {
        return Err(fail("no PEM certificate in the file".into()));
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|err| fail(Box::new(err)))
}

/// Why a TLS handshake failed, as the totals count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// It did not finish within the handshake timeout.
    Timeout,
    /// What came was not TLS, or broke the protocol (plaintext to a TLS port).
    Protocol,
    /// The client presented no certificate, or one the client CAs did not issue.
    ClientCertificate,
    /// The client ended the handshake with an alert: it did not accept ours, mostly.
    PeerAlert,
    /// No version, cipher suite, group or application protocol in common.
    Incompatible,
    /// The client closed or reset the connection before the handshake ended.
    Closed,
}

impl Failure {
    /// The cause of a handshake that rustls ended with `err`.
    fn of(err: &rustls::Error) -> Self {
        use rustls::Error;
        match err {
            Error::NoCertificatesPresented
            | Error::InvalidCertificate(_)
            | Error::InvalidCertRevocationList(_) => Failure::ClientCertificate,
            Error::AlertReceived(_) => Failure::PeerAlert,
            Error::PeerIncompatible(_) | Error::NoApplicationProtocol => Failure::Incompatible,
            _ => Failure::Protocol,
        }
    }

    /// Counts one such failure in `stats`.
    fn count(self, stats: &Stats) {
        let counter = match self {
            Failure::Timeout => &stats.tls_failed_timeout,
            Failure::Protocol => &stats.tls_failed_protocol,
            Failure::ClientCertificate => &stats.tls_failed_client_certificate,
            Failure::PeerAlert => &stats.tls_failed_peer_alert,
            Failure::Incompatible => &stats.tls_failed_incompatible,
            Failure::Closed => &stats.tls_failed_closed,
        };
        Stats::bump(counter);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_told_apart_by_what_rustls_says() {
        use rustls::{AlertDescription, CertificateError, Error, PeerIncompatible};
        assert_eq!(
            Failure::of(&Error::NoCertificatesPresented),
            Failure::ClientCertificate
        );
        assert_eq!(
            Failure::of(&Error::InvalidCertificate(CertificateError::UnknownIssuer)),
            Failure::ClientCertificate
        );
        assert_eq!(
            Failure::of(&Error::AlertReceived(AlertDescription::BadCertificate)),
            Failure::PeerAlert
        );
        assert_eq!(
            Failure::of(&Error::NoApplicationProtocol),
            Failure::Incompatible
        );
        assert_eq!(
            Failure::of(&Error::PeerIncompatible(
                PeerIncompatible::NoCipherSuitesInCommon
            )),
            Failure::Incompatible
        );
        assert_eq!(
            Failure::of(&Error::InvalidMessage(
                rustls::InvalidMessage::InvalidContentType
            )),
            Failure::Protocol
        );
    }
}
