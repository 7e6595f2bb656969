//! Errors, kept apart by whose fault they are (as rustls keeps
//! `PeerMisbehaved` apart from `ApiMisuse`):
//!
//! - the peer's: [`ProtocolError`] (a framing rule broken after the
//!   handshake) and [`HandshakeError`] (the opening handshake), reported
//!   with a timeout as a [`Failure`] in [`Event::Error`](crate::Event::Error);
//! - the application's: [`Error`], returned by calls, with [`Misuse`] naming
//!   each way a call can break the API's rules.
//!
//! This is also the one place that maps each protocol violation to its
//! close code ([`ProtocolError::close_code`]), and the lower layers' own
//! error types (close payloads, UTF-8, header lines, extension settings) to
//! these.

use crate::extension::OfferError;
use crate::handshake::server::InvalidHead;
use crate::handshake::{HandshakeError, Response};
use crate::types::{DataKind, ReadyState};
use crate::wire::close::{CloseCode, CloseError};
use alloc::boxed::Box;
use alloc::string::String;
use core::fmt;

/// A rule of RFC 6455 the peer broke after the handshake. Each one fails the
/// connection with the close code [`ProtocolError::close_code`] gives.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// RSV1–3 set without a negotiated extension that defines them (§5.2).
    ReservedBits,
    /// A reserved opcode (§5.2).
    ReservedOpcode(u8),
    /// A 64-bit length with its most significant bit set (§5.2).
    LengthTopBitSet,
    /// A client frame without a mask; servers must fail these (§5.1).
    UnmaskedFrame,
    /// A server frame with a mask; clients must fail these (§5.1).
    MaskedFrame,
    /// A control frame with FIN clear (§5.5).
    FragmentedControlFrame,
    /// A control frame with more than 125 bytes of payload (§5.5).
    ControlFrameTooLong(u64),
    /// A continuation frame with no message in progress (§5.4).
    UnexpectedContinuation,
    /// A text or binary frame while a fragmented message is unfinished (§5.4).
    ExpectedContinuation,
    /// Text that is not valid UTF-8 (§8.1).
    InvalidUtf8,
    /// A close frame with a 1-byte payload (§5.5.1).
    CloseFrameOneByte,
    /// A close code that may not appear on the wire (§7.4).
    InvalidCloseCode(u16),
    /// A close reason that is not UTF-8 (§5.5.1).
    InvalidCloseReason,
    /// A frame longer than [`Config::max_frame_size`](crate::Config::max_frame_size).
    FrameTooLarge {
        /// The length the frame announced.
        len: u64,
        /// The configured limit.
        limit: usize,
    },
    /// RSV1 on a frame that may not carry it with permessage-deflate: a
    /// control frame or a continuation frame (RFC 7692 §6, §6.1).
    CompressedBitMisplaced,
    /// A compressed message that does not inflate (RFC 7692 §7.2.2); 1007,
    /// as Node's `ws` answers it.
    InvalidCompressedData,
    /// A message longer than [`Config::max_message_size`](crate::Config::max_message_size)
    /// (for a compressed message: inflated, checked while inflating).
    MessageTooLarge {
        /// The length the message would reach.
        len: u64,
        /// The configured limit.
        limit: usize,
    },
}

impl ProtocolError {
    /// The close code this violation fails the connection with (RFC 6455 §7.4.1).
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8 | ProtocolError::InvalidCloseReason | ProtocolError::InvalidCompressedData => {
                CloseCode::INVALID_PAYLOAD
            }
            ProtocolError::FrameTooLarge { .. } | ProtocolError::MessageTooLarge { .. } => CloseCode::MESSAGE_TOO_BIG,
            ProtocolError::ReservedBits
            | ProtocolError::ReservedOpcode(_)
            | ProtocolError::LengthTopBitSet
            | ProtocolError::UnmaskedFrame
            | ProtocolError::MaskedFrame
            | ProtocolError::FragmentedControlFrame
            | ProtocolError::ControlFrameTooLong(_)
            | ProtocolError::UnexpectedContinuation
            | ProtocolError::ExpectedContinuation
            | ProtocolError::CloseFrameOneByte
            | ProtocolError::CompressedBitMisplaced
            | ProtocolError::InvalidCloseCode(_) => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::ReservedBits => f.write_str("reserved bits set without a negotiated extension"),
            ProtocolError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            ProtocolError::LengthTopBitSet => f.write_str("64-bit payload length with the top bit set"),
            ProtocolError::UnmaskedFrame => f.write_str("client frame not masked"),
            ProtocolError::MaskedFrame => f.write_str("server frame masked"),
            ProtocolError::FragmentedControlFrame => f.write_str("fragmented control frame"),
            ProtocolError::ControlFrameTooLong(n) => write!(f, "control frame payload of {n} bytes (max 125)"),
            ProtocolError::UnexpectedContinuation => f.write_str("continuation frame without a message to continue"),
            ProtocolError::ExpectedContinuation => f.write_str("new data frame inside a fragmented message"),
            ProtocolError::InvalidUtf8 => f.write_str("text is not valid UTF-8"),
            ProtocolError::CloseFrameOneByte => f.write_str("close frame with a 1-byte payload"),
            ProtocolError::InvalidCloseCode(c) => write!(f, "invalid close code {c}"),
            ProtocolError::InvalidCloseReason => f.write_str("close reason is not valid UTF-8"),
            ProtocolError::CompressedBitMisplaced => {
                f.write_str("RSV1 on a control or continuation frame (RFC 7692 §6.1)")
            }
            ProtocolError::InvalidCompressedData => {
                f.write_str("compressed message does not inflate (RFC 7692 §7.2.2)")
            }
            ProtocolError::FrameTooLarge { len, limit } => {
                write!(f, "frame of {len} bytes exceeds the {limit}-byte frame limit")
            }
            ProtocolError::MessageTooLarge { len, limit } => {
                write!(f, "message of {len} bytes exceeds the {limit}-byte message limit")
            }
        }
    }
}

