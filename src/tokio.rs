//! An async driver for tokio (feature `tokio`).
//!
//! [`WebSocketStream`] moves bytes between any `AsyncRead + AsyncWrite`
//! stream and a [`Connection`], and passes tokio's time in; every protocol
//! decision stays in the machine. It follows the convention users know from
//! tokio-tungstenite: a [`Stream`] of what arrives and a [`Sink`] of
//! [`Message`]s.
//!
//! - **What the stream yields.** `Result<`[`Event`]`, `[`Error`]`>`, the
//!   machine's own events (no second message type to translate into): whole
//!   messages ([`Event::Text`], [`Event::Binary`]), [`Event::Fragment`] in
//!   streaming mode, [`Event::Ping`] (already answered when `auto_pong` is
//!   on), [`Event::Pong`], and last
//!   [`Event::Closed`]. A protocol failure comes as `Err(Error::Failed(..))`, a
//!   transport failure as `Err(Error::Io(..))`; [`Event::Closed`] still
//!   follows. After `Closed` the stream goes on until the transport is done
//!   (a server closes it at once; a client waits for the server to close it,
//!   up to the close timeout, RFC 6455 §7.1.1), then ends with `None`.
//!   [`Event::Request`], [`Event::HttpRequest`] and [`Event::Open`] are seen
//!   only when a connection still in CONNECTING is driven through
//!   [`WebSocketStream::from_connection`]; [`accept`] and [`connect`] consume
//!   them.
//! - **What the sink takes.** [`Message`]s. `poll_ready` is the
//!   backpressure: it is pending while more than
//!   [`WebSocketStream::high_water_mark`] bytes wait for the transport, and
//!   writes meanwhile. `poll_close` sends a close frame (1000) if the
//!   connection is OPEN and writes it; keep reading the stream to see the
//!   handshake finish. [`WebSocketStream::send`] does what `SinkExt::send`
//!   does (it is what `ws.send(..)` calls), for borrowed payloads too. Pings
//!   and close frames with a code go through [`WebSocketStream::ping`] and
//!   [`WebSocketStream::close`].
//! - **Reading writes.** Polling the stream also writes queued output, so
//!   automatic pongs and close replies go out even when nothing is sent.
//! - **Time.** The machine's deadlines run on a `tokio::time::Sleep` (the
//!   runtime needs its time driver, as `#[tokio::main]` has); they fire while
//!   the stream is polled. A deadline tokio cannot represent (a
//!   `Duration::MAX` timeout) is never.
//! - **Splitting.** [`WebSocketStream::split`] gives a [`WriteHalf`] (the
//!   sink) and a [`ReadHalf`] (the stream) for two tasks; they share the
//!   connection behind a mutex.
//!
//! An echo server:
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use wsmachine::{Event, Message};
//!
//! # async fn run() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
//! loop {
//!     let (tcp, _) = listener.accept().await?;
//!     tokio::spawn(async move {
//!         let mut ws = wsmachine::tokio::accept(tcp).await?;
//!         while let Some(event) = ws.next().await {
//!             match event? {
//!                 Event::Text(text) => ws.send(Message::Text(text)).await?,
//!                 Event::Binary(data) => ws.send(Message::Binary(data)).await?,
//!                 _ => {}
//!             }
//!         }
//!         Ok::<(), wsmachine::tokio::Error>(())
//!     });
//! }
//! # }
//! ```
//!
//! And a client:
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use wsmachine::{CloseCode, Event, Message};
//!
//! # async fn run() -> Result<(), wsmachine::tokio::Error> {
//! let (mut ws, _response) = wsmachine::tokio::connect("ws://127.0.0.1:9001/").await?;
//! ws.send(Message::Text("hello".into())).await?;
//! ws.close(CloseCode::NORMAL, "bye").await?;
//! while let Some(event) = ws.next().await {
//!     if let Event::Text(text) = event? {
//!         println!("{text}");
//!     }
//! }
//! # Ok(()) }
//! ```

use crate::driver::{decide_on, tcp_target, tls_or_io};
use crate::{
    ClientRequest, CloseCode, CloseInfo, Config, Connection, Event, Message, Outgoing, ReadyState, Request, Response,
};
use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use ::tokio::net::TcpStream;
use ::tokio::time::{Instant as TokioInstant, Sleep};
use bytes::BufMut;
use core::fmt;
use core::future::{Future, poll_fn};
use core::mem::MaybeUninit;
use core::pin::Pin;
use core::task::{Context, Poll, Waker, ready};
use futures_core::{FusedStream, Stream};
use futures_sink::Sink;
use std::boxed::Box;
use std::io::{self, ErrorKind, IoSlice};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Wake;

/// The errors, the server's decision and the default high-water mark of
/// this driver: what every driver shares ([`crate::driver`]).
pub use crate::driver::{DEFAULT_HIGH_WATER_MARK, Decision, Error};

/// Bytes asked of the stream per read into the buffer on the stack: small
/// enough to stay in the first-level cache while the machine takes the
/// messages out of it (in `benches/throughput.rs`, 16 and 32 KiB reads
/// received 64 KiB messages ~20 % faster than 64 KiB reads did), and large
/// enough for a 16 KiB message and its header in one read. The payload of a
/// long frame is read straight into its own buffer instead.
const READ_CHUNK: usize = 32 << 10;

/// The most asked of the stream per read straight into a frame's buffer:
/// each piece is unmasked in place right after it lands, while it is in the
/// second-level cache. (In `benches/throughput.rs`, 1 MiB messages read in
/// 16 KiB pieces came ~30 % slower than in 64 KiB or larger ones: the copy
/// into a buffer not yet in cache is what costs, and it is faster in large
/// pieces.)
const DIRECT_READ_MAX: usize = 128 << 10;

