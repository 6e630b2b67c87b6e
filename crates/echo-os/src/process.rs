//! A process as the kernel reports it in `/proc/PID`: resident memory, CPU
//! time, open descriptors, ignored signals and when it started.

use std::io;
use std::time::{Duration, SystemTime};

/// Why a figure of a process could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Its `/proc` entry could not be read: the process does not exist (any
    /// more), or belongs to someone this process may not look at.
    #[error("cannot read /proc/{pid}/{file}")]
    Read {
        /// The process asked about.
        pid: u32,
        /// The file under `/proc/PID`.
        file: &'static str,
        /// What reading it said.
        #[source]
        source: io::Error,
    },
    /// The entry was read but lacks the figure (a kernel thread has no
    /// `VmRSS`, say), or the figure is not a number.
    #[error("no {field} in /proc/{pid}/{file}")]
    Missing {
        /// The process asked about.
        pid: u32,
        /// The file under `/proc/PID`.
        file: &'static str,
        /// The field looked for.
        field: &'static str,
    },
    /// The clock that counts from boot, which dates a process's start,
    /// could not be read.
    #[error("cannot read the boot-time clock")]
    Clock(#[source] nix::Error),
}

/// The resident memory of process `pid` in KiB (`VmRSS`).
///
/// # Errors
/// A [`ProcessError`] when its status cannot be read or has no `VmRSS`.
pub fn resident_kib(pid: u32) -> Result<u64, ProcessError> {
    status_kib(pid, "VmRSS")
}

/// The peak resident memory of process `pid` in KiB (`VmHWM`).
///
/// # Errors
/// A [`ProcessError`] when its status cannot be read or has no `VmHWM`.
pub fn peak_resident_kib(pid: u32) -> Result<u64, ProcessError> {
    status_kib(pid, "VmHWM")
}

/// The signals process `pid` ignores, as a mask whose bit `n - 1` is signal `n` (`SigIgn`).
///
/// # Errors
/// A [`ProcessError`] when its status cannot be read or has no `SigIgn`.
pub fn ignored_signals(pid: u32) -> Result<u64, ProcessError> {
    let status = read(pid, "status")?;
    status_field(&status, "SigIgn")
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .ok_or(ProcessError::Missing {
            pid,
            file: "status",
            field: "SigIgn",
        })
}

/// The CPU time (user and system) process `pid` has used so far, with that
/// of the children it has waited for: a server that forks a process per
/// connection (socat's `fork`, ncat's `--sh-exec`) is measured whole.
///
/// The kernel counts it in clock ticks ([`clock_tick`], 10 ms on most
/// systems), so two readings differ by whole ticks.
///
/// # Errors
/// A [`ProcessError`] when its `stat` cannot be read or parsed.
pub fn cpu_time(pid: u32) -> Result<Duration, ProcessError> {
    let stat = read(pid, "stat")?;
    let missing = |field| ProcessError::Missing {
        pid,
        file: "stat",
        field,
    };
    let ticks = stat_ticks(&stat).ok_or(missing("utime and stime"))?;
    let tick = clock_tick();
    Ok(tick * u32::try_from(ticks).map_err(|_| missing("utime and stime"))?)
}

/// When process `pid` started, to the clock tick.
///
/// The kernel gives the start in ticks after boot; the moment of boot is
/// taken as now less the boot-time clock, so a wall clock set since then
/// moves the answer with it, as it does `btime` in `/proc/stat`.
///
/// # Errors
/// A [`ProcessError`] when its `stat` cannot be read or parsed, or the
/// boot-time clock cannot be read.
pub fn start_time(pid: u32) -> Result<SystemTime, ProcessError> {
    use nix::time::{ClockId, clock_gettime};
    let stat = read(pid, "stat")?;
    let ticks = stat_fields(&stat)
        .and_then(|fields| fields.get(STARTTIME)?.parse::<u64>().ok())
        .ok_or(ProcessError::Missing {
            pid,
            file: "stat",
            field: "starttime",
        })?;
    let tick_nanos = u64::try_from(clock_tick().as_nanos()).unwrap_or(u64::MAX);
    let started_after_boot = Duration::from_nanos(ticks.saturating_mul(tick_nanos));
    let since_boot =
        Duration::from(clock_gettime(ClockId::CLOCK_BOOTTIME).map_err(ProcessError::Clock)?);
    let age = since_boot.saturating_sub(started_after_boot);
    let now = SystemTime::now();
    Ok(now.checked_sub(age).unwrap_or(now))
}

/// The CPU time (user and system) this process has used so far, to the
/// microsecond: a process's own time comes from `getrusage(2)`, which the
/// kernel keeps exactly, not in the clock ticks `/proc` gives of others.
///
/// # Errors
/// `getrusage(2)` failed, which it does only for an argument it does not know.
pub fn own_cpu_time() -> io::Result<Duration> {
    use nix::sys::resource::{UsageWho, getrusage};
    let usage = getrusage(UsageWho::RUSAGE_SELF)?;
    let time = |value: nix::sys::time::TimeVal| {
        let seconds = u64::try_from(value.tv_sec()).unwrap_or(0);
        let micros = u64::try_from(value.tv_usec()).unwrap_or(0);
        Duration::from_secs(seconds) + Duration::from_micros(micros)
    };
    Ok(time(usage.user_time()) + time(usage.system_time()))
}

