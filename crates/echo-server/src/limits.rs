//! The process's file-descriptor budget and the connection limit derived from it.

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use tracing::{info, warn};

/// The connection limit when the descriptor limit cannot be read.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Descriptors kept back from the connection limit for listening sockets,
/// the runtime's own (epoll, eventfd), stdio and logs.
pub const RESERVED_FDS: u64 = 32;

/// The open-files limit before and after [`raise_fd_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    /// The soft limit the process started with.
    pub was: u64,
    /// The soft limit now in force.
    pub soft: u64,
    /// The hard limit, the most the soft limit can be raised to.
    pub hard: u64,
}

/// Raises the soft limit on open files to the hard limit, logs both, and
/// returns the limits (`None` if they cannot be read).
///
/// An echo server's capacity is counted in sockets, and the common soft
/// default of 1,024 is far below what the hard limit allows.
pub fn raise_fd_limit() -> Option<FdLimit> {
    let (was, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(err) => {
            warn!(error = %err, "cannot read the open-files limit");
            return None;
        }
    };
    let soft = if was < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(err) => {
                warn!(soft = was, hard, error = %err, "cannot raise the open-files limit");
                was
            }
        }
    } else {
        was
    };
    info!(was, soft, hard, "open-files limit");
    Some(FdLimit { was, soft, hard })
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