impl From<CloseError> for ProtocolError {
    fn from(e: CloseError) -> Self {
        match e {
            CloseError::OneByte => ProtocolError::CloseFrameOneByte,
            CloseError::InvalidCode(c) => ProtocolError::InvalidCloseCode(c),
            CloseError::InvalidReason => ProtocolError::InvalidCloseReason,
        }
    }
}

/// Why the connection failed, as [`Event::Error`](crate::Event::Error)
/// reports it (the browser's `onerror`): the peer broke a rule or did not
/// answer in time. [`Event::Closed`](crate::Event::Closed) follows.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The peer broke a framing rule; the connection failed with
    /// `error.close_code()`.
    Protocol(ProtocolError),
    /// The opening handshake failed. A client keeps the server's response
    /// (status and headers) when there was one.
    Handshake {
        /// Which rule was broken.
        error: HandshakeError,
        /// The response that broke it (client role).
        response: Option<Box<Response>>,
    },
    /// Our close frame went unanswered for
    /// [`Config::close_timeout`](crate::Config::close_timeout).
    CloseTimeout,
    /// The opening handshake did not complete within
    /// [`Config::handshake_timeout`](crate::Config::handshake_timeout): a
    /// server got no complete request head (it answered 408), a client no
    /// complete response.
    HandshakeTimeout,
    /// Our keepalive ping went unanswered (and nothing else arrived) for
    /// [`Config::ping_timeout`](crate::Config::ping_timeout), or queued
    /// output waited that long with the transport taking none of it (a peer
    /// that does not read): the connection failed with 1011.
    KeepaliveTimeout,
    /// A send would have passed
    /// [`Config::max_output_buffer`](crate::Config::max_output_buffer) under
    /// [`Backpressure::Close`](crate::Backpressure::Close): the peer is not
    /// reading, so the connection was given up (1008).
    OutputFull {
        /// Bytes that were waiting for the transport.
        buffered: usize,
        /// The configured limit.
        limit: usize,
    },
}

impl From<ProtocolError> for Failure {
    fn from(e: ProtocolError) -> Self {
        Failure::Protocol(e)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Protocol(e) => write!(f, "protocol error ({}): {e}", e.close_code()),
            Failure::Handshake { error, .. } => write!(f, "handshake failed: {error}"),
            Failure::CloseTimeout => f.write_str("the peer did not answer the close frame in time"),
            Failure::HandshakeTimeout => f.write_str("the opening handshake did not complete in time"),
            Failure::KeepaliveTimeout => f.write_str("the peer did not answer the keepalive ping in time"),
            Failure::OutputFull { buffered, limit } => write!(
                f,
                "the peer is not reading: {buffered} bytes of output are waiting and the limit is {limit} bytes"
            ),
        }
    }
}

