//! The connection state machine: CONNECTING → OPEN → CLOSING → CLOSED.
//!
//! A [`Connection`] owns the receive buffer, the output queue and the
//! protocol state. It is driven by four kinds of call: feed input
//! ([`Connection::receive`]), drain events ([`Connection::poll_event`]),
//! drain output ([`Connection::pending_output`] / [`Connection::consume_output`]),
//! and time ([`Connection::poll_timeout`] / [`Connection::handle_timeout`]).
//! Application calls (`send_*`, `ping`, `close`, `accept`, `reject`) only
//! queue frames.
//!
//! Every state change goes through [`Connection::set_state`]; the allowed
//! transitions are listed there.

mod output;
mod reader;

use crate::close::{CloseCode, CloseFrame, MAX_CLOSE_REASON, parse_close};
use crate::config::Config;
use crate::error::{Error, ProtocolError};
use crate::event::{CloseInfo, Compression, DataKind, Event, Message};
use crate::frame::{FrameHeader, MAX_HEADER_LEN, OpCode};
use crate::handshake::server::{Parsed, encode_accept, parse_request};
use crate::handshake::{
    Accept, ClientRequest, HandshakeError, HttpResponse, Request, accept_key, client, find_head_end,
};
use crate::rng::RandomSource;
use crate::time::Instant;
use crate::utf8::Utf8Validator;
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::{Buf, Bytes, BytesMut};
use output::Output;
use reader::{Item, Reader};

/// Which end of the connection this machine is (RFC 6455 §5.1: clients mask,
/// servers do not).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The side that opened the connection and sends the upgrade request.
    Client,
    /// The side that accepted it.
    Server,
}

/// The connection's state, numbered like the browser API's `readyState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ReadyState {
    /// 0: the opening handshake is in progress.
    Connecting = 0,
    /// 1: messages can be sent and received.
    Open = 1,
    /// 2: our close frame is sent; waiting for the peer's.
    Closing = 2,
    /// 3: closed; nothing more is sent or received.
    Closed = 3,
}

/// Where the opening handshake stands.
#[derive(Debug)]
enum Handshake {
    /// Client: request sent, waiting for the response head.
    AwaitResponse { offer: Box<ClientOffer>, scanned: usize },
    /// Server: waiting for the request head.
    AwaitRequest { scanned: usize },
    /// Server: an upgrade request is out as an event; waiting for accept/reject.
    AwaitDecision { key: String, request: Box<Request> },
    /// Server: a plain HTTP request is out as an event; waiting for reject.
    AwaitHttpAnswer,
    /// Done (or never needed).
    Done,
}

/// What a client's request asked for, to check the response against (boxed:
/// an OPEN connection does not carry its size).
#[derive(Debug)]
struct ClientOffer {
    /// The expected `Sec-WebSocket-Accept`.
    accept: String,
    protocols: Vec<String>,
    /// permessage-deflate offers, in order of preference.
    #[cfg(feature = "deflate")]
    deflate: Vec<crate::deflate::DeflateConfig>,
}

/// A timer the caller runs by passing time in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    Off,
    /// Started, but no time has been passed in since: the deadline is set
    /// at the next [`Connection::handle_timeout`].
    Pending(TimerKind),
    At(Instant, TimerKind),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TimerKind {
    /// CLOSING: waiting for the peer's close frame.
    CloseReply,
    /// Client, CLOSED: waiting for the server to close the transport (§7.1.1).
    TransportClose,
}

/// A WebSocket connection as a pure state machine. See the crate docs for a
/// complete driving loop.
pub struct Connection {
    role: Role,
    config: Config,
    state: ReadyState,
    handshake: Handshake,
    inbuf: BytesMut,
    reader: Reader,
    events: VecDeque<Event>,
    out: Output,
    rng: Option<Box<dyn RandomSource>>,
    /// The data message being sent in fragments, if any.
    sending: Option<DataKind>,
    /// Whether that message is compressed (permessage-deflate).
    #[cfg(feature = "deflate")]
    sending_compressed: bool,
    /// The send half of permessage-deflate, when negotiated.
    #[cfg(feature = "deflate")]
    deflater: Option<Box<crate::deflate::Deflater>>,
    sending_utf8: Utf8Validator,
    close_sent: bool,
    timer: Timer,
    /// The transport should be closed once the output is written.
    close_transport: bool,
    /// The transport reached end of stream; no more input will come.
    eof: bool,
}

