//! The echo-client command over TLS.
