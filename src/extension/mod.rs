//! The extension layer (RFC 6455 §9): one internal interface that every
//! extension implements, and the negotiation that picks the one in use.
//!
//! An extension, once negotiated, is an [`Extension`] value the connection
//! holds as `Option<Box<dyn Extension>>`; the connection core never names a
//! particular extension. The interface covers what RFC 6455 §9 lets an
//! extension do, in the shape of wsproto's `Extension`:
//!
//! - **negotiate** in the handshake: [`Offers`] (what a client offers, or
//!   what a server is willing to accept) turn into the header values and,
//!   from the peer's answer, into the agreed [`Extension`];
//! - **own RSV bits** ([`Extension::rsv`]): the reader fails frames whose
//!   other RSV bits are set (RFC 6455 §5.2);
//! - **transform an inbound message payload incrementally**
//!   ([`Extension::decode`]) into output space the caller bounds, so the
//!   message limit holds while decoding;
//! - **transform an outbound payload** ([`Extension::encode`]).
//!
//! permessage-deflate (RFC 7692, module [`deflate`], feature `deflate`) is the
//! one implementation; this file is the only place that knows whether the
//! feature is on.

#[cfg(feature = "deflate")]
pub mod deflate;

use crate::handshake::{HandshakeError, Headers};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// RSV bits of a frame header as a mask (RFC 6455 §5.2).
pub(crate) type Rsv = u8;

/// What one [`Extension::decode`] step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decoded {
    /// Input bytes consumed.
    pub(crate) consumed: usize,
    /// The message's decoded output is complete (only with `end`).
    pub(crate) done: bool,
}

/// The inbound payload is not what the extension's encoding allows (for
/// permessage-deflate: it does not inflate, RFC 7692 §7.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DecodeError;

/// An extension in use on one connection, both directions.
pub(crate) trait Extension: Send + fmt::Debug {
    /// The `Sec-WebSocket-Extensions` value that describes what was agreed
    /// (what [`Event::Open`](crate::Event::Open) reports).
    fn describe(&self) -> String;

    /// The RSV bits this extension owns; any other set bit is a protocol
    /// error (RFC 6455 §5.2).
    fn rsv(&self) -> Rsv;

    /// Whether a data message whose first frame carries `rsv` (a subset of
    /// [`Extension::rsv`]) is to be decoded.
    fn decodes(&self, rsv: Rsv) -> bool;

    /// Decodes the next `input` bytes of an inbound message's payload into
    /// the spare capacity of `out`, never past it (the caller sizes `out`,
    /// which is how the message limit holds while decoding). `end`: `input`
    /// runs to the end of the message; call again with empty input until
    /// `done`. When `out` is full afterwards, more output may be pending:
    /// call again after making room.
    fn decode(&mut self, input: &[u8], end: bool, out: &mut Vec<u8>) -> Result<Decoded, DecodeError>;

    /// Messages shorter than this are sent untransformed when the caller
    /// leaves the choice to the connection.
    fn threshold(&self) -> usize;

    /// An upper bound of the encoded size of `len` payload bytes.
    fn encoded_bound(&self, len: usize) -> usize;

    /// Encodes the next piece of an outbound message, appending to `out`;
    /// `fin` ends the message. Returns the RSV bits that mark the message's
    /// first frame.
    fn encode(&mut self, data: &[u8], fin: bool, out: &mut Vec<u8>) -> Rsv;

    /// The cache slot (below [`SHARED_SLOTS`]) of this side's encoding of a
    /// whole message when that encoding depends on no earlier message, so
    /// that every connection reporting the same slot can share one encoding
    /// of a message (a [`PreparedMessage`](crate::PreparedMessage)'s);
    /// `None` when each message depends on this connection's context. For
    /// permessage-deflate: `Some` only when this side resets its context
    /// after every message (RFC 7692 §7.1.1), one slot per window size.
    /// (With `std`: the shared encodings are cached in `OnceLock`s.)
    #[cfg(feature = "std")]
    fn shared_slot(&self) -> Option<usize>;

