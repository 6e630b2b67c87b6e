//! The process's file-descriptor budget and the connection limit derived from it.

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use tracing::{info, warn};

/// The connection limit when the descriptor limit cannot be read.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Descriptors kept back from the connection limit for listening sockets,
/// the runtime's own (epoll, eventfd), stdio and logs.
pub const RESERVED_FDS: u64 = 32;

/// Raises the soft limit on open files to the hard limit, logs both, and
/// returns the limit now in force (`None` if it cannot be read).
///
/// An echo server's capacity is counted in sockets, and the common soft
/// default of 1,024 is far below what the hard limit allows.
pub fn raise_fd_limit() -> Option<u64> {
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(err) => {
            warn!(error = %err, "cannot read the open-files limit");
            return None;
        }
    };
    if soft >= hard {
        info!(soft, hard, "open-files limit");
        return Some(soft);
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => {
            info!(soft = hard, hard, was = soft, "open-files limit raised");
            Some(hard)
        }
        Err(err) => {
            warn!(soft, hard, error = %err, "cannot raise the open-files limit");
            Some(soft)
        }
    }
}

/// The default connection limit for a descriptor limit: every descriptor
/// but [`RESERVED_FDS`] may be a connection.
pub fn max_connections_for(fd_limit: Option<u64>) -> usize {
    match fd_limit {
        Some(limit) => {
            usize::try_from(limit.saturating_sub(RESERVED_FDS).max(1)).unwrap_or(usize::MAX)
        }
        None => DEFAULT_MAX_CONNECTIONS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_leaves_room_for_the_server_itself() {
        assert_eq!(max_connections_for(Some(1024)), 992);
        assert_eq!(max_connections_for(Some(10)), 1);
        assert_eq!(max_connections_for(None), DEFAULT_MAX_CONNECTIONS);
    }
}
