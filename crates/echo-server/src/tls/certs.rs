//! The server's certificate and key, re-read when their files change, so a
//! certificate renewed in place (certbot, a Kubernetes secret) is served
//! without a restart or a signal.
//!
//! The files are looked at only when a handshake starts, and at most once a
//! second: an idle server reads nothing, a busy one one `stat` pair a second.
//! A new pair that does not load (a key written after its certificate, say)
//! is logged and the old one kept, until the files change again.

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tracing::{info, warn};

use super::TlsError;

/// The least time between two looks at the files.
const RECHECK: Duration = Duration::from_secs(1);

/// A certificate resolver that serves the pair in two files, as they are now.
#[derive(Debug)]
pub(super) struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: Mutex<Current>,
}

#[derive(Debug)]
struct Current {
    served: Arc<CertifiedKey>,
    /// The files as they were when last loaded, or last failed to load.
    seen: Stamp,
    looked: Instant,
}

/// What tells that a file changed: its inode (a secret's symbolic link
/// swapped, a file renamed over), size and modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp([Option<(u64, u64, u64, SystemTime)>; 2]);

impl Stamp {
    fn of(cert: &Path, key: &Path) -> Self {
        let one = |path: &Path| {
            fs::metadata(path).ok().map(|meta| {
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                (meta.dev(), meta.ino(), meta.len(), modified)
            })
        };
        Stamp([one(cert), one(key)])
    }
}

impl Reloading {
    /// Loads the pair once, as the server starts.
    ///
    /// # Errors
    /// Either file is missing or unusable, or the key is not the certificate's.
    pub(super) fn load(
        cert: PathBuf,
        key: PathBuf,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let seen = Stamp::of(&cert, &key);
        let served = Arc::new(load_pair(&cert, &key, &provider)?);
        warn_if_out_of_date(&served, &cert);
        Ok(Reloading {
            cert,
            key,
            provider,
            current: Mutex::new(Current {
                served,
                seen,
                looked: Instant::now(),
            }),
        })
    }

    /// The pair to serve now, after reloading it if a second has passed
    /// since the last look and the files changed.
    fn now(&self) -> Arc<CertifiedKey> {
        // A panic elsewhere while holding the lock leaves a pair that was whole.
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if current.looked.elapsed() >= RECHECK {
            current.looked = Instant::now();
            let stamp = Stamp::of(&self.cert, &self.key);
            if stamp != current.seen {
                current.seen = stamp;
                match load_pair(&self.cert, &self.key, &self.provider) {
                    Ok(pair) => {
                        warn_if_out_of_date(&pair, &self.cert);
                        current.served = Arc::new(pair);
                        info!(cert = %self.cert.display(), "TLS certificate reloaded");
                    }
                    Err(err) => warn!(error = %error_chain(&err),
                        "TLS certificate changed on disk but does not load; still serving the previous one"),
                }
            }
        }
        Arc::clone(&current.served)
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        super::stream::note_server_name(hello.server_name());
        Some(self.now())
    }
}

/// Reads a certificate chain and its key, and checks that they belong together.
fn load_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let read_certs = |source| TlsError::Certificates {
        path: cert.to_owned(),
        source,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(read_certs)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_certs)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificateInFile(cert.to_owned()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Key {
        path: key.to_owned(),
        source,
    })?;
    CertifiedKey::from_der(chain, private, provider).map_err(|source| TlsError::Pair {
        cert: cert.to_owned(),
        key: key.to_owned(),
        source,
    })
}

/// Warns when the certificate served has expired or is not valid yet:
/// clients that verify will refuse every handshake.
fn warn_if_out_of_date(pair: &CertifiedKey, path: &Path) {
    let Some(Ok((_, cert))) = pair
        .cert
        .first()
        .map(|cert| x509_parser::parse_x509_certificate(cert.as_ref()))
    else {
        return;
    };
    let validity = cert.validity();
    if !validity.is_valid() {
        warn!(cert = %path.display(), not_before = %validity.not_before, not_after = %validity.not_after,
            "the TLS certificate is not valid now: clients that verify it will refuse every handshake");
    }
}

/// An error and its sources on one line, for a log field.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(err) = source {
        text.push_str(": ");
        text.push_str(&err.to_string());
        source = err.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate and key for `name`, as PEM text.
    fn pair(name: &str) -> (String, String) {
        let certified =
            rcgen::generate_simple_self_signed(vec![name.to_owned()]).expect("a certificate");
        (certified.cert.pem(), certified.signing_key.serialize_pem())
    }

    fn dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "echo-server-certs-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        fs::create_dir_all(&dir).expect("a directory");
        dir
    }

    fn served_name(reloading: &Reloading) -> Vec<u8> {
        let served = reloading.now();
        served.cert[0].as_ref().to_vec()
    }

    #[test]
    fn a_changed_pair_is_served_after_a_second_and_a_broken_one_never() {
        let dir = dir();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let (first_cert, first_key) = pair("first.test");
        fs::write(&cert, &first_cert).expect("written");
        fs::write(&key, &first_key).expect("written");
        let provider = Arc::new(super::super::provider());
        let reloading = Reloading::load(cert.clone(), key.clone(), provider).expect("loads");
        let first = served_name(&reloading);

        // A certificate whose key has not been written yet: kept out.
        let (second_cert, second_key) = pair("second.test");
        fs::write(&cert, &second_cert).expect("written");
        reloading.current.lock().expect("lock").looked -= RECHECK;
        assert_eq!(served_name(&reloading), first);

        // The key follows: the new pair is served, though not before a second has passed.
        fs::write(&key, &second_key).expect("written");
        assert_eq!(
            served_name(&reloading),
            first,
            "looked again within a second"
        );
        reloading.current.lock().expect("lock").looked -= RECHECK;
        let second = served_name(&reloading);
        assert_ne!(second, first);
        assert_eq!(
            second,
            CertificateDer::from_pem_slice(second_cert.as_bytes())
                .expect("PEM")
                .as_ref()
        );
        fs::remove_dir_all(&dir).expect("removed");
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused_naming_both_files() {
        let dir = dir();
        let (cert, key) = (dir.join("a.pem"), dir.join("b.pem"));
        fs::write(&cert, pair("one.test").0).expect("written");
        fs::write(&key, pair("two.test").1).expect("written");
        let provider = super::super::provider();
        let err = load_pair(&cert, &key, &provider).expect_err("mismatched");
        let message = err.to_string();
        assert!(
            message.contains("a.pem") && message.contains("b.pem"),
            "{message}"
        );
        let err = load_pair(&dir.join("missing.pem"), &key, &provider).expect_err("missing");
        assert!(err.to_string().contains("missing.pem"), "{err}");
        fs::write(&cert, "not PEM at all\n").expect("written");
        let err = load_pair(&cert, &key, &provider).expect_err("no certificate");
        assert!(matches!(err, TlsError::NoCertificateInFile(_)), "{err:?}");
        fs::remove_dir_all(&dir).expect("removed");
    }
}
