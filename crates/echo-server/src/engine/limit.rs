//! The connection limit, shared by every listener of every event loop: a
//! loop that finds it reached stops accepting, and is woken when another
//! loop gives a place back.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use super::control::Control;

/// The most event loops a server runs: one bit each in [`Limit`]'s waiting set.
pub(crate) const MAX_LOOPS: usize = 64;

/// The connection limit, shared by every listener of every event loop.
#[derive(Debug)]
pub(crate) struct Limit {
    max: usize,
    taken: AtomicUsize,
    /// One bit per event loop that stopped accepting at the limit.
    waiting: AtomicU64,
    /// How to wake each event loop, once they are all started.
    loops: OnceLock<Vec<Arc<Control>>>,
}

impl Limit {
    /// A limit of `max` connections at once (at least one).
    pub(crate) fn new(max: usize) -> Self {
        Limit {
            max: max.max(1),
            taken: AtomicUsize::new(0),
            waiting: AtomicU64::new(0),
            loops: OnceLock::new(),
        }
    }

    /// Says how to wake each loop, by index; only the first call counts.
    pub(super) fn set_loops(&self, loops: Vec<Arc<Control>>) {
        let _ = self.loops.set(loops);
    }

    /// Takes a place for one more connection, if there is one.
    fn try_take(&self) -> bool {
        self.taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |taken| {
                (taken < self.max).then_some(taken + 1)
            })
            .is_ok()
    }

    /// Takes a place, or marks event loop `me` as waiting for one; `true`
    /// when a place was taken.
    pub(super) fn take_or_wait(&self, me: usize) -> bool {
        self.try_take() || self.wait_or_take(me)
    }

    /// Marks event loop `me` as waiting, then looks once more: a place given
    /// back between a failed take and the mark found no one to wake. With a
    /// place found after all, only `me`'s own mark goes; other loops still wait.
    fn wait_or_take(&self, me: usize) -> bool {
        self.waiting.fetch_or(1 << me, Ordering::AcqRel);
        if self.try_take() {
            self.waiting.fetch_and(!(1 << me), Ordering::AcqRel);
            return true;
        }
        false
    }

    /// Gives a place back, from event loop `me`, and wakes the other loops
    /// that wait for one (`me` sees to its own listeners itself). Every mark
    /// is cleared: a loop that finds the limit still reached marks itself again.
    pub(super) fn give_back(&self, me: usize) {
        self.taken.fetch_sub(1, Ordering::AcqRel);
        if self.waiting.load(Ordering::Acquire) == 0 {
            return;
        }
        let waiting = self.waiting.swap(0, Ordering::AcqRel) & !(1 << me);
        if let Some(loops) = self.loops.get() {
            for (index, control) in loops.iter().enumerate() {
                if waiting & (1 << index) != 0 {
                    control.free_place();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_admits_exactly_its_size() {
        let limit = Limit::new(2);
        assert!(limit.try_take());
        assert!(limit.take_or_wait(0));
        assert!(!limit.take_or_wait(1));
        assert_eq!(limit.waiting.load(Ordering::Acquire), 0b10);
        limit.give_back(0);
        assert_eq!(limit.waiting.load(Ordering::Acquire), 0, "loop 1 was told");
        assert!(limit.try_take());
    }

    /// `count` loops' controls, each with the epoll set its waker is in.
    fn controls(count: usize) -> (Vec<mio::Poll>, Vec<Arc<Control>>) {
        (0..count)
            .map(|_| {
                let poll = mio::Poll::new().expect("an epoll set");
                let control = Control::new(poll.registry(), mio::Token(0)).expect("a waker");
                (poll, Arc::new(control))
            })
            .unzip()
    }

    /// Indexes other than 0 matter here: a shift the wrong way is the same
    /// bit for loop 0 alone.
    #[test]
    fn a_place_given_back_wakes_the_loops_waiting_for_one_and_no_other() {
        let limit = Limit::new(1);
        let (_polls, controls) = controls(4);
        limit.set_loops(controls.clone());
        // Loop 2 serves the one connection allowed and would accept another;
        // loops 1 and 3 wait for a place; loop 0 has no client waiting.
        assert!(limit.take_or_wait(2));
        for me in [1, 2, 3] {
            assert!(!limit.take_or_wait(me), "loop {me} found a place");
        }
        assert_eq!(limit.waiting.load(Ordering::Acquire), 0b1110);

        limit.give_back(2);
        let told: Vec<bool> = controls
            .iter()
            .map(|control| control.take_place_freed())
            .collect();
        // The giver sees to its own listeners as it closes the connection.
        assert_eq!(told, [false, true, false, true]);
        assert_eq!(limit.waiting.load(Ordering::Acquire), 0, "marks cleared");
        assert!(limit.take_or_wait(3), "the place is free again");
    }

    /// The race `take_or_wait` closes: a place given back after its first
    /// take failed but before its mark was set, so no one was told.
    #[test]
    fn a_place_freed_before_the_mark_is_taken_and_only_that_mark_goes() {
        let limit = Limit::new(1);
        // Loops 1 and 3 wait; loop 2's first take failed, and then the one
        // place was given back, telling no one, since loop 2 had no mark yet.
        limit.waiting.store(0b1010, Ordering::Release);
        assert!(limit.wait_or_take(2), "the freed place is found");
        assert_eq!(
            limit.waiting.load(Ordering::Acquire),
            0b1010,
            "loops 1 and 3 still wait; loop 2's mark is gone"
        );
        assert!(!limit.wait_or_take(2), "no place left");
        assert_eq!(limit.waiting.load(Ordering::Acquire), 0b1110);
    }
}
