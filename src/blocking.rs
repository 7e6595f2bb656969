//! A blocking driver over any `Read + Write` stream (feature `std`; the
//! stream implements [`Transport`], as `TcpStream` does).
//!
//! [`WebSocket`] moves bytes between a stream and a [`Connection`] and
//! passes the time in; every protocol decision stays in the machine. It
//! works with blocking sockets and with non-blocking ones: a `WouldBlock`
//! from the stream comes back as `Err(Error::Io(e))` with
//! `e.kind() == WouldBlock`, so a game loop can poll once per frame.
//!
//! [`accept_with`] and [`connect`] run the handshake to its end and need a
//! blocking stream. A server on non-blocking sockets wraps
//! `Connection::server(config)` with [`WebSocket::from_connection`] and
//! answers [`Event::Request`] / [`Event::HttpRequest`] from [`WebSocket::read`]
//! through `connection_mut().accept(..)` / `.reject(..)` / `.respond(..)`
//! (as `examples/chat.rs` does). [`WebSocket::send`] writes at once; to
//! batch (a broadcast), queue with `connection_mut().send(..)` and call
//! [`WebSocket::flush`] once. Keep calling `read` until it returns
//! `Err(Error::Closed)`, so the last bytes (a close reply, a served page) are
//! written before the stream is dropped.
//!
//! ```no_run
//! use wsmachine::blocking;
//! use wsmachine::{Event, Message};
//!
//! let listener = std::net::TcpListener::bind("127.0.0.1:9001")?;
//! for stream in listener.incoming() {
//!     let mut ws = blocking::accept(stream?)?;
//!     loop {
//!         match ws.read()? {
//!             Event::Text(t) => ws.send(Message::Text(t))?,
//!             Event::Binary(b) => ws.send(b)?,
//!             Event::Closed(_) => break,
//!             _ => {}
//!         }
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::driver::{decide_on, tcp_target, tls_or_io};
use crate::{ClientRequest, CloseCode, Config, Connection, Event, Outgoing, Request, Response};
use core::cell::RefCell;
use core::time::Duration;
use std::boxed::Box;
use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Instant as StdInstant;
use std::vec::Vec;

pub use crate::driver::{DEFAULT_HIGH_WATER_MARK, Decision, Error};

/// Bytes asked of the stream per read: small enough that the read stays in
/// cache while the machine copies the messages out of it, large enough for
/// a 16 KiB message and its header (the tokio driver's size, see there).
const READ_CHUNK: usize = 32 << 10;

/// Writes `parts` in order to `stream` (vectored) until all is written or
/// it fails; returns the count written. The failure (`WouldBlock` too) is
/// put in `failed`; `Ok(0)` is one (`WriteZero`).
fn write_now<S: Write>(stream: &mut S, parts: [&[u8]; 2], failed: &mut Option<io::Error>) -> usize {
    let total = parts[0].len() + parts[1].len();
    let mut done = 0;
    while done < total {
        let (first, second) = crate::driver::unwritten(parts, done);
        match stream.write_vectored(&[io::IoSlice::new(first), io::IoSlice::new(second)]) {
            Ok(0) => {
                *failed = Some(ErrorKind::WriteZero.into());
                break;
            }
            Ok(n) => done += n.min(total - done),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                *failed = Some(e);
                break;
            }
        }
    }
    done
}

std::thread_local! {
    /// The read buffer of every connection this thread drives: bytes are
    /// read here and handed to the machine, which copies them in (unmasking
    /// the payload of the frame being read as it goes), so an idle
    /// connection holds no read buffer of its own, and 10,000 connections
    /// polled by one thread share one.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A stream the blocking driver can bound a read on in time, so that the
/// machine's deadlines (the handshake timeout, the close timeout) fire
/// while the peer is silent, even on a blocking stream.
///
/// Implemented for `TcpStream` (and Unix sockets) through their read
/// timeouts. For another stream, implement it with its own timeout, or
/// take the default (`impl Transport for MyStream {}`), which bounds
/// nothing: deadlines then fire only when a read returns (which is at once
/// on a non-blocking stream).
pub trait Transport: Read + Write {
    /// Bounds each following read to `timeout` (`None`: unbounded). A read
    /// that times out returns `WouldBlock` or `TimedOut`.
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let _ = timeout;
        Ok(())
    }
}

impl Transport for TcpStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
}

