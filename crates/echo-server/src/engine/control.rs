//! The control plane: how the rest of the server tells the event loops to
//! stop accepting (drain) or to close everything (cut), how it learns that
//! they ended, and the waker that makes a loop look.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use mio::{Registry, Token, Waker};
use tracing::warn;

/// The phase the rest of the server has put an event loop in: serving.
pub(super) const SERVING: u8 = 0;
/// Listeners closed; connections in flight go on.
pub(super) const DRAINING: u8 = 1;
/// The grace period is over: close every connection and stop.
pub(super) const CUT: u8 = 2;

/// What the rest of the server tells an event loop, and the waker that
/// makes it look.
#[derive(Debug)]
pub(crate) struct Control {
    /// Only ever moves forward: serving, draining, cut.
    phase: AtomicU8,
    /// Another loop gave a place back while this one waited for one.
    place_freed: AtomicBool,
    waker: Waker,
}

impl Control {
    /// The control of the loop whose epoll set `registry` is; its waker
    /// raises `token` there.
    ///
    /// # Errors
    /// The waker's eventfd could not be made or registered.
    pub(super) fn new(registry: &Registry, token: Token) -> std::io::Result<Control> {
        Ok(Control {
            phase: AtomicU8::new(SERVING),
            place_freed: AtomicBool::new(false),
            waker: Waker::new(registry, token)?,
        })
    }

    /// The phase now: [`SERVING`], [`DRAINING`] or [`CUT`].
    pub(super) fn phase(&self) -> u8 {
        self.phase.load(Ordering::Acquire)
    }

    fn set(&self, phase: u8) {
        self.phase.fetch_max(phase, Ordering::AcqRel);
        self.wake();
    }

    /// Tells the loop that a place under the connection limit is free again.
    pub(super) fn free_place(&self) {
        self.place_freed.store(true, Ordering::Release);
        self.wake();
    }

    /// Whether a place was freed since the loop last asked.
    pub(super) fn take_place_freed(&self) -> bool {
        self.place_freed.swap(false, Ordering::AcqRel)
    }

    fn wake(&self) {
        if let Err(err) = self.waker.wake() {
            // Only an eventfd that cannot be written; the loop still looks
            // at its next event or sweep.
            warn!(error = %err, "cannot wake the event loop");
        }
    }
}

/// The running event loops, as the rest of the server holds them.
#[derive(Debug)]
pub(crate) struct Handle {
    pub(super) controls: Vec<Arc<Control>>,
    pub(super) finished: Vec<tokio::sync::oneshot::Receiver<()>>,
}

impl Handle {
    /// Closes the listeners (queued clients are then reset by the kernel);
    /// connections in flight go on.
    pub(crate) fn stop_accepting(&self) {
        for control in &self.controls {
            control.set(DRAINING);
        }
    }

    /// Closes every connection still open and ends the loops.
    pub(crate) fn cut(&self) {
        for control in &self.controls {
            control.set(CUT);
        }
    }

    /// Resolves once every loop has ended: drained, or cut.
    ///
    /// Cancel-safe: the drain drops this future when the grace runs out and
    /// awaits it again after the cut, so a loop's receiver is let go as soon
    /// as it has resolved, since a oneshot receiver panics if polled again.
    pub(crate) async fn finished(&mut self) {
        while let Some(finished) = self.finished.last_mut() {
            // An error means the thread is gone without saying so: ended too.
            let _ = finished.await;
            self.finished.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use mio::{Events, Poll};

    /// Waits for the waker of `poll` (token `waker`) to be raised.
    fn woken(poll: &mut Poll, waker: Token) -> bool {
        let mut events = Events::with_capacity(4);
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .expect("the epoll set can be waited on");
        events.iter().any(|event| event.token() == waker)
    }

    /// The loop reads its waker's reason from the control: a place freed is
    /// told once, and a phase moving on wakes the loop without looking like
    /// a freed place (which would make it accept again while draining).
    #[test]
    fn the_waker_tells_a_freed_place_once_and_a_phase_apart() {
        const WAKER: Token = Token(7);
        let mut poll = Poll::new().expect("an epoll set");
        let control = Arc::new(Control::new(poll.registry(), WAKER).expect("a waker"));
        assert!(!control.take_place_freed(), "nothing was freed yet");

        control.free_place();
        assert!(woken(&mut poll, WAKER));
        assert!(control.take_place_freed());
        assert!(!control.take_place_freed(), "a freed place is told once");

        let handle = Handle {
            controls: vec![Arc::clone(&control)],
            finished: Vec::new(),
        };
        handle.stop_accepting();
        assert!(woken(&mut poll, WAKER));
        assert_eq!(control.phase(), DRAINING);
        assert!(!control.take_place_freed(), "draining frees no place");
    }

    /// The drain's sequence with three loops, the first and last ended
    /// within the grace and the middle one still busy: waiting is cut short
    /// by the grace, then resumed after the cut.
    #[tokio::test]
    async fn waiting_again_after_the_grace_does_not_poll_an_ended_loop_again() {
        let (first_ended, first) = tokio::sync::oneshot::channel::<()>();
        let (busy_ended, busy) = tokio::sync::oneshot::channel::<()>();
        let (last_ended, last) = tokio::sync::oneshot::channel::<()>();
        let mut handle = Handle {
            controls: Vec::new(),
            finished: vec![first, busy, last],
        };
        first_ended.send(()).expect("the receiver is alive");
        // A loop whose thread died without saying so has ended too.
        drop(last_ended);
        let grace = tokio::time::timeout(Duration::from_millis(20), handle.finished()).await;
        assert!(grace.is_err(), "the busy loop has not ended");
        busy_ended.send(()).expect("the receiver is alive");
        tokio::time::timeout(Duration::from_secs(5), handle.finished())
            .await
            .expect("every loop has ended");
        assert!(handle.finished.is_empty());
    }
}
