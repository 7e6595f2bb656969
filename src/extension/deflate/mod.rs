//! permessage-deflate (RFC 7692): negotiation in both roles
//! (`negotiate.rs`) and the per-direction compression state (`codec.rs`).
//!
//! It is the crate's one implementation of the extension interface
//! (`crate::extension::Extension`): the connection core does not know it is
//! there. It owns RSV1, on the first frame of a data message only (§6).
//!
//! * Client: offer with [`ClientRequest::deflate`](crate::ClientRequest::deflate)
//!   (call it again for further offers, in order of preference). The response
//!   is checked against the offers (RFC 7692 §5, §7.1): anything else fails
//!   the handshake with [`HandshakeError::Extension`](crate::HandshakeError::Extension).
//! * Server: accept with [`Accept::deflate`](crate::Accept::deflate), which
//!   takes the first acceptable offer of the request ([`negotiate`] shows the
//!   choice beforehand); without it every offer is declined.
//! * Either way [`Event::Open`](crate::Event::Open) carries the agreed
//!   `Sec-WebSocket-Extensions` value and [`Connection::deflate`](crate::Connection::deflate)
//!   the agreed [`DeflateParams`].
//!
//! Backends, both pure Rust: zlib-rs through flate2 compresses (flate2 needs
//! `std`: the `deflate` feature implies `std`); miniz_oxide's core inflater
//! decompresses, because it stops at deflate block boundaries and writes into
//! a window we own. RFC 7692 §7.2.2 needs both: a message is whole only when
//! its payload with 0x00 0x00 0xff 0xff appended ends on a block boundary
//! (anything else fails with 1007), and a block with BFINAL set ends the
//! deflate stream but not the LZ77 window, which spans the messages (§7.2.1,
//! §7.2.3.4): what follows it in the message is decoded as the next block.
//! zlib-rs's stable API does not say where it stopped.
//!
//! Window bits: RFC 7692 allows 8 to 15. zlib (and zlib-rs) cannot open a raw
//! deflate stream with an 8-bit window: like zlib itself does for its own
//! streams, a negotiated 8 is compressed with a 9-bit window. That is still
//! valid for a peer with a 256-byte window, because deflate never emits a
//! distance above `window size − 262` (`MAX_DIST`): 250 bytes for a 9-bit
//! window. The receive side keeps exactly the negotiated window, 2^bits
//! bytes, and fails a distance beyond it or before the first byte of output.

mod codec;
mod negotiate;

pub(crate) use codec::PerMessageDeflate;
pub(crate) use negotiate::check_response;
pub use negotiate::{describe, negotiate};

use alloc::format;
use alloc::string::String;

/// RSV1, the bit permessage-deflate owns (RFC 7692 §6).
const RSV1: crate::extension::Rsv = 0b100;