/// A call the application made broke one of the API's rules. Nothing was
/// sent or changed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Misuse {
    /// A ping or pong payload longer than 125 bytes (RFC 6455 §5.5).
    ControlPayloadTooLong {
        /// The payload's length.
        len: usize,
    },
    /// A close code that may not be sent (RFC 6455 §7.4: only 1000–1003,
    /// 1007–1014 and 3000–4999).
    CloseCodeNotSendable(CloseCode),
    /// A close reason longer than 123 bytes (RFC 6455 §5.5).
    CloseReasonTooLong {
        /// The reason's length in bytes.
        len: usize,
    },
    /// A new message while a fragmented message is being sent (RFC 6455
    /// §5.4): finish it with a `fin` fragment first.
    MessageInProgress,
    /// A fragment whose kind differs from its message's first fragment.
    FragmentKindMismatch {
        /// The kind the message started with.
        message: DataKind,
        /// The kind of this fragment.
        fragment: DataKind,
    },
    /// Text fragments that are not valid UTF-8 (RFC 6455 §8.1), or a
    /// message that ends inside a character.
    InvalidUtf8,
    /// The subprotocol chosen in [`Accept`](crate::Accept) was not offered
    /// by the client (RFC 6455 §4.2.2).
    SubprotocolNotOffered(String),
    /// A subprotocol name that is not an HTTP token (RFC 6455 §4.1).
    InvalidSubprotocol(String),
    /// A subprotocol offered twice (RFC 6455 §4.1: each is unique).
    DuplicateSubprotocol(String),
    /// A header name that is not a token (RFC 9110 §5.1), or a value that
    /// is not a field value (RFC 9110 §5.5: no control characters such as
    /// CR or LF, no leading or trailing whitespace).
    InvalidHeader {
        /// The header's name.
        name: String,
    },
    /// A header the crate writes itself: framing (`Content-Length`,
    /// `Transfer-Encoding`), `Connection`, and the handshake's own
    /// (`Host`, `Upgrade`, `Sec-WebSocket-*`), which come from the
    /// negotiation; over HTTP/2 also the connection-specific fields
    /// (`Keep-Alive`, `Proxy-Connection`, `TE` other than `trailers`: RFC
    /// 9113 §8.2.2).
    ReservedHeader {
        /// The header's name.
        name: String,
    },
    /// An HTTP status outside 200–599 for a response the crate sends
    /// before closing: a 1xx is interim (RFC 9110 §15.2), and 101 is
    /// `accept`'s.
    InvalidStatus(u16),
    /// A body on a response whose status has none (204, 304: RFC 9110 §6.4.1).
    BodyNotAllowed {
        /// The status.
        status: u16,
    },
    /// A request path that is not origin form (RFC 9112 §3.2.1): not
    /// starting with `/`, or with a fragment, non-ASCII, whitespace or
    /// control characters.
    InvalidPath,
    /// A host that is not one (RFC 3986 §3.2.2): empty, with a port,
    /// non-ASCII, or an unbracketed or malformed IPv6 address.
    InvalidHost,
    /// A permessage-deflate setting out of range.
    #[cfg(feature = "deflate")]
    DeflateConfig(crate::deflate::DeflateConfigError),
    /// A pending request handed to a connection that did not produce it.
    ForeignRequest,
}

impl fmt::Display for Misuse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Misuse::ControlPayloadTooLong { len } => {
                write!(f, "a control frame payload of {len} bytes (at most 125, RFC 6455 §5.5)")
            }
            Misuse::CloseCodeNotSendable(c) => write!(f, "close code {c} may not be sent (RFC 6455 §7.4)"),
            Misuse::CloseReasonTooLong { len } => {
                write!(f, "a close reason of {len} bytes (at most 123, RFC 6455 §5.5)")
            }
            Misuse::MessageInProgress => f.write_str("a fragmented message is being sent; finish it first"),
            Misuse::FragmentKindMismatch { message, fragment } => {
                write!(f, "a {fragment:?} fragment in a {message:?} message")
            }
            Misuse::InvalidUtf8 => f.write_str("the text fragments sent are not valid UTF-8"),
            Misuse::SubprotocolNotOffered(p) => write!(f, "subprotocol {p:?} was not offered by the client"),
            Misuse::InvalidSubprotocol(p) => write!(f, "subprotocol {p:?} is not an HTTP token"),
            Misuse::DuplicateSubprotocol(p) => write!(f, "subprotocol {p:?} is offered twice (RFC 6455 §4.1)"),
            Misuse::InvalidHeader { name } => write!(
                f,
                "header {name:?}: names must be tokens and values field values, without control characters (RFC 9110 §5.5)"
            ),
            Misuse::ReservedHeader { name } => {
                write!(f, "header {name:?} is written by the crate, not the application")
            }
            Misuse::InvalidStatus(s) => write!(f, "status {s}: a final status 200-599 (101 through accept)"),
            Misuse::BodyNotAllowed { status } => write!(f, "a {status} response has no body (RFC 9110 §6.4.1)"),
            Misuse::InvalidPath => f.write_str(
                "the request path must be origin form: '/', ASCII, no fragment, whitespace or control characters",
            ),
            Misuse::InvalidHost => f.write_str("the host must be a name or address without port (RFC 3986 §3.2.2)"),
            #[cfg(feature = "deflate")]
            Misuse::DeflateConfig(e) => fmt::Display::fmt(e, f),
            Misuse::ForeignRequest => f.write_str("the pending request belongs to another connection"),
        }
    }
}

