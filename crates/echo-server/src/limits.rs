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

/// Descriptors each event loop may hold besides its connections: its epoll
/// set and waker, and with splicing on, both ends of every pipe its pool
/// may open.
pub fn loop_fds(splice: bool) -> u64 {
    let pipes = if splice {
        crate::connection::MAX_PIPES as u64
    } else {
        0
    };
    2 + 2 * pipes
}

/// The default connection limit for a descriptor limit: every descriptor
/// but [`RESERVED_FDS`] and `event_loops` times [`loop_fds`] may be a
/// connection, so that neither `accept` nor a bulk stream's pipe runs out of
/// descriptors below the limit.
pub fn max_connections_for(fd_limit: Option<u64>, event_loops: usize, splice: bool) -> usize {
    let Some(limit) = fd_limit else {
        return DEFAULT_MAX_CONNECTIONS;
    };
    let loops = u64::try_from(event_loops).unwrap_or(u64::MAX);
    let reserved = RESERVED_FDS.saturating_add(loops.saturating_mul(loop_fds(splice)));
    usize::try_from(limit.saturating_sub(reserved).max(1)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_leaves_room_for_the_server_itself() {
        // 32 kept back, and one loop's epoll set, waker and 64 pipes.
        assert_eq!(max_connections_for(Some(1024), 1, true), 1024 - 32 - 130);
        assert_eq!(max_connections_for(Some(1024), 1, false), 1024 - 32 - 2);
        assert_eq!(max_connections_for(Some(1024), 2, true), 1024 - 32 - 260);
        assert_eq!(max_connections_for(Some(10), 1, true), 1);
        assert_eq!(max_connections_for(None, 1, true), DEFAULT_MAX_CONNECTIONS);
    }
}