/// The extension's registered name (RFC 7692 §7).
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The four octets a sync flush ends with, stripped from every compressed
/// message on send and appended again on receive (RFC 7692 §7.2.1, §7.2.2).
pub(crate) const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// What one side asks for and is willing to accept.
///
/// The same settings serve both roles; each field says what it means for a
/// client (its offer) and for a server (its answer).
///
/// ```
/// use wsmachine::deflate::DeflateConfig;
/// // A server that keeps its compressor small and forgets between messages.
/// let config = DeflateConfig { server_max_window_bits: 10, server_no_context_takeover: true, ..DeflateConfig::default() };
/// # let _ = config;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeflateConfig {
    /// The LZ77 window the server compresses with, 8..=15 (default 15).
    ///
    /// Client: below 15 it is offered as `server_max_window_bits=N` (RFC 7692
    /// §7.1.2.1), limiting the memory of our decompressor. Server: we
    /// compress with at most this window and answer `server_max_window_bits`
    /// when it is below 15 or the client asked for a limit (with the smaller
    /// of the two).
    pub server_max_window_bits: u8,
    /// The LZ77 window the client compresses with, 8..=15 (default 15).
    ///
    /// Client: always offered as `client_max_window_bits` (RFC 7692
    /// §7.1.2.2), with the value when below 15: we honour whatever smaller
    /// window the server answers. Server: below 15 we answer
    /// `client_max_window_bits=N` to shrink our decompressor; an offer
    /// without the parameter cannot be limited and is then declined.
    pub client_max_window_bits: u8,
    /// The server resets its compression context after every message (RFC
    /// 7692 §7.1.1.1). Client: requested in the offer. Server: we answer it
    /// (and free our compressor between messages) even when not requested.
    pub server_no_context_takeover: bool,
    /// The client resets its compression context after every message (RFC
    /// 7692 §7.1.1.2). Client: offered (a promise; we then free our
    /// compressor between messages). Server: we answer it, so our
    /// decompressor is freed between messages.
    pub client_no_context_takeover: bool,
    /// The zlib compression level for what this side sends, 0..=9 (default 6;
    /// 1 is fastest).
    pub level: u8,
    /// Messages shorter than this many bytes are sent uncompressed when the
    /// send call leaves the choice to the connection (default 128): below it
    /// the block overhead usually outweighs the gain. See
    /// [`Compression`](crate::Compression).
    pub threshold: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            level: 6,
            threshold: 128,
        }
    }
}

/// A [`DeflateConfig`] value out of range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeflateConfigError {
    /// Window bits outside 8..=15 (RFC 7692 §7.1.2).
    WindowBits(u8),
    /// A compression level above 9.
    Level(u8),
}

impl core::fmt::Display for DeflateConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DeflateConfigError::WindowBits(b) => {
                write!(
                    f,
                    "permessage-deflate window bits must be 8..=15, not {b} (RFC 7692 §7.1.2)"
                )
            }
            DeflateConfigError::Level(l) => write!(f, "the deflate level must be 0..=9, not {l}"),
        }
    }
}

impl DeflateConfig {
    /// Checks the ranges (window bits 8..=15, level 0..=9).
    pub fn validate(&self) -> Result<(), DeflateConfigError> {
        for bits in [self.server_max_window_bits, self.client_max_window_bits] {
            if !(8..=15).contains(&bits) {
                return Err(DeflateConfigError::WindowBits(bits));
            }
        }
        if self.level > 9 {
            return Err(DeflateConfigError::Level(self.level));
        }
        Ok(())
    }

    /// The offer a client sends for these settings (RFC 7692 §5.1, §7.1).
    pub fn offer(&self) -> String {
        let mut s = String::from(EXTENSION_NAME);
        if self.client_no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        if self.server_max_window_bits < 15 {
            s.push_str(&format!("; server_max_window_bits={}", self.server_max_window_bits));
        }
        if self.client_max_window_bits < 15 {
            s.push_str(&format!("; client_max_window_bits={}", self.client_max_window_bits));
        } else {
            s.push_str("; client_max_window_bits");
        }
        s
    }
}

/// The parameters both sides agreed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DeflateParams {
    /// The largest window the server compresses with (15 when not limited).
    pub server_max_window_bits: u8,
    /// The largest window the client compresses with (15 when not limited).
    pub client_max_window_bits: u8,
    /// The server resets its context after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its context after every message.
    pub client_no_context_takeover: bool,
}

/// A server's choice: the agreed parameters and the response element that says so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agreement {
    /// What both sides use.
    pub params: DeflateParams,
    /// The `Sec-WebSocket-Extensions` value of the 101 response.
    pub response: String,
    /// Which offer of the request (0-based, among its permessage-deflate offers) was taken.
    pub offer_index: usize,
}

/// The parameters of a test, in the order of their names.
#[cfg(test)]
fn params(sbits: u8, cbits: u8, snct: bool, cnct: bool) -> DeflateParams {
    DeflateParams {
        server_max_window_bits: sbits,
        client_max_window_bits: cbits,
        server_no_context_takeover: snct,
        client_no_context_takeover: cnct,
    }
}
