//! Errors, and the one place that maps each protocol violation to its close
//! code ([`ProtocolError::close_code`]).

use crate::close::CloseCode;
use crate::connection::ReadyState;
use crate::handshake::{HandshakeError, Response};
use alloc::boxed::Box;
use core::fmt;

/// A rule of RFC 6455 the peer broke after the handshake. Each one fails the
/// connection with the close code [`ProtocolError::close_code`] gives.
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// Everything that can go wrong, for the peer's bytes and for the
/// application's calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
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
    /// The call needs an OPEN connection; it is in this state.
    NotOpen(ReadyState),
    /// The call does not apply now (for example `accept` with no pending
    /// request); says which call and why.
    InvalidCall(&'static str),
    /// An argument was rejected; says which rule it broke.
    InvalidArgument(&'static str),
    /// A data message was sent while a fragmented message is unfinished, or
    /// a continuation with none started.
    FragmentState(&'static str),
    /// The output queue would pass
    /// [`Config::max_output_buffer`](crate::Config::max_output_buffer): the
    /// transport is not taking the bytes. Nothing was queued.
    OutputFull {
        /// Bytes already queued.
        buffered: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The text fragments sent are not valid UTF-8.
    InvalidUtf8,
    /// Our close frame went unanswered for the close timeout.
    CloseTimeout,
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Error::Protocol(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Protocol(e) => write!(f, "protocol error ({}): {e}", e.close_code()),
            Error::Handshake { error, .. } => write!(f, "handshake failed: {error}"),
            Error::NotOpen(state) => write!(f, "the connection is {state:?}, not OPEN"),
            Error::InvalidCall(why) | Error::InvalidArgument(why) | Error::FragmentState(why) => f.write_str(why),
            Error::InvalidUtf8 => f.write_str("text fragments are not valid UTF-8"),
            Error::OutputFull { buffered, limit } => {
                write!(
                    f,
                    "{buffered} bytes of output are waiting; sending more would pass the {limit}-byte limit"
                )
            }
            Error::CloseTimeout => f.write_str("the peer did not answer the close frame in time"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}
#[cfg(feature = "std")]
impl std::error::Error for ProtocolError {}
#[cfg(feature = "std")]
impl std::error::Error for HandshakeError {}

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
