//! A fixed-size heap that measures itself.
//!
//! [`CountingHeap`] is a global allocator over an array it owns (a `static`
//! placed in `.bss`), managed by `linked_list_allocator`'s first-fit heap.
//! Besides allocating it keeps books:
//!
//! * per [`Tag`]: the bytes and blocks live now and at their peak. The tag
//!   is whoever is running: the driver sets [`Tag::Client`] around every
//!   call into the client machine, [`Tag::Server`] around the server's, and
//!   [`Tag::App`] otherwise. A block is charged to the tag that allocated it
//!   until it is freed, whoever frees it (an event's payload dropped by the
//!   application still counts against the connection that made it until
//!   then). Blocks allocated under `App` are not tracked, so the table only
//!   holds the connections' live blocks.
//! * for the whole heap: bytes in use as the allocator counts them (sizes
//!   rounded up to its 2-word minimum and alignment) and their high-water
//!   mark: how big the array has to be for the run.
//!
//! Counting is exact: the figures are `Layout::size()` sums, not estimates.
//! One spin lock guards everything (single core, nothing allocates in an
//! interrupt handler; on the host it is a plain spin lock between threads).

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};
// portable-atomic: the same as core::sync::atomic where the target has
// compare-and-swap; emulated in a critical section on thumbv6m.
use linked_list_allocator::Heap;
use portable_atomic::{AtomicBool, AtomicU8, Ordering};

/// Who an allocation is charged to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Tag {
    /// Anything that is not a connection (the application, the test harness).
    App = 0,
    /// The client connection.
    Client = 1,
    /// The server connection.
    Server = 2,
}

impl Tag {
    fn from_u8(v: u8) -> Tag {
        match v {
            1 => Tag::Client,
            2 => Tag::Server,
            _ => Tag::App,
        }
    }
}

/// Live and peak usage of one tag, in requested bytes (`Layout::size()`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TagStats {
    /// Bytes allocated and not yet freed.
    pub live_bytes: usize,
    /// The most `live_bytes` has been since the last [`HeapProbe::reset_peaks`].
    pub peak_bytes: usize,
    /// Blocks allocated and not yet freed.
    pub live_blocks: usize,
    /// The most `live_blocks` has been.
    pub peak_blocks: usize,
    /// Allocations made in all (reallocations count as one each).
    pub allocations: usize,
}

impl TagStats {
    fn add(&mut self, size: usize) {
        self.live_bytes += size;
        self.live_blocks += 1;
        self.allocations += 1;
        self.peak_bytes = self.peak_bytes.max(self.live_bytes);
        self.peak_blocks = self.peak_blocks.max(self.live_blocks);
    }

    fn remove(&mut self, size: usize) {
        self.live_bytes -= size;
        self.live_blocks -= 1;
    }
}

/// Whole-heap figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// The array's size.
    pub size: usize,
    /// Bytes the allocator counts as in use now (rounded sizes, all tags).
    pub used: usize,
    /// The most `used` has been since the last [`HeapProbe::reset_peaks`]:
    /// the heap this run needs, before fragmentation.
    pub high_water: usize,
    /// Allocations that failed (heap exhausted or too fragmented).
    pub failed: usize,
    /// Connection allocations that did not fit the tracking table (should be 0).
    pub untracked: usize,
}

/// What the scenario needs from a counting heap, whatever its size.
pub trait HeapProbe: Sync {
    /// Charges allocations from now on to `tag`; returns the tag before.
    fn set_tag(&self, tag: Tag) -> Tag;
    /// The figures of one tag.
    fn tag_stats(&self, tag: Tag) -> TagStats;
    /// The whole heap's figures.
    fn heap_stats(&self) -> HeapStats;
    /// Sets every peak to the current value.
    fn reset_peaks(&self);
}

/// How many live connection blocks the table can track.
const SLOTS: usize = 128;

#[derive(Clone, Copy)]
struct Slot {
    addr: usize,
    size: usize,
    tag: u8,
}

const EMPTY: Slot = Slot {
    addr: 0,
    size: 0,
    tag: 0,
};

struct Books {
    heap: Heap,
    ready: bool,
    tags: [TagStats; 3],
    slots: [Slot; SLOTS],
    high_water: usize,
    failed: usize,
    untracked: usize,
}

