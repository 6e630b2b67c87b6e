//! The facts both ends of an RFC 862 echo exchange agree on, free of any runtime.
//!
//! The wire protocol has no framing of its own: a TCP message is every byte the
//! client sends until it half-closes its write side, and the reply is every byte
//! the server sends back until it closes.
//! What this crate holds is the vocabulary around that: how big a chunk to move
//! at once ([`BUFFER_SIZE`]), where to meet ([`Endpoint`], [`DEFAULT_ADDR`],
//! and for clients [`Target`], which may be a host name),
//! how to tell a faithful reply from a corrupt one ([`verify`]), and which UDP
//! peers must never be answered ([`udp`]).
//!
//! It knows nothing about tokio or any other runtime, so the blocking client,
//! the async server and the load generator can all share it.

#![warn(missing_docs)]

mod endpoint;
mod payload;
mod target;
pub mod udp;

pub use endpoint::{Endpoint, EndpointError};
pub use payload::{Mismatch, pattern, verify};
pub use target::{Target, TargetError};

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// How many bytes the server and client move per read or write call.
///
/// 64 KiB matches the loopback MTU and the kernel's default socket buffer
/// granularity, so one call moves a whole segment's worth without extra
/// syscalls, while staying far below any per-connection memory worry:
/// the server holds such a buffer only while bytes are actually moving.
pub const BUFFER_SIZE: usize = 64 * 1024;

/// The port the server listens on and the client dials when told nothing else.
///
/// Port 7 is the RFC 862 port but needs privileges; 7007 is the unprivileged stand-in.
pub const DEFAULT_PORT: u16 = 7007;

/// The address the server listens on and the client dials by default: loopback only,
/// so that starting the server never exposes it to a network by accident.
pub const DEFAULT_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, DEFAULT_PORT));

/// Why a text is not a duration: no unit, an unknown unit, or not a number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration '{text}' ({reason}): use a number with a unit, as in 250ms, 5s or 2m")]
pub struct DurationError {
    /// The text as given.
    pub text: String,
    /// What is wrong with it, as the parser says.
    pub reason: String,
}

/// Reads a human duration as flags and settings spell them: `250ms`, `5s`, `2m`, `1h 30m`.
///
/// A bare number is refused rather than guessed at: `--timeout 5` could mean
/// seconds or milliseconds, and a wrong guess fails only at the worst moment.
///
/// # Errors
/// A [`DurationError`] naming the text and the accepted forms.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, DurationError> {
    humantime::parse_duration(text.trim()).map_err(|err| DurationError {
        text: text.to_owned(),
        reason: err.to_string(),
    })
}

/// A duration as flags spell them, for messages and logs: rounded to the
/// millisecond (a measured `998.985648ms` reads `999ms`), `5s`, `1m30s`,
/// `0s`; what [`parse_duration`] reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Human(pub std::time::Duration);

impl std::fmt::Display for Human {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let millis = (self.0.as_micros() + 500) / 1000;
        let rounded = std::time::Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX));
        // Without humantime's spaces, so a log field stays one word: `1m30s`.
        for part in humantime::format_duration(rounded).to_string().split(' ') {
            f.write_str(part)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn durations_read_as_they_are_typed_and_parse_back() {
        let shown = |duration| Human(duration).to_string();
        assert_eq!(shown(Duration::from_nanos(998_985_648)), "999ms");
        assert_eq!(shown(Duration::from_secs(60)), "1m");
        assert_eq!(shown(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(shown(Duration::from_micros(400)), "0s");
        for duration in [
            Duration::from_millis(250),
            Duration::from_secs(5),
            Duration::from_secs(90),
        ] {
            assert_eq!(parse_duration(&shown(duration)), Ok(duration));
        }
    }
}
