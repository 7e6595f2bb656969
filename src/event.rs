//! What a connection tells its application ([`Event`]), and the values it
//! takes in answer ([`Message`], [`Compression`], the pending requests).

use crate::error::Failure;
use crate::handshake::{Request, Response};
use crate::types::DataKind;
use crate::wire::close::CloseCode;
use crate::wire::utf8::Utf8Bytes;
use alloc::boxed::Box;
use alloc::string::String;
use bytes::Bytes;

/// A whole message, as sent with [`Connection::send`](crate::Connection::send).
///
/// `&str`, `String`, [`Utf8Bytes`] make text; `&[u8]`, `Vec<u8>`, `Bytes`
/// make binary:
///
/// ```
/// use wsmachine::Message;
/// assert!(matches!(Message::from("hi"), Message::Text(_)));
/// assert!(matches!(Message::from(vec![1u8, 2]), Message::Binary(_)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message.
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
}

impl From<Utf8Bytes> for Message {
    fn from(text: Utf8Bytes) -> Self {
        Message::Text(text)
    }
}

impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Message::Text(text.into())
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Message::Text(text.into())
    }
}

impl From<Bytes> for Message {
    fn from(data: Bytes) -> Self {
        Message::Binary(data)
    }
}

impl From<&[u8]> for Message {
    fn from(data: &[u8]) -> Self {
        Message::Binary(Bytes::copy_from_slice(data))
    }
}

impl From<alloc::vec::Vec<u8>> for Message {
    fn from(data: alloc::vec::Vec<u8>) -> Self {
        Message::Binary(Bytes::from(data))
    }
}

/// A message to send with [`Connection::send`](crate::Connection::send):
/// borrowed text or bytes (copied into the output once, no allocation) or
/// an owned [`Message`] (a large server payload is queued without copying).
/// Made from `&str`, `&String`, `&[u8]`, `&Vec<u8>`, `&[u8; N]`, and from
/// owned `Message`, `Utf8Bytes`, `Bytes`, `String`, `Vec<u8>`.
///
/// ```
/// use wsmachine::{Config, Connection, Message, Role};
/// let mut conn = Connection::open_server(Config::default());
/// conn.send("text")?;                      // a text message, borrowed
/// conn.send(&[1u8, 2, 3])?;                // a binary message, borrowed
/// conn.send(Message::Binary(vec![0; 8192].into()))?; // owned, queued uncopied
/// # Ok::<(), wsmachine::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outgoing<'a> {
    /// Text, copied into the output.
    Text(&'a str),
    /// Binary data, copied into the output.
    Binary(&'a [u8]),
    /// An owned message.
    Owned(Message),
}

impl<'a> From<&'a str> for Outgoing<'a> {
    fn from(text: &'a str) -> Self {
        Outgoing::Text(text)
    }
}

impl<'a> From<&'a String> for Outgoing<'a> {
    fn from(text: &'a String) -> Self {
        Outgoing::Text(text)
    }
}

impl<'a> From<&'a [u8]> for Outgoing<'a> {
    fn from(data: &'a [u8]) -> Self {
        Outgoing::Binary(data)
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for Outgoing<'a> {
    fn from(data: &'a [u8; N]) -> Self {
        Outgoing::Binary(data)
    }
}

impl<'a> From<&'a alloc::vec::Vec<u8>> for Outgoing<'a> {
    fn from(data: &'a alloc::vec::Vec<u8>) -> Self {
        Outgoing::Binary(data)
    }
}

impl From<Message> for Outgoing<'static> {
    fn from(message: Message) -> Self {
        Outgoing::Owned(message)
    }
}

impl From<Utf8Bytes> for Outgoing<'static> {
    fn from(text: Utf8Bytes) -> Self {
        Outgoing::Owned(Message::Text(text))
    }
}

impl From<Bytes> for Outgoing<'static> {
    fn from(data: Bytes) -> Self {
        Outgoing::Owned(Message::Binary(data))
    }
}

impl From<String> for Outgoing<'static> {
    fn from(text: String) -> Self {
        Outgoing::Owned(Message::Text(text.into()))
    }
}

impl From<alloc::vec::Vec<u8>> for Outgoing<'static> {
    fn from(data: alloc::vec::Vec<u8>) -> Self {
        Outgoing::Owned(Message::Binary(data.into()))
    }
}

/// Whether to compress one outgoing message when permessage-deflate (RFC
/// 7692) was negotiated; without it every message goes out uncompressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Compress when the message is at least the configured threshold
    /// (`DeflateConfig::threshold`, default 128 bytes). A fragmented message
    /// is compressed whenever the extension is in use (its size is unknown
    /// at the first fragment).
    #[default]
    Auto,
    /// Compress, whatever the size.
    On,
    /// Send uncompressed (for example data that is already compressed).
    Off,
}

/// A piece of a data message in streaming mode
/// ([`Config::streaming`](crate::Config::streaming)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// The message's kind (known from its first frame).
    pub kind: DataKind,
    /// The next bytes of the message. Text is valid UTF-8 so far, but a
    /// character may be split between two fragments.
    pub data: Bytes,
    /// Whether this is the first piece of the message.
    pub first: bool,
    /// Whether this is the last piece of the message.
    pub fin: bool,
}

/// How the connection ended ([`Event::Closed`]), like the browser's
/// `CloseEvent`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseInfo {
    /// The code of the close frame received (or sent, when the connection
    /// failed); 1005 when the frame had none, 1006 when no close frame was
    /// exchanged.
    pub code: CloseCode,
    /// The reason that came with it.
    pub reason: String,
    /// Whether the closing handshake completed.
    pub was_clean: bool,
}

