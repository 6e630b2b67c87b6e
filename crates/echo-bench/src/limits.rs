//! The client's own descriptor budget and CPU time, and the server's memory and CPU time,
//! in the terms of this crate's errors; the reading itself is echo-os's.

use std::time::Duration;

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

/// The CPU time (user and system) process `pid` has used so far, in whole
/// clock ticks ([`echo_os::process::clock_tick`]).
///
/// # Errors
/// [`BenchError::Cpu`] when the process does not exist or its stat cannot be read.
pub fn cpu_time(pid: u32) -> Result<Duration, BenchError> {
    echo_os::process::cpu_time(pid).map_err(|source| BenchError::Cpu { pid, source })
}

/// The CPU time this process has used so far, to the microsecond; `None`
/// in the unheard-of case that the kernel will not say.
pub fn own_cpu_time() -> Option<Duration> {
    echo_os::process::own_cpu_time().ok()
}

/// The kernel's clock tick, the resolution of [`cpu_time`].
pub fn clock_tick() -> Duration {
    echo_os::process::clock_tick()
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
    fn our_own_cpu_time_is_readable_in_whole_ticks() {
        let used = cpu_time(std::process::id()).expect("own stat");
        let tick = clock_tick();
        assert!(!tick.is_zero());
        assert_eq!(
            used.as_nanos() % tick.as_nanos(),
            0,
            "{used:?} in {tick:?} ticks"
        );
        assert!(matches!(cpu_time(u32::MAX), Err(BenchError::Cpu { .. })));
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
