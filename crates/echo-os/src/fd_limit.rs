//! The process's open-files limit, raised as far as it may go: an echo
//! server's capacity, and a load generator's, is counted in sockets, and the
//! common soft default of 1,024 is far below what the hard limit allows.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// The open-files limit before and after [`raise_to_hard`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    /// The soft limit the process started with.
    pub was: u64,
    /// The soft limit now in force.
    pub soft: u64,
    /// The hard limit, the most the soft limit can be raised to.
    pub hard: u64,
}

/// Why [`raise_to_hard`] could not do its whole job.
#[derive(Debug, thiserror::Error)]
pub enum FdLimitError {
    /// `getrlimit` failed, so the limits are unknown.
    #[error("cannot read the open-files limit")]
    Read(#[source] nix::Error),
    /// The soft limit could not be raised (a container's policy, say); the
    /// process goes on with the limits it had.
    #[error("cannot raise the open-files limit from {soft} to {hard}")]
    Raise {
        /// The soft limit, still in force.
        soft: u64,
        /// The hard limit it could not be raised to.
        hard: u64,
        /// What `setrlimit` said.
        #[source]
        source: nix::Error,
    },
}

/// Raises the soft limit on open files to the hard limit and returns both.
///
/// # Errors
/// [`FdLimitError::Read`] when the limits cannot be read, and
/// [`FdLimitError::Raise`], with the limits still in force, when the soft
/// one cannot be raised.
pub fn raise_to_hard() -> Result<FdLimit, FdLimitError> {
    let (was, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(FdLimitError::Read)?;
    if was >= hard {
        return Ok(FdLimit {
            was,
            soft: was,
            hard,
        });
    }
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(|source| FdLimitError::Raise {
        soft: was,
        hard,
        source,
    })?;
    Ok(FdLimit {
        was,
        soft: hard,
        hard,
    })
}

/// The soft limit on open files now in force, the most descriptors this
/// process may hold.
///
/// # Errors
/// [`FdLimitError::Read`] when the limits cannot be read.
pub fn soft() -> Result<u64, FdLimitError> {
    let (soft, _hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(FdLimitError::Read)?;
    Ok(soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_least_where_it_was() {
        let (before, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
        let limit = raise_to_hard().expect("raisable here");
        assert_eq!(limit.was, before);
        assert_eq!(limit.hard, hard);
        assert_eq!(limit.soft, hard);
        assert_eq!(soft().expect("getrlimit"), hard);
    }
}