#[cfg(unix)]
impl Transport for std::os::unix::net::UnixStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        std::os::unix::net::UnixStream::set_read_timeout(self, timeout)
    }
}

/// A rustls stream (feature `rustls`): the read timeout goes to the socket
/// under it, so deadlines fire while a TLS peer is silent. A read that
/// times out in the middle of a TLS record keeps what it read; the next
/// read goes on from there.
#[cfg(feature = "rustls")]
impl<C, T, D> Transport for rustls::StreamOwned<C, T>
where
    C: core::ops::DerefMut + core::ops::Deref<Target = rustls::ConnectionCommon<D>>,
    T: Transport,
    D: rustls::SideData,
{
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.sock.set_read_timeout(timeout)
    }
}

/// The stream [`connect`] opens: TCP, or TLS over TCP for a `wss://` URL
/// (feature `rustls`). It reads and writes through TLS when there is TLS;
/// [`MaybeTlsStream::tcp`] is the socket under it, for socket options.
#[derive(Debug)]
#[non_exhaustive]
pub enum MaybeTlsStream {
    /// A `ws://` connection.
    Plain(TcpStream),
    /// A `wss://` connection (boxed: a rustls session is large, a plain
    /// connection need not carry its size).
    #[cfg(feature = "rustls")]
    Rustls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl MaybeTlsStream {
    /// The TCP socket (under TLS, if any).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            MaybeTlsStream::Plain(tcp) => tcp,
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(tls) => &tls.sock,
        }
    }

    /// Whether the connection runs over TLS.
    pub fn is_tls(&self) -> bool {
        !matches!(self, MaybeTlsStream::Plain(_))
    }

    /// Sets the socket's read timeout (`TcpStream::set_read_timeout`). The
    /// driver sets it too, from the machine's deadlines: for a wake-up
    /// interval of your own use [`WebSocket::set_read_timeout`].
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.tcp().set_read_timeout(timeout)
    }

    /// Puts the socket in non-blocking mode or out of it
    /// (`TcpStream::set_nonblocking`); TLS works over either.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.tcp().set_nonblocking(nonblocking)
    }
}

impl Read for MaybeTlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            MaybeTlsStream::Plain(tcp) => tcp.read(buf),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(tls) => tls.read(buf),
        }
    }
}

impl Write for MaybeTlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            MaybeTlsStream::Plain(tcp) => tcp.write(buf),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(tls) => tls.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            MaybeTlsStream::Plain(tcp) => tcp.write_vectored(bufs),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(tls) => tls.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            MaybeTlsStream::Plain(tcp) => tcp.flush(),
            #[cfg(feature = "rustls")]
            MaybeTlsStream::Rustls(tls) => tls.flush(),
        }
    }
}

impl Transport for MaybeTlsStream {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        MaybeTlsStream::set_read_timeout(self, timeout)
    }
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).set_read_timeout(timeout)
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        (**self).set_read_timeout(timeout)
    }
}

/// Reads once from `stream` into this thread's read buffer and hands what
/// came to `conn`. Returns how many bytes were read.
fn read_into<S: Read>(stream: &mut S, conn: &mut Connection) -> io::Result<usize> {
    let read = |buf: &mut Vec<u8>, stream: &mut S, conn: &mut Connection| {
        if buf.len() < READ_CHUNK {
            buf.resize(READ_CHUNK, 0);
        }
        let n = stream.read(buf)?;
        // A stream claiming more than it was given is broken, not a reason to panic.
        let bytes = buf.get(..n).ok_or_else(|| io::Error::from(ErrorKind::InvalidData))?;
        conn.receive(bytes);
        Ok(n)
    };
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => read(&mut buf, stream, conn),
        // A stream whose own read drives another connection on this thread.
        Err(_) => read(&mut Vec::new(), stream, conn),
    })
}

/// How far the read timeout set on the stream may be from the wait until
/// the next deadline before it is set again: a timer fires at most this
/// late on a blocking stream (a read that wakes up early just waits again),
/// and a busy connection, whose keepalive deadline moves with every read,
/// does not pay a system call per read.
fn timeout_slack(wait: Duration) -> Duration {
    (wait / 10).max(Duration::from_millis(100))
}

