//! The queue of bytes waiting for the transport.
//!
//! Small writes (headers, short payloads, masked client payloads) are
//! appended to one growing buffer; a large payload the application handed
//! over as `Bytes` is queued as its own chunk without copying, so a driver
//! can write header and payload with one vectored write.

use alloc::collections::VecDeque;
use bytes::{Buf, Bytes, BytesMut};

/// Most spare output capacity kept once everything is written: enough for
/// steady small messages to reuse one buffer, small enough that many idle
/// connections cost little.
const KEEP_IDLE: usize = 2 << 10;

/// Bytes queued for the transport, in order.
#[derive(Debug, Default)]
pub(crate) struct Output {
    /// Frozen chunks, oldest first; all of them precede `tail`.
    chunks: VecDeque<Bytes>,
    /// The newest bytes, still growing.
    tail: BytesMut,
    /// Total bytes queued in `chunks` and `tail`.
    len: usize,
    /// `tail` no longer starts at its allocation's start (part of it was
    /// split off or written), so its capacity no longer tells the size of
    /// the allocation it holds.
    tail_moved: bool,
}

impl Output {
    /// Appends a copy of `data`.
    pub(crate) fn extend(&mut self, data: &[u8]) {
        self.tail.extend_from_slice(data);
        self.len += data.len();
    }

    /// Appends a frame: the first `head_len` bytes of `head` (a header as
    /// [`FrameHeader::encode_word`](crate::wire::frame::FrameHeader::encode_word)
    /// gives it), then `payload` (masked with `key` when there is one), with
    /// one reservation and no zero-filling.
    #[inline]
    pub(crate) fn extend_frame(&mut self, head: u128, head_len: usize, payload: &[u8], key: Option<[u8; 4]>) {
        crate::wire::mask::extend_frame(&mut self.tail, head, head_len, payload, key);
        self.len += head_len + payload.len();
    }

    /// Appends `chunk` without copying it.
    pub(crate) fn push_chunk(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        if !self.tail.is_empty() {
            self.chunks.push_back(self.tail.split().freeze());
            self.tail_moved = true;
        }
        self.len += chunk.len();
        self.chunks.push_back(chunk);
    }

    /// Bytes queued.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The oldest queued bytes (empty when nothing is queued).
    #[inline]
    pub(crate) fn front(&self) -> &[u8] {
        match self.chunks.front() {
            Some(c) => c,
            None => &self.tail,
        }
    }

    /// All queued chunks in order, for vectored writes.
    pub(crate) fn chunks(&self) -> impl Iterator<Item = &[u8]> {
        self.chunks
            .iter()
            .map(|c| &c[..])
            .chain(core::iter::once(&self.tail[..]))
            .filter(|c| !c.is_empty())
    }

    /// Gives back spare capacity: the growing tail moves into a buffer of
    /// its size (none when empty), the chunk list is trimmed.
    pub(crate) fn shrink(&mut self) {
        self.tail = shrunk(&self.tail);
        self.tail_moved = false;
        self.chunks.shrink_to_fit();
    }

    /// Marks the first `n` queued bytes as written. `n` larger than what is
    /// queued is clamped.
    #[inline]
    pub(crate) fn consume(&mut self, mut n: usize) {
        if n >= self.len && self.chunks.is_empty() && !self.tail_moved && self.tail.capacity() <= KEEP_IDLE {
            // The common case, everything written from one small buffer:
            // it is reused from its start.
            self.tail.clear();
            self.len = 0;
            return;
        }
        n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            match self.chunks.front_mut() {
                Some(c) if c.len() <= n => {
                    n -= c.len();
                    self.chunks.pop_front();
                }
                Some(c) => {
                    c.advance(n);
                    n = 0;
                }
                None if n == self.tail.len() => {
                    // All of it written: the buffer is reused from where it
                    // starts (no shifting, no reclaiming).
                    self.tail.clear();
                    n = 0;
                }
                None => {
                    self.tail.advance(n);
                    self.tail_moved = true;
                    n = 0;
                }
            }
        }
        if self.len == 0 && (self.tail_moved || self.tail.capacity() > KEEP_IDLE) {
            self.tail.clear();
            self.tail_moved = false;
            // (`try_reclaim` sees the whole allocation, not what is past the
            // bytes already split off or written.)
            if self.tail.try_reclaim(KEEP_IDLE + 1) {
                // Drained after a large write: an idle connection goes back
                // to a small footprint by itself.
                self.tail = BytesMut::new();
                self.chunks = VecDeque::new();
            }
            // Otherwise the allocation is reused from the start.
        }
    }
}

/// A copy of `buf` in a buffer of exactly its size (no allocation when empty).
/// Copied even when its capacity looks exact: a `BytesMut` left by `split`
/// can show no spare capacity while it keeps a large allocation alive.
pub(crate) fn shrunk(buf: &BytesMut) -> BytesMut {
    if buf.is_empty() {
        return BytesMut::new();
    }
    let mut b = BytesMut::with_capacity(buf.len());
    b.extend_from_slice(buf);
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn order_and_partial_consumption() {
        let mut o = Output::default();
        o.extend(b"ab");
        o.push_chunk(Bytes::from_static(b"cdef"));
        o.extend(b"gh");
        assert_eq!(o.len(), 8);
        let all: Vec<u8> = o.chunks().flatten().copied().collect();
        assert_eq!(all, b"abcdefgh");
        o.consume(3);
        assert_eq!(o.front(), b"def");
        o.consume(4);
        assert_eq!(o.front(), b"h");
        o.consume(10);
        assert_eq!(o.front(), b"");
        assert_eq!(o.len(), 0);
    }
}
