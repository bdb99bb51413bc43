//! A global allocator that counts the allocations each thread makes, for tests that
//! prove a per-packet path allocates nothing. Per thread, so the test harness's own
//! threads (output capture, other tests) never show up in a test's count.
//!
//! Install it in a test binary with
//! `#[global_allocator] static GLOBAL: Counting = Counting;`.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
};

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

/// The counting allocator (delegates to the system allocator).
pub struct Counting;

// SAFETY: delegates every call to `System`; the counter is a plain thread-local cell
// with a const initialiser, which needs no allocation.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Allocations the calling thread has made so far.
pub fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}