/// A connection driven over a blocking or non-blocking stream.
#[derive(Debug)]
pub struct WebSocket<S> {
    conn: Connection,
    stream: S,
    epoch: StdInstant,
    /// The transport ended or failed; no more reads or writes.
    transport_done: bool,
    /// Bytes were written since the stream was last flushed.
    unflushed: bool,
    /// `Event::Closed` was returned.
    closed_returned: bool,
    /// Output bytes above which reading waits for the transport.
    high_water: usize,
    /// The read timeout last set on the stream.
    read_timeout: Option<Duration>,
    /// The caller's bound on a read ([`WebSocket::set_read_timeout`]).
    user_timeout: Option<Duration>,
    /// The read timeout set is the machine's deadline (not the caller's).
    deadline_bound: bool,
}

impl<S: Transport> WebSocket<S> {
    /// Drives `conn` over `stream` (for a connection whose handshake happened
    /// elsewhere, build `conn` with [`Connection::from_upgrade`]).
    pub fn from_connection(conn: Connection, stream: S) -> Self {
        WebSocket {
            conn,
            stream,
            epoch: StdInstant::now(),
            transport_done: false,
            unflushed: false,
            closed_returned: false,
            high_water: DEFAULT_HIGH_WATER_MARK,
            read_timeout: None,
            user_timeout: None,
            deadline_bound: false,
        }
    }

    /// Output bytes above which [`WebSocket::read`] reads nothing until the
    /// transport has taken them (default [`DEFAULT_HIGH_WATER_MARK`]):
    /// backpressure runs both ways, so a peer that sends pings (or anything
    /// that is answered) but never reads cannot make the output grow. On a
    /// blocking stream writes wait anyway; on a non-blocking one `read`
    /// returns `WouldBlock` meanwhile.
    ///
    /// The gate is for the single loop this driver serves, where reading is
    /// what makes output (an echo, a reply per request) and the
    /// application's own sends through [`WebSocket::connection_mut`] are
    /// held back by nothing else. Against a peer that also stops reading
    /// while it writes, both sides can wait on each other: raise the mark
    /// (`usize::MAX` turns the gate off; [`Config::max_output_buffer`]
    /// still bounds the output) when the peer is such a one. The tokio
    /// driver, whose sink holds the application's sends back, reads on.
    pub fn high_water_mark(&self) -> usize {
        self.high_water
    }

    /// When the machine's next deadline is due, on the clock of
    /// `std::time::Instant` (`None`: no deadline, or one too far to
    /// represent). A loop over many non-blocking sockets waits in
    /// `poll`/`epoll` at most until the earliest of these, then calls
    /// [`WebSocket::read`] on the connections that are ready or due.
    pub fn deadline(&self) -> Option<StdInstant> {
        self.conn
            .poll_timeout()
            .and_then(|d| self.epoch.checked_add(d.since_epoch()))
    }

    /// Sets [`WebSocket::high_water_mark`].
    pub fn set_high_water_mark(&mut self, bytes: usize) {
        self.high_water = bytes;
    }