/// A global allocator over `N` bytes it owns, counting per [`Tag`].
///
/// ```no_run
/// use wsmachine_embedded::heap::CountingHeap;
///
/// #[global_allocator]
/// static HEAP: CountingHeap<{ 32 * 1024 }> = CountingHeap::new();
/// # fn main() {}
/// ```
///
/// The heap is set up on the first allocation, so it is ready before
/// `main` on the host too (std's runtime allocates early).
pub struct CountingHeap<const N: usize> {
    mem: UnsafeCell<[MaybeUninit<u8>; N]>,
    lock: AtomicBool,
    tag: AtomicU8,
    books: UnsafeCell<Books>,
}

// SAFETY: `books` is only touched with `lock` held; `mem` only through the
// heap inside `books`; the rest are atomics.
unsafe impl<const N: usize> Sync for CountingHeap<N> {}

impl<const N: usize> Default for CountingHeap<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> CountingHeap<N> {
    /// An empty heap of `N` bytes (for a `static`).
    pub const fn new() -> Self {
        CountingHeap {
            mem: UnsafeCell::new([MaybeUninit::uninit(); N]),
            lock: AtomicBool::new(false),
            tag: AtomicU8::new(Tag::App as u8),
            books: UnsafeCell::new(Books {
                heap: Heap::empty(),
                ready: false,
                tags: [TagStats {
                    live_bytes: 0,
                    peak_bytes: 0,
                    live_blocks: 0,
                    peak_blocks: 0,
                    allocations: 0,
                }; 3],
                slots: [EMPTY; SLOTS],
                high_water: 0,
                failed: 0,
                untracked: 0,
            }),
        }
    }

    /// Runs `f` with the books locked (and the heap set up).
    fn with_books<R>(&self, f: impl FnOnce(&mut Books) -> R) -> R {
        while self
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        // SAFETY: the lock is held, so this is the only reference.
        let books = unsafe { &mut *self.books.get() };
        if !books.ready {
            // SAFETY: `mem` lives as long as `self` (a static that never
            // moves) and is handed to the heap once.
            unsafe { books.heap.init(self.mem.get().cast::<u8>(), N) };
            books.ready = true;
        }
        let r = f(books);
        self.lock.store(false, Ordering::Release);
        r
    }
}

impl Books {
    fn record_alloc(&mut self, addr: usize, size: usize, tag: Tag) {
        self.high_water = self.high_water.max(self.heap.used());
        if tag == Tag::App {
            return;
        }
        match self.slots.iter_mut().find(|s| s.addr == 0) {
            Some(slot) => {
                *slot = Slot {
                    addr,
                    size,
                    tag: tag as u8,
                };
                self.tags[tag as usize].add(size);
            }
            None => self.untracked += 1,
        }
    }

    fn record_free(&mut self, addr: usize) {
        if let Some(slot) = self.slots.iter_mut().find(|s| s.addr == addr) {
            let (size, tag) = (slot.size, slot.tag);
            *slot = EMPTY;
            self.tags[tag as usize].remove(size);
        }
    }
}

// SAFETY: blocks come from `linked_list_allocator::Heap` with the caller's
// layout and go back to it with the same layout.
unsafe impl<const N: usize> GlobalAlloc for CountingHeap<N> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let tag = Tag::from_u8(self.tag.load(Ordering::Relaxed));
        self.with_books(|b| match b.heap.allocate_first_fit(layout) {
            Ok(p) => {
                b.record_alloc(p.as_ptr() as usize, layout.size(), tag);
                p.as_ptr()
            }
            Err(()) => {
                b.failed += 1;
                ptr::null_mut()
            }
        })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.with_books(|b| {
            b.record_free(ptr as usize);
            // SAFETY: `ptr` came from `alloc` with this layout (GlobalAlloc's contract).
            unsafe { b.heap.deallocate(NonNull::new_unchecked(ptr), layout) };
        })
    }
}

impl<const N: usize> HeapProbe for CountingHeap<N> {
    fn set_tag(&self, tag: Tag) -> Tag {
        Tag::from_u8(self.tag.swap(tag as u8, Ordering::Relaxed))
    }

    fn tag_stats(&self, tag: Tag) -> TagStats {
        self.with_books(|b| b.tags[tag as usize])
    }

    fn heap_stats(&self) -> HeapStats {
        self.with_books(|b| HeapStats {
            size: N,
            used: b.heap.used(),
            high_water: b.high_water,
            failed: b.failed,
            untracked: b.untracked,
        })
    }

    fn reset_peaks(&self) {
        self.with_books(|b| {
            for t in &mut b.tags {
                t.peak_bytes = t.live_bytes;
                t.peak_blocks = t.live_blocks;
            }
            b.high_water = b.heap.used();
        })
    }
}
