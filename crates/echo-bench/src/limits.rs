//! The client's own descriptor budget, and the server's memory as the kernel reports it.

use std::io;

use nix::sys::resource::{Resource, getrlimit, setrlimit};

use crate::BenchError;

/// Raises the soft limit on open files to the hard limit and returns the
/// soft limit now in force (`None` if it cannot be read).
///
/// Holding ten thousand idle connections takes ten thousand descriptors, far
/// above the common soft default of 1,024.
pub fn raise_fd_limit() -> Option<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft >= hard {
        return Some(soft);
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => Some(hard),
        Err(_) => Some(soft),
    }
}

/// The resident memory of process `pid` in KiB, from `VmRSS` in `/proc/PID/status`.
///
/// # Errors
/// [`BenchError::Rss`] when the process does not exist or its status has no `VmRSS`
/// (a kernel thread, or a zombie).
pub fn resident_kib(pid: u32) -> Result<u64, BenchError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|source| BenchError::Rss { pid, source })?;
    vm_rss_kib(&status).ok_or_else(|| BenchError::Rss {
        pid,
        source: io::Error::new(io::ErrorKind::InvalidData, "no VmRSS line in its status"),
    })
}

/// Finds the `VmRSS:   1234 kB` line of a `/proc/PID/status` text.
fn vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let value = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_from_a_status_text() {
        let status = "Name:\techo-server\nVmPeak:\t  9000 kB\nVmRSS:\t    4321 kB\nThreads:\t3\n";
        assert_eq!(vm_rss_kib(status), Some(4321));
        assert_eq!(vm_rss_kib("Name:\tkthreadd\n"), None);
        assert_eq!(vm_rss_kib("VmRSS:\t12 MB\n"), None);
    }

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
        let (before, _) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
        let now = raise_fd_limit().expect("readable");
        assert!(now >= before);
    }
}
