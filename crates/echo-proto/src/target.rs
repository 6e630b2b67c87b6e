//! What a client is told to reach: an [`Endpoint`], or a host name with a
//! port that only a resolver can turn into addresses.
//!
//! Listeners take an [`Endpoint`] alone, since they must know exactly what
//! they bind; clients take a [`Target`], since in the field servers have names.

use std::fmt;
use std::net::{Ipv6Addr, SocketAddr};
use std::str::FromStr;

use crate::endpoint::{Endpoint, EndpointError};

/// The longest host name DNS can carry, without its trailing dot.
const MAX_HOST_NAME: usize = 253;

/// The longest label (the text between two dots) of a host name.
const MAX_LABEL: usize = 63;

/// Where a client connects, as written on a command line.
///
/// The textual forms are those of [`Endpoint`] (`IP:PORT`, `[IPV6]:PORT`,
/// `unix:PATH`) and `HOST:PORT` (`localhost:7007`, `echo.example.org:7`).
/// The port is never implied: a bare `HOST` or `IP` is refused, because the
/// RFC 862 port is 7 while this project's servers default to
/// [`DEFAULT_PORT`](crate::DEFAULT_PORT), and a wrong guess would fail at the
/// far end, with a timeout, instead of at once with a usage error.
/// Surrounding whitespace is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// An address that needs no resolving.
    Endpoint(Endpoint),
    /// A host name and a port, to be resolved to one or more addresses when connecting.
    Name {
        /// The host name as given (ASCII letters, digits, `-`, `_` and dots).
        host: String,
        /// The port to connect to on every address the name resolves to.
        port: u16,
    },
}

/// Why a string is not a [`Target`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The text has no `:PORT`, as in a bare `HOST` or `IP`, or is not an address at all.
    #[error(
        "invalid address '{0}': expected IP:PORT, [IPV6]:PORT or unix:PATH, \
         or HOST:PORT for a host name; the port is missing"
    )]
    MissingPort(String),
    /// The text after the last `:` is not a port number from 0 to 65535.
    #[error("invalid address '{text}': '{port}' is not a port number (0 to 65535)")]
    InvalidPort {
        /// The whole text as given.
        text: String,
        /// The part that should have been the port.
        port: String,
    },
    /// The part before the port is neither an IP address nor a host name:
    /// empty, a character a host name cannot have, an empty or overlong
    /// label, or digits and dots that do not make an IPv4 address.
    #[error(
        "invalid address '{text}': '{host}' is neither an IP address nor a host name \
         (letters, digits, '-' and '_', in labels of at most 63 characters)"
    )]
    InvalidHost {
        /// The whole text as given.
        text: String,
        /// The part that should have been the host.
        host: String,
    },
    /// An IPv6 address written without brackets, whose port cannot be told
    /// from its last group (`::1:7007` is itself an IPv6 address).
    #[error(
        "invalid address '{0}': an IPv6 address goes in brackets, with the port after them, \
         as in [::1]:7007"
    )]
    BareIpv6(String),
    /// The text starts with `unix:` but names no path.
    #[error("invalid address '{0}': unix: needs a path, as in unix:/tmp/echo.sock")]
    EmptyUnixPath(String),
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // An address or a socket path is an endpoint as `Endpoint` reads it;
        // only what it refuses may be a host name.
        match text.parse::<Endpoint>() {
            Ok(endpoint) => return Ok(Target::Endpoint(endpoint)),
            Err(EndpointError::EmptyUnixPath(text)) => {
                return Err(TargetError::EmptyUnixPath(text));
            }
            Err(EndpointError::Invalid(_)) => {}
        }
        let trimmed = text.trim();
        let invalid_host = |host: &str| TargetError::InvalidHost {
            text: text.to_owned(),
            host: host.to_owned(),
        };
        if let Some(bracketed) = trimmed.strip_prefix('[') {
            let Some((inside, rest)) = bracketed.split_once(']') else {
                return Err(invalid_host(trimmed));
            };
            if inside.parse::<Ipv6Addr>().is_err() {
                return Err(invalid_host(inside));
            }
            let Some(port) = rest.strip_prefix(':') else {
                return Err(if rest.is_empty() {
                    TargetError::MissingPort(text.to_owned())
                } else {
                    invalid_host(trimmed)
                });
            };
            // The address parsed, so only the port can be what failed above.
            return Err(TargetError::InvalidPort {
                text: text.to_owned(),
                port: port.to_owned(),
            });
        }
        match trimmed.matches(':').count() {
            0 => Err(TargetError::MissingPort(text.to_owned())),
            1 => {
                let (host, port_text) = trimmed.split_once(':').unwrap_or((trimmed, ""));
                if !is_host_name(host) {
                    return Err(invalid_host(host));
                }
                let port = port_text
                    .parse::<u16>()
                    .map_err(|_| TargetError::InvalidPort {
                        text: text.to_owned(),
                        port: port_text.to_owned(),
                    })?;
                Ok(Target::Name {
                    host: host.to_owned(),
                    port,
                })
            }
            _ => Err(TargetError::BareIpv6(text.to_owned())),
        }
    }
}

/// Whether `host` is a host name as resolvers take it: dot-separated labels
/// of ASCII letters, digits, `-` and `_`, none empty (but for one trailing
/// dot), none longer than [`MAX_LABEL`], none starting or ending with `-`,
/// and a last label that is not all digits, so that digits and dots which
/// fail to be an IPv4 address (`127.1`, `1.2.3.400`) are not handed to a
/// resolver that reads them in the old shorthand or sends them to DNS.
fn is_host_name(host: &str) -> bool {
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.is_empty() || name.len() > MAX_HOST_NAME {
        return false;
    }
    let labels_valid = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= MAX_LABEL
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    let last_label_numeric = name
        .rsplit('.')
        .next()
        .is_some_and(|label| label.bytes().all(|b| b.is_ascii_digit()));
    labels_valid && !last_label_numeric
}

