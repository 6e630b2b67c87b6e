//! The process's file-descriptor budget and the connection limit derived from it.

use echo_os::fd_limit::{self, FdLimit, FdLimitError};
use tracing::{info, warn};

/// The connection limit when the descriptor limit cannot be read.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Descriptors kept back from the connection limit for listening sockets,
/// the runtime's own (epoll, eventfd), stdio and logs.
pub const RESERVED_FDS: u64 = 32;

/// The open-files limit in force once raised as far as it goes, and what
/// raising it said, to be logged once the server is sure to start.
#[derive(Debug)]
pub struct Raised(Result<FdLimit, FdLimitError>);

impl Raised {
    /// The soft limit now in force; `None` if the limits cannot be read.
    pub fn soft(&self) -> Option<u64> {
        match &self.0 {
            Ok(FdLimit { soft, .. }) | Err(FdLimitError::Raise { soft, .. }) => Some(*soft),
            Err(FdLimitError::Read(_)) => None,
        }
    }

    /// Logs the limits, or why they are not what was asked.
    pub fn log(&self) {
        match &self.0 {
            Ok(FdLimit { was, soft, hard }) => info!(was, soft, hard, "open-files limit"),
            Err(err @ FdLimitError::Raise { .. }) => {
                warn!(error = %err, "open-files limit not raised");
            }
            Err(err @ FdLimitError::Read(_)) => warn!(error = %err, "open-files limit unknown"),
        }
    }
}

/// Raises the soft limit on open files to the hard limit, saying nothing
/// yet (see [`Raised::log`]).
pub fn raise_fd_limit() -> Raised {
    Raised(fd_limit::raise_to_hard())
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

/// The fewest connections the default limit must allow: below it, event
/// loops are given up, and one loop that cannot allow them is refused.
pub const MIN_DEFAULT_CONNECTIONS: usize = 256;

/// How many event loops serve, and how many connections at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Event loops, perhaps fewer than asked for (see [`plan`]).
    pub event_loops: usize,
    /// The connection limit, as asked or derived from the descriptors.
    pub max_connections: usize,
}

/// The open-files limit is too low for even one event loop to serve
/// [`MIN_DEFAULT_CONNECTIONS`] connections under the default limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the open-files limit of {limit} is too low: the default connection limit needs at least \
     {needed} descriptors to serve {MIN_DEFAULT_CONNECTIONS} connections; raise it (ulimit -n) \
     or set --max-connections"
)]
pub struct TooFewDescriptors {
    /// The soft limit in force.
    pub limit: u64,
    /// Descriptors one event loop needs for [`MIN_DEFAULT_CONNECTIONS`].
    pub needed: u64,
}

/// Plans the event loops and the connection limit for `fd_limit`: a
/// connection limit given is kept as it is, with every loop asked for;
/// without one, loops are given up, from the last, until the default limit
/// ([`max_connections_for`]) allows at least [`MIN_DEFAULT_CONNECTIONS`].
///
/// # Errors
/// [`TooFewDescriptors`] when even one loop cannot allow that many.
pub fn plan(
    fd_limit: Option<u64>,
    max_connections: Option<usize>,
    event_loops: usize,
    splice: bool,
) -> Result<Plan, TooFewDescriptors> {
    let event_loops = event_loops.max(1);
    if let Some(max_connections) = max_connections {
        return Ok(Plan {
            event_loops,
            max_connections,
        });
    }
    for loops in (1..=event_loops).rev() {
        let max_connections = max_connections_for(fd_limit, loops, splice);
        if max_connections >= MIN_DEFAULT_CONNECTIONS {
            return Ok(Plan {
                event_loops: loops,
                max_connections,
            });
        }
    }
    Err(TooFewDescriptors {
        limit: fd_limit.unwrap_or(0),
        needed: RESERVED_FDS + loop_fds(splice) + MIN_DEFAULT_CONNECTIONS as u64,
    })
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

    #[test]
    fn loops_are_given_up_until_the_default_limit_serves_enough() {
        let plan_of = |fds, loops| plan(Some(fds), None, loops, true);
        // 1,024 descriptors: 8 loops would leave 1; 5 leave 342.
        assert_eq!(
            plan_of(1024, 8),
            Ok(Plan {
                event_loops: 5,
                max_connections: 1024 - 32 - 5 * 130
            })
        );
        assert_eq!(plan_of(4096, 32).map(|plan| plan.event_loops), Ok(29));
        // Plenty: every loop asked for.
        assert_eq!(plan_of(20_000, 8).map(|plan| plan.event_loops), Ok(8));
        // Just enough for one loop, and one short of it.
        assert_eq!(
            plan_of(32 + 130 + 256, 4).map(|plan| plan.event_loops),
            Ok(1)
        );
        assert_eq!(
            plan_of(32 + 130 + 255, 4),
            Err(TooFewDescriptors {
                limit: 417,
                needed: 418
            })
        );
        // A limit given is kept, with every loop.
        assert_eq!(
            plan(Some(64), Some(1000), 8, true),
            Ok(Plan {
                event_loops: 8,
                max_connections: 1000
            })
        );
        // Unknown descriptors: the fixed default.
        assert_eq!(
            plan(None, None, 2, false),
            Ok(Plan {
                event_loops: 2,
                max_connections: DEFAULT_MAX_CONNECTIONS
            })
        );
    }
}