/// A WebSocket upgrade request waiting for the server's decision
/// ([`Event::Request`]). It passed every check of RFC 6455 §4.2.1.
///
/// The decision is this value, consumed by exactly one of
/// [`Connection::accept`](crate::Connection::accept) or
/// [`Connection::reject`](crate::Connection::reject): a second decision
/// does not compile. It derefs to the [`Request`]. Until it is decided the
/// connection reads nothing more.
///
/// ```
/// use wsmachine::{Accept, Config, Connection, Event};
/// let mut server = Connection::server(Config::default());
/// server.receive(b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///     Sec-WebSocket-Version: 13\r\n\r\n");
/// let Some(Event::Request(pending)) = server.poll_event() else { panic!() };
/// assert_eq!(pending.path, "/chat");
/// server.accept(pending, Accept::new())?;
/// // server.accept(pending, Accept::new()); // does not compile: `pending` was moved
/// # Ok::<(), wsmachine::DecisionError>(())
/// ```
#[derive(Debug, PartialEq, Eq)]
#[must_use = "answer it with Connection::accept or Connection::reject"]
pub struct PendingRequest {
    pub(crate) request: Box<Request>,
    /// Its `Sec-WebSocket-Key`, which also ties it to its connection.
    pub(crate) key: String,
}

impl PendingRequest {
    /// The request.
    pub fn request(&self) -> &Request {
        &self.request
    }
}

impl core::ops::Deref for PendingRequest {
    type Target = Request;
    fn deref(&self) -> &Request {
        &self.request
    }
}

/// A plain HTTP request (no WebSocket upgrade) waiting for its answer
/// ([`Event::HttpRequest`]), consumed by
/// [`Connection::respond`](crate::Connection::respond). It derefs to the
/// [`Request`].
#[derive(Debug, PartialEq, Eq)]
#[must_use = "answer it with Connection::respond"]
pub struct PendingHttp {
    pub(crate) request: Box<Request>,
}

impl PendingHttp {
    /// The request.
    pub fn request(&self) -> &Request {
        &self.request
    }
}

impl core::ops::Deref for PendingHttp {
    type Target = Request;
    fn deref(&self) -> &Request {
        &self.request
    }
}

/// A decision the connection refused ([`Connection::accept`](crate::Connection::accept),
/// [`reject`](crate::Connection::reject), [`respond`](crate::Connection::respond)):
/// why, and the pending request back, so that it can still be answered.
#[derive(Debug, PartialEq, Eq)]
pub struct DecisionError<P = PendingRequest> {
    /// What was wrong with the decision.
    pub error: crate::Error,
    /// The request, still waiting for an answer.
    pub pending: P,
}

impl<P> core::fmt::Display for DecisionError<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(&self.error, f)
    }
}

#[cfg(feature = "std")]
impl<P: core::fmt::Debug> std::error::Error for DecisionError<P> {}

/// Something the application should know, returned by
/// [`Connection::poll_event`](crate::Connection::poll_event).
///
/// A transcript of a server's connection: `Request`, `Open`, messages
/// (`Text`, `Binary`, `Fragment`), `Ping`/`Pong` at any point, maybe one
/// `Error`, and always `Closed` last.
///
/// ```
/// use wsmachine::{Event, Config, Connection, rng::ChaCha20Rng};
/// let mut conn = Connection::open_client(Config::default(), ChaCha20Rng::from_os()?);
/// conn.receive(&[0x81, 0x02, b'h', b'i', 0x88, 0x02, 0x03, 0xe8]); // "hi", then close 1000
/// while let Some(event) = conn.poll_event() {
///     match event {
///         Event::Text(text) => assert_eq!(&*text, "hi"),
///         Event::Closed(info) => assert_eq!((info.code.0, info.was_clean), (1000, true)),
///         other => panic!("{other:?}"),
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Server: a valid WebSocket upgrade request. Answer with
    /// [`Connection::accept`](crate::Connection::accept) or
    /// [`Connection::reject`](crate::Connection::reject).
    Request(PendingRequest),
    /// Server: an HTTP request that does not ask for a WebSocket upgrade.
    /// Answer with [`Connection::respond`](crate::Connection::respond) (any
    /// status, for example 200 with a page).
    HttpRequest(PendingHttp),
    /// The handshake completed: the connection is OPEN (`onopen`).
    Open {
        /// The subprotocol agreed on, if any.
        protocol: Option<String>,
        /// The extensions in use, as a `Sec-WebSocket-Extensions` value
        /// (like the browser's `WebSocket.extensions`): empty when none, for
        /// example `permessage-deflate; server_max_window_bits=10`. The typed
        /// parameters are in `Connection::deflate` (feature `deflate`).
        extensions: String,
        /// Client: the server's 101 response.
        response: Option<Box<Response>>,
    },
    /// A whole text message (`onmessage`).
    Text(Utf8Bytes),
    /// A whole binary message (`onmessage`).
    Binary(Bytes),
    /// Streaming mode: the next piece of a data message.
    Fragment(Fragment),
    /// A ping arrived (already answered when `auto_pong` is on).
    Ping(Bytes),
    /// A pong arrived.
    Pong(Bytes),
    /// The connection failed (`onerror`): the peer broke a rule, the
    /// handshake failed, or the close timed out. [`Event::Closed`] follows.
    Error(Failure),
    /// The connection reached CLOSED (`onclose`): after the peer's close
    /// frame (its code and reason are here, `was_clean`), a failure, a
    /// timeout or the end of the transport. No event follows.
    Closed(CloseInfo),
}
