//! The connection state machine: CONNECTING → OPEN → CLOSING → CLOSED.
//!
//! A [`Connection`] owns the receive buffer, the output queue and the
//! protocol state. It is driven by four kinds of call: feed input
//! ([`Connection::receive`]), drain events ([`Connection::poll_event`]),
//! drain output ([`Connection::pending_output`] / [`Connection::consume_output`]),
//! and time ([`Connection::poll_timeout`] / [`Connection::handle_timeout`]).
//! Application calls (`send`, `ping`, `close`, `accept`, `reject`) only
//! queue frames.
//!
//! One concern per file: `lifecycle.rs` holds every state transition (the
//! table is there), `timers.rs` the deadlines, `keepalive.rs` the keepalive
//! pings and the idle timeout, `opening.rs` the handshake
//! step and the server's decisions, `receive.rs` input and what frames mean,
//! `reader.rs` the frame reader, `send.rs` the send path, `prepared.rs`
//! messages framed once for many connections (broadcast), `output.rs` the
//! output queue.

mod keepalive;
mod lifecycle;
mod opening;
mod output;
mod prepared;
mod reader;
mod receive;
mod send;
mod timers;
#[cfg(feature = "tokio")]
pub(crate) use send::DIRECT_FROM;

use crate::config::Config;
use crate::error::Error;
use crate::event::Event;
use crate::extension::Extension;
use crate::rng::RandomSource;
use crate::time::Instant;
use crate::types::{ReadyState, Role};
use crate::upgrade::{ClientRequest, ClientUpgrade, Upgrade};
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::BytesMut;
use lifecycle::{Lifecycle, Stage, Transition};
use opening::ClientOffer;
use output::Output;
pub use prepared::PreparedMessage;
use reader::Reader;
use send::Sending;
use timers::{TimerKind, Timers};

/// A WebSocket connection as a pure state machine. See the crate docs for a
/// complete driving loop.
pub struct Connection {
    role: Role,
    config: Config,
    life: Lifecycle,
    timers: Timers,
    inbuf: BytesMut,
    reader: Reader,
    events: VecDeque<Event>,
    out: Output,
    rng: Option<Box<dyn RandomSource>>,
    /// The data message being sent in fragments, if any.
    sending: Option<Sending>,
    /// The extension negotiated in the handshake, if any.
    extension: Option<Box<dyn Extension>>,
    /// The payload of the automatic pong not yet queued: it waits while
    /// other output does, and a newer ping replaces it (RFC 6455 §5.5.3),
    /// so a peer that pings and never reads holds one pong, not millions.
    pending_pong: Option<bytes::Bytes>,
    /// Keepalive's ping in flight and the last round-trip time.
    keepalive: keepalive::Keepalive,
    /// The transport took output since the drain watch last looked
    /// (`keepalive.rs`).
    output_taken: bool,
    /// The receive buffer's length when `receive_buf` handed it out, to see
    /// whether bytes came that way.
    handed_out: Option<usize>,
}

