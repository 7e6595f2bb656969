#![allow(dead_code)]
//! A global allocator that counts live heap bytes, for binaries that opt in
//! with `#[global_allocator] static A: CountingAlloc = CountingAlloc;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static COUNT: AtomicUsize = AtomicUsize::new(0);

std::thread_local! {
    /// Allocations made by this thread (other test threads don't disturb it).
    static THREAD_COUNT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Net bytes allocated minus freed by this thread.
    static THREAD_BYTES: std::cell::Cell<isize> = const { std::cell::Cell::new(0) };
}

fn thread_bytes(delta: isize) {
    let _ = THREAD_BYTES.try_with(|b| b.set(b.get() + delta));
}

fn count_one() {
    COUNT.fetch_add(1, Ordering::Relaxed);
    // `try_with`: the thread-local may be gone while a thread shuts down.
    let _ = THREAD_COUNT.try_with(|c| c.set(c.get() + 1));
}

/// Counts live bytes, peak bytes and the number of allocations.
pub struct CountingAlloc;

// SAFETY: defers to the system allocator; only adds counting.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
            count_one();
            thread_bytes(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        thread_bytes(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            thread_bytes(new_size as isize - layout.size() as isize);
            if new_size >= layout.size() {
                let now = CURRENT.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size - layout.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
            count_one();
        }
        p
    }
}

/// Live heap bytes now (0 when the binary does not use `CountingAlloc`).
pub fn current() -> usize {
    CURRENT.load(Ordering::Relaxed)
}

/// Resets the peak to the current level and returns it.
pub fn reset_peak() -> usize {
    let now = current();
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// The highest live heap since the last `reset_peak`.
pub fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Allocations (and reallocations) so far.
pub fn count() -> usize {
    COUNT.load(Ordering::Relaxed)
}

/// Allocations (and reallocations) made by the calling thread so far.
pub fn count_this_thread() -> usize {
    THREAD_COUNT.with(|c| c.get())
}

/// Net heap bytes allocated (minus freed) by the calling thread so far.
pub fn bytes_this_thread() -> isize {
    THREAD_BYTES.with(|b| b.get())
}
