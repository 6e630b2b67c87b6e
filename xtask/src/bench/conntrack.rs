//! Room in the kernel's connection-tracking table before a run that opens
//! many connections.
//!
//! Where netfilter tracks connections (this machine: 262,144 entries, each
//! closed loopback connection kept 120 s in TIME_WAIT), a conn run of
//! 50,000-odd connections a round fills the table within a few rounds; the
//! kernel then drops new SYNs ("nf_conntrack: table full, dropping packet"),
//! and echo-bench's workers time out after stalls of seconds that no server
//! caused. Waiting for the table to drain keeps those drops out of the figures.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;

/// The table's entries in use.
const COUNT: &str = "/proc/sys/net/netfilter/nf_conntrack_count";
/// The table's size.
const MAX: &str = "/proc/sys/net/netfilter/nf_conntrack_max";

/// Free entries a run must find: more than one conn run over plain TCP
/// makes on this machine (about 60,000 in 2 s).
pub(super) const ROOM_FOR_A_RUN: u64 = 100_000;

/// The longest wait: a TIME_WAIT entry's lifetime (120 s) and some.
const DRAINED_WITHIN: Duration = Duration::from_secs(180);

/// Waits until the table has `room` free entries; at once where connections
/// are not tracked (no such files) or the table is smaller than `room`
/// (nothing to wait for then: the run takes its chances).
///
/// # Errors
/// The table is still that full after [`DRAINED_WITHIN`].
pub(super) fn wait_for_room(room: u64) -> anyhow::Result<()> {
    let read = |file: &str| -> Option<u64> {
        std::fs::read_to_string(Path::new(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let Some(max) = read(MAX) else {
        return Ok(());
    };
    if max < room {
        return Ok(());
    }
    let started = Instant::now();
    let mut said = false;
    while let Some(count) = read(COUNT) {
        if !lacks_room(count, max, room) {
            if said {
                eprintln!(
                    "  ... {count} of {max} after {:.0}s",
                    started.elapsed().as_secs_f64()
                );
            }
            return Ok(());
        }
        if started.elapsed() >= DRAINED_WITHIN {
            bail!(
                "the connection-tracking table still holds {count} of {max} entries after \
                 {DRAINED_WITHIN:?}: something else is opening connections"
            );
        }
        if !said {
            eprintln!(
                "waiting for the connection-tracking table to drain ({count} of {max} entries in use; \
                 a full table drops new connections)"
            );
            said = true;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    Ok(())
}

/// Whether a table of `max` entries with `count` in use has fewer than `room` free.
fn lacks_room(count: u64, max: u64, room: u64) -> bool {
    max.saturating_sub(count) < room
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_what_is_left_of_the_table() {
        assert!(!lacks_room(162_144, 262_144, 100_000));
        assert!(lacks_room(162_145, 262_144, 100_000));
        assert!(lacks_room(262_144, 262_144, 1));
        assert!(lacks_room(300_000, 262_144, 1));
    }
}