impl core::fmt::Debug for Connection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("state", &self.life.state())
            .field("buffered_amount", &self.out.len())
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl Connection {
    fn new(role: Role, config: Config, life: Lifecycle, rng: Option<Box<dyn RandomSource>>) -> Self {
        Connection {
            role,
            config,
            life,
            timers: Timers::new(),
            inbuf: BytesMut::new(),
            reader: Reader::new(role),
            events: VecDeque::new(),
            out: Output::default(),
            rng,
            sending: None,
            extension: None,
            pending_pong: None,
            keepalive: keepalive::Keepalive::default(),
            output_taken: false,
            handed_out: None,
        }
    }

    /// A server connection in CONNECTING, waiting for the upgrade request.
    pub fn server(config: Config) -> Self {
        let life = Lifecycle::new(ReadyState::Connecting, Stage::AwaitRequest { scanned: 0 });
        let mut conn = Self::new(Role::Server, config, life, None);
        conn.timers.start(TimerKind::Handshake, conn.config.handshake_timeout);
        conn
    }

    /// A client connection in CONNECTING, its upgrade request already queued
    /// as output. Keys come from the operating system's random source; if
    /// it fails, so does this ([`Error::RandomSource`]).
    ///
    /// ```
    /// use wsmachine::{ClientRequest, Config, Connection, ReadyState};
    /// let request = ClientRequest::from_url("ws://example.com/chat")?;
    /// let conn = Connection::client(request, Config::default())?;
    /// assert_eq!(conn.state(), ReadyState::Connecting);
    /// assert!(conn.pending_output().starts_with(b"GET /chat HTTP/1.1\r\n"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "std")]
    pub fn client(request: ClientRequest, config: Config) -> Result<Self, Error> {
        let rng = crate::rng::ChaCha20Rng::from_os().map_err(|_| Error::RandomSource)?;
        Self::client_with_rng(request, config, rng)
    }

    /// A client connection whose handshake and masking keys come from `rng`
    /// (RFC 6455 §10.3: it must be unpredictable outside tests).
    pub fn client_with_rng(
        request: ClientRequest,
        config: Config,
        rng: impl RandomSource + 'static,
    ) -> Result<Self, Error> {
        request.check()?;
        let mut rng: Box<dyn RandomSource> = Box::new(rng);
        // RFC 6455 §4.1: a random 16-byte nonce, base64-encoded.
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        let key = STANDARD.encode(nonce);
        let mut head = Vec::new();
        request.encode(&key, &mut head);
        let offer = Box::new(ClientOffer {
            accept: crate::handshake::accept_key(key.as_bytes()),
            protocols: request.protocols().to_vec(),
            extensions: request.extensions().clone(),
        });
        let life = Lifecycle::new(ReadyState::Connecting, Stage::AwaitResponse { offer, scanned: 0 });
        let mut conn = Self::new(Role::Client, config, life, Some(rng));
        conn.out.extend(&head);
        conn.timers.start(TimerKind::Handshake, conn.config.handshake_timeout);
        Ok(conn)
    }

    /// A server connection already OPEN, for an upgrade an HTTP server did
    /// (hyper, axum): the subprotocol and extensions [`Upgrade`] negotiated
    /// are in use. No [`Event::Open`] is produced.
    pub fn from_upgrade(upgrade: Upgrade, config: Config) -> Self {
        let mut conn = Self::open_server(config);
        conn.extension = upgrade.negotiated.extension;
        conn
    }

    /// A server connection already OPEN, nothing negotiated (no
    /// subprotocol, no extension). No [`Event::Open`] is produced.
    pub fn open_server(config: Config) -> Self {
        let mut conn = Self::new(
            Role::Server,
            config,
            Lifecycle::new(ReadyState::Connecting, Stage::Done),
            None,
        );
        conn.apply(Transition::Opened);
        conn
    }

    /// A client connection already OPEN, nothing negotiated, masking keys
    /// from `rng` (for example `ChaCha20Rng::from_os()?`). No
    /// [`Event::Open`] is produced.
    pub fn open_client(config: Config, rng: impl RandomSource + 'static) -> Self {
        let mut conn = Self::new(
            Role::Client,
            config,
            Lifecycle::new(ReadyState::Connecting, Stage::Done),
            Some(Box::new(rng)),
        );
        conn.apply(Transition::Opened);
        conn
    }

    /// A client connection already OPEN, for a handshake done elsewhere:
    /// WebSocket over HTTP/2's extended CONNECT (RFC 8441), whose answer
    /// [`ExtendedConnect::check_response`](crate::ExtendedConnect::check_response)
    /// checked. The subprotocol and extension agreed on are in use; masking
    /// keys come from `rng` (RFC 6455 §10.3: unpredictable outside tests).
    /// No [`Event::Open`] is produced.
    pub fn from_client_upgrade(upgrade: ClientUpgrade, config: Config, rng: impl RandomSource + 'static) -> Self {
        let mut conn = Self::open_client(config, rng);
        conn.extension = upgrade.negotiated.extension;
        conn
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The state, numbered like `WebSocket.readyState`.
    pub fn state(&self) -> ReadyState {
        self.life.state()
    }

    /// Bytes queued for the transport and not yet consumed
    /// (`WebSocket.bufferedAmount`).
    #[inline]
    pub fn buffered_amount(&self) -> usize {
        self.out.len()
    }

    /// Gives back the spare capacity of the receive buffer, the output queue
    /// and the event queue.
    ///
    /// These buffers keep their high-water size, so that steady traffic
    /// allocates nothing per message. After a burst of large messages, a
    /// server holding many connections can call this (for example when a
    /// connection goes quiet) to return to the idle footprint. Bytes still
    /// buffered (a partial frame, unsent output) are kept, moved into
    /// buffers of their size; messages already handed out own their memory
    /// and are not affected. Costs a copy of what is buffered.
    ///
    /// ```
    /// use wsmachine::{Config, Connection};
    /// let mut conn = Connection::open_server(Config::default());
    /// conn.send(&vec![0u8; 1 << 20])?;
    /// let n = conn.buffered_amount();
    /// conn.consume_output(n); // written
    /// conn.shrink_buffers(); // the 1 MiB output buffer is freed
    /// # Ok::<(), wsmachine::Error>(())
    /// ```
    pub fn shrink_buffers(&mut self) {
        self.inbuf = output::shrunk(&self.inbuf);
        self.out.shrink();
        self.events.shrink_to_fit();
    }

    // ----- output -------------------------------------------------------------

    /// The oldest bytes waiting for the transport (empty when none). Write
    /// them, then call [`Connection::consume_output`] with how many were
    /// written.
    ///
    /// ```
    /// use wsmachine::{Config, Connection};
    /// let mut conn = Connection::open_server(Config::default());
    /// conn.send("hi")?;
    /// let mut wire = Vec::new();
    /// while !conn.pending_output().is_empty() {
    ///     let chunk = conn.pending_output();
    ///     wire.extend_from_slice(chunk); // a socket may take less
    ///     let n = chunk.len();
    ///     conn.consume_output(n);
    /// }
    /// assert_eq!(wire, b"\x81\x02hi");
    /// # Ok::<(), wsmachine::Error>(())
    /// ```
    #[inline]
    pub fn pending_output(&self) -> &[u8] {
        self.out.front()
    }

    /// Every queued chunk in order, for a vectored write; then
    /// [`Connection::consume_output`] with how many bytes were written.
    pub fn output_chunks(&self) -> impl Iterator<Item = &[u8]> {
        self.out.chunks()
    }

    /// Marks `n` bytes of output as written to the transport (`n` past
    /// what is queued is clamped).
    #[inline]
    pub fn consume_output(&mut self, n: usize) {
        self.out.consume(n);
        self.output_taken |= n > 0;
        if self.out.len() == 0 {
            // Nothing waits: nothing to watch.
            self.timers.stop(TimerKind::Drain);
            // The automatic pong that waited behind the output goes now.
            self.flush_pong();
        }
    }

    /// Whether the driver should now close the transport: CLOSED and all
    /// output written, and it is this side's turn (RFC 6455 §7.1.1: the
    /// server closes first; a client waits for it, up to the close timeout).
    pub fn should_close_transport(&self) -> bool {
        self.life.close_transport() && self.out.len() == 0
    }

    // ----- time ------------------------------------------------------------------

    /// The next deadline at which [`Connection::handle_timeout`] must be
    /// called, if any: sleep until then (or until input comes), then call
    /// it. A timer that a call just started (for example the close timeout
    /// of [`Connection::close`]) is due at once: the `handle_timeout(now)`
    /// that follows sets its deadline from `now`.
    ///
    /// ```
    /// use wsmachine::{CloseCode, Config, Connection, Instant};
    /// let mut conn = Connection::open_server(Config { ping_interval: None, ..Config::default() });
    /// assert_eq!(conn.poll_timeout(), None); // no keepalive: nothing to wait for
    /// conn.close(CloseCode::NORMAL, "")?;
    /// let now = Instant::from_millis(500);
    /// assert!(conn.poll_timeout().is_some_and(|t| t <= now)); // due: pass the time in
    /// conn.handle_timeout(now);
    /// assert_eq!(conn.poll_timeout(), Some(Instant::from_millis(5_500))); // the 5 s close timeout
    /// # Ok::<(), wsmachine::Error>(())
    /// ```
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let next = self.timers.next();
        if self.drain_unwatched() {
            // Output waits and the watch on it starts at the next call.
            return Some(next.map_or(self.timers.now(), |t| t.min(self.timers.now())));
        }
        next
    }

    /// Tells the machine the time is `now`: starts the timers that calls
    /// started, fires the ones due (their events, such as a close timeout's
    /// `Event::Error` and `Event::Closed`, come from
    /// [`Connection::poll_event`]). Time passed in never goes backwards: an
    /// earlier `now` than before counts as the later one.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.on_timers(now);
    }
}

/// permessage-deflate (RFC 7692), the one place the connection names it.
#[cfg(feature = "deflate")]
impl Connection {
    /// The permessage-deflate parameters in use, if it was negotiated.
    pub fn deflate(&self) -> Option<crate::deflate::DeflateParams> {
        self.extension.as_ref().and_then(|e| e.deflate_params())
    }

    /// Whether this connection holds compressor (`.0`) and decompressor
    /// (`.1`) state right now: both are created at the first compressed
    /// message and, under no-context-takeover, freed after every message.
    pub fn deflate_state_allocated(&self) -> (bool, bool) {
        self.extension.as_ref().map_or((false, false), |e| e.state_allocated())
    }
}