/// The length of one clock tick, the unit of [`cpu_time`]'s counts.
pub fn clock_tick() -> Duration {
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|hz| u32::try_from(hz).ok())
        .filter(|&hz| hz > 0)
        .unwrap_or(100);
    Duration::from_secs(1) / per_second
}

/// How many file descriptors process `pid` has open.
///
/// # Errors
/// A [`ProcessError`] when its `fd` directory cannot be read.
pub fn open_fds(pid: u32) -> Result<usize, ProcessError> {
    let entries =
        std::fs::read_dir(format!("/proc/{pid}/fd")).map_err(|source| ProcessError::Read {
            pid,
            file: "fd",
            source,
        })?;
    Ok(entries.count())
}

fn read(pid: u32, file: &'static str) -> Result<String, ProcessError> {
    std::fs::read_to_string(format!("/proc/{pid}/{file}")).map_err(|source| ProcessError::Read {
        pid,
        file,
        source,
    })
}

fn status_kib(pid: u32, field: &'static str) -> Result<u64, ProcessError> {
    let status = read(pid, "status")?;
    status_field(&status, field)
        .and_then(|value| value.strip_suffix(" kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .ok_or(ProcessError::Missing {
            pid,
            file: "status",
            field,
        })
}

/// The value of `Name:\tvalue` in a `/proc/PID/status` text.
fn status_field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(':')?;
        Some(value.trim())
    })
}

/// Where `utime`, `stime`, `cutime`, `cstime` and `starttime` are among
/// [`stat_fields`]: fields 14 to 17 and 22 of proc(5), counted from 1 with
/// the pid and the name, which come before them.
const UTIME: usize = 14 - 3;
const STIME: usize = 15 - 3;
const CUTIME: usize = 16 - 3;
const CSTIME: usize = 17 - 3;
const STARTTIME: usize = 22 - 3;

/// The fields of a `/proc/PID/stat` text after the command name, from the
/// state (field 3) on.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    // The name is in parentheses and may hold spaces and parentheses of its
    // own: the last ')' ends it.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    Some(rest.split_whitespace().collect())
}

/// User plus system ticks from a `/proc/PID/stat` text, the process's own
/// and its waited-for children's.
fn stat_ticks(stat: &str) -> Option<u64> {
    let fields = stat_fields(stat)?;
    [UTIME, STIME, CUTIME, CSTIME]
        .into_iter()
        .map(|field| fields.get(field)?.parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_by_name_and_unit() {
        let status = "Name:\techo-server\nVmHWM:\t  9000 kB\nVmRSS:\t    4321 kB\nSigIgn:\t0000000000001001\n";
        assert_eq!(status_field(status, "VmRSS"), Some("4321 kB"));
        assert_eq!(status_field(status, "SigIgn"), Some("0000000000001001"));
        assert_eq!(status_field(status, "VmSwap"), None);
        assert_eq!(status_field("VmRSSx:\t1 kB\n", "VmRSS"), None);
    }

    #[test]
    fn stat_ticks_survive_odd_command_names() {
        let stat = "42 (my (odd) name) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0";
        assert_eq!(stat_ticks(stat), Some(12));
        // Children waited for count too: a forking server is measured whole.
        let forking = "42 (socat) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 300 40 20 0 1 0";
        assert_eq!(stat_ticks(forking), Some(352));
        assert_eq!(stat_ticks("42 (truncated) S 1"), None);
        let fields = stat_fields(stat).expect("fields");
        assert_eq!(fields[0], "S");
        assert_eq!(fields.get(STARTTIME), None);
        let long = "42 (a) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0 98765 1000";
        assert_eq!(stat_fields(long).expect("fields")[STARTTIME], "98765");
    }

    #[test]
    fn this_process_can_be_looked_at() {
        let me = std::process::id();
        let rss = resident_kib(me).expect("own VmRSS");
        assert!(rss > 100, "{rss} KiB");
        assert!(peak_resident_kib(me).expect("own VmHWM") >= rss);
        assert!(open_fds(me).expect("own fds") >= 3);
        cpu_time(me).expect("own CPU time");
        // Started before now, and not before this test binary was built.
        let started = start_time(me).expect("own start time");
        let now = SystemTime::now();
        assert!(started <= now, "{started:?} after {now:?}");
        let built = std::fs::metadata(std::env::current_exe().expect("own path"))
            .and_then(|meta| meta.modified())
            .expect("the test binary's time");
        assert!(
            started >= built - clock_tick(),
            "{started:?} before {built:?}"
        );
        ignored_signals(me).expect("own SigIgn");
        assert!(matches!(
            resident_kib(u32::MAX),
            Err(ProcessError::Read { .. })
        ));
    }

    #[test]
    fn our_own_cpu_time_advances_in_steps_finer_than_a_tick() {
        // Spins until the reading has moved on several times; a clock that
        // counted in ticks could only ever move by 10 ms at once.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut last = own_cpu_time().expect("getrusage");
        let mut smallest_step = Duration::MAX;
        let mut steps = 0;
        while steps < 100 && std::time::Instant::now() < deadline {
            let now = own_cpu_time().expect("getrusage");
            assert!(now >= last, "{now:?} after {last:?}");
            if now > last {
                smallest_step = smallest_step.min(now - last);
                steps += 1;
            }
            last = now;
        }
        assert_eq!(steps, 100, "the CPU time stopped advancing");
        assert!(
            smallest_step < Duration::from_millis(1),
            "{smallest_step:?}"
        );
    }
}
