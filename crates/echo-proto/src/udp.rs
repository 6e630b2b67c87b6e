//! Which UDP datagrams an echo server may answer without becoming a reflector.
//!
//! An echo server that answers anyone can be pointed at another UDP service
//! with a spoofed source address, and the two then bounce datagrams between
//! each other forever (CVE-1999-0103, and the 2024 "Loop DoS", CVE-2024-2169).
//! The defence is to never answer a source that is itself an automatic
//! responder (a well-known service port, or the port this server itself
//! answers on), or that cannot be a real single sender.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// The largest UDP payload that fits in one IPv4 datagram (65,535 minus the
/// 20-byte IP and 8-byte UDP headers); receive buffers must be at least this big
/// or the kernel silently cuts longer datagrams.
pub const MAX_DATAGRAM: usize = 65_507;

/// The largest UDP payload of one IPv6 datagram (65,535 minus the 8-byte UDP
/// header: IPv6's header is not counted in its payload length), and so the
/// largest of either family, which a buffer for both must hold.
pub const MAX_DATAGRAM_V6: usize = 65_527;

/// The largest UDP payload that can go to `peer`, by its address family.
pub fn max_datagram(peer: SocketAddr) -> usize {
    match peer {
        SocketAddr::V4(_) => MAX_DATAGRAM,
        SocketAddr::V6(_) => MAX_DATAGRAM_V6,
    }
}

/// Source ports whose services answer any datagram, so a reply to them can start a loop.
///
/// The classic inetd services (echo 7, discard 9, active users 11, daytime 13,
/// netstat 15, qotd 17, chargen 19, time 37) and the other protocols named in
/// the Loop DoS advisory or known to answer unsolicited datagrams:
/// DNS 53, TFTP 69, NTP 123, NetBIOS 137 and 138, SNMP 161 and 162.
pub const REFLECTING_PORTS: &[u16] = &[
    7, 9, 11, 13, 15, 17, 19, 37, 53, 69, 123, 137, 138, 161, 162,
];

/// Why a datagram's source must not get an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The source port belongs to a service that answers automatically.
    ReflectingPort(u16),
    /// The source port is one this server echoes on: the datagram comes from
    /// the server itself (a spoofed source) or from another echo service on
    /// the same port, and answering would start a loop.
    OwnPort(u16),
    /// Port 0 cannot be a real sender's port.
    ZeroPort,
    /// A broadcast, multicast or unspecified address cannot be a single real sender.
    NotUnicast(IpAddr),
}

impl fmt::Display for Refusal {
    /// The reason as a log line gives it: `source port 7 answers any datagram`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::ReflectingPort(port) => write!(f, "source port {port} answers any datagram"),
            Refusal::OwnPort(port) => write!(f, "source port {port} is this server's own"),
            Refusal::ZeroPort => f.write_str("source port 0"),
            Refusal::NotUnicast(ip) => write!(f, "source {ip} is not a single sender"),
        }
    }
}

/// Decides whether a datagram from `source` may be echoed by a server whose
/// UDP sockets are bound to `own_ports`.
///
/// # Errors
/// Returns the [`Refusal`] that forbids an answer.
pub fn check_source(source: SocketAddr, own_ports: &[u16]) -> Result<(), Refusal> {
    let port = source.port();
    if port == 0 {
        return Err(Refusal::ZeroPort);
    }
    if REFLECTING_PORTS.contains(&port) {
        return Err(Refusal::ReflectingPort(port));
    }
    if own_ports.contains(&port) {
        return Err(Refusal::OwnPort(port));
    }
    let ip = canonical(source.ip());
    let not_unicast = match ip {
        IpAddr::V4(v4) => v4.is_broadcast() || v4.is_multicast() || v4.is_unspecified(),
        IpAddr::V6(v6) => v6.is_multicast() || v6.is_unspecified(),
    };
    if not_unicast {
        return Err(Refusal::NotUnicast(ip));
    }
    Ok(())
}

/// Sees through IPv4-mapped IPv6 addresses, which a dual-stack socket reports
/// for IPv4 senders, so the IPv4 rules apply to them too.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("test literal")
    }

    #[test]
    fn the_datagram_limit_follows_the_family() {
        assert_eq!(max_datagram(addr("127.0.0.1:7")), 65_507);
        assert_eq!(max_datagram(addr("[::1]:7")), 65_527);
    }

    #[test]
    fn a_refusal_reads_as_its_reason() {
        let reasons = [
            (
                Refusal::ReflectingPort(7),
                "source port 7 answers any datagram",
            ),
            (
                Refusal::OwnPort(7007),
                "source port 7007 is this server's own",
            ),
            (Refusal::ZeroPort, "source port 0"),
            (
                Refusal::NotUnicast("224.0.0.1".parse().expect("ip")),
                "source 224.0.0.1 is not a single sender",
            ),
        ];
        for (refusal, reason) in reasons {
            assert_eq!(refusal.to_string(), reason);
        }
    }

    #[test]
    fn ordinary_clients_are_answered() {
        assert_eq!(check_source(addr("127.0.0.1:40000"), &[7007]), Ok(()));
        assert_eq!(check_source(addr("[::1]:50000"), &[7007]), Ok(()));
        assert_eq!(check_source(addr("192.0.2.7:1024"), &[]), Ok(()));
    }

    #[test]
    fn every_reflecting_port_is_refused() {
        for &port in REFLECTING_PORTS {
            let source = SocketAddr::new("127.0.0.1".parse().expect("ip"), port);
            assert_eq!(
                check_source(source, &[]),
                Err(Refusal::ReflectingPort(port))
            );
        }
        assert_eq!(
            check_source(addr("127.0.0.1:0"), &[]),
            Err(Refusal::ZeroPort)
        );
    }

    #[test]
    fn the_servers_own_ports_are_refused_from_any_address() {
        let own = [7007, 40_000];
        for text in ["127.0.0.1:7007", "192.0.2.9:40000", "[::1]:7007"] {
            let source = addr(text);
            assert_eq!(
                check_source(source, &own),
                Err(Refusal::OwnPort(source.port())),
                "{text}"
            );
        }
        assert_eq!(check_source(addr("127.0.0.1:7008"), &own), Ok(()));
    }

    #[test]
    fn broadcast_multicast_and_unspecified_sources_are_refused() {
        for text in [
            "255.255.255.255:4000",
            "224.0.0.1:4000",
            "0.0.0.0:4000",
            "[ff02::1]:4000",
            "[::]:4000",
            "[::ffff:255.255.255.255]:4000",
        ] {
            assert!(
                matches!(check_source(addr(text), &[]), Err(Refusal::NotUnicast(_))),
                "{text}"
            );
        }
    }
}
