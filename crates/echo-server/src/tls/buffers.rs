//! The buffers TLS connections borrow while bytes move, one pool per event
//! loop thread, so that a connection waiting for input holds none: as the
//! plain echo shares one read buffer among all its connections, TLS ones
//! share these.

use std::cell::RefCell;

use echo_proto::BUFFER_SIZE;

/// Each buffer's size: a read chunk's worth of records and their overhead
/// (at most 2,048 + 5 bytes each over 16 KiB of payload in TLS 1.2, 22 in 1.3).
pub(super) const SIZE: usize = BUFFER_SIZE + 16 * 1024;

/// Spare buffers a thread keeps for its next connections.
const SPARE: usize = 8;

thread_local! {
    static POOL: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of at least [`SIZE`] bytes: a spare one of this thread's, or a new one.
pub(super) fn take() -> Box<[u8]> {
    POOL.with_borrow_mut(Vec::pop)
        .unwrap_or_else(|| vec![0; SIZE].into_boxed_slice())
}

/// Gives a buffer back, to be lent again or freed.
pub(super) fn give(buffer: Box<[u8]>) {
    if buffer.len() != SIZE {
        // One grown for a rare large flight: not worth keeping.
        return;
    }
    // `try_with`: a connection dropped as its thread ends finds the pool
    // gone, and its buffer is simply freed.
    let _ = POOL.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < SPARE {
            pool.push(buffer);
        }
    });
}

/// How many spare buffers this thread holds.
#[cfg(test)]
pub(super) fn spare() -> usize {
    POOL.with_borrow(Vec::len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_given_back_are_lent_again_up_to_the_spare_count() {
        std::thread::spawn(|| {
            let first = take();
            let address = first.as_ptr();
            give(first);
            let again = take();
            assert_eq!(again.as_ptr(), address, "the spare one is lent again");
            give(again);
            let many: Vec<_> = (0..SPARE + 2).map(|_| take()).collect();
            assert_eq!(POOL.with_borrow(Vec::len), 0);
            many.into_iter().for_each(give);
            assert_eq!(POOL.with_borrow(Vec::len), SPARE);
            give(vec![0; 10].into_boxed_slice());
            assert_eq!(POOL.with_borrow(Vec::len), SPARE);
        })
        .join()
        .expect("the test thread");
    }
}