impl From<InvalidHead> for Misuse {
    fn from(e: InvalidHead) -> Self {
        match e {
            InvalidHead::Status(s) => Misuse::InvalidStatus(s),
            InvalidHead::Header(name) => Misuse::InvalidHeader { name },
            InvalidHead::Reserved(name) => Misuse::ReservedHeader { name },
            InvalidHead::Body(status) => Misuse::BodyNotAllowed { status },
        }
    }
}

impl From<OfferError> for Misuse {
    fn from(e: OfferError) -> Self {
        match e {
            #[cfg(feature = "deflate")]
            OfferError::Deflate(e) => Misuse::DeflateConfig(e),
        }
    }
}

/// Why a call of the application was refused. Nothing was queued.
///
/// ```
/// use wsmachine::{CloseCode, Config, Connection, Error, Misuse, ReadyState};
/// let mut conn = Connection::open_server(Config::default());
/// // Breaking a rule of the API says which:
/// assert_eq!(conn.ping(&[0; 126]), Err(Error::Misuse(Misuse::ControlPayloadTooLong { len: 126 })));
/// assert_eq!(
///     conn.close(CloseCode::ABNORMAL, ""),
///     Err(Error::Misuse(Misuse::CloseCodeNotSendable(CloseCode::ABNORMAL)))
/// );
/// // A call the state does not allow says the state:
/// conn.close(CloseCode::NORMAL, "")?;
/// assert_eq!(conn.send("late"), Err(Error::NotOpen(ReadyState::Closing)));
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The call cannot be made in this state: sending needs OPEN, a
    /// decision on a request needs the connection still waiting for it (for
    /// example the peer closed it meanwhile).
    NotOpen(ReadyState),
    /// The output queue would pass
    /// [`Config::max_output_buffer`](crate::Config::max_output_buffer): the
    /// transport is not taking the bytes.
    OutputFull {
        /// Bytes already queued.
        buffered: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The call broke a rule of the API; says which.
    Misuse(Misuse),
    /// The random source failed, so no unpredictable key could be made
    /// (RFC 6455 §4.1, §10.3).
    RandomSource,
}

impl From<Misuse> for Error {
    fn from(e: Misuse) -> Self {
        Error::Misuse(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotOpen(state) => write!(f, "the connection is {state:?}, not OPEN"),
            Error::Misuse(e) => fmt::Display::fmt(e, f),
            Error::OutputFull { buffered, limit } => {
                write!(
                    f,
                    "{buffered} bytes of output are waiting; sending more would pass the {limit}-byte limit"
                )
            }
            Error::RandomSource => f.write_str("the random source failed"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}
#[cfg(feature = "std")]
impl std::error::Error for Failure {}
#[cfg(feature = "std")]
impl std::error::Error for Misuse {}
#[cfg(feature = "std")]
impl std::error::Error for ProtocolError {}
#[cfg(feature = "std")]
impl std::error::Error for HandshakeError {}
#[cfg(feature = "std")]
impl std::error::Error for crate::handshake::UrlError {}
#[cfg(feature = "std")]
impl std::error::Error for crate::wire::utf8::InvalidUtf8 {}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use alloc::{format, string::String, string::ToString, vec, vec::Vec};

    // RFC 6455 §7.4.1: 1002 for protocol errors, 1007 for bad data, 1009 for too big.
    #[test]
    fn close_codes_of_each_error() {
        assert_eq!(ProtocolError::ReservedBits.close_code(), CloseCode::PROTOCOL_ERROR);
        assert_eq!(ProtocolError::InvalidUtf8.close_code(), CloseCode::INVALID_PAYLOAD);
        assert_eq!(
            ProtocolError::InvalidCloseReason.close_code(),
            CloseCode::INVALID_PAYLOAD
        );
        assert_eq!(
            ProtocolError::FrameTooLarge { len: 1, limit: 0 }.close_code(),
            CloseCode::MESSAGE_TOO_BIG
        );
        assert_eq!(
            ProtocolError::MessageTooLarge { len: 1, limit: 0 }.close_code(),
            CloseCode::MESSAGE_TOO_BIG
        );
        assert_eq!(ProtocolError::CloseFrameOneByte.close_code(), CloseCode::PROTOCOL_ERROR);
        // RFC 7692 §6.1: RSV1 where permessage-deflate does not allow it is a framing error.
        assert_eq!(
            ProtocolError::CompressedBitMisplaced.close_code(),
            CloseCode::PROTOCOL_ERROR
        );
        assert_eq!(
            ProtocolError::InvalidCompressedData.close_code(),
            CloseCode::INVALID_PAYLOAD
        );
    }
}