    /// Bounds each blocking read to at most `timeout` (`None`: only the
    /// machine's deadlines bound it); a read that waits that long returns
    /// `WouldBlock`, so a loop can look at other work (as
    /// `examples/client.rs` looks at stdin). Use this rather than the
    /// socket's own read timeout, which the driver sets from the deadlines.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.user_timeout = timeout.filter(|t| !t.is_zero());
    }

    /// Bounds the next read by the machine's next deadline (with a little
    /// slack, see `timeout_slack`) or the caller's read timeout, whichever
    /// is sooner, or unbounds it when there is neither.
    fn bound_read(&mut self, now: crate::Instant) -> io::Result<()> {
        let wait = self
            .conn
            .poll_timeout()
            .map(|deadline| deadline.since_epoch().saturating_sub(now.since_epoch()));
        // Due already: the loop handles it before reading.
        if wait.is_some_and(|w| w.is_zero()) {
            return Ok(());
        }
        self.deadline_bound = match (wait, self.user_timeout) {
            (Some(w), Some(u)) => w <= u,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let wanted = match (wait, self.user_timeout) {
            (Some(w), Some(u)) if u < w => Some(u),
            (Some(w), _) => {
                if self.read_timeout.is_some_and(|set| set.abs_diff(w) <= timeout_slack(w)) {
                    return Ok(());
                }
                Some(w)
            }
            (None, u) => u,
        };
        if wanted != self.read_timeout {
            self.stream.set_read_timeout(wanted)?;
            self.read_timeout = wanted;
        }
        Ok(())
    }

    /// The machine, to query state or use calls not mirrored here.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The machine, mutably. Output it queues is written by the next
    /// [`WebSocket::flush`], `send` or `read`.
    pub fn connection_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The stream, mutably (for socket options).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Gives back the stream.
    pub fn into_inner(self) -> S {
        self.stream
    }

    fn now(&self) -> crate::Instant {
        crate::Instant::from_duration(self.epoch.elapsed())
    }

    /// Writes queued output until done or the stream would block.
    ///
    /// Writes are not bounded by the machine's deadlines: on a blocking
    /// socket whose peer stops reading, a write waits until the kernel's
    /// buffer drains. Give such a socket a write timeout
    /// (`TcpStream::set_write_timeout`); a write that times out ends the
    /// transport (the connection closes with 1006).
    pub fn flush(&mut self) -> Result<(), Error> {
        while !self.transport_done {
            if self.conn.pending_output().is_empty() {
                if !self.unflushed {
                    return Ok(());
                }
                return match self.stream.flush() {
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Ok(()) => {
                        self.unflushed = false;
                        Ok(())
                    }
                    Err(e) => Err(Error::Io(e)),
                };
            }
            // Header and payload chunks in one vectored write: no small
            // header segment left waiting on Nagle and a delayed ACK.
            let front = self.conn.pending_output();
            let written = if front.len() == self.conn.buffered_amount() {
                // One chunk: a plain write, no slice array to fill.
                self.stream.write(front)
            } else {
                let mut slices = [io::IoSlice::new(&[]); 16];
                let mut count = 0;
                for (slot, chunk) in slices.iter_mut().zip(self.conn.output_chunks()) {
                    *slot = io::IoSlice::new(chunk);
                    count += 1;
                }
                self.stream.write_vectored(&slices[..count])
            };
            match written {
                Ok(0) => return Err(self.transport_failed(io::Error::from(ErrorKind::WriteZero))),
                Ok(n) => {
                    self.conn.consume_output(n);
                    self.unflushed = true;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Err(Error::Io(e)),
                Err(e) => return Err(self.transport_failed(e)),
            }
        }
        Ok(())
    }

    fn transport_failed(&mut self, e: io::Error) -> Error {
        self.transport_done = true;
        self.conn.receive_eof();
        Error::Io(e)
    }

    /// Flushes, tolerating `WouldBlock` (the bytes stay queued) and, once
    /// CLOSED was reported, a transport the peer already closed.
    fn flush_queued(&mut self) -> Result<(), Error> {
        match self.flush() {
            Err(e) if e.is_would_block() => Ok(()),
            Err(Error::Io(_)) if self.closed_returned => Ok(()),
            r => r,
        }
    }

    /// The next event: a message, a ping or pong, the peer's close, and
    /// finally `Event::Closed`. Protocol failures come as
    /// `Err(Error::Failed(..))` (then `Event::Closed`); afterwards
    /// `Err(Error::Closed)`. Writes pending output (answers, pongs) first.
    ///
    /// On a non-blocking stream, returns `Err(Error::Io(WouldBlock))` when
    /// nothing is there yet. On a blocking stream, each read is bounded by
    /// the machine's next deadline ([`Transport::set_read_timeout`]), so
    /// the handshake and close timeouts fire while the peer is silent.
    pub fn read(&mut self) -> Result<Event, Error> {
        // The hot path: an event the machine can give from what it already
        // holds, when nothing waits to be written, returns at once: no clock
        // to read, no stream call. Time is passed in and output written on
        // the way to the next read (below), once per read.
        if !self.unflushed && self.conn.buffered_amount() == 0 {
            if let Some(result) = self.read_buffered() {
                return result;
            }
        }
        loop {
            // Pass the time in first (a timer may queue a frame: a keepalive
            // ping, a close), then write what is queued.
            let now = self.now();
            self.conn.handle_timeout(now);
            self.flush_queued()?;
            if let Some(event) = self.conn.poll_event() {
                return match event {
                    Event::Error(e) => {
                        // Write what the failure queued (a close frame, or an
                        // HTTP error answer) before reporting it.
                        self.flush_queued()?;
                        Err(Error::Failed(e))
                    }
                    Event::Closed(info) => {
                        self.closed_returned = true;
                        // Write the last frames (our close reply) before reporting the end.
                        self.flush_queued()?;
                        Ok(Event::Closed(info))
                    }
                    other => Ok(other),
                };
            }
            // Over once the transport is gone, or once CLOSED and it is our
            // turn to close it (a client waits for the server's end of stream,
            // up to the close timeout: RFC 6455 §7.1.1).
            if self.transport_done || (self.closed_returned && self.conn.should_close_transport()) {
                return Err(Error::Closed);
            }
            if self.conn.buffered_amount() > self.high_water {
                // The transport is not taking our output (the flush above
                // would block): read nothing more until it does.
                return Err(Error::Io(io::Error::from(ErrorKind::WouldBlock)));
            }
            if let Err(e) = self.bound_read(now) {
                return Err(self.transport_failed(e));
            }
            let started = StdInstant::now();
            match read_into(&mut self.stream, &mut self.conn) {
                Ok(0) => {
                    self.transport_done = true;
                    self.conn.receive_eof();
                }
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    // The read timeout set from a deadline ran out (a
                    // blocking stream), or a deadline is due: go round, so
                    // the timer fires and its events are returned. Otherwise
                    // the caller's read timeout ran out, or it is a
                    // non-blocking stream with nothing there yet.
                    // (Ours only if the read waited for most of it: a
                    // non-blocking stream answers at once, and going round
                    // then would spin until the deadline.)
                    let ours =
                        self.deadline_bound && self.read_timeout.is_some_and(|t| started.elapsed() >= t / 10 * 9);
                    let now = self.now();
                    if ours || self.conn.poll_timeout().is_some_and(|d| d <= now) {
                        continue;
                    }
                    return Err(Error::Io(io::Error::from(ErrorKind::WouldBlock)));
                }
                Err(e) => {
                    self.transport_done = true;
                    self.conn.receive_eof();
                    // After CLOSED a reset (the peer closed first) is just the end.
                    if self.closed_returned {
                        return Err(Error::Closed);
                    }
                    return Err(Error::Io(e));
                }
            }
        }
    }

    /// The next event from bytes already received, without reading the
    /// stream: `None` when the next one needs more input (or the
    /// connection is over: [`WebSocket::read`] then says how). A loop over
    /// non-blocking sockets reads once per readiness event with it: one
    /// `read`, then `read_buffered` until `None`, then [`WebSocket::flush`]
    /// (after a short read, reading again would only find `WouldBlock`).
    /// Time is not passed in and nothing is written, except what a failure
    /// or the end queued, as `read` does.
    ///
    /// ```no_run
    /// # use wsmachine::blocking::WebSocket;
    /// # fn f(ws: &mut WebSocket<std::net::TcpStream>) -> Result<(), wsmachine::blocking::Error> {
    /// // The socket is readable:
    /// let mut next = Some(ws.read());
    /// while let Some(event) = next {
    ///     match event {
    ///         Ok(event) => println!("{event:?}"),
    ///         Err(e) if e.is_would_block() => break,
    ///         Err(e) => return Err(e),
    ///     }
    ///     next = ws.read_buffered();
    /// }
    /// ws.flush()
    /// # }
    /// ```
    pub fn read_buffered(&mut self) -> Option<Result<Event, Error>> {
        if self.closed_returned {
            return None;
        }
        Some(match self.conn.poll_event()? {
            Event::Error(e) => self.flush_queued().and(Err(Error::Failed(e))),
            Event::Closed(info) => {
                self.closed_returned = true;
                self.flush_queued().map(|()| Event::Closed(info))
            }
            other => Ok(other),
        })
    }

    /// Sends a message (text or binary, borrowed or owned: see
    /// [`Outgoing`]) and writes what the stream takes now.
    ///
    /// A long borrowed payload a server sends while nothing else is queued
    /// goes straight to the stream ([`Connection::send_direct`]), without
    /// being copied into the output first.
    pub fn send<'a>(&mut self, message: impl Into<Outgoing<'a>>) -> Result<(), Error> {
        if self.transport_done {
            self.conn.send(message)?;
            return self.flush_queued();
        }
        let mut failed = None;
        let mut wrote = 0;
        let (conn, stream) = (&mut self.conn, &mut self.stream);
        conn.send_direct(message, |parts| {
            wrote = write_now(stream, parts, &mut failed);
            wrote
        })?;
        if wrote > 0 {
            self.unflushed = true;
        }
        match failed {
            // The rest stays queued, as after a flush that would block.
            Some(e) if e.kind() == ErrorKind::WouldBlock => Ok(()),
            Some(e) => Err(self.transport_failed(e)),
            None => self.flush_queued(),
        }
    }

    /// Sends a ping.
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.conn.ping(payload)?;
        self.flush_queued()
    }

    /// Starts the closing handshake; keep calling [`WebSocket::read`] until
    /// `Event::Closed` to finish it.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.conn.close(code, reason)?;
        self.flush_queued()
    }

    /// Runs the opening handshake to its end (the stream must block).
    fn handshake(&mut self, mut decide: impl FnMut(&Request) -> Decision) -> Result<Option<Box<Response>>, Error> {
        loop {
            let event = self.read()?;
            match decide_on(&mut self.conn, event, &mut decide)? {
                Some(Event::Open { response, .. }) => return Ok(response),
                Some(Event::Closed(_)) => return Err(Error::NotUpgraded),
                _ => {}
            }
        }
    }
}

