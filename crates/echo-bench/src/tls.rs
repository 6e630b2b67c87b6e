//! TLS as the load generator speaks it: the one crypto provider, ring, and
//! how protocol versions are named in reports.

use rustls::crypto::CryptoProvider;

/// rustls's ring provider, the workspace's one (aws-lc-rs costs minutes of
/// cold build); its kx groups are X25519 and the NIST curves, suites AES-GCM
/// and ChaCha20-Poly1305.
///
/// rustls 0.23.48 deprecates it for lacking post-quantum groups, which our
/// server's ring build lacks too: a client that offered them would measure
/// nothing more.
#[allow(deprecated)]
pub fn ring_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// A protocol version as people write it: `TLSv1.3`.
pub fn version_name(version: rustls::ProtocolVersion) -> String {
    match version {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
        other => format!("{other:?}"),
    }
}
