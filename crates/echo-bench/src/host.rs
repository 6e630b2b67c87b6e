//! This machine's own addresses, and whether an address is one of them: what
//! decides whether a load stays on the machine or leaves it, and which
//! source addresses connections may come from.

use std::net::IpAddr;

/// The IP addresses of this machine's interfaces, loopback included, as the
/// kernel lists them now; empty when it cannot say, so that a target is then
/// judged by loopback or not alone.
pub fn own_addresses() -> Vec<IpAddr> {
    let Ok(interfaces) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut addresses = Vec::new();
    for interface in interfaces {
        let Some(address) = interface.address else {
            continue;
        };
        let ip = if let Some(v4) = address.as_sockaddr_in() {
            IpAddr::V4(v4.ip())
        } else if let Some(v6) = address.as_sockaddr_in6() {
            IpAddr::V6(v6.ip())
        } else {
            continue;
        };
        if !addresses.contains(&ip) {
            addresses.push(ip);
        }
    }
    addresses
}

/// Whether a load sent to `ip` stays on this machine, whose addresses are `own`:
/// a loopback address, the unspecified address (which Linux connects to
/// this machine), or one of its own.
pub fn is_on_this_host(ip: IpAddr, own: &[IpAddr]) -> bool {
    let ip = ip.to_canonical();
    ip.is_loopback() || ip.is_unspecified() || own.contains(&ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("literal")
    }

    #[test]
    fn loopback_and_own_addresses_are_this_host() {
        let own = [ip("127.0.0.1"), ip("10.1.2.3"), ip("2001:db8::5")];
        for here in [
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
            "::",
            "10.1.2.3",
            "::ffff:10.1.2.3",
            "2001:db8::5",
        ] {
            assert!(is_on_this_host(ip(here), &own), "{here}");
        }
        for there in ["10.1.2.4", "192.0.2.1", "2001:db8::6"] {
            assert!(!is_on_this_host(ip(there), &own), "{there}");
        }
        assert!(
            !is_on_this_host(ip("10.1.2.3"), &[]),
            "without the list, only loopback is known"
        );
    }

    #[test]
    fn this_machine_has_a_loopback_address() {
        let own = own_addresses();
        assert!(own.iter().any(IpAddr::is_loopback), "{own:?}");
    }
}