/// Server side: reads the upgrade request from `stream` and accepts it (no
/// subprotocol). Plain HTTP requests get 426.
pub fn accept<S: Transport>(stream: S) -> Result<WebSocket<S>, Error> {
    accept_with(stream, Config::default(), |_| Decision::Accept(crate::Accept::new()))
}

/// Server side, deciding: `decide(request)` returns the accept (subprotocol,
/// extensions, headers) or a response (a rejection, or a page for a plain
/// HTTP request: [`Request::is_upgrade`] tells them apart). Returns the OPEN
/// socket, or `Err(Error::NotUpgraded)` once a non-101 answer is written.
///
/// ```no_run
/// use wsmachine::blocking::{self, Decision};
/// use wsmachine::{Accept, Config, HttpResponse};
/// let listener = std::net::TcpListener::bind("127.0.0.1:9001")?;
/// let (tcp, _) = listener.accept()?;
/// let ws = blocking::accept_with(tcp, Config::default(), |request| {
///     match (request.is_upgrade(), request.path.as_str()) {
///         (true, "/chat") => Decision::Accept(Accept::new()),
///         (false, "/") => Decision::Respond(HttpResponse::new(200).body("a page")),
///         _ => Decision::Respond(HttpResponse::new(404)),
///     }
/// });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn accept_with<S: Transport>(
    stream: S,
    config: Config,
    decide: impl FnMut(&Request) -> Decision,
) -> Result<WebSocket<S>, Error> {
    let mut ws = WebSocket::from_connection(Connection::server(config), stream);
    ws.handshake(decide)?;
    Ok(ws)
}

