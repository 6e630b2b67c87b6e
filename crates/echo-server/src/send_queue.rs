//! How many bytes written to a stream socket its peer has not taken yet: the
//! kernel's own count, which is how the idle timeout tells a slow reader from
//! a dead one, and how the totals know what a cut connection never delivered.
//!
//! The one `unsafe` call of the server lives here, because no maintained crate
//! wraps `SIOCOUTQ`.

#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, RawFd};

/// A way to ask one socket for the length of its send queue.
///
/// It holds the descriptor's number, not the socket: it must not outlive the
/// stream it was made from, which `connection::echo` guarantees by holding
/// the stream borrowed for as long as it keeps this.
#[derive(Debug, Clone, Copy)]
pub struct SendQueue(Option<RawFd>);

impl SendQueue {
    /// The send queue of `socket` (a TCP or Unix stream socket).
    pub fn of(socket: &impl AsRawFd) -> Self {
        SendQueue(Some(socket.as_raw_fd()))
    }

    /// For transports that are not sockets: the length is never known.
    pub fn unknown() -> Self {
        SendQueue(None)
    }

    /// Bytes written and not yet acknowledged by the peer (TCP), or not yet
    /// read by it (Unix, counted in the kernel's buffer sizes, so an upper
    /// bound); `None` when the kernel cannot tell.
    pub fn unsent(&self) -> Option<u64> {
        let fd = self.0?;
        let mut queued: libc::c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ for sockets) writes one c_int through the
        // pointer, which points to `queued`, alive and writable for the whole
        // call. On a descriptor that is not a socket the kernel writes nothing
        // and fails with ENOTTY; no memory but `queued` is touched either way.
        let result = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued) };
        if result < 0 {
            return None;
        }
        u64::try_from(queued).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn the_queue_grows_with_writes_and_shrinks_as_the_peer_reads() {
        let (mut ours, mut peer) = UnixStream::pair().expect("socket pair");
        let queue = SendQueue::of(&ours);
        assert_eq!(queue.unsent(), Some(0));
        ours.write_all(&[7; 1000]).expect("write");
        let queued = queue.unsent().expect("known");
        assert!(queued >= 1000, "{queued}");
        let mut taken = [0u8; 1000];
        peer.read_exact(&mut taken).expect("read");
        assert_eq!(queue.unsent(), Some(0));
    }

    #[test]
    fn a_transport_that_is_not_a_socket_has_no_known_queue() {
        assert_eq!(SendQueue::unknown().unsent(), None);
        let file = std::fs::File::open("/dev/null").expect("open");
        assert_eq!(SendQueue::of(&file).unsent(), None);
    }
}
