//! From a [`Target`] as given to the [`Destination`]s a plan loads: a host
//! name through the system's resolver, an address as it is, and each judged
//! on this machine or off it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use echo_proto::{Endpoint, Target};

use crate::error::BenchError;
use crate::host;
use crate::plan::Destination;

/// The addresses `target` stands for, in the resolver's order and without
/// repeats, each judged against `own`, this machine's addresses; a name's
/// lookup is given up on after `timeout`.
///
/// Must be called within a tokio runtime.
///
/// # Errors
/// [`BenchError::Resolve`] when the resolver fails, [`BenchError::ResolveTimeout`]
/// when it does not answer in time, [`BenchError::NoAddress`] when it answers with none.
pub async fn resolve(
    target: &Target,
    own: &[IpAddr],
    timeout: Duration,
) -> Result<Vec<Destination>, BenchError> {
    let (host, port) = match target {
        Target::Endpoint(endpoint) => return Ok(vec![locate(endpoint.clone(), own)]),
        Target::Name { host, port } => (host, *port),
    };
    let lookup = tokio::net::lookup_host((host.as_str(), port));
    let found = tokio::time::timeout(timeout, lookup)
        .await
        .map_err(|_| BenchError::ResolveTimeout {
            host: host.clone(),
            after: timeout,
        })?
        .map_err(|source| BenchError::Resolve {
            host: host.clone(),
            source,
        })?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for addr in found {
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    if addrs.is_empty() {
        return Err(BenchError::NoAddress(host.clone()));
    }
    Ok(addrs
        .into_iter()
        .map(|addr| locate(Endpoint::Ip(addr), own))
        .collect())
}

/// `endpoint` judged on this machine, whose addresses are `own`, or off it:
/// a Unix socket always is.
pub fn locate(endpoint: Endpoint, own: &[IpAddr]) -> Destination {
    let on_this_host = match &endpoint {
        Endpoint::Ip(addr) => host::is_on_this_host(addr.ip(), own),
        Endpoint::Unix(_) => true,
    };
    Destination {
        endpoint,
        on_this_host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn addresses_need_no_resolver_and_localhost_is_here() {
        let own = host::own_addresses();
        let remote: Target = "192.0.2.1:7".parse().expect("literal");
        let found = resolve(&remote, &own, Duration::from_secs(1))
            .await
            .expect("no lookup needed");
        assert_eq!(found.len(), 1);
        assert!(!found[0].on_this_host);
        let unix: Target = "unix:/tmp/echo.sock".parse().expect("literal");
        let found = resolve(&unix, &own, Duration::from_secs(1))
            .await
            .expect("a path");
        assert!(found[0].on_this_host);
        // From /etc/hosts, as every system has it: no query leaves the machine.
        let name: Target = "localhost:7007".parse().expect("literal");
        let found = resolve(&name, &own, Duration::from_secs(5))
            .await
            .expect("localhost resolves");
        assert!(!found.is_empty());
        assert!(
            found.iter().all(|destination| destination.on_this_host),
            "{found:?}"
        );
    }
}