/// Most chunks handed to one vectored write.
const MAX_IO_SLICES: usize = 16;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The tasks waiting on a shared connection (polled from two tasks): one
/// reading, one writing. The transport and the timer are then polled with a
/// waker that wakes both, because a transport keeps only one waker per
/// direction and both halves write (the reader writes pongs and close
/// replies). A connection one task polls needs none of this.
#[derive(Default)]
struct Waiters {
    reader: Mutex<Option<Waker>>,
    writer: Mutex<Option<Waker>>,
}

impl Waiters {
    fn register(slot: &Mutex<Option<Waker>>, waker: &Waker) {
        let mut slot = lock(slot);
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }
}

impl Wake for Waiters {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        for slot in [&self.reader, &self.writer] {
            let waker = lock(slot).clone();
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

/// Which half waits: the stream of events, or the sink.
#[derive(Clone, Copy)]
enum Side {
    Read,
    Write,
}

/// Whether `message` may go through [`Driver::send_now`] (written
/// straight to the transport, see [`Connection::send_direct`]): a borrowed
/// payload long enough for the copy it saves to matter. Others are queued
/// at once, without the extra poll.
fn writes_direct(message: &Outgoing<'_>) -> bool {
    match message {
        Outgoing::Text(t) => t.len() >= crate::connection::DIRECT_FROM,
        Outgoing::Binary(b) => b.len() >= crate::connection::DIRECT_FROM,
        Outgoing::Owned(_) => false,
    }
}

/// Writes `parts` in order to `io` as far as it takes them without waiting
/// (until it returns `Pending`), vectored where `io` writes vectored;
/// returns the count written. A failure is put in `failed` (and ends the
/// writing); `Ok(0)` is one (`WriteZero`).
fn write_now<T: AsyncWrite + ?Sized>(
    mut io: Pin<&mut T>,
    cx: &mut Context<'_>,
    parts: [&[u8]; 2],
    failed: &mut Option<io::Error>,
) -> usize {
    let total = parts[0].len() + parts[1].len();
    let mut done = 0;
    while done < total {
        let (first, second) = crate::driver::unwritten(parts, done);
        let result = if io.is_write_vectored() && !second.is_empty() {
            io.as_mut()
                .poll_write_vectored(cx, &[IoSlice::new(first), IoSlice::new(second)])
        } else {
            io.as_mut().poll_write(cx, first)
        };
        match result {
            Poll::Pending => break,
            Poll::Ready(Ok(0)) => {
                *failed = Some(ErrorKind::WriteZero.into());
                break;
            }
            Poll::Ready(Ok(n)) => done += n.min(total - done),
            Poll::Ready(Err(e)) if e.kind() == ErrorKind::Interrupted => {}
            Poll::Ready(Err(e)) => {
                *failed = Some(e);
                break;
            }
        }
    }
    done
}

/// Why writing stopped: what the write paths return (two words, returned
/// in registers; the public [`Error`] is several, and moving it through
/// every poll of a small send cost measurably). Becomes an [`Error`] at the
/// public methods.
#[derive(Debug)]
enum WriteStop {
    /// The transport failed.
    Io(io::Error),
    /// The transport is done: the connection is over.
    Closed,
}

impl From<WriteStop> for Error {
    fn from(stop: WriteStop) -> Error {
        match stop {
            WriteStop::Io(e) => Error::Io(e),
            WriteStop::Closed => Error::Closed,
        }
    }
}

/// The connection, its transport and its timer: everything both halves share.
struct Driver<T> {
    conn: Connection,
    io: T,
    /// tokio time at the machine's `Instant` zero.
    epoch: TokioInstant,
    /// Armed at the machine's deadline; made on first use (inside the runtime).
    sleep: Option<Pin<Box<Sleep>>>,
    /// The latest time passed in to the machine.
    passed: crate::Instant,
    /// The clock was read during the current [`Driver::poll_shared`] (one
    /// call, no waiting inside): the time it gave still holds for what
    /// starts in the rest of it.
    clock_read: bool,
    /// The waker the sleep was polled pending with at its current deadline:
    /// it will wake that one, so while polls come with a waker that wakes
    /// the same task it needs no polling until then (a registration is
    /// atomic operations, once per read otherwise).
    sleep_waker: Option<Waker>,
    /// Until a second waker shows up, the one task's own waker (see
    /// [`Driver::poll_shared`]); `None` before the first poll and once
    /// shared.
    direct: Option<Waker>,
    /// Polled from more than one task (split, here or with
    /// `StreamExt::split`): the transport and timer see the shared waker.
    shared: bool,
    waiters: Arc<Waiters>,
    /// Wakes every waiter; the waker the transport and timer see once
    /// `shared`. (`None` only while lent out to a poll.)
    waker: Option<Waker>,
    high_water: usize,
    /// The transport ended or failed: no more reads or writes.
    transport_done: bool,
    /// Bytes were written since the transport was last flushed.
    unflushed: bool,
    /// `Event::Closed` came out of the machine; returned once its output is written.
    closed: Option<CloseInfo>,
    /// `Event::Closed` was returned.
    closed_returned: bool,
    /// The stream returned `None`.
    finished: bool,
}

impl<T> fmt::Debug for Driver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketStream")
            .field("conn", &self.conn)
            .field("high_water", &self.high_water)
            .field("transport_done", &self.transport_done)
            .field("unflushed", &self.unflushed)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Driver<T> {
    fn new(conn: Connection, io: T) -> Self {
        let waiters = Arc::new(Waiters::default());
        Driver {
            conn,
            io,
            epoch: TokioInstant::now(),
            sleep: None,
            sleep_waker: None,
            direct: None,
            shared: false,
            passed: crate::Instant::default(),
            clock_read: false,
            waker: Some(Waker::from(waiters.clone())),
            waiters,
            high_water: DEFAULT_HIGH_WATER_MARK,
            transport_done: false,
            unflushed: false,
            closed: None,
            closed_returned: false,
            finished: false,
        }
    }

    fn now(&mut self) -> crate::Instant {
        self.clock_read = true;
        crate::Instant::from_duration(TokioInstant::now().saturating_duration_since(self.epoch))
    }

    /// Passes the time in (this sets the deadline of a timer a call started).
    fn tick(&mut self) {
        let now = self.now();
        self.pass(now);
    }

    fn pass(&mut self, now: crate::Instant) {
        self.passed = self.passed.max(now);
        self.conn.handle_timeout(now);
    }

    /// Passes the time in when a deadline is due, and arms the sleep at the
    /// machine's next deadline. The clock is read only when the machine
    /// reports a deadline due by the time last passed in (a timer that a
    /// call or a read just started is due at once: the keepalive, restarted
    /// by every read), once per [`Driver::poll_shared`]; otherwise the sleep says when the next
    /// one is due. (An echo reads the clock once, not at every poll.)
    /// Firing may set a new deadline (the next keepalive ping), so this goes
    /// round until the sleep is armed and pending (a wakeup is registered),
    /// a few rounds at most (a zero timeout is due at every call and fires
    /// once per call).
    ///
    /// `cx` is the one [`Driver::poll_shared`] hands out.
    fn poll_timer(&mut self, cx: &mut Context<'_>) {
        for _round in 0..4 {
            let Some(deadline) = self.conn.poll_timeout() else {
                return;
            };
            if deadline <= self.passed {
                if self.clock_read {
                    self.conn.handle_timeout(self.passed);
                } else {
                    self.tick();
                }
                continue;
            }
            // A deadline tokio cannot represent is never.
            let Some(at) = self.epoch.checked_add(deadline.since_epoch()) else {
                return;
            };
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(::tokio::time::sleep_until(at)));
            // A later deadline (the keepalive moves on with every read) does
            // not re-arm a sleep that has not fired: it fires early, finds
            // nothing due and is re-armed then, once per interval rather
            // than once per read.
            if sleep.deadline() != at && (at < sleep.deadline() || sleep.is_elapsed()) {
                sleep.as_mut().reset(at);
                self.sleep_waker = None;
            }
            if self.sleep_waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) && !sleep.is_elapsed() {
                return;
            }
            let armed = sleep.deadline();
            if sleep.as_mut().poll(cx).is_pending() {
                self.sleep_waker = Some(cx.waker().clone());
                return;
            }
            self.sleep_waker = None;
            // tokio says the time it was armed for passed; its clock and ours
            // may round differently.
            let armed = crate::Instant::from_duration(armed.saturating_duration_since(self.epoch));
            let now = self.now().max(armed);
            self.pass(now);
        }
        // Still due after the rounds: be polled again rather than sleep.
        cx.waker().wake_by_ref();
    }

