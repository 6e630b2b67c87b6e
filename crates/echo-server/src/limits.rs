//! The process's file-descriptor budget and the connection limit derived from it.

use echo_os::fd_limit::{self, FdLimit, FdLimitError};
use tracing::{info, warn};

/// The connection limit when the descriptor limit cannot be read.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Descriptors kept back from the connection limit for listening sockets,
/// the runtime's own (epoll, eventfd), stdio and logs.
pub const RESERVED_FDS: u64 = 32;

/// Raises the soft limit on open files to the hard limit, logs both, and
/// returns the soft limit now in force (`None` if the limits cannot be read).
pub fn raise_fd_limit() -> Option<u64> {
    match fd_limit::raise_to_hard() {
        Ok(FdLimit { was, soft, hard }) => {
            info!(was, soft, hard, "open-files limit");
            Some(soft)
        }
        Err(err @ FdLimitError::Raise { soft, .. }) => {
            warn!(error = %err, "open-files limit not raised");
            Some(soft)
        }
        Err(err @ FdLimitError::Read(_)) => {
            warn!(error = %err, "open-files limit unknown");
            None
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
