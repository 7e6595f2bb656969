//! A blocking driver over any `Read + Write` stream (feature `std`).
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

use crate::driver::{decide_on, tcp_target};
use crate::{ClientRequest, CloseCode, Config, Connection, Event, Outgoing, Request, Response};
use std::boxed::Box;
use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Instant as StdInstant;

pub use crate::driver::{Decision, Error};

/// Bytes asked of the stream per read.
const READ_CHUNK: usize = 64 << 10;

/// A connection driven over a blocking or non-blocking stream.
#[derive(Debug)]
pub struct WebSocket<S> {
    conn: Connection,
    stream: S,
    epoch: StdInstant,
    /// The transport ended or failed; no more reads or writes.
    transport_done: bool,
    /// `Event::Closed` was returned.
    closed_returned: bool,
}

impl<S: Read + Write> WebSocket<S> {
    /// Drives `conn` over `stream` (for a connection whose handshake happened
    /// elsewhere, build `conn` with [`Connection::from_upgrade`]).
    pub fn from_connection(conn: Connection, stream: S) -> Self {
        WebSocket {
            conn,
            stream,
            epoch: StdInstant::now(),
            transport_done: false,
            closed_returned: false,
        }
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
    pub fn flush(&mut self) -> Result<(), Error> {
        while !self.transport_done {
            if self.conn.pending_output().is_empty() {
                return match self.stream.flush() {
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    r => r.map_err(Error::Io),
                };
            }
            // Header and payload chunks in one vectored write: no small
            // header segment left waiting on Nagle and a delayed ACK.
            let mut slices = [io::IoSlice::new(&[]); 16];
            let mut count = 0;
            for (slot, chunk) in slices.iter_mut().zip(self.conn.output_chunks()) {
                *slot = io::IoSlice::new(chunk);
                count += 1;
            }
            match self.stream.write_vectored(&slices[..count]) {
                Ok(0) => return Err(self.transport_failed(io::Error::from(ErrorKind::WriteZero))),
                Ok(n) => self.conn.consume_output(n),
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
    /// nothing is there yet. On a blocking stream, set a read timeout on the
    /// socket if the close timeout must fire while the peer is silent.
    pub fn read(&mut self) -> Result<Event, Error> {
        loop {
            self.flush_queued()?;
            let now = self.now();
            self.conn.handle_timeout(now);
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
            let buf = self.conn.receive_buf();
            let start = buf.len();
            buf.resize(start + READ_CHUNK, 0);
            let result = self.stream.read(&mut buf[start..]);
            let n = *result.as_ref().unwrap_or(&0);
            self.conn.receive_buf().truncate(start + n);
            match result {
                Ok(0) => {
                    self.transport_done = true;
                    self.conn.receive_eof();
                }
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    // A due timer (the close timeout) may fire before the caller polls again.
                    let now = self.now();
                    self.conn.handle_timeout(now);
                    if self.conn.poll_timeout().is_some_and(|d| d <= now) {
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

    /// Sends a message (text or binary, borrowed or owned: see
    /// [`Outgoing`]) and writes what the stream takes now.
    pub fn send<'a>(&mut self, message: impl Into<Outgoing<'a>>) -> Result<(), Error> {
        self.conn.send(message)?;
        self.flush_queued()
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
pub fn accept<S: Read + Write>(stream: S) -> Result<WebSocket<S>, Error> {
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
pub fn accept_with<S: Read + Write>(
    stream: S,
    config: Config,
    decide: impl FnMut(&Request) -> Decision,
) -> Result<WebSocket<S>, Error> {
    let mut ws = WebSocket::from_connection(Connection::server(config), stream);
    ws.handshake(decide)?;
    Ok(ws)
}

/// Client side: connects to a `ws://` URL over TCP and runs the handshake.
/// Returns the OPEN socket and the server's response.
pub fn connect(url: &str) -> Result<(WebSocket<TcpStream>, Box<Response>), Error> {
    let (request, host, port) = tcp_target(url)?;
    let stream = TcpStream::connect((host.as_str(), port))?;
    let _ = stream.set_nodelay(true);
    connect_with(stream, request, Config::default())
}

/// Client side over any stream (for example a TLS stream): sends `request`
/// and runs the handshake.
pub fn connect_with<S: Read + Write>(
    stream: S,
    request: ClientRequest,
    config: Config,
) -> Result<(WebSocket<S>, Box<Response>), Error> {
    let conn = Connection::client(request, config)?;
    let mut ws = WebSocket::from_connection(conn, stream);
    let response = ws.handshake(|_| Decision::Accept(crate::Accept::new()))?;
    response.map(|r| (ws, r)).ok_or(Error::NotUpgraded)
}