    fn transport_failed(&mut self, e: io::Error) -> WriteStop {
        self.transport_done = true;
        self.conn.receive_eof();
        WriteStop::Io(e)
    }

    /// Writes queued output until at most `target` bytes wait; with
    /// `target == 0` also flushes the transport.
    fn poll_write_until(&mut self, cx: &mut Context<'_>, target: usize) -> Poll<Result<(), WriteStop>> {
        loop {
            if self.conn.buffered_amount() <= target {
                if target > 0 || self.transport_done {
                    return Poll::Ready(Ok(()));
                }
                if !self.unflushed {
                    return Poll::Ready(Ok(()));
                }
                return match ready!(Pin::new(&mut self.io).poll_flush(cx)) {
                    Ok(()) => {
                        self.unflushed = false;
                        Poll::Ready(Ok(()))
                    }
                    Err(e) => Poll::Ready(Err(self.transport_failed(e))),
                };
            }
            if self.transport_done {
                return Poll::Ready(Err(WriteStop::Closed));
            }
            let front = self.conn.pending_output();
            let result = if front.len() == self.conn.buffered_amount() || !self.io.is_write_vectored() {
                // One chunk (most small messages: header and payload in one
                // buffer): a plain write, no slice array to fill.
                Pin::new(&mut self.io).poll_write(cx, front)
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_IO_SLICES];
                let mut n = 0;
                for (slot, chunk) in slices.iter_mut().zip(self.conn.output_chunks()) {
                    *slot = IoSlice::new(chunk);
                    n += 1;
                }
                Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n])
            };
            match ready!(result) {
                Ok(0) => return Poll::Ready(Err(self.transport_failed(ErrorKind::WriteZero.into()))),
                Ok(n) => {
                    self.conn.consume_output(n);
                    self.unflushed = true;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(self.transport_failed(e))),
            }
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event, Error>>> {
        // The hot path: an event the machine can give from what it already
        // holds, when nothing waits to be written first, returns at once:
        // no waker to register (nothing here can return `Pending`), no clock
        // to read, no transport call. Time is passed in and output written
        // on the way to the next read (below), once per read.
        if !self.finished && self.closed.is_none() && !self.unflushed && self.conn.buffered_amount() == 0 {
            match self.conn.poll_event() {
                Some(Event::Error(e)) => return Poll::Ready(Some(Err(Error::Failed(e)))),
                Some(Event::Closed(info)) => self.closed = Some(info),
                Some(other) => return Poll::Ready(Some(Ok(other))),
                None => {}
            }
        }
        self.poll_shared(Side::Read, cx, Self::poll_next_io)
    }

    /// [`Driver::poll_next`] past the hot path: time, output, events, input.
    fn poll_next_io(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event, Error>>> {
        loop {
            if self.finished {
                return Poll::Ready(None);
            }
            // Pass the time in first (a timer may queue a frame: a keepalive
            // ping, a close), then write pending output (answers, pongs, close
            // replies).
            self.poll_timer(cx);
            let written = self.poll_write_until(cx, 0);
            if let Some(info) = self.closed.take() {
                // Our close reply is written (or cannot be) before CLOSED is reported.
                if written.is_pending() {
                    self.closed = Some(info);
                    return Poll::Pending;
                }
                self.closed_returned = true;
                return Poll::Ready(Some(Ok(Event::Closed(info))));
            }
            if let Poll::Ready(Err(WriteStop::Io(e))) = written {
                if !self.closed_returned {
                    return Poll::Ready(Some(Err(Error::Io(e))));
                }
            }
            if let Some(event) = self.conn.poll_event() {
                match event {
                    Event::Error(e) => return Poll::Ready(Some(Err(Error::Failed(e)))),
                    Event::Closed(info) => self.closed = Some(info),
                    other => return Poll::Ready(Some(Ok(other))),
                }
                continue;
            }
            // Over once the transport is gone, or once CLOSED and it is our
            // turn to close it (RFC 6455 §7.1.1).
            if self.transport_done || (self.closed_returned && self.conn.should_close_transport()) {
                if !self.transport_done {
                    // A failure to shut down changes nothing now.
                    let _ = ready!(Pin::new(&mut self.io).poll_shutdown(cx));
                    self.transport_done = true;
                }
                self.finished = true;
                return Poll::Ready(None);
            }
            match ready!(self.poll_read_in(cx)) {
                Ok(0) => {
                    self.transport_done = true;
                    self.conn.receive_eof();
                }
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.transport_done = true;
                    self.conn.receive_eof();
                    // After CLOSED a reset (the peer closed first) is just the end.
                    if !self.closed_returned {
                        return Poll::Ready(Some(Err(Error::Io(e))));
                    }
                }
            }
        }
    }

    /// Reads once from the transport into the machine; `Ok(0)` is the end
    /// of the stream. The payload of a long frame goes straight into the
    /// buffer reserved for it ([`Connection::payload_buf`], as much as is
    /// due; the machine unmasks it in place); anything else is read into a
    /// buffer on the stack (not zeroed) and handed to
    /// [`Connection::receive`], which copies short messages straight into
    /// their own allocations. Either way an idle connection holds no read
    /// buffer, and nothing read is ever left outside the machine (no await
    /// between the read and the machine taking it).
    fn poll_read_in(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if let Some((buf, want)) = self.conn.payload_buf() {
            let mut limited = BufMut::limit(buf, want.min(DIRECT_READ_MAX));
            let read = ::tokio::io::AsyncReadExt::read_buf(&mut self.io, &mut limited);
            return core::pin::pin!(read).poll(cx);
        }
        let mut storage = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut buf = ReadBuf::uninit(&mut storage);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut buf))?;
        let n = buf.filled().len();
        if n > 0 {
            self.conn.receive(buf.filled());
        }
        Poll::Ready(Ok(n))
    }

    /// Polls `f` with the waker the transport and timer are to see.
    ///
    /// While one task polls the connection (the same waker every time),
    /// that is its own waker: nothing to swap or register. Once a second
    /// waker shows up (the halves of a split, here or `StreamExt::split`, in
    /// two tasks), the connection is shared for good: the first task is
    /// woken to poll again the shared way, and from then on `f` is polled
    /// with the shared waker (the one the transport and timer see, which
    /// wakes both halves: a transport keeps one waker per direction and
    /// both halves write). Only when that poll is pending is the task's
    /// waker registered as `side`'s waiter, and `f` polled once more: a
    /// wakeup that came between the first poll and the registration is not
    /// lost, and the common case, ready at once, costs no registration and
    /// no waker clone.
    fn poll_shared<R>(
        &mut self,
        side: Side,
        cx: &mut Context<'_>,
        mut f: impl FnMut(&mut Self, &mut Context<'_>) -> Poll<R>,
    ) -> Poll<R> {
        // A time read in an earlier call is stale.
        self.clock_read = false;
        if !self.shared {
            match &self.direct {
                Some(w) if w.will_wake(cx.waker()) => return f(self, cx),
                None => {
                    self.direct = Some(cx.waker().clone());
                    return f(self, cx);
                }
                Some(_) => self.share(),
            }
        }
        // Lent out for the polls (rebuilt if a poll that had it panicked).
        let waker = self.waker.take().unwrap_or_else(|| Waker::from(self.waiters.clone()));
        let shared = &mut Context::from_waker(&waker);
        let mut result = f(self, shared);
        if result.is_pending() {
            let slot = match side {
                Side::Read => &self.waiters.reader,
                Side::Write => &self.waiters.writer,
            };
            Waiters::register(slot, cx.waker());
            // Polled again at once: a time the first poll read still holds.
            result = f(self, shared);
        }
        self.waker = Some(waker);
        result
    }

    /// From now on the transport and timer see the shared waker; the task
    /// that polled alone so far is woken, so that it polls again and is
    /// registered as a waiter (what it registered with the transport would
    /// otherwise wake it alone, or be replaced).
    fn share(&mut self) {
        self.shared = true;
        if let Some(w) = self.direct.take() {
            w.wake();
        }
    }

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WriteStop>> {
        // Room below the high-water mark: nothing to wait for.
        if !self.transport_done && self.conn.buffered_amount() <= self.high_water {
            return Poll::Ready(Ok(()));
        }
        self.poll_shared(Side::Write, cx, |d, cx| {
            if d.transport_done {
                return Poll::Ready(Err(WriteStop::Closed));
            }
            let high_water = d.high_water;
            d.poll_write_until(cx, high_water)
        })
    }

    fn start_send(&mut self, message: Message) -> Result<(), Error> {
        self.conn.send(message).map_err(Error::Refused)
    }

    /// Sends `message` through [`Connection::send_direct`]: a long borrowed
    /// payload (server, nothing queued) is written straight to the
    /// transport, as far as it takes it now, instead of being copied into
    /// the output first. `None` (taken already) does nothing.
    fn send_now(&mut self, cx: &mut Context<'_>, message: Option<Outgoing<'_>>) -> Result<(), Error> {
        let Some(message) = message else { return Ok(()) };
        if self.transport_done {
            return self.conn.send(message).map_err(Error::Refused);
        }
        let mut failed = None;
        let mut wrote = 0;
        let (conn, io) = (&mut self.conn, &mut self.io);
        conn.send_direct(message, |parts| {
            wrote = write_now(Pin::new(io), cx, parts, &mut failed);
            wrote
        })
        .map_err(Error::Refused)?;
        if wrote > 0 {
            self.unflushed = true;
        }
        match failed {
            Some(e) => Err(self.transport_failed(e).into()),
            None => Ok(()),
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WriteStop>> {
        self.poll_shared(Side::Write, cx, |d, cx| d.poll_write_until(cx, 0))
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.conn.state() == ReadyState::Open {
            self.close(CloseCode::NORMAL, "")?;
        }
        self.poll_flush(cx).map_err(Error::from)
    }

    fn ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.conn.ping(payload).map_err(Error::Refused)
    }

    fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.conn.close(code, reason)?;
        // The close timeout runs from now.
        self.tick();
        Ok(())
    }
}