    /// Encodes `data` as one whole message with a fresh context, appending
    /// to `out`, without touching this connection's state; returns the RSV
    /// bits of the message's frame. Only meaningful when
    /// [`Extension::shared_slot`] is `Some`.
    #[cfg(feature = "std")]
    fn encode_shared(&self, data: &[u8], out: &mut Vec<u8>) -> Rsv;

    /// Whether encoder (`.0`) and decoder (`.1`) state is held right now
    /// (what `Connection::deflate_state_allocated` reports).
    #[cfg(feature = "deflate")]
    fn state_allocated(&self) -> (bool, bool);

    /// The permessage-deflate parameters, when this is permessage-deflate.
    #[cfg(feature = "deflate")]
    fn deflate_params(&self) -> Option<deflate::DeflateParams>;
}

/// How many distinct [`Extension::shared_slot`] values there are.
#[cfg(feature = "std")]
pub(crate) const SHARED_SLOTS: usize = 8;

/// An extension configuration that cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OfferError {
    /// A permessage-deflate setting out of range.
    #[cfg(feature = "deflate")]
    Deflate(deflate::DeflateConfigError),
}

/// The extensions one side is configured with: what a client offers, in
/// order of preference, or what a server accepts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Offers {
    /// permessage-deflate settings, in order of preference (a server uses
    /// the first).
    #[cfg(feature = "deflate")]
    pub(crate) deflate: Vec<deflate::DeflateConfig>,
}

impl Offers {
    /// Checks every configuration's ranges.
    pub(crate) fn validate(&self) -> Result<(), OfferError> {
        #[cfg(feature = "deflate")]
        for config in &self.deflate {
            config.validate().map_err(OfferError::Deflate)?;
        }
        Ok(())
    }

    /// Client: the `Sec-WebSocket-Extensions` value to offer, if any.
    pub(crate) fn header_value(&self) -> Option<String> {
        #[cfg(feature = "deflate")]
        if !self.deflate.is_empty() {
            let offers: Vec<String> = self.deflate.iter().map(|o| o.offer()).collect();
            return Some(offers.join(", "));
        }
        None
    }

    /// Client: checks the response's extensions against these offers (RFC
    /// 6455 §4.2.2 step 5; RFC 7692 §5, §7.1) and returns the extension to
    /// use, if the server accepted one.
    pub(crate) fn check_response(&self, headers: &Headers) -> Result<Option<Box<dyn Extension>>, HandshakeError> {
        #[cfg(feature = "deflate")]
        {
            let agreed = deflate::check_response(headers, &self.deflate)?;
            // RFC 7692: this side's level and threshold come from the first offer.
            let default = deflate::DeflateConfig::default();
            let config = self.deflate.first().unwrap_or(&default);
            Ok(agreed
                .map(|params| Box::new(deflate::PerMessageDeflate::new(params, false, config)) as Box<dyn Extension>))
        }
        #[cfg(not(feature = "deflate"))]
        {
            // Nothing was offered, so nothing may be accepted.
            let elements = crate::handshake::parse_extensions(headers)
                .map_err(|why| HandshakeError::Extension(String::from(why)))?;
            match elements.into_iter().next() {
                Some(e) => Err(HandshakeError::UnofferedExtension(e.name)),
                None => Ok(None),
            }
        }
    }

    /// Server: the answer to the request's offers (its
    /// `Sec-WebSocket-Extensions` value for the 101) and the extension to
    /// use, or `None` when every offer is declined.
    pub(crate) fn answer(&self, request: &Headers) -> Option<(String, Box<dyn Extension>)> {
        #[cfg(feature = "deflate")]
        if let Some(config) = self.deflate.first() {
            let agreement = deflate::negotiate(request, config)?;
            let ext = deflate::PerMessageDeflate::new(agreement.params, true, config);
            return Some((agreement.response, Box::new(ext)));
        }
        let _ = request;
        None
    }
}
