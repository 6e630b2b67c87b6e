//! A global allocator that counts, per thread, the bytes live: how
//! `tls-floor` weighs an idle rustls `ServerConnection` without asking the C
//! library for statistics it may not keep (musl keeps none).
//!
//! Counting per thread in a thread-local cell costs each allocation one
//! addition and no shared cache line, so the load generator's worker
//! threads, which never read it, pay next to nothing for it.
//!
//! An allocator cannot be written without `unsafe`; this module is the
//! crate's one exception to the workspace's `unsafe_code = "deny"`, and each
//! block only passes its call on to `System` unchanged.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    /// Bytes allocated minus bytes freed on this thread, whoever allocated them.
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

/// The system allocator, counting what each thread allocates and frees.
///
/// The binary installs it as its `#[global_allocator]`; without it,
/// [`live_bytes`] stays 0 and [`counting`] says so.
#[derive(Debug, Default)]
pub struct Counting;

fn add(bytes: i64) {
    // const-initialised with no destructor, so reachable even while the
    // thread ends; try_with costs nothing more and never panics.
    let _ = LIVE.try_with(|live| live.set(live.get().wrapping_add(bytes)));
}

fn signed(size: usize) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

// SAFETY: every call is passed to `System` unchanged; only the counts are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is System's.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            add(signed(layout.size()));
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is System's.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            add(signed(layout.size()));
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is System's.
        unsafe { System.dealloc(ptr, layout) };
        add(-signed(layout.size()));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract is System's.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            add(signed(new_size) - signed(layout.size()));
        }
        new
    }
}

/// Bytes allocated minus bytes freed on this thread so far, when
/// [`Counting`] is the global allocator (else 0).
pub fn live_bytes() -> i64 {
    LIVE.try_with(Cell::get).unwrap_or(0)
}

/// Whether [`Counting`] is the global allocator: an allocation moves the count.
pub fn counting() -> bool {
    let before = live_bytes();
    let probe = std::hint::black_box(vec![0u8; 64]);
    let moved = live_bytes() != before;
    drop(probe);
    moved
}