/// A WebSocket connection driven over an async stream `T`
/// (`T: AsyncRead + AsyncWrite + Unpin`): a [`Stream`] of
/// `Result<Event, Error>` and a [`Sink`] of [`Message`]s. See the
/// [module docs](self) for what each yields and takes.
pub struct WebSocketStream<T> {
    driver: Driver<T>,
}

impl<T> fmt::Debug for WebSocketStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.driver.fmt(f)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> WebSocketStream<T> {
    /// Drives `conn` over `io`. For a connection whose handshake happened
    /// elsewhere (an HTTP server's upgrade), build `conn` with
    /// [`Connection::from_upgrade`].
    pub fn from_connection(conn: Connection, io: T) -> Self {
        WebSocketStream {
            driver: Driver::new(conn, io),
        }
    }

    /// The machine, to query its state or
    /// [`buffered_amount`](Connection::buffered_amount).
    pub fn connection(&self) -> &Connection {
        &self.driver.conn
    }

    /// The machine, mutably, for calls not mirrored here (for example
    /// [`Connection::pong`] or [`Connection::send_fragment`]). What they
    /// queue is written by the next poll of the stream or flush of the sink.
    pub fn connection_mut(&mut self) -> &mut Connection {
        &mut self.driver.conn
    }

    /// The transport.
    pub fn get_ref(&self) -> &T {
        &self.driver.io
    }