impl Target {
    /// Whether the target is a Unix socket path, which only stream
    /// connections can reach: a datagram client needs an IP address or a name.
    pub fn is_unix(&self) -> bool {
        matches!(self, Target::Endpoint(Endpoint::Unix(_)))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Endpoint(endpoint) => write!(f, "{endpoint}"),
            Target::Name { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl From<Endpoint> for Target {
    fn from(endpoint: Endpoint) -> Self {
        Target::Endpoint(endpoint)
    }
}

impl From<SocketAddr> for Target {
    fn from(addr: SocketAddr) -> Self {
        Target::Endpoint(Endpoint::Ip(addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(host: &str, port: u16) -> Target {
        Target::Name {
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn parses_every_documented_form() {
        let ip = |text: &str| Target::Endpoint(Endpoint::Ip(text.parse().expect("literal")));
        assert_eq!("127.0.0.1:7007".parse(), Ok(ip("127.0.0.1:7007")));
        assert_eq!("[::1]:7".parse(), Ok(ip("[::1]:7")));
        assert_eq!(
            "unix:/run/echo.sock".parse(),
            Ok(Target::Endpoint(Endpoint::Unix(std::path::PathBuf::from(
                "/run/echo.sock"
            ))))
        );
        assert_eq!("localhost:7007".parse(), Ok(name("localhost", 7007)));
        assert_eq!(
            "echo.example.org.:7".parse(),
            Ok(name("echo.example.org.", 7))
        );
        assert_eq!("_srv-1.example:9".parse(), Ok(name("_srv-1.example", 9)));
        assert_eq!("  localhost:7007\n".parse(), Ok(name("localhost", 7007)));
        assert_eq!(" 127.0.0.1:7 ".parse(), Ok(ip("127.0.0.1:7")));
    }

    #[test]
    fn the_port_is_never_implied() {
        for text in ["localhost", "127.0.0.1", "[::1]", "not-an-address", ""] {
            let err = text.parse::<Target>().expect_err(text);
            assert_eq!(err, TargetError::MissingPort(text.to_owned()));
            // The wording the flag's users (and older tests) rely on.
            assert!(
                err.to_string().starts_with(&format!(
                    "invalid address '{text}': expected IP:PORT, [IPV6]:PORT or unix:PATH"
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn each_mistake_names_the_text_and_what_is_wrong() {
        assert_eq!(
            "localhost:http".parse::<Target>(),
            Err(TargetError::InvalidPort {
                text: "localhost:http".to_owned(),
                port: "http".to_owned()
            })
        );
        assert_eq!(
            "[::1]:70000".parse::<Target>(),
            Err(TargetError::InvalidPort {
                text: "[::1]:70000".to_owned(),
                port: "70000".to_owned()
            })
        );
        for (text, host) in [
            (":7007", ""),
            ("exa mple:7", "exa mple"),
            ("-bad.example:7", "-bad.example"),
            ("a..b:7", "a..b"),
            ("127.1:7007", "127.1"),
            ("1.2.3.400:7", "1.2.3.400"),
            ("ünï.example:7", "ünï.example"),
            ("[fe80::zz]:7", "fe80::zz"),
            ("[::1:7007", "[::1:7007"),
        ] {
            let err = text.parse::<Target>().expect_err(text);
            assert_eq!(
                err,
                TargetError::InvalidHost {
                    text: text.to_owned(),
                    host: host.to_owned()
                },
                "{text}"
            );
            assert!(err.to_string().contains(&format!("'{text}'")), "{err}");
        }
        let long_label = format!("{}.example:7", "a".repeat(64));
        assert!(matches!(
            long_label.parse::<Target>(),
            Err(TargetError::InvalidHost { .. })
        ));
        for text in ["::1:7007", "::1", "fe80::1:7"] {
            assert_eq!(
                text.parse::<Target>(),
                Err(TargetError::BareIpv6(text.to_owned()))
            );
        }
        assert_eq!(
            "unix:".parse::<Target>(),
            Err(TargetError::EmptyUnixPath("unix:".to_owned()))
        );
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "127.0.0.1:7007",
            "[::1]:9",
            "unix:/run/echo.sock",
            "localhost:7007",
            "echo.example.org.:7",
        ] {
            let target: Target = text.parse().expect(text);
            assert_eq!(target.to_string(), text);
            assert_eq!(target.to_string().parse(), Ok(target));
        }
    }

    #[test]
    fn only_unix_paths_are_unix() {
        let unix: Target = "unix:/run/echo.sock".parse().expect("literal");
        assert!(unix.is_unix());
        for text in ["127.0.0.1:7", "[::1]:7", "localhost:7"] {
            assert!(!text.parse::<Target>().expect(text).is_unix(), "{text}");
        }
    }

    #[test]
    fn addresses_convert_without_parsing() {
        let addr: SocketAddr = "127.0.0.1:7".parse().expect("literal");
        assert_eq!(Target::from(addr), Target::Endpoint(Endpoint::Ip(addr)));
        assert_eq!(
            Target::from(Endpoint::Ip(addr)),
            Target::Endpoint(Endpoint::Ip(addr))
        );
    }
}