/// Client side: connects to a `ws://` URL over TCP, or to a `wss://` URL
/// over TLS (feature `rustls`, trusting Mozilla's roots:
/// `tls::TlsConnector::new`), and runs the
/// handshake. Returns the OPEN socket and the server's response. Without the
/// `rustls` feature a `wss://` URL is `Err(Error::TlsNotSupported)`.
///
/// Each address the host resolves to is tried for at most the handshake
/// timeout (`Config::handshake_timeout`, 10 s), which then bounds the TLS
/// handshake, and then the WebSocket handshake.
pub fn connect(url: &str) -> Result<(WebSocket<MaybeTlsStream>, Box<Response>), Error> {
    let request = ClientRequest::from_url(url)?;
    open(request, Config::default(), None, None)
}

/// Client side, through `proxy` (HTTP `CONNECT` or SOCKS5) when it is
/// given, directly otherwise: opens the tunnel to the URL's host and port,
/// then runs the handshake over it, through TLS for a `wss://` URL (feature
/// `rustls`, Mozilla's roots). The whole (TCP connect, tunnel) is bounded by
/// the handshake timeout, as `connect` is, and so is the TLS handshake
/// after it. Take the proxy from the environment, curl's way, with
/// [`Proxy::from_env`](crate::proxy::Proxy::from_env):
///
/// ```no_run
/// use wsmachine::blocking;
/// use wsmachine::proxy::Proxy;
/// let url = "ws://echo.example/";
/// let proxy = Proxy::from_env(url)?;
/// let (ws, _response) = blocking::connect_via(url, proxy.as_ref())?;
/// # let _ = ws;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn connect_via(
    url: &str,
    proxy: Option<&crate::proxy::Proxy>,
) -> Result<(WebSocket<MaybeTlsStream>, Box<Response>), Error> {
    let request = ClientRequest::from_url(url)?;
    open(request, Config::default(), proxy, None)
}
/// Client side with a TLS configuration of one's own (feature `rustls`):
/// connects to `request`'s host and port, over TLS with `tls` for a
/// `wss://` request (over TCP for `ws://`), and runs the handshake with
/// `config`. The TCP connect, the TLS handshake and the WebSocket handshake
/// are each bounded by `config.handshake_timeout`. A certificate that is not
/// trusted or not valid for the host is `Err(Error::Tls(..))`.
///
/// ```no_run
/// use wsmachine::blocking;
/// use wsmachine::tls::{self, TlsConnector};
/// use wsmachine::{ClientRequest, Config};
///
/// let mut roots = tls::rustls::RootCertStore::empty();
/// for ca in tls::load_certs("ca.pem")? {
///     roots.add(ca)?;
/// }
/// let tls = TlsConnector::with_roots(roots)?;
/// let request = ClientRequest::from_url("wss://localhost:9443/chat")?.protocol("chat.v1");
/// let (ws, response) = blocking::connect_with_tls(request, Config::default(), &tls)?;
/// # let _ = (ws, response);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "rustls")]
pub fn connect_with_tls(
    request: ClientRequest,
    config: Config,
    tls: &crate::tls::TlsConnector,
) -> Result<(WebSocket<MaybeTlsStream>, Box<Response>), Error> {
    open(request, config, None, Some(tls))
}