    /// The transport, mutably (for socket options).
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.driver.io
    }

    /// Output bytes above which the sink's `poll_ready` waits (while writing)
    /// before taking another message; default [`DEFAULT_HIGH_WATER_MARK`].
    ///
    /// The stream goes on reading above the mark. What reading queues is
    /// bounded without it (one automatic pong waits in one slot, RFC 6455
    /// §5.5.3, so a peer that pings but never reads cannot make the output
    /// grow), and a reader stopped behind the writer's output would deadlock
    /// against a peer that does not read while it writes (a one-task echo
    /// server awaiting its own send). A peer that writes and never reads is
    /// let go by the keepalive's watch on the output
    /// ([`Config::ping_timeout`](crate::Config::ping_timeout)).
    pub fn high_water_mark(&self) -> usize {
        self.driver.high_water
    }

    /// Sets [`WebSocketStream::high_water_mark`]. With 0, every message is
    /// written out before the next is taken.
    pub fn set_high_water_mark(&mut self, bytes: usize) {
        self.driver.high_water = bytes;
    }

    /// Sends a message and writes it out: what `SinkExt::send` does (wait
    /// while more than the [high-water mark](Self::high_water_mark) is
    /// queued, queue the message, flush), for a borrowed payload as well
    /// (`&str`, `&[u8]`: no `Bytes` to build first; see [`Outgoing`]) and
    /// without the sink's layers. A method of the stream itself, so
    /// `ws.send(..)` calls it even with `SinkExt` in scope.
    ///
    /// ```no_run
    /// # async fn f(ws: &mut wsmachine::tokio::WebSocketStream<tokio::net::TcpStream>) -> Result<(), wsmachine::tokio::Error> {
    /// ws.send("hello").await?; // borrowed text
    /// ws.send(&[1u8, 2, 3][..]).await?; // borrowed binary
    /// ws.send(wsmachine::Message::Binary(bytes::Bytes::from_static(b"owned"))).await?;
    /// # Ok(()) }
    /// ```
    pub async fn send<'a>(&mut self, message: impl Into<Outgoing<'a>>) -> Result<(), Error> {
        poll_fn(|cx| self.driver.poll_ready(cx)).await?;
        let message = message.into();
        if writes_direct(&message) {
            let mut message = Some(message);
            poll_fn(|cx| {
                let driver = &mut self.driver;
                driver.poll_shared(Side::Write, cx, |d, cx| Poll::Ready(d.send_now(cx, message.take())))
            })
            .await?;
        } else {
            self.driver.conn.send(message).map_err(Error::Refused)?;
        }
        poll_fn(|cx| self.driver.poll_flush(cx)).await.map_err(Error::from)
    }

    /// Sends a ping (at most 125 bytes) and writes it.
    pub async fn ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.driver.ping(payload)?;
        poll_fn(|cx| self.driver.poll_flush(cx)).await.map_err(Error::from)
    }

    /// Starts the closing handshake with `code` and `reason` and writes the
    /// close frame. Keep reading the stream to see it finish
    /// ([`Event::Closed`], then `None`). `SinkExt::close` does the same with
    /// 1000 and no reason.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.driver.close(code, reason)?;
        poll_fn(|cx| self.driver.poll_flush(cx)).await.map_err(Error::from)
    }

    /// Splits into a sink half and a stream half, for use from two tasks
    /// (the order of `StreamExt::split`).
    pub fn split(mut self) -> (WriteHalf<T>, ReadHalf<T>) {
        self.driver.share();
        let shared = Arc::new(Mutex::new(self.driver));
        (WriteHalf { shared: shared.clone() }, ReadHalf { shared })
    }

    /// Runs the opening handshake to its end.
    async fn handshake(
        &mut self,
        mut decide: impl FnMut(&Request) -> Decision,
    ) -> Result<Option<Box<Response>>, Error> {
        // A failure is reported once the machine reaches CLOSED, so that the
        // answer it queued (a 400, 426, ...) is written first.
        let mut failure = None;
        loop {
            let event = match poll_fn(|cx| self.driver.poll_next(cx)).await {
                None => return Err(failure.unwrap_or(Error::Closed)),
                Some(Err(e)) => {
                    failure.get_or_insert(e);
                    continue;
                }
                Some(Ok(event)) => event,
            };
            match decide_on(&mut self.driver.conn, event, &mut decide)? {
                Some(Event::Open { response, .. }) => return Ok(response),
                Some(Event::Closed(_)) => return Err(failure.unwrap_or(Error::NotUpgraded)),
                _ => {}
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Stream for WebSocketStream<T> {
    type Item = Result<Event, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().driver.poll_next(cx)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> FusedStream for WebSocketStream<T> {
    fn is_terminated(&self) -> bool {
        self.driver.finished
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocketStream<T> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().driver.poll_ready(cx).map_err(Error::from)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        self.get_mut().driver.start_send(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().driver.poll_flush(cx).map_err(Error::from)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.get_mut().driver.poll_close(cx)
    }
}

/// The sending half of a split [`WebSocketStream`]: a [`Sink`] of
/// [`Message`]s, plus pings and close.
pub struct WriteHalf<T> {
    shared: Arc<Mutex<Driver<T>>>,
}

/// The receiving half of a split [`WebSocketStream`]: a [`Stream`] of
/// `Result<Event, Error>`. It also writes automatic pongs and close replies.
pub struct ReadHalf<T> {
    shared: Arc<Mutex<Driver<T>>>,
}

impl<T> fmt::Debug for WriteHalf<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("WriteHalf").field(&*lock(&self.shared)).finish()
    }
}

impl<T> fmt::Debug for ReadHalf<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReadHalf").field(&*lock(&self.shared)).finish()
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> WriteHalf<T> {
    /// Runs `f` on the machine (to query it, or for calls not mirrored
    /// here); what it queues is written by the next flush or read.
    pub fn with_connection<R>(&self, f: impl FnOnce(&mut Connection) -> R) -> R {
        f(&mut lock(&self.shared).conn)
    }

    /// Sends a message and writes it out, as [`WebSocketStream::send`]
    /// does (`SinkExt::send`, for borrowed payloads too).
    pub async fn send<'a>(&mut self, message: impl Into<Outgoing<'a>>) -> Result<(), Error> {
        poll_fn(|cx| lock(&self.shared).poll_ready(cx)).await?;
        let message = message.into();
        if writes_direct(&message) {
            let mut message = Some(message);
            poll_fn(|cx| {
                lock(&self.shared).poll_shared(Side::Write, cx, |d, cx| Poll::Ready(d.send_now(cx, message.take())))
            })
            .await?;
        } else {
            lock(&self.shared).conn.send(message).map_err(Error::Refused)?;
        }
        poll_fn(|cx| lock(&self.shared).poll_flush(cx))
            .await
            .map_err(Error::from)
    }

    /// Sends a ping (at most 125 bytes) and writes it.
    pub async fn ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        lock(&self.shared).ping(payload)?;
        poll_fn(|cx| lock(&self.shared).poll_flush(cx))
            .await
            .map_err(Error::from)
    }

    /// Starts the closing handshake and writes the close frame; the
    /// [`ReadHalf`] sees it finish.
    pub async fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        lock(&self.shared).close(code, reason)?;
        poll_fn(|cx| lock(&self.shared).poll_flush(cx))
            .await
            .map_err(Error::from)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> ReadHalf<T> {
    /// Runs `f` on the machine (to query it, or for calls not mirrored
    /// here); what it queues is written by the next flush or read.
    pub fn with_connection<R>(&self, f: impl FnOnce(&mut Connection) -> R) -> R {
        f(&mut lock(&self.shared).conn)
    }

    /// Puts the two halves of one stream back together; gives them back if
    /// they are not from the same [`WebSocketStream::split`].
    pub fn reunite(self, write: WriteHalf<T>) -> Result<WebSocketStream<T>, (WriteHalf<T>, ReadHalf<T>)> {
        if !Arc::ptr_eq(&self.shared, &write.shared) {
            return Err((write, self));
        }
        drop(write);
        match Arc::try_unwrap(self.shared) {
            Ok(mutex) => Ok(WebSocketStream {
                driver: mutex.into_inner().unwrap_or_else(PoisonError::into_inner),
            }),
            // Both halves were given; no other owner exists.
            Err(_) => unreachable!("a split stream has exactly two halves"),
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Stream for ReadHalf<T> {
    type Item = Result<Event, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        lock(&self.shared).poll_next(cx)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> FusedStream for ReadHalf<T> {
    fn is_terminated(&self) -> bool {
        lock(&self.shared).finished
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WriteHalf<T> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        lock(&self.shared).poll_ready(cx).map_err(Error::from)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Error> {
        lock(&self.shared).start_send(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        lock(&self.shared).poll_flush(cx).map_err(Error::from)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        lock(&self.shared).poll_close(cx)
    }
}

/// Server side: reads the upgrade request from `stream` and accepts it (no
/// subprotocol). Plain HTTP requests get 426.
pub async fn accept<T: AsyncRead + AsyncWrite + Unpin>(stream: T) -> Result<WebSocketStream<T>, Error> {
    accept_with(stream, Config::default(), |_| Decision::Accept(crate::Accept::new())).await
}

/// Server side, deciding: `decide(request)` returns the accept (subprotocol,
/// extensions, headers) or a response (a rejection, or a page for a plain
/// HTTP request: [`Request::is_upgrade`] tells them apart). Returns the OPEN
/// stream, or `Err(Error::NotUpgraded)` once a non-101 answer is written (a
/// request that breaks the handshake rules gets its 4xx answer, then its
/// error).
pub async fn accept_with<T: AsyncRead + AsyncWrite + Unpin>(
    stream: T,
    config: Config,
    decide: impl FnMut(&Request) -> Decision,
) -> Result<WebSocketStream<T>, Error> {
    let mut ws = WebSocketStream::from_connection(Connection::server(config), stream);
    ws.handshake(decide).await?;
    Ok(ws)
}

/// The stream [`connect`] opens: TCP, or TLS over TCP for a `wss://` URL
/// (feature `rustls`, through tokio-rustls). It reads and writes through
/// TLS when there is TLS; [`MaybeTlsStream::tcp`] is the socket under it.
#[derive(Debug)]
#[non_exhaustive]
pub enum MaybeTlsStream {
    /// A `ws://` connection.
    Plain(TcpStream),
    /// A `wss://` connection (boxed: a rustls session is large, a plain
    /// connection need not carry its size).
    #[cfg(feature = "rustls")]
    Rustls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl MaybeTlsStream {
    /// The TCP socket (under TLS, if any).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            MaybeTlsStream::Plain(tcp) => tcp,
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(tls) => tls.get_ref().0,
        }
    }

    /// Whether the connection runs over TLS.
    pub fn is_tls(&self) -> bool {
        !matches!(self, MaybeTlsStream::Plain(_))
    }
}

impl AsyncRead for MaybeTlsStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTlsStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTlsStream::Plain(tcp) => tcp.is_write_vectored(),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Client side: connects to a `ws://` URL over TCP, or to a `wss://` URL
/// over TLS (feature `rustls`, trusting Mozilla's roots:
/// `tls::TlsConnector::new`), and runs the
/// handshake. Returns the OPEN stream and the server's response. Without
/// the `rustls` feature a `wss://` URL is `Err(Error::TlsNotSupported)`.
///
/// Connecting takes at most the handshake timeout
/// (`Config::handshake_timeout`, 10 s; then `Error::Io` with
/// `ErrorKind::TimedOut`), which then bounds the TLS handshake, and then the
/// WebSocket handshake.
pub async fn connect(url: &str) -> Result<(WebSocketStream<MaybeTlsStream>, Box<Response>), Error> {
    let request = ClientRequest::from_url(url)?;
    open(request, Config::default(), None, None).await
}

/// Client side with a TLS configuration of one's own (feature `rustls`):
/// connects to `request`'s host and port, over TLS with `tls` for a
/// `wss://` request (over TCP for `ws://`), and runs the handshake with
/// `config`. The TCP connect, the TLS handshake and the WebSocket handshake
/// are each bounded by `config.handshake_timeout`. A certificate that is not
/// trusted or not valid for the host is `Err(Error::Tls(..))`.
///
/// ```no_run
/// use wsmachine::tls::{self, TlsConnector};
/// use wsmachine::{ClientRequest, Config};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let mut roots = tls::webpki_roots();
/// for ca in tls::load_certs("ca.pem")? {
///     roots.add(ca)?;
/// }
/// let tls = TlsConnector::with_roots(roots)?;
/// let request = ClientRequest::from_url("wss://localhost:9443/")?;
/// let (ws, _response) = wsmachine::tokio::connect_with_tls(request, Config::default(), &tls).await?;
/// # let _ = ws;
/// # Ok(()) }
/// ```
#[cfg(feature = "rustls")]
pub async fn connect_with_tls(
    request: ClientRequest,
    config: Config,
    tls: &crate::tls::TlsConnector,
) -> Result<(WebSocketStream<MaybeTlsStream>, Box<Response>), Error> {
    open(request, config, None, Some(tls)).await
}

/// Client side with every choice made: `request` (its headers and
/// subprotocols), and [`ConnectOptions`](crate::driver::ConnectOptions)'
/// settings, proxy and TLS configuration. What `connect`, `connect_via` and
/// `connect_with_tls` do with their defaults.
pub async fn connect_with_options(
    request: ClientRequest,
    options: &crate::driver::ConnectOptions,
) -> Result<(WebSocketStream<MaybeTlsStream>, Box<Response>), Error> {
    #[cfg(feature = "rustls")]
    let tls = options.tls.as_ref();
    #[cfg(not(feature = "rustls"))]
    let tls = None;
    open(request, options.config.clone(), options.proxy.as_ref(), tls).await
}

#[cfg(not(feature = "rustls"))]
type Tls = core::convert::Infallible;
#[cfg(feature = "rustls")]
type Tls = crate::tls::TlsConnector;

fn timed_out(what: &str) -> Error {
    Error::Io(io::Error::new(ErrorKind::TimedOut, std::format!("{what} timed out")))
}

/// The TCP connection to `request`'s server (or through `proxy`'s tunnel to
/// it), within `timeout`, with `TCP_NODELAY`; and the host to verify TLS for.
pub(crate) async fn connect_tcp(
    request: &ClientRequest,
    proxy: Option<&crate::proxy::Proxy>,
    timeout: core::time::Duration,
) -> Result<(std::string::String, TcpStream), Error> {
    let (host, port) = tcp_target(request)?;
    let connecting = async {
        let Some(proxy) = proxy else {
            return Ok(TcpStream::connect((host.as_str(), port)).await?);
        };
        let proxy_host = proxy.host.trim_start_matches('[').trim_end_matches(']');
        let mut stream = TcpStream::connect((proxy_host, proxy.port)).await?;
        crate::driver::tunnel_async(&mut stream, proxy, request.host(), port).await?;
        Ok::<_, Error>(stream)
    };
    let tcp = match ::tokio::time::timeout(timeout, connecting).await {
        Ok(connected) => connected?,
        Err(_) => return Err(timed_out("connecting")),
    };
    let _ = tcp.set_nodelay(true);
    Ok((host, tcp))
}

/// Connects over TCP (and TLS for `wss://`) and runs the handshake.
async fn open(
    request: ClientRequest,
    config: Config,
    proxy: Option<&crate::proxy::Proxy>,
    tls: Option<&Tls>,
) -> Result<(WebSocketStream<MaybeTlsStream>, Box<Response>), Error> {
    let (host, tcp) = connect_tcp(&request, proxy, config.handshake_timeout).await?;
    let stream = if request.is_secure() {
        tls_client(tcp, &host, &config, tls).await?
    } else {
        MaybeTlsStream::Plain(tcp)
    };
    connect_with(stream, request, config).await.map_err(tls_or_io)
}

#[cfg(not(feature = "rustls"))]
async fn tls_client(_: TcpStream, _: &str, _: &Config, _: Option<&Tls>) -> Result<MaybeTlsStream, Error> {
    Err(Error::TlsNotSupported)
}

/// The TLS handshake with `host` over `tcp`, bounded by the handshake timeout.
#[cfg(feature = "rustls")]
async fn tls_client(tcp: TcpStream, host: &str, config: &Config, tls: Option<&Tls>) -> Result<MaybeTlsStream, Error> {
    let default;
    let tls = match tls {
        Some(tls) => tls,
        None => {
            default = crate::tls::TlsConnector::new().map_err(Error::Tls)?;
            &default
        }
    };
    let name = crate::tls::server_name(host).map_err(Error::Tls)?;
    let handshake = tokio_rustls::TlsConnector::from(tls.config().clone()).connect(name, tcp);
    match ::tokio::time::timeout(config.handshake_timeout, handshake).await {
        Ok(done) => Ok(MaybeTlsStream::Rustls(Box::new(done?))),
        Err(_) => Err(timed_out("the TLS handshake")),
    }
}

/// Server side over TLS (feature `rustls`): runs the TLS handshake on
/// `stream` with `tls` (bounded by `config.handshake_timeout`; then
/// `Error::Io` with `ErrorKind::TimedOut`), then the WebSocket handshake as
/// [`accept_with`] does (bounded by the same timeout again). A client that
/// breaks TLS is `Err(Error::Tls(..))`.
///
/// ```no_run
/// use futures_util::StreamExt;
/// use wsmachine::tls::TlsAcceptor;
/// use wsmachine::tokio::Decision;
/// use wsmachine::{Accept, Config, Event, Message};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let tls = TlsAcceptor::from_pem_files("cert.pem", "key.pem")?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9443").await?;
/// loop {
///     let (tcp, _) = listener.accept().await?;
///     let tls = tls.clone();
///     tokio::spawn(async move {
///         let accept = |_: &wsmachine::Request| Decision::Accept(Accept::new());
///         let mut ws = wsmachine::tokio::accept_tls(tcp, &tls, Config::default(), accept).await?;
///         while let Some(event) = ws.next().await {
///             if let Event::Text(text) = event? {
///                 ws.send(Message::Text(text)).await?;
///             }
///         }
///         Ok::<(), wsmachine::tokio::Error>(())
///     });
/// }
/// # }
/// ```
#[cfg(feature = "rustls")]
pub async fn accept_tls<T: AsyncRead + AsyncWrite + Unpin>(
    stream: T,
    tls: &crate::tls::TlsAcceptor,
    config: Config,
    decide: impl FnMut(&Request) -> Decision,
) -> Result<WebSocketStream<tokio_rustls::server::TlsStream<T>>, Error> {
    let handshake = tokio_rustls::TlsAcceptor::from(tls.config().clone()).accept(stream);
    let stream = match ::tokio::time::timeout(config.handshake_timeout, handshake).await {
        Ok(done) => done?,
        Err(_) => return Err(timed_out("the TLS handshake")),
    };
    accept_with(stream, config, decide).await.map_err(tls_or_io)
}

/// Client side, through `proxy` (HTTP `CONNECT` or SOCKS5) when it is
/// given, directly otherwise: opens the tunnel to the URL's host and port,
/// then runs the handshake over it, through TLS for a `wss://` URL (feature
/// `rustls`, Mozilla's roots). Connecting and the tunnel take at most the
/// handshake timeout together, as `connect`'s TCP connect does, and so does
/// the TLS handshake after them. Take the proxy from the environment,
/// curl's way, with [`Proxy::from_env`](crate::proxy::Proxy::from_env).
pub async fn connect_via(
    url: &str,
    proxy: Option<&crate::proxy::Proxy>,
) -> Result<(WebSocketStream<MaybeTlsStream>, Box<Response>), Error> {
    let request = ClientRequest::from_url(url)?;
    open(request, Config::default(), proxy, None).await
}

/// Client side over any stream (for example a TLS stream): sends `request`
/// and runs the handshake. Returns the OPEN stream and the server's response.
pub async fn connect_with<T: AsyncRead + AsyncWrite + Unpin>(
    stream: T,
    request: ClientRequest,
    config: Config,
) -> Result<(WebSocketStream<T>, Box<Response>), Error> {
    let conn = Connection::client(request, config)?;
    let mut ws = WebSocketStream::from_connection(conn, stream);
    let response = ws.handshake(|_| Decision::Accept(crate::Accept::new())).await?;
    response.map(|r| (ws, r)).ok_or(Error::NotUpgraded)
}
