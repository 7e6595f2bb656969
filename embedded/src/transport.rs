//! An in-memory byte transport: one direction of a connection, a ring buffer
//! of fixed size, like a TCP socket's buffer in a small network stack.
//!
//! `write` takes what fits (a partial write), `read` gives what is there;
//! after `close` the reader drains the rest and then sees end of stream.
//! No allocation.

/// One direction of a transport, holding at most `N` bytes in flight.
pub struct Pipe<const N: usize> {
    buf: [u8; N],
    start: usize,
    len: usize,
    closed: bool,
    /// Bytes ever written.
    total: usize,
}

impl<const N: usize> Default for Pipe<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Pipe<N> {
    /// An empty, open pipe.
    pub const fn new() -> Self {
        Pipe {
            buf: [0; N],
            start: 0,
            len: 0,
            closed: false,
            total: 0,
        }
    }

    /// Copies in as much of `data` as fits; returns how much (0 when full or closed).
    pub fn write(&mut self, data: &[u8]) -> usize {
        if self.closed {
            return 0;
        }
        let n = data.len().min(N - self.len);
        for (i, &b) in data[..n].iter().enumerate() {
            self.buf[(self.start + self.len + i) % N] = b;
        }
        self.len += n;
        self.total += n;
        n
    }

    /// Copies out up to `dest.len()` bytes; returns how many (0 when empty).
    pub fn read(&mut self, dest: &mut [u8]) -> usize {
        let n = dest.len().min(self.len);
        for (i, d) in dest[..n].iter_mut().enumerate() {
            *d = self.buf[(self.start + i) % N];
        }
        self.start = (self.start + n) % N;
        self.len -= n;
        n
    }

    /// The writer is done: no more bytes will come.
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// Closed and drained: the reader has reached end of stream.
    pub fn at_eof(&self) -> bool {
        self.closed && self.len == 0
    }

    /// Whether the writer closed it.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Bytes waiting to be read.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Nothing waiting to be read.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes ever written into it.
    pub fn total_written(&self) -> usize {
        self.total
    }
}
