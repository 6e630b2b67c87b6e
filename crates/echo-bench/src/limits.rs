//! The client's own descriptor budget, and the server's memory, in the terms
//! of this crate's errors; the reading itself is echo-os's.

use crate::error::BenchError;

/// Raises the soft limit on open files to the hard limit and returns the
/// soft limit now in force (`None` if it cannot be read).
///
/// Holding ten thousand idle connections takes ten thousand descriptors, far
/// above the common soft default of 1,024.
pub fn raise_fd_limit() -> Option<u64> {
    match echo_os::fd_limit::raise_to_hard() {
        Ok(limit) => Some(limit.soft),
        Err(echo_os::fd_limit::FdLimitError::Raise { soft, .. }) => Some(soft),
        Err(echo_os::fd_limit::FdLimitError::Read(_)) => None,
    }
}

/// The resident memory of process `pid` in KiB (`VmRSS`).
///
/// # Errors
/// [`BenchError::Rss`] when the process does not exist or its status has no `VmRSS`
/// (a kernel thread, or a zombie).
pub fn resident_kib(pid: u32) -> Result<u64, BenchError> {
    echo_os::process::resident_kib(pid).map_err(|source| BenchError::Rss { pid, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_resident_memory_is_readable() {
        let kib = resident_kib(std::process::id()).expect("own status");
        assert!(kib > 100, "{kib} KiB");
        assert!(matches!(
            resident_kib(u32::MAX),
            Err(BenchError::Rss { .. })
        ));
    }

    #[test]
    fn the_fd_limit_is_at_least_what_it_was() {
        let before = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .expect("getrlimit")
            .0;
        let now = raise_fd_limit().expect("readable");
        assert!(now >= before);
    }
}
