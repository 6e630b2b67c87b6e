//! Where an echo service listens or is reached: an IP socket address or a Unix socket path.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// One place an echo service can be reached, as written on a command line.
///
/// The textual forms are `IP:PORT` (`127.0.0.1:7007`), `[IPV6]:PORT`
/// (`[::1]:7007`) and `unix:PATH` (`unix:/run/echo.sock`).
/// Host names are deliberately not resolved: a listener must know exactly which
/// address it binds, and a name that resolves to several would make that a guess.
/// Surrounding whitespace is ignored; clients, which may take names, parse a
/// [`Target`](crate::Target) instead.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A TCP (or UDP) socket address.
    Ip(SocketAddr),
    /// A Unix domain stream socket at this path.
    Unix(PathBuf),
}

/// Why a string is not an [`Endpoint`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The text is neither `IP:PORT`, `[IPV6]:PORT` nor `unix:PATH`; the
    /// message shows the address meant when it is a port alone (`7008`,
    /// `:7008`) or a host name with a port (`localhost:0`).
    #[error("invalid address '{}': {}", .0, way_forward(.0))]
    Invalid(String),
    /// The text starts with `unix:` but names no path.
    #[error("invalid address '{0}': unix: needs a path, as in unix:/tmp/echo.sock")]
    EmptyUnixPath(String),
}

/// What to write instead of `text`, which is not an endpoint: the same
/// port on an address, for a port alone or a name, else the forms there are.
fn way_forward(text: &str) -> String {
    let trimmed = text.trim();
    let on_addresses = |port: u16| {
        format!("127.0.0.1:{port} (this machine) or 0.0.0.0:{port} (every IPv4 address)")
    };
    if let Ok(port) = trimmed.strip_prefix(':').unwrap_or(trimmed).parse::<u16>() {
        return format!(
            "a port needs an address before it, as in {}",
            on_addresses(port)
        );
    }
    if let Some((host, port)) = trimmed.rsplit_once(':')
        && let Ok(port) = port.parse::<u16>()
        && !host.is_empty()
        && !host.contains(':')
        && host.parse::<std::net::IpAddr>().is_err()
    {
        return format!(
            "a listener takes addresses, not names: {}",
            on_addresses(port)
        );
    }
    "expected IP:PORT, [IPV6]:PORT or unix:PATH".to_owned()
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // A value pasted from a file or a shell variable often carries a newline.
        let trimmed = text.trim();
        if let Some(path) = trimmed.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(EndpointError::EmptyUnixPath(text.to_owned()));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        trimmed
            .parse::<SocketAddr>()
            .map(Endpoint::Ip)
            .map_err(|_| EndpointError::Invalid(text.to_owned()))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Ip(addr) => write!(f, "{addr}"),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(addr: SocketAddr) -> Self {
        Endpoint::Ip(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_form() {
        assert_eq!(
            "127.0.0.1:7007".parse(),
            Ok(Endpoint::Ip("127.0.0.1:7007".parse().expect("literal")))
        );
        assert_eq!(
            "[::1]:0".parse(),
            Ok(Endpoint::Ip("[::1]:0".parse().expect("literal")))
        );
        assert_eq!(
            "unix:/tmp/e.sock".parse(),
            Ok(Endpoint::Unix(PathBuf::from("/tmp/e.sock")))
        );
    }

    #[test]
    fn rejects_names_and_junk_with_the_offending_text() {
        for text in ["localhost:7007", "127.0.0.1", "::1:7007", "", "7007"] {
            let err = text.parse::<Endpoint>().expect_err(text);
            assert_eq!(err, EndpointError::Invalid(text.to_owned()));
            assert!(err.to_string().contains(&format!("'{text}'")));
        }
        assert_eq!(
            "unix:".parse::<Endpoint>(),
            Err(EndpointError::EmptyUnixPath("unix:".to_owned()))
        );
    }

    #[test]
    fn a_port_alone_or_a_name_is_shown_the_address_meant() {
        let message = |text: &str| text.parse::<Endpoint>().expect_err(text).to_string();
        for text in ["7008", ":7008", " 7008\n"] {
            assert_eq!(
                message(text),
                format!(
                    "invalid address '{text}': a port needs an address before it, as in \
                     127.0.0.1:7008 (this machine) or 0.0.0.0:7008 (every IPv4 address)"
                )
            );
        }
        assert_eq!(
            message("localhost:0"),
            "invalid address 'localhost:0': a listener takes addresses, not names: \
             127.0.0.1:0 (this machine) or 0.0.0.0:0 (every IPv4 address)"
        );
        for text in [
            "localhost",
            "127.0.0.1:70000",
            "::1:7007",
            "host:port",
            "70000",
        ] {
            assert_eq!(
                message(text),
                format!("invalid address '{text}': expected IP:PORT, [IPV6]:PORT or unix:PATH")
            );
        }
    }

    #[test]
    fn durations_need_a_unit() {
        use std::time::Duration;
        assert_eq!(
            crate::parse_duration("250ms"),
            Ok(Duration::from_millis(250))
        );
        assert_eq!(crate::parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(crate::parse_duration("0s"), Ok(Duration::ZERO));
        let err = crate::parse_duration("5").expect_err("no unit");
        assert!(err.to_string().starts_with("invalid duration '5'"), "{err}");
        assert_eq!(err.text, "5");
    }

    #[test]
    fn surrounding_whitespace_is_ignored() {
        assert_eq!(
            " 127.0.0.1:7007\n".parse(),
            Ok(Endpoint::Ip("127.0.0.1:7007".parse().expect("literal")))
        );
        assert_eq!(
            "\tunix:/tmp/e.sock ".parse(),
            Ok(Endpoint::Unix(PathBuf::from("/tmp/e.sock")))
        );
        assert_eq!(
            " unix: ".parse::<Endpoint>(),
            Err(EndpointError::EmptyUnixPath(" unix: ".to_owned()))
        );
    }

    #[test]
    fn display_round_trips() {
        for text in ["127.0.0.1:7007", "[::1]:9", "unix:/run/echo.sock"] {
            let endpoint: Endpoint = text.parse().expect(text);
            assert_eq!(endpoint.to_string(), text);
        }
    }
}