/// Client side with every choice made: `request` (its headers and
/// subprotocols), and [`ConnectOptions`](crate::driver::ConnectOptions)'
/// settings, proxy and TLS configuration. What `connect`, `connect_via` and
/// `connect_with_tls` do with their defaults.
///
/// ```no_run
/// use wsmachine::blocking;
/// use wsmachine::driver::ConnectOptions;
/// use wsmachine::proxy::Proxy;
/// use wsmachine::ClientRequest;
///
/// let url = "ws://echo.example/chat";
/// let request = ClientRequest::from_url(url)?.protocol("chat.v1").header("Authorization", "Bearer t0k3n");
/// let mut options = ConnectOptions::default();
/// options.proxy = Proxy::from_env(url)?;
/// let (ws, response) = blocking::connect_with_options(request, &options)?;
/// # let _ = (ws, response);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn connect_with_options(
    request: ClientRequest,
    options: &crate::driver::ConnectOptions,
) -> Result<(WebSocket<MaybeTlsStream>, Box<Response>), Error> {
    #[cfg(feature = "rustls")]
    let tls = options.tls.as_ref();
    #[cfg(not(feature = "rustls"))]
    let tls = None;
    open(request, options.config.clone(), options.proxy.as_ref(), tls)
}

#[cfg(not(feature = "rustls"))]
type Tls = core::convert::Infallible;
#[cfg(feature = "rustls")]
type Tls = crate::tls::TlsConnector;

/// Connects over TCP, through `proxy` if given, then TLS for `wss://`, and
/// runs the handshake.
fn open(
    request: ClientRequest,
    config: Config,
    proxy: Option<&crate::proxy::Proxy>,
    tls: Option<&Tls>,
) -> Result<(WebSocket<MaybeTlsStream>, Box<Response>), Error> {
    let (host, port) = tcp_target(&request)?;
    let tcp = match proxy {
        None => connect_tcp(&host, port, config.handshake_timeout)?,
        Some(proxy) => {
            let proxy_host = proxy.host.trim_start_matches('[').trim_end_matches(']');
            let mut stream = connect_tcp(proxy_host, proxy.port, config.handshake_timeout)?;
            // The proxy's answer is part of the handshake: bounded the same way.
            crate::driver::tunnel_blocking(&mut stream, proxy, request.host(), port, config.handshake_timeout)?;
            stream
        }
    };
    let stream = if request.is_secure() {
        tls_client(tcp, &host, &config, tls)?
    } else {
        MaybeTlsStream::Plain(tcp)
    };
    connect_with(stream, request, config).map_err(tls_or_io)
}

