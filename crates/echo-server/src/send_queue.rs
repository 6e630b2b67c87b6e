//! How many bytes written to a stream socket its peer has not taken yet: the
//! kernel's own count, which is how the idle timeout tells a slow reader from
//! a dead one, and how the totals know what a cut connection never delivered.
//!
//! The one `unsafe` call of the server lives here, because no maintained crate
//! wraps `SIOCOUTQ`.

#![allow(unsafe_code)]

use std::os::fd::{AsFd, AsRawFd};

/// Bytes written to `socket` and not yet acknowledged by the peer (TCP), or
/// not yet read by it (Unix, counted in the kernel's buffer sizes, so an
/// upper bound); `None` when the kernel cannot tell (not a socket, say).
pub fn unsent(socket: &impl AsFd) -> Option<u64> {
    let fd = socket.as_fd();
    let mut queued: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ for sockets) writes one c_int through the
    // pointer, which points to `queued`, alive and writable for the whole
    // call; `fd` is borrowed, so open, for the call too. On a descriptor that
    // is not a socket the kernel writes nothing and fails with ENOTTY.
    let result = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
    if result < 0 {
        return None;
    }
    u64::try_from(queued).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn the_queue_grows_with_writes_and_shrinks_as_the_peer_reads() {
        let (mut ours, mut peer) = UnixStream::pair().expect("socket pair");
        assert_eq!(unsent(&ours), Some(0));
        ours.write_all(&[7; 1000]).expect("write");
        let queued = unsent(&ours).expect("known");
        assert!(queued >= 1000, "{queued}");
        let mut taken = [0u8; 1000];
        peer.read_exact(&mut taken).expect("read");
        assert_eq!(unsent(&ours), Some(0));
    }

    #[test]
    fn a_descriptor_that_is_not_a_socket_has_no_known_queue() {
        let file = std::fs::File::open("/dev/null").expect("open");
        assert_eq!(unsent(&file), None);
    }
}
