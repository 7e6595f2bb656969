#![allow(dead_code)]
//! A global allocator that counts heap use per thread, for binaries that opt
//! in with `#[global_allocator] static A: CountingAlloc = CountingAlloc;`.
//! Every count is the calling thread's own, so tests running on other
//! threads of the same binary do not disturb a measurement.

use std::alloc::{GlobalAlloc, Layout, System};

std::thread_local! {
    /// Allocations made by this thread (other test threads don't disturb it).
    static THREAD_COUNT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Net bytes allocated minus freed by this thread.
    static THREAD_BYTES: std::cell::Cell<isize> = const { std::cell::Cell::new(0) };
    /// Gross bytes allocated by this thread (frees not subtracted).
    static THREAD_ALLOCATED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// The highest `THREAD_BYTES` since the last `reset_peak_this_thread`.
    static THREAD_PEAK: std::cell::Cell<isize> = const { std::cell::Cell::new(0) };
}

fn thread_bytes(delta: isize) {
    // `try_with`: the thread-local may be gone while a thread shuts down.
    let _ = THREAD_BYTES.try_with(|b| {
        let now = b.get() + delta;
        b.set(now);
        let _ = THREAD_PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

fn allocated(n: usize) {
    let _ = THREAD_ALLOCATED.try_with(|a| a.set(a.get() + n));
}

fn count_one() {
    let _ = THREAD_COUNT.try_with(|c| c.set(c.get() + 1));
}

/// Counts, per thread, net bytes, their peak and the number of allocations.
pub struct CountingAlloc;

// SAFETY: defers to the system allocator; only adds counting.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count_one();
            thread_bytes(layout.size() as isize);
            allocated(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        thread_bytes(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            thread_bytes(new_size as isize - layout.size() as isize);
            count_one();
            allocated(new_size.saturating_sub(layout.size()));
        }
        p
    }
}

/// Allocations (and reallocations) made by the calling thread so far.
pub fn count_this_thread() -> usize {
    THREAD_COUNT.with(|c| c.get())
}

/// Net heap bytes allocated (minus freed) by the calling thread so far (0
/// when the binary does not use `CountingAlloc`).
pub fn bytes_this_thread() -> isize {
    THREAD_BYTES.with(|b| b.get())
}

/// Gross heap bytes allocated by the calling thread so far (growth of a
/// reallocation counted, frees not subtracted).
pub fn bytes_allocated_this_thread() -> usize {
    THREAD_ALLOCATED.with(|a| a.get())
}

/// Resets the calling thread's peak to its current net heap and returns that
/// level (on the scale of [`bytes_this_thread`]).
pub fn reset_peak_this_thread() -> isize {
    let now = bytes_this_thread();
    THREAD_PEAK.with(|p| p.set(now));
    now
}

/// The highest net heap of the calling thread since its last
/// [`reset_peak_this_thread`] (on the scale of [`bytes_this_thread`]).
pub fn peak_this_thread() -> isize {
    THREAD_PEAK.with(|p| p.get())
}