/// Opens a TCP connection to `host` (an IPv6 address without brackets) and
/// `port`, trying each address it resolves to for at most `timeout`.
fn connect_tcp(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    use std::net::ToSocketAddrs;
    let mut last = io::Error::new(ErrorKind::NotFound, "the host resolved to no address");
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

#[cfg(not(feature = "rustls"))]
fn tls_client(_: TcpStream, _: &str, _: &Config, _: Option<&Tls>) -> Result<MaybeTlsStream, Error> {
    Err(Error::TlsNotSupported)
}

/// The TLS handshake with `host` over `tcp`, bounded by the handshake timeout.
#[cfg(feature = "rustls")]
fn tls_client(tcp: TcpStream, host: &str, config: &Config, tls: Option<&Tls>) -> Result<MaybeTlsStream, Error> {
    let session = match tls {
        Some(tls) => tls.client(host),
        None => crate::tls::TlsConnector::new().and_then(|tls| tls.client(host)),
    }
    .map_err(Error::Tls)?;
    let mut stream = rustls::StreamOwned::new(session, tcp);
    tls_handshake(&mut stream.conn, &mut stream.sock, config.handshake_timeout)?;
    Ok(MaybeTlsStream::Rustls(Box::new(stream)))
}

/// Runs a TLS handshake to its end on a blocking socket, each read and
/// write bounded by what is left of `timeout` (then `Error::Io` with
/// `ErrorKind::TimedOut`). The socket's timeouts are cleared afterwards (the
/// driver sets its own).
#[cfg(feature = "rustls")]
fn tls_handshake<D: rustls::SideData>(
    session: &mut rustls::ConnectionCommon<D>,
    sock: &mut TcpStream,
    timeout: Duration,
) -> Result<(), Error> {
    let timed_out = || Error::Io(io::Error::new(ErrorKind::TimedOut, "the TLS handshake timed out"));
    // `Duration::MAX` (or anything past the clock's range) is never.
    let deadline = StdInstant::now().checked_add(timeout);
    let result = (|| {
        while session.is_handshaking() {
            let left = match deadline {
                Some(at) => match at.checked_duration_since(StdInstant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Err(timed_out()),
                },
                None => None,
            };
            sock.set_read_timeout(left)?;
            sock.set_write_timeout(left)?;
            match session.complete_io(sock) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return Err(timed_out()),
                Err(e) => return Err(Error::from(e)),
            }
        }
        Ok(())
    })();
    let cleared = sock.set_read_timeout(None).and_then(|()| sock.set_write_timeout(None));
    result?;
    cleared.map_err(Error::Io)
}

/// Server side over TLS (feature `rustls`): runs the TLS handshake on
/// `stream` with `tls` (bounded by `config.handshake_timeout`; then
/// `Error::Io` with `ErrorKind::TimedOut`), then the WebSocket handshake as
/// [`accept_with`] does (bounded by the same timeout again). The stream must
/// block. A client that breaks TLS is `Err(Error::Tls(..))`.
///
/// A non-blocking server instead wraps the socket in
/// `rustls::StreamOwned::new(rustls::ServerConnection::new(tls.config().clone())?, tcp)`
/// and drives it with [`WebSocket::from_connection`]: the TLS handshake then
/// runs inside [`WebSocket::read`], and `WouldBlock` comes back as usual (as
/// `examples/chat.rs --tls` does).
///
/// ```no_run
/// use wsmachine::blocking::{self, Decision};
/// use wsmachine::tls::TlsAcceptor;
/// use wsmachine::{Accept, Config};
///
/// let tls = TlsAcceptor::from_pem_files("cert.pem", "key.pem")?;
/// let listener = std::net::TcpListener::bind("127.0.0.1:9443")?;
/// for tcp in listener.incoming() {
///     let tls = tls.clone();
///     std::thread::spawn(move || {
///         let ws = blocking::accept_tls(tcp?, &tls, Config::default(), |_| Decision::Accept(Accept::new()))?;
///         # let _ = ws;
///         Ok::<(), blocking::Error>(())
///     });
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "rustls")]
pub fn accept_tls(
    mut stream: TcpStream,
    tls: &crate::tls::TlsAcceptor,
    config: Config,
    decide: impl FnMut(&Request) -> Decision,
) -> Result<WebSocket<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>, Error> {
    let mut session = tls.server().map_err(Error::Tls)?;
    tls_handshake(&mut session, &mut stream, config.handshake_timeout)?;
    accept_with(rustls::StreamOwned::new(session, stream), config, decide).map_err(tls_or_io)
}

/// Client side over any stream (for example a TLS stream): sends `request`
/// and runs the handshake.
pub fn connect_with<S: Transport>(
    stream: S,
    request: ClientRequest,
    config: Config,
) -> Result<(WebSocket<S>, Box<Response>), Error> {
    let conn = Connection::client(request, config)?;
    let mut ws = WebSocket::from_connection(conn, stream);
    let response = ws.handshake(|_| Decision::Accept(crate::Accept::new()))?;
    response.map(|r| (ws, r)).ok_or(Error::NotUpgraded)
}