impl core::fmt::Debug for Connection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("buffered_amount", &self.out.len())
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl Connection {
    fn new(
        role: Role,
        config: Config,
        state: ReadyState,
        handshake: Handshake,
        rng: Option<Box<dyn RandomSource>>,
    ) -> Self {
        Connection {
            role,
            config,
            state,
            handshake,
            inbuf: BytesMut::new(),
            reader: Reader::new(role),
            events: VecDeque::new(),
            out: Output::default(),
            rng,
            sending: None,
            #[cfg(feature = "deflate")]
            sending_compressed: false,
            #[cfg(feature = "deflate")]
            deflater: None,
            sending_utf8: Utf8Validator::new(),
            close_sent: false,
            timer: Timer::Off,
            close_transport: false,
            eof: false,
        }
    }

    /// A server connection in CONNECTING, waiting for the upgrade request.
    pub fn server(config: Config) -> Self {
        Self::new(
            Role::Server,
            config,
            ReadyState::Connecting,
            Handshake::AwaitRequest { scanned: 0 },
            None,
        )
    }

    /// A client connection in CONNECTING, its upgrade request already queued
    /// as output. Keys come from the operating system's random source.
    #[cfg(feature = "std")]
    pub fn client(request: ClientRequest, config: Config) -> Result<Self, Error> {
        Self::client_with_rng(request, config, crate::rng::ChaCha20Rng::from_os())
    }

    /// A client connection whose handshake and masking keys come from `rng`
    /// (RFC 6455 §10.3: it must be unpredictable outside tests).
    pub fn client_with_rng(
        request: ClientRequest,
        config: Config,
        rng: impl RandomSource + 'static,
    ) -> Result<Self, Error> {
        request.validate().map_err(Error::InvalidArgument)?;
        let mut rng: Box<dyn RandomSource> = Box::new(rng);
        // RFC 6455 §4.1: a random 16-byte nonce, base64-encoded.
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        let key = STANDARD.encode(nonce);
        let mut head = Vec::new();
        request.encode(&key, &mut head);
        let handshake = Handshake::AwaitResponse {
            offer: Box::new(ClientOffer {
                accept: accept_key(key.as_bytes()),
                protocols: request.protocols().to_vec(),
                #[cfg(feature = "deflate")]
                deflate: request.deflate_offers().to_vec(),
            }),
            scanned: 0,
        };
        let mut conn = Self::new(Role::Client, config, ReadyState::Connecting, handshake, Some(rng));
        conn.out.extend(&head);
        Ok(conn)
    }

    /// A connection already OPEN, for a handshake done elsewhere (an HTTP
    /// server's upgrade, HTTP/2). A client role draws masking keys from the
    /// operating system.
    #[cfg(feature = "std")]
    pub fn open(role: Role, config: Config) -> Self {
        Self::open_with_rng(role, config, crate::rng::ChaCha20Rng::from_os())
    }

    /// Like [`Connection::open`] with masking keys from `rng` (used by the
    /// client role only).
    pub fn open_with_rng(role: Role, config: Config, rng: impl RandomSource + 'static) -> Self {
        let rng: Option<Box<dyn RandomSource>> = match role {
            Role::Client => Some(Box::new(rng)),
            Role::Server => None,
        };
        Self::new(role, config, ReadyState::Open, Handshake::Done, rng)
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
        self.state
    }

    /// Bytes queued for the transport and not yet consumed
    /// (`WebSocket.bufferedAmount`).
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
    /// use wsmachine::{Config, Connection, Role};
    /// let mut conn = Connection::open(Role::Server, Config::default());
    /// conn.send_binary(&vec![0u8; 1 << 20]).unwrap();
    /// while conn.poll_transmit().is_some() {}
    /// conn.shrink_buffers(); // the 1 MiB output buffer is freed
    /// ```
    pub fn shrink_buffers(&mut self) {
        self.inbuf = output::shrunk(&self.inbuf);
        self.out.shrink();
        self.events.shrink_to_fit();
    }

    // ----- input -----------------------------------------------------------

    /// Feeds bytes read from the transport, in any chunking. Never blocks,
    /// never panics. The bytes are processed by [`Connection::poll_event`]:
    /// call it until it returns `None` after every `receive`. Input after
    /// CLOSED is ignored.
    pub fn receive(&mut self, data: &[u8]) {
        if self.state == ReadyState::Closed || self.eof {
            return;
        }
        // Payload of the frame being read is unmasked while it is copied in.
        let fused = match self.handshake {
            Handshake::Done => self.reader.absorb(&mut self.inbuf, data),
            _ => 0,
        };
        self.inbuf.extend_from_slice(&data[fused..]);
    }

    /// The receive buffer itself, for drivers that read the transport
    /// straight into it (no intermediate copy): append bytes, never remove
    /// any, then call [`Connection::poll_event`]. Same effect as
    /// [`Connection::receive`] with those bytes.
    ///
    /// ```no_run
    /// # use std::io::Read;
    /// # fn f(conn: &mut wsmachine::Connection, tcp: &mut std::net::TcpStream) -> std::io::Result<()> {
    /// let buf = conn.receive_buf();
    /// let start = buf.len();
    /// buf.resize(start + 64 * 1024, 0);
    /// let n = tcp.read(&mut buf[start..])?;
    /// buf.truncate(start + n);
    /// # Ok(()) }
    /// ```
    ///
    /// (An async driver can hand it to `read_buf`, which appends without
    /// zeroing first.)
    pub fn receive_buf(&mut self) -> &mut BytesMut {
        &mut self.inbuf
    }

    /// Tells the machine the transport reached end of stream (or broke).
    ///
    /// Input received before it is still processed by
    /// [`Connection::poll_event`] (a last message, the peer's close frame);
    /// then, unless the connection closed cleanly, it ends CLOSED with 1006.
    /// Input after it is ignored.
    pub fn receive_eof(&mut self) {
        self.eof = true;
        self.close_transport = true;
        if self.timer == Timer::Pending(TimerKind::TransportClose)
            || matches!(self.timer, Timer::At(_, TimerKind::TransportClose))
        {
            self.timer = Timer::Off;
        }
    }

    /// The next event, if any.
    ///
    /// Received bytes are processed here, one event at a time, so that the
    /// application sees (and can answer) each message before the machine
    /// reads on: an answer to a message that arrived just before the peer's
    /// close frame still goes out before our close reply.
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(event) = self.events.pop_front() {
            return Some(event);
        }
        // The hot path: a message of an open connection goes straight out.
        if matches!(self.handshake, Handshake::Done) && matches!(self.state, ReadyState::Open | ReadyState::Closing) {
            match self.reader.next(&mut self.inbuf, &self.config) {
                Ok(Some(Item::Text(t))) => return Some(Event::Text(t)),
                Ok(Some(Item::Binary(b))) => return Some(Event::Binary(b)),
                Ok(Some(item)) => self.on_item(item),
                Ok(None) => {}
                Err(e) => self.fail(e),
            }
        }
        self.process();
        self.events.pop_front()
    }

    /// Runs the handshake or reads frames until an event is produced or more
    /// input is needed.
    fn process(&mut self) {
        if self.state == ReadyState::Closed {
            // Input after CLOSED is ignored (also what was appended through `receive_buf`).
            self.inbuf.clear();
            return;
        }
        while self.events.is_empty() {
            let progressed = match self.handshake {
                Handshake::AwaitResponse { .. } => self.client_handshake(),
                Handshake::AwaitRequest { .. } => self.server_handshake(),
                Handshake::AwaitDecision { .. } | Handshake::AwaitHttpAnswer => false,
                Handshake::Done => {
                    self.read_frames();
                    false
                }
            };
            if !progressed {
                break;
            }
        }
        if self.events.is_empty() && self.eof {
            // All input is processed and no more will come: the transport
            // ended without (the end of) a closing handshake.
            self.set_closed(CloseInfo {
                code: CloseCode::ABNORMAL,
                reason: String::new(),
                was_clean: false,
            });
        }
    }

    /// The end of the head in the input, or the limit error.
    fn find_head(&mut self, scanned: usize) -> Result<Option<usize>, HandshakeError> {
        let limit = self.config.max_handshake_size;
        match find_head_end(&self.inbuf, scanned) {
            Some(end) if end <= limit => Ok(Some(end)),
            None if self.inbuf.len() <= limit => Ok(None),
            _ => Err(HandshakeError::TooLarge { limit }),
        }
    }

    /// Server: looks for a complete request head. Returns whether the
    /// handshake moved on.
    fn server_handshake(&mut self) -> bool {
        let Handshake::AwaitRequest { scanned } = self.handshake else {
            return false;
        };
        let end = match self.find_head(scanned) {
            Ok(Some(end)) => end,
            Ok(None) => {
                self.handshake = Handshake::AwaitRequest {
                    scanned: self.inbuf.len(),
                };
                return false;
            }
            Err(e) => return self.fail_server_handshake(e),
        };
        match parse_request(&self.inbuf[..end]) {
            Ok(Some((parsed, len))) => {
                self.inbuf.advance(len);
                match parsed {
                    Parsed::Upgrade(request, key) => {
                        let request = Box::new(request);
                        self.events.push_back(Event::Request(request.clone()));
                        self.handshake = Handshake::AwaitDecision { key, request };
                    }
                    Parsed::Http(request) => {
                        self.events.push_back(Event::HttpRequest(Box::new(request)));
                        self.handshake = Handshake::AwaitHttpAnswer;
                    }
                }
                true
            }
            // The blank line was found, so the head is complete.
            Ok(None) => self.fail_server_handshake(HandshakeError::Malformed("incomplete request head")),
            Err(e) => self.fail_server_handshake(e),
        }
    }

    fn fail_server_handshake(&mut self, error: HandshakeError) -> bool {
        let mut head = Vec::new();
        HttpResponse::for_error(&error).encode(&mut head);
        self.out.extend(&head);
        self.fail_handshake(error, None);
        false
    }

    fn fail_handshake(&mut self, error: HandshakeError, response: Option<Box<client::Response>>) {
        self.handshake = Handshake::Done;
        self.events
            .push_back(Event::Error(Error::Handshake { error, response }));
        self.close_transport = true;
        self.set_closed(CloseInfo {
            code: CloseCode::ABNORMAL,
            reason: String::new(),
            was_clean: false,
        });
    }

    /// Client: looks for a complete response head and checks it.
    fn client_handshake(&mut self) -> bool {
        let Handshake::AwaitResponse { scanned, .. } = self.handshake else {
            return false;
        };
        let end = match self.find_head(scanned) {
            Ok(Some(end)) => end,
            Ok(None) => {
                if let Handshake::AwaitResponse { scanned, .. } = &mut self.handshake {
                    *scanned = self.inbuf.len();
                }
                return false;
            }
            Err(e) => {
                self.fail_handshake(e, None);
                return false;
            }
        };
        let (mut response, len) = match client::parse_response(&self.inbuf[..end]) {
            Ok(Some(r)) => r,
            Ok(None) => {
                self.fail_handshake(HandshakeError::Malformed("incomplete response head"), None);
                return false;
            }
            Err(e) => {
                self.fail_handshake(e, None);
                return false;
            }
        };
        let Handshake::AwaitResponse { offer, .. } = core::mem::replace(&mut self.handshake, Handshake::Done) else {
            return false;
        };
        let offered = client::Offered {
            protocols: &offer.protocols,
            #[cfg(feature = "deflate")]
            deflate: &offer.deflate,
        };
        #[allow(clippy::let_unit_value)] // `()` without the deflate feature
        let agreed = match client::check_response(&mut response, &offer.accept, &offered) {
            Ok(agreed) => agreed,
            Err(e) => {
                self.fail_handshake(e, Some(Box::new(response)));
                return false;
            }
        };
        // RFC 7692: level and threshold come from the first offer.
        #[cfg(feature = "deflate")]
        let extensions = self.start_extensions(agreed, offer.deflate.first());
        #[cfg(not(feature = "deflate"))]
        let extensions = {
            let () = agreed;
            String::new()
        };
        // Frames that came in the same read as the response stay in `inbuf`.
        self.inbuf.advance(len);
        self.set_state(ReadyState::Open);
        self.events.push_back(Event::Open {
            protocol: response.protocol.clone(),
            extensions,
            response: Some(Box::new(response)),
        });
        true
    }

    /// Installs the negotiated permessage-deflate halves (RFC 7692) and
    /// returns the `Sec-WebSocket-Extensions` value describing them.
    #[cfg(feature = "deflate")]
    fn start_extensions(
        &mut self,
        agreed: Option<crate::deflate::DeflateParams>,
        config: Option<&crate::deflate::DeflateConfig>,
    ) -> String {
        use crate::deflate::{Deflater, Inflater, describe};
        let Some(params) = agreed else {
            return String::new();
        };
        let default = crate::deflate::DeflateConfig::default();
        let config = config.unwrap_or(&default);
        let server = self.role == Role::Server;
        self.deflater = Some(Box::new(Deflater::new(&params, server, config)));
        self.reader.set_inflater(Inflater::new(&params, server));
        describe(&params)
    }

    /// The permessage-deflate parameters in use (RFC 7692), if it was negotiated.
    #[cfg(feature = "deflate")]
    pub fn deflate(&self) -> Option<crate::deflate::DeflateParams> {
        self.deflater.as_ref().map(|d| d.params)
    }

    /// Whether this connection holds compressor (`.0`) and decompressor
    /// (`.1`) state right now: both are created at the first compressed
    /// message and, under no-context-takeover, freed after every message.
    #[cfg(feature = "deflate")]
    pub fn deflate_state_allocated(&self) -> (bool, bool) {
        (
            self.deflater.as_ref().is_some_and(|d| d.is_allocated()),
            self.reader.inflater().is_some_and(|i| i.is_allocated()),
        )
    }

    fn read_frames(&mut self) {
        while self.events.is_empty() && matches!(self.state, ReadyState::Open | ReadyState::Closing) {
            match self.reader.next(&mut self.inbuf, &self.config) {
                Ok(None) => break,
                Ok(Some(item)) => self.on_item(item),
                Err(e) => self.fail(e),
            }
        }
    }

    fn on_item(&mut self, item: Item) {
        match item {
            Item::Text(t) => self.events.push_back(Event::Text(t)),
            Item::Binary(b) => self.events.push_back(Event::Binary(b)),
            Item::Fragment(f) => self.events.push_back(Event::Fragment(f)),
            Item::Ping(payload) => {
                // RFC 6455 §5.5.2: answer with a pong carrying the same payload,
                // unless our close frame is already out, or the output is full
                // (§5.5.3: answering only the most recent ping is allowed).
                if self.config.auto_pong && !self.close_sent && self.check_room(payload.len()).is_ok() {
                    self.write_frame(OpCode::Pong, true, &payload);
                }
                self.events.push_back(Event::Ping(payload));
            }
            Item::Pong(payload) => self.events.push_back(Event::Pong(payload)),
            Item::Close(payload) => match parse_close(&payload) {
                Err(e) => self.fail(e),
                Ok(frame) => self.on_close_frame(frame),
            },
        }
    }

    /// RFC 6455 §5.5.1 / §7.1.5: the peer's close frame.
    fn on_close_frame(&mut self, frame: CloseFrame) {
        if !self.close_sent {
            // Answer once, echoing the code (an empty close gets an empty close).
            let code = frame.code.map(|c| c.0.to_be_bytes());
            self.write_frame(OpCode::Close, true, code.as_ref().map_or(&[][..], |c| &c[..]));
            self.close_sent = true;
        }
        let info = CloseInfo {
            code: frame.code.unwrap_or(CloseCode::NO_STATUS),
            reason: frame.reason.clone(),
            was_clean: true,
        };
        self.events.push_back(Event::Close(frame));
        match self.role {
            // §7.1.1: the server closes the TCP connection first.
            Role::Server => self.close_transport = true,
            Role::Client => self.timer = Timer::Pending(TimerKind::TransportClose),
        }
        self.set_closed(info);
    }

    /// RFC 6455 §7.1.7: Fail the WebSocket Connection.
    fn fail(&mut self, error: ProtocolError) {
        let code = error.close_code();
        let reason = truncate_reason(error.to_string());
        if !self.close_sent {
            self.write_close(code, &reason);
        }
        self.events.push_back(Event::Error(Error::Protocol(error)));
        self.close_transport = true;
        self.set_closed(CloseInfo {
            code,
            reason,
            was_clean: false,
        });
    }

    /// The one place the state changes. Allowed transitions:
    ///
    /// | from | to | when |
    /// |---|---|---|
    /// | CONNECTING | OPEN | the handshake succeeded |
    /// | OPEN | CLOSING | the application sent a close frame |
    /// | CONNECTING, OPEN, CLOSING | CLOSED | close frame received, failure, timeout, end of stream, rejected handshake |
    ///
    /// The state never moves backwards.
    fn set_state(&mut self, to: ReadyState) {
        debug_assert!(
            to > self.state,
            "state may only move forward: {:?} -> {to:?}",
            self.state
        );
        if to > self.state {
            self.state = to;
        }
    }

    /// Moves to CLOSED and reports it, once.
    fn set_closed(&mut self, info: CloseInfo) {
        if self.state == ReadyState::Closed {
            return;
        }
        self.set_state(ReadyState::Closed);
        // A pending accept/reject decision is moot now.
        self.handshake = Handshake::Done;
        self.sending = None;
        if self.timer != Timer::Pending(TimerKind::TransportClose) {
            self.timer = Timer::Off;
        }
        self.inbuf = BytesMut::new();
        self.events.push_back(Event::Closed(info));
    }

    // ----- handshake decisions (server) -------------------------------------

    /// Accepts the pending upgrade request ([`Event::Request`]): queues the
    /// 101 response, moves to OPEN and processes frames that arrived with
    /// the request.
    pub fn accept(&mut self, accept: Accept) -> Result<(), Error> {
        let Handshake::AwaitDecision { key, request } = &self.handshake else {
            return Err(Error::InvalidCall(
                "accept needs a pending upgrade request (Event::Request)",
            ));
        };
        let mut head = Vec::new();
        #[allow(clippy::let_unit_value)] // `()` without the deflate feature
        let agreed = encode_accept(key, request, &accept, &mut head).map_err(Error::InvalidArgument)?;
        self.out.extend(&head);
        self.handshake = Handshake::Done;
        #[cfg(feature = "deflate")]
        let extensions = self.start_extensions(agreed, accept.deflate.as_ref());
        #[cfg(not(feature = "deflate"))]
        let extensions = {
            let () = agreed;
            String::new()
        };
        self.set_state(ReadyState::Open);
        self.events.push_back(Event::Open {
            protocol: accept.protocol,
            extensions,
            response: None,
        });
        self.process();
        Ok(())
    }

    /// Answers the pending request ([`Event::Request`] or
    /// [`Event::HttpRequest`]) with a non-101 response, then CLOSED: the
    /// transport should be closed once the response is written.
    pub fn reject(&mut self, response: HttpResponse) -> Result<(), Error> {
        if !matches!(
            self.handshake,
            Handshake::AwaitDecision { .. } | Handshake::AwaitHttpAnswer
        ) {
            return Err(Error::InvalidCall(
                "reject needs a pending request (Event::Request or Event::HttpRequest)",
            ));
        }
        response.validate().map_err(Error::InvalidArgument)?;
        let mut head = Vec::new();
        response.encode(&mut head);
        self.out.extend(&head);
        self.handshake = Handshake::Done;
        self.close_transport = true;
        self.set_closed(CloseInfo {
            code: CloseCode::ABNORMAL,
            reason: String::new(),
            was_clean: false,
        });
        Ok(())
    }

    /// Carries out the application's decision on a surfaced request, for
    /// drivers: accept an upgrade, or send the response. A plain HTTP
    /// request (`upgrade == false`) cannot be accepted; "accept" then answers
    /// 426 with the supported version (RFC 6455 §4.2.2, §4.4).
    #[cfg(feature = "std")]
    pub(crate) fn answer_request(
        &mut self,
        upgrade: bool,
        decision: Result<Accept, HttpResponse>,
    ) -> Result<(), Error> {
        match (upgrade, decision) {
            (true, Ok(accept)) => self.accept(accept),
            (_, Err(response)) => self.reject(response),
            (false, Ok(_)) => self.reject(
                HttpResponse::new(426)
                    .header("Upgrade", "websocket")
                    .header("Sec-WebSocket-Version", "13"),
            ),
        }
    }

    // ----- sending -----------------------------------------------------------

    fn check_can_send_data(&self) -> Result<(), Error> {
        if self.state != ReadyState::Open {
            return Err(Error::NotOpen(self.state));
        }
        Ok(())
    }

    /// Sends a whole text message (compressed when permessage-deflate is in
    /// use and the message reaches the threshold: [`Compression::Auto`]).
    pub fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.send_slice(OpCode::Text, text.as_bytes(), Compression::Auto)
    }

    /// Sends a whole binary message (the payload is copied; see
    /// [`Connection::send`] to hand over a `Bytes` without copying).
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), Error> {
        self.send_slice(OpCode::Binary, data, Compression::Auto)
    }

    /// Sends a whole message. A server queues a large payload without
    /// copying it (when it is not compressed).
    pub fn send(&mut self, message: Message) -> Result<(), Error> {
        self.send_with(message, Compression::Auto)
    }

    /// Sends a whole message, choosing whether to compress it when
    /// permessage-deflate (RFC 7692) was negotiated; without it the choice
    /// is ignored.
    pub fn send_with(&mut self, message: Message, compression: Compression) -> Result<(), Error> {
        self.check_can_send_message()?;
        let (opcode, payload) = match message {
            Message::Text(t) => (OpCode::Text, t.into_bytes()),
            Message::Binary(b) => (OpCode::Binary, b),
        };
        if self.wants_compression(payload.len(), compression) {
            return self.send_compressed(opcode, &payload, true);
        }
        self.check_room(payload.len())?;
        self.write_frame_owned(opcode, true, payload);
        Ok(())
    }

    fn send_slice(&mut self, opcode: OpCode, payload: &[u8], compression: Compression) -> Result<(), Error> {
        self.check_can_send_message()?;
        if self.wants_compression(payload.len(), compression) {
            return self.send_compressed(opcode, payload, true);
        }
        self.check_room(payload.len())?;
        self.write_frame(opcode, true, payload);
        Ok(())
    }

    /// Whether a message of `len` bytes goes out compressed.
    #[allow(unused_variables)]
    fn wants_compression(&self, len: usize, compression: Compression) -> bool {
        #[cfg(feature = "deflate")]
        if let Some(d) = &self.deflater {
            return match compression {
                Compression::Auto => len >= d.threshold,
                Compression::On => true,
                Compression::Off => false,
            };
        }
        false
    }

    /// Compresses `payload` as the next piece of a message and queues it as
    /// one frame, RSV1 set on the message's first frame only (RFC 7692 §6.1).
    #[cfg(feature = "deflate")]
    fn send_compressed(&mut self, opcode: OpCode, payload: &[u8], fin: bool) -> Result<(), Error> {
        // Check before compressing: the context must not move on for a frame
        // that is not sent.
        self.check_room(crate::deflate::Deflater::bound(payload.len()))?;
        let Some(d) = self.deflater.as_mut() else {
            return Err(Error::InvalidCall("permessage-deflate is not in use"));
        };
        let mut compressed = Vec::new();
        d.compress(payload, fin, &mut compressed);
        self.write_frame_vec(opcode, fin, opcode != OpCode::Continuation, compressed);
        Ok(())
    }

    #[cfg(not(feature = "deflate"))]
    fn send_compressed(&mut self, _: OpCode, _: &[u8], _: bool) -> Result<(), Error> {
        Err(Error::InvalidCall("permessage-deflate is not in use"))
    }

    /// The output has room for a frame with `payload_len` bytes of payload.
    fn check_room(&self, payload_len: usize) -> Result<(), Error> {
        let (buffered, limit) = (self.out.len(), self.config.max_output_buffer);
        if payload_len.saturating_add(MAX_HEADER_LEN).saturating_add(buffered) > limit {
            return Err(Error::OutputFull { buffered, limit });
        }
        Ok(())
    }

    /// A whole message may be sent: OPEN, and no fragmented message unfinished.
    fn check_can_send_message(&self) -> Result<(), Error> {
        self.check_can_send_data()?;
        if self.sending.is_some() {
            return Err(Error::FragmentState(
                "a fragmented message is being sent; finish it first",
            ));
        }
        Ok(())
    }

    /// Sends one fragment of a data message (RFC 6455 §5.4). The first call
    /// starts a message of `kind`; later calls must use the same `kind`;
    /// `fin` ends it. Control frames may be sent between fragments.
    ///
    /// With [`Config::validate_outgoing_text`], text fragments are checked as
    /// UTF-8 across fragments (a character may be split between them; the
    /// message must not end inside one). On a failed check nothing is sent.
    ///
    /// With permessage-deflate in use the message is compressed
    /// ([`Compression::Auto`] compresses every fragmented message); see
    /// [`Connection::send_fragment_with`].
    pub fn send_fragment(&mut self, kind: DataKind, data: &[u8], fin: bool) -> Result<(), Error> {
        self.send_fragment_with(kind, data, fin, Compression::Auto)
    }

    /// Like [`Connection::send_fragment`], choosing at the first fragment
    /// whether the message is compressed (permessage-deflate, RFC 7692);
    /// the choice of later fragments is ignored. Each compressed fragment
    /// ends with a sync flush, so the peer can inflate it as it arrives.
    pub fn send_fragment_with(
        &mut self,
        kind: DataKind,
        data: &[u8],
        fin: bool,
        compression: Compression,
    ) -> Result<(), Error> {
        self.check_can_send_data()?;
        let opcode = match self.sending {
            None => match kind {
                DataKind::Text => OpCode::Text,
                DataKind::Binary => OpCode::Binary,
            },
            Some(k) if k == kind => OpCode::Continuation,
            Some(_) => {
                return Err(Error::FragmentState(
                    "a fragment's kind differs from its message's kind",
                ));
            }
        };
        #[cfg(feature = "deflate")]
        let compressed = if opcode == OpCode::Continuation {
            self.sending_compressed
        } else {
            self.wants_compression(usize::MAX, compression)
        };
        #[cfg(not(feature = "deflate"))]
        let compressed = {
            let _ = compression;
            false
        };
        #[cfg(feature = "deflate")]
        let room = if compressed {
            crate::deflate::Deflater::bound(data.len())
        } else {
            data.len()
        };
        #[cfg(not(feature = "deflate"))]
        let room = data.len();
        self.check_room(room)?;
        if kind == DataKind::Text && self.config.validate_outgoing_text {
            let mut check = self.sending_utf8;
            check.feed(data).map_err(|_| Error::InvalidUtf8)?;
            if fin {
                check.finish().map_err(|_| Error::InvalidUtf8)?;
            }
            self.sending_utf8 = check;
        }
        if compressed {
            self.send_compressed(opcode, data, fin)?;
        } else {
            self.write_frame(opcode, fin, data);
        }
        #[cfg(feature = "deflate")]
        {
            self.sending_compressed = compressed && !fin;
        }
        self.sending = if fin { None } else { Some(kind) };
        Ok(())
    }

    /// Sends a ping (at most 125 bytes of payload, RFC 6455 §5.5).
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.send_control(OpCode::Ping, payload)
    }

    /// Sends an unsolicited pong, or answers a ping when `auto_pong` is off
    /// (at most 125 bytes, RFC 6455 §5.5.3).
    pub fn pong(&mut self, payload: &[u8]) -> Result<(), Error> {
        self.send_control(OpCode::Pong, payload)
    }

    fn send_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), Error> {
        self.check_can_send_data()?;
        if payload.len() > 125 {
            return Err(Error::InvalidArgument(
                "control frame payloads are at most 125 bytes (RFC 6455 §5.5)",
            ));
        }
        self.check_room(payload.len())?;
        self.write_frame(opcode, true, payload);
        Ok(())
    }

    /// Starts the closing handshake (`WebSocket.close(code, reason)`): sends
    /// a close frame and moves to CLOSING. The code must be valid on the
    /// wire (1000–1003, 1007–1014, 3000–4999) and the reason at most 123
    /// bytes of UTF-8.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        if self.state != ReadyState::Open {
            return Err(Error::NotOpen(self.state));
        }
        if !code.is_valid_on_wire() {
            return Err(Error::InvalidArgument(
                "this close code may not be sent (RFC 6455 §7.4)",
            ));
        }
        if reason.len() > MAX_CLOSE_REASON {
            return Err(Error::InvalidArgument(
                "the close reason is longer than 123 bytes (RFC 6455 §5.5)",
            ));
        }
        self.write_close(code, reason);
        self.set_state(ReadyState::Closing);
        self.timer = Timer::Pending(TimerKind::CloseReply);
        Ok(())
    }

    fn write_close(&mut self, code: CloseCode, reason: &str) {
        let mut payload = [0u8; 125];
        payload[..2].copy_from_slice(&code.0.to_be_bytes());
        let n = reason.len().min(MAX_CLOSE_REASON);
        payload[2..2 + n].copy_from_slice(&reason.as_bytes()[..n]);
        self.write_frame(OpCode::Close, true, &payload[..2 + n]);
        self.close_sent = true;
    }

    fn header(
        &mut self,
        opcode: OpCode,
        fin: bool,
        rsv1: bool,
        len: usize,
    ) -> ([u8; MAX_HEADER_LEN], usize, Option<[u8; 4]>) {
        let mask = match self.role {
            Role::Server => None,
            Role::Client => {
                // RFC 6455 §5.3: a fresh, unpredictable key for every frame.
                let mut key = [0u8; 4];
                if let Some(rng) = self.rng.as_mut() {
                    rng.fill_bytes(&mut key);
                }
                Some(key)
            }
        };
        let mut buf = [0u8; MAX_HEADER_LEN];
        let mut header = FrameHeader::new(fin, opcode, mask, len as u64);
        header.rsv1 = rsv1;
        let n = header.encode(&mut buf);
        (buf, n, mask)
    }

    /// Queues one frame, copying (and for a client masking) the payload in
    /// one pass.
    fn write_frame(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) {
        let (head, n, mask) = self.header(opcode, fin, false, payload.len());
        self.out.extend(&head[..n]);
        match mask {
            Some(key) => self.out.extend_masked(payload, key),
            None => self.out.extend(payload),
        }
    }

    /// Queues one frame whose payload is already a `Bytes`: a server hands
    /// large payloads to the transport without copying.
    fn write_frame_owned(&mut self, opcode: OpCode, fin: bool, payload: Bytes) {
        const COPY_BELOW: usize = 4096;
        if self.role == Role::Client || payload.len() < COPY_BELOW {
            return self.write_frame(opcode, fin, &payload);
        }
        let (head, n, _) = self.header(opcode, fin, false, payload.len());
        self.out.extend(&head[..n]);
        self.out.push_chunk(payload);
    }

    /// Queues one frame whose payload the machine just produced (compressed
    /// data): a large one is masked in place (client) and queued as its own
    /// chunk, uncopied.
    #[cfg(feature = "deflate")]
    fn write_frame_vec(&mut self, opcode: OpCode, fin: bool, rsv1: bool, mut payload: Vec<u8>) {
        const COPY_BELOW: usize = 4096;
        let (head, n, mask) = self.header(opcode, fin, rsv1, payload.len());
        self.out.extend(&head[..n]);
        if payload.len() < COPY_BELOW {
            match mask {
                Some(key) => self.out.extend_masked(&payload, key),
                None => self.out.extend(&payload),
            }
            return;
        }
        if let Some(key) = mask {
            crate::mask::apply_mask(&mut payload, key, 0);
        }
        self.out.push_chunk(Bytes::from(payload));
    }

    // ----- output -------------------------------------------------------------

    /// The oldest bytes waiting for the transport (empty when none). Write
    /// them, then call [`Connection::consume_output`] with how many were
    /// written.
    pub fn pending_output(&self) -> &[u8] {
        self.out.front()
    }

    /// Every queued chunk in order, for a vectored write.
    pub fn output_chunks(&self) -> impl Iterator<Item = &[u8]> {
        self.out.chunks()
    }

    /// Marks `n` bytes of output as written to the transport.
    pub fn consume_output(&mut self, n: usize) {
        self.out.consume(n);
    }

    /// Takes the oldest chunk of output, for drivers that prefer owned
    /// buffers. The caller must write all of it.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.out.take_front()
    }

    /// Whether the driver should now close the transport: CLOSED and all
    /// output written, and it is this side's turn (RFC 6455 §7.1.1: the
    /// server closes first; a client waits for it, up to the close timeout).
    pub fn should_close_transport(&self) -> bool {
        self.close_transport && self.out.len() == 0
    }

    // ----- time ------------------------------------------------------------------

    /// The next deadline at which [`Connection::handle_timeout`] must be
    /// called, if any.
    ///
    /// A timer started by a call (for example [`Connection::close`]) gets its
    /// deadline from the next `handle_timeout(now)`: call it after every
    /// batch of calls, then sleep until this deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.timer {
            Timer::At(deadline, _) => Some(deadline),
            _ => None,
        }
    }

    /// Tells the machine the time is `now`; fires a due timer.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.timer {
            Timer::Off => {}
            Timer::Pending(kind) => self.timer = Timer::At(now + self.config.close_timeout, kind),
            Timer::At(deadline, kind) if now >= deadline => {
                self.timer = Timer::Off;
                match kind {
                    TimerKind::CloseReply => {
                        self.events.push_back(Event::Error(Error::CloseTimeout));
                        self.close_transport = true;
                        self.set_closed(CloseInfo {
                            code: CloseCode::ABNORMAL,
                            reason: String::new(),
                            was_clean: false,
                        });
                    }
                    TimerKind::TransportClose => self.close_transport = true,
                }
            }
            Timer::At(..) => {}
        }
    }
}

/// Makes a failure description fit a close frame, on a character boundary.
fn truncate_reason(mut s: String) -> String {
    if s.len() > MAX_CLOSE_REASON {
        let mut end = MAX_CLOSE_REASON;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}
