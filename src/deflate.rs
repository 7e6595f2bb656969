//! permessage-deflate (RFC 7692): negotiation in both roles and the
//! per-direction compression state.
//!
//! The connection core stays extension-agnostic: after the handshake it holds
//! an `Option` of the two halves built here — an `Inflater` in the receive
//! path (the reader lets RSV1 through only on the first frame of a data
//! message when one is present) and a `Deflater` in the send path.
//!
//! * Client: offer with [`ClientRequest::deflate`](crate::ClientRequest::deflate)
//!   (call it again for further offers, in order of preference). The response
//!   is checked against the offers (RFC 7692 §5, §7.1): anything else fails
//!   the handshake with [`HandshakeError::Extension`].
//! * Server: accept with [`Accept::deflate`](crate::Accept::deflate), which
//!   takes the first acceptable offer of the request ([`negotiate`] shows the
//!   choice beforehand); without it every offer is declined.
//! * Either way [`Event::Open`](crate::Event::Open) carries the agreed
//!   `Sec-WebSocket-Extensions` value and [`Connection::deflate`](crate::Connection::deflate)
//!   the agreed [`DeflateParams`].
//!
//! The backend is zlib-rs (pure Rust) through flate2, which needs `std`: the
//! `deflate` feature implies `std`.
//!
//! Window bits: RFC 7692 allows 8 to 15. zlib (and zlib-rs) cannot open a raw
//! deflate stream with an 8-bit window: like zlib itself does for its own
//! streams, a negotiated 8 is compressed with a 9-bit window. That is still
//! valid for a peer with a 256-byte window, because deflate never emits a
//! distance above `window size − 262` (`MAX_DIST`): 250 bytes for a 9-bit
//! window. The receive side likewise inflates with at least 9 bits (a
//! superset of 8; 256 bytes more).

use crate::error::ProtocolError;
use crate::handshake::{HandshakeError, Headers};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The extension's registered name (RFC 7692 §7).
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// The four octets a sync flush ends with, stripped from every compressed
/// message on send and appended again on receive (RFC 7692 §7.2.1, §7.2.2).
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

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

impl DeflateConfig {
    /// Checks the ranges (window bits 8..=15, level 0..=9).
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        if !(8..=15).contains(&self.server_max_window_bits) || !(8..=15).contains(&self.client_max_window_bits) {
            return Err("permessage-deflate window bits must be 8..=15 (RFC 7692 §7.1.2)");
        }
        if self.level > 9 {
            return Err("the deflate level must be 0..=9");
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

// ----- header parsing (RFC 6455 §9.1) ------------------------------------------

/// One element of a `Sec-WebSocket-Extensions` list: a name and its
/// parameters (a value unquoted when it was a quoted-string).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extension {
    /// The extension token, for example `permessage-deflate`.
    pub name: String,
    /// `name` or `name=value` parameters in order.
    pub params: Vec<(String, Option<String>)>,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn ows(&mut self) {
        while matches!(self.s.get(self.i), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn token(&mut self) -> Option<String> {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }
    fn quoted(&mut self) -> Option<String> {
        // RFC 9110 §5.6.4: DQUOTE *( qdtext / quoted-pair ) DQUOTE
        self.i += 1;
        let mut v = Vec::new();
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Some(String::from_utf8_lossy(&v).into_owned());
                }
                b'\\' => {
                    self.i += 1;
                    v.push(self.peek()?);
                    self.i += 1;
                }
                b => {
                    v.push(b);
                    self.i += 1;
                }
            }
        }
    }
}

/// Parses every `Sec-WebSocket-Extensions` header of `headers` into its
/// elements (RFC 6455 §9.1). `Err` when a header is not of that form.
pub fn parse_extensions(headers: &Headers) -> Result<Vec<Extension>, &'static str> {
    let mut out = Vec::new();
    for value in headers.get_all("sec-websocket-extensions") {
        parse_extension_list(value, &mut out)?;
    }
    Ok(out)
}

fn parse_extension_list(value: &[u8], out: &mut Vec<Extension>) -> Result<(), &'static str> {
    const BAD: &str = "malformed Sec-WebSocket-Extensions header (RFC 6455 §9.1)";
    let mut c = Cursor { s: value, i: 0 };
    loop {
        c.ows();
        match c.peek() {
            None => return Ok(()),
            Some(b',') => {
                // Empty list elements are allowed (RFC 9110 §5.6.1).
                c.i += 1;
                continue;
            }
            _ => {}
        }
        let name = c.token().ok_or(BAD)?;
        let mut params = Vec::new();
        loop {
            c.ows();
            match c.peek() {
                None | Some(b',') => break,
                Some(b';') => c.i += 1,
                _ => return Err(BAD),
            }
            c.ows();
            let pname = c.token().ok_or(BAD)?;
            c.ows();
            let pvalue = if c.peek() == Some(b'=') {
                c.i += 1;
                c.ows();
                Some(match c.peek() {
                    Some(b'"') => c.quoted().ok_or(BAD)?,
                    _ => c.token().ok_or(BAD)?,
                })
            } else {
                None
            };
            params.push((pname, pvalue));
        }
        out.push(Extension { name, params });
    }
}

// ----- parameters (RFC 7692 §7.1) ------------------------------------------------

/// The parameters of one permessage-deflate element, checked for the rules
/// both roles share: known names, no duplicates, valid values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Parsed {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (allowed in an offer only).
    client_max_window_bits: Option<Option<u8>>,
}

/// A window-bits value: 8..=15 in decimal without leading zeros (RFC 7692
/// §7.1.2.1, §7.1.2.2).
fn window_bits(v: &str) -> Option<u8> {
    match v.as_bytes() {
        [d @ b'8'..=b'9'] => Some(d - b'0'),
        [b'1', d @ b'0'..=b'5'] => Some(10 + d - b'0'),
        _ => None,
    }
}

/// Parses the parameters of an element, in an offer (`offer`) or a response.
/// The error names the rule broken (RFC 7692 §7.1: a server declines such an
/// offer, a client fails on such a response).
fn parse_params(params: &[(String, Option<String>)], offer: bool) -> Result<Parsed, String> {
    let mut p = Parsed::default();
    let mut seen = [false; 4];
    for (name, value) in params {
        let idx = match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" => 0,
            "client_no_context_takeover" => 1,
            "server_max_window_bits" => 2,
            "client_max_window_bits" => 3,
            _ => return Err(format!("unknown parameter {name:?} (RFC 7692 §7.1)")),
        };
        if seen[idx] {
            return Err(format!("parameter {name} appears twice (RFC 7692 §7.1)"));
        }
        seen[idx] = true;
        match (idx, value) {
            (0 | 1, Some(_)) => return Err(format!("{name} takes no value (RFC 7692 §7.1.1)")),
            (0, None) => p.server_no_context_takeover = true,
            (1, None) => p.client_no_context_takeover = true,
            (2, v) => {
                let bits = v.as_deref().and_then(window_bits);
                if bits.is_none() {
                    return Err(format!("{name} needs a value from 8 to 15 (RFC 7692 §7.1.2.1)"));
                }
                p.server_max_window_bits = bits;
            }
            (_, None) if offer => p.client_max_window_bits = Some(None),
            (_, None) => {
                return Err(format!("{name} without a value in a response (RFC 7692 §7.1.2.2)"));
            }
            (_, Some(v)) => match window_bits(v) {
                Some(b) => p.client_max_window_bits = Some(Some(b)),
                None => return Err(format!("{name} needs a value from 8 to 15 (RFC 7692 §7.1.2.2)")),
            },
        }
    }
    Ok(p)
}

// ----- server side -------------------------------------------------------------------

/// The server's decision on one offer, or `None` to decline it.
fn answer(offer: &Parsed, config: &DeflateConfig) -> Option<(DeflateParams, String)> {
    // §7.1.2.2: the client's window can only be limited when it says it supports that.
    let client_bits = match (offer.client_max_window_bits, config.client_max_window_bits) {
        (None, 15) => None,
        (None, _) => return None,
        (Some(None), 15) => None,
        (Some(None), ours) => Some(ours),
        (Some(Some(theirs)), ours) => Some(theirs.min(ours)),
    };
    // §7.1.2.1: answer with the same or a smaller value than requested.
    let server_bits = match offer.server_max_window_bits {
        Some(theirs) => Some(theirs.min(config.server_max_window_bits)),
        None if config.server_max_window_bits < 15 => Some(config.server_max_window_bits),
        None => None,
    };
    // §7.1.1.1: a requested server_no_context_takeover must be accepted.
    let server_nct = offer.server_no_context_takeover || config.server_no_context_takeover;
    // §7.1.1.2: the offer's client_no_context_takeover is only a hint; some
    // clients (Autobahn's) read it as "may be asked" and keep their context
    // unless the response says so. Keeping our window is always safe, so the
    // decompressor forgets between messages only when we answer it.
    let client_nct = config.client_no_context_takeover;
    let mut response = String::from(EXTENSION_NAME);
    if server_nct {
        response.push_str("; server_no_context_takeover");
    }
    if config.client_no_context_takeover {
        response.push_str("; client_no_context_takeover");
    }
    if let Some(b) = server_bits {
        response.push_str(&format!("; server_max_window_bits={b}"));
    }
    if let Some(b) = client_bits {
        response.push_str(&format!("; client_max_window_bits={b}"));
    }
    let params = DeflateParams {
        server_max_window_bits: server_bits.unwrap_or(15),
        client_max_window_bits: client_bits.unwrap_or(15),
        server_no_context_takeover: server_nct,
        client_no_context_takeover: client_nct,
    };
    Some((params, response))
}

/// Server: the first permessage-deflate offer of a request's headers that
/// `config` can accept (RFC 7692 §5, §7.1), or `None` when every offer is
/// declined. Offers with unknown, duplicate or invalid parameters are
/// declined, as §7.1 requires; so is a header that does not parse.
pub fn negotiate(headers: &Headers, config: &DeflateConfig) -> Option<Agreement> {
    if config.validate().is_err() {
        return None;
    }
    let extensions = parse_extensions(headers).ok()?;
    extensions
        .iter()
        .filter(|e| e.name.eq_ignore_ascii_case(EXTENSION_NAME))
        .enumerate()
        .find_map(|(offer_index, e)| {
            let offer = parse_params(&e.params, true).ok()?;
            let (params, response) = answer(&offer, config)?;
            Some(Agreement {
                params,
                response,
                offer_index,
            })
        })
}

// ----- client side ---------------------------------------------------------------------

fn extension_error(why: String) -> HandshakeError {
    HandshakeError::Extension(why)
}

/// Client: checks the response's extensions against the offers (RFC 7692
/// §5, §7.1) and returns what was agreed (`None`: the server declined).
pub(crate) fn check_response(
    headers: &Headers,
    offers: &[DeflateConfig],
) -> Result<Option<DeflateParams>, HandshakeError> {
    let extensions = parse_extensions(headers).map_err(|e| extension_error(e.to_string()))?;
    let mut agreed = None;
    for ext in &extensions {
        if !ext.name.eq_ignore_ascii_case(EXTENSION_NAME) || offers.is_empty() {
            return Err(HandshakeError::UnofferedExtension(ext.name.clone()));
        }
        // RFC 7692 §5: one accepted PMCE owns RSV1; a second one conflicts.
        if agreed.is_some() {
            return Err(extension_error(String::from(
                "permessage-deflate accepted twice (RFC 7692 §5)",
            )));
        }
        let resp =
            parse_params(&ext.params, false).map_err(|why| extension_error(format!("permessage-deflate: {why}")))?;
        let mut first_error = None;
        for offer in offers {
            match response_matches(&resp, offer) {
                Ok(params) => {
                    agreed = Some(params);
                    break;
                }
                Err(why) => {
                    first_error.get_or_insert(why);
                }
            }
        }
        if agreed.is_none() {
            let why = first_error.unwrap_or_default();
            return Err(extension_error(format!("permessage-deflate: {why}")));
        }
    }
    Ok(agreed)
}

/// Whether a response can answer `offer`, and the parameters it sets.
fn response_matches(resp: &Parsed, offer: &DeflateConfig) -> Result<DeflateParams, String> {
    // §7.1.1.1: a requested server_no_context_takeover must be in the response.
    if offer.server_no_context_takeover && !resp.server_no_context_takeover {
        return Err(String::from(
            "the response lacks the server_no_context_takeover we requested (RFC 7692 §7.1.1.1)",
        ));
    }
    // §7.1.2.1: a requested limit must be answered with the same or a smaller value.
    let server_bits = match (offer.server_max_window_bits, resp.server_max_window_bits) {
        (15, None) => 15,
        (asked, None) => {
            return Err(format!(
                "the response lacks server_max_window_bits (we asked for at most {asked}, RFC 7692 §7.1.2.1)"
            ));
        }
        (asked, Some(b)) if b > asked => {
            return Err(format!(
                "server_max_window_bits={b} is larger than the {asked} we asked for (RFC 7692 §7.1.2.1)"
            ));
        }
        (_, Some(b)) => b,
    };
    // §7.1.2.2: the server may only limit our window below what we offered.
    let client_bits = match resp.client_max_window_bits {
        None => offer.client_max_window_bits,
        Some(Some(b)) if b > offer.client_max_window_bits => {
            return Err(format!(
                "client_max_window_bits={b} is larger than the {} we offered (RFC 7692 §7.1.2.2)",
                offer.client_max_window_bits
            ));
        }
        Some(Some(b)) => b,
        // Rejected by parse_params for a response.
        Some(None) => offer.client_max_window_bits,
    };
    Ok(DeflateParams {
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
        server_no_context_takeover: resp.server_no_context_takeover,
        client_no_context_takeover: resp.client_no_context_takeover || offer.client_no_context_takeover,
    })
}

/// The `Sec-WebSocket-Extensions` value that describes `params` (what
/// [`Event::Open`](crate::Event::Open) reports).
pub fn describe(params: &DeflateParams) -> String {
    let mut s = String::from(EXTENSION_NAME);
    if params.server_no_context_takeover {
        s.push_str("; server_no_context_takeover");
    }
    if params.client_no_context_takeover {
        s.push_str("; client_no_context_takeover");
    }
    if params.server_max_window_bits < 15 {
        s.push_str(&format!("; server_max_window_bits={}", params.server_max_window_bits));
    }
    if params.client_max_window_bits < 15 {
        s.push_str(&format!("; client_max_window_bits={}", params.client_max_window_bits));
    }
    s
}

// ----- the codec (RFC 7692 §7.2) ----------------------------------------------------------

/// The window zlib can open for `bits` (8 is opened as 9, see the module docs).
fn zlib_bits(bits: u8) -> u8 {
    bits.clamp(9, 15)
}

/// The send half: compresses messages, keeping or resetting the context
/// between them as negotiated.
pub(crate) struct Deflater {
    /// What was agreed (both directions).
    pub(crate) params: DeflateParams,
    window_bits: u8,
    no_context_takeover: bool,
    level: u8,
    pub(crate) threshold: usize,
    /// Created at the first compressed message; dropped after every message
    /// under no-context-takeover, so an idle connection holds none.
    state: Option<Compress>,
}

impl core::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Deflater")
            .field("window_bits", &self.window_bits)
            .field("no_context_takeover", &self.no_context_takeover)
            .field("allocated", &self.state.is_some())
            .finish()
    }
}

impl Deflater {
    /// The half for what `we_are_server` sends.
    pub(crate) fn new(params: &DeflateParams, we_are_server: bool, config: &DeflateConfig) -> Self {
        let (window_bits, no_context_takeover) = if we_are_server {
            (params.server_max_window_bits, params.server_no_context_takeover)
        } else {
            (params.client_max_window_bits, params.client_no_context_takeover)
        };
        Deflater {
            params: *params,
            window_bits,
            no_context_takeover,
            level: config.level.min(9),
            threshold: config.threshold,
            state: None,
        }
    }

    /// Whether compressor state is held now.
    pub(crate) fn is_allocated(&self) -> bool {
        self.state.is_some()
    }

    /// An upper bound of the compressed size of `len` bytes (stored blocks
    /// plus the sync flush in the worst case).
    pub(crate) fn bound(len: usize) -> usize {
        len.saturating_add(len >> 3).saturating_add(64)
    }

    /// Compresses the next piece of a message into `out` (appending). Every
    /// piece ends with a sync flush so the peer can inflate it at once; the
    /// last piece (`fin`) has the final four octets removed (RFC 7692
    /// §7.2.1).
    pub(crate) fn compress(&mut self, data: &[u8], fin: bool, out: &mut Vec<u8>) {
        let (level, bits) = (self.level, zlib_bits(self.window_bits));
        let state = self
            .state
            .get_or_insert_with(|| Compress::new_with_window_bits(Compression::new(u32::from(level)), false, bits));
        let start = out.len();
        out.reserve(Self::bound(data.len()));
        let mut input = data;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(64));
            }
            let before_in = state.total_in();
            let before_out = out.len();
            // Sync flush: all input out, ending in an empty stored block (00 00 ff ff).
            let status = state.compress_vec(input, out, FlushCompress::Sync);
            let consumed = (state.total_in() - before_in) as usize;
            input = &input[consumed.min(input.len())..];
            let room_left = out.len() < out.capacity();
            match status {
                // Done when all input is in and the flush fit with room to spare.
                Ok(Status::Ok | Status::BufError) if input.is_empty() && room_left => break,
                Ok(_) => {}
                // Not reachable with a valid stream state; leave what was written.
                Err(_) => break,
            }
            if out.len() == before_out && consumed == 0 && room_left {
                break;
            }
        }
        if fin {
            if out[start..].ends_with(&TAIL) {
                out.truncate(out.len() - TAIL.len());
            } else if out.len() == start {
                // Nothing new since the last flush (an empty message, or an
                // empty last fragment): an empty stored block's first octet,
                // the tail completes it (RFC 7692 §7.2.3.6).
                out.push(0x00);
            }
            if self.no_context_takeover {
                // §7.1.1: nothing of this message may be referenced by the next one;
                // free the state (about 200-300 KiB) until the next compressed message.
                self.state = None;
            }
        }
    }
}

/// Why inflating failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InflateError;

/// The receive half: inflates the messages the peer compressed.
pub(crate) struct Inflater {
    window_bits: u8,
    no_context_takeover: bool,
    /// Created at the first compressed message; dropped after every message
    /// under the peer's no-context-takeover.
    state: Option<Decompress>,
    /// The stream ended (a block with BFINAL, RFC 7692 §7.2.3.4): the rest of
    /// the message is ignored and the next one starts a fresh stream.
    ended: bool,
}

impl core::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Inflater")
            .field("window_bits", &self.window_bits)
            .field("no_context_takeover", &self.no_context_takeover)
            .field("allocated", &self.state.is_some())
            .finish()
    }
}

impl Inflater {
    /// The half for what the peer of `we_are_server` sends.
    pub(crate) fn new(params: &DeflateParams, we_are_server: bool) -> Self {
        let (window_bits, no_context_takeover) = if we_are_server {
            (params.client_max_window_bits, params.client_no_context_takeover)
        } else {
            (params.server_max_window_bits, params.server_no_context_takeover)
        };
        Inflater {
            window_bits,
            no_context_takeover,
            state: None,
            ended: false,
        }
    }

    /// Whether decompressor state is held now.
    pub(crate) fn is_allocated(&self) -> bool {
        self.state.is_some()
    }

    /// Inflates from `input` into the spare capacity of `out` (never beyond
    /// it, so the caller bounds the memory). Returns how many input bytes
    /// were consumed. When `out` is full afterwards, more output may be
    /// pending: call again (with the rest of the input, or none).
    pub(crate) fn inflate(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, InflateError> {
        if self.ended {
            // Everything after the final block is ignored.
            return Ok(input.len());
        }
        let bits = zlib_bits(self.window_bits);
        let state = self
            .state
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, bits));
        let before = state.total_in();
        let status = state
            .decompress_vec(input, out, FlushDecompress::None)
            .map_err(|_| InflateError)?;
        let consumed = (state.total_in() - before) as usize;
        if status == Status::StreamEnd {
            self.ended = true;
            return Ok(input.len());
        }
        Ok(consumed.min(input.len()))
    }

    /// The message ended (its tail was inflated): keep the window for the
    /// next one, or free it under no-context-takeover (RFC 7692 §7.1.1).
    pub(crate) fn end_message(&mut self) {
        if self.no_context_takeover || self.ended {
            self.state = None;
        }
        self.ended = false;
    }
}

/// A decompression failure as the protocol error it is: the payload is not
/// what a compressed message must be (1007, like Node's `ws`).
pub(crate) fn inflate_error(_: InflateError) -> ProtocolError {
    ProtocolError::InvalidCompressedData
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::Header;
    #[allow(unused_imports)]
    use alloc::{format, string::String, string::ToString, vec, vec::Vec};

    fn headers(values: &[&str]) -> Headers {
        Headers(
            values
                .iter()
                .map(|v| Header {
                    name: "Sec-WebSocket-Extensions".into(),
                    value: v.as_bytes().to_vec(),
                })
                .collect(),
        )
    }

    fn inflate_all(inf: &mut Inflater, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        let mut input = data;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity());
            }
            let n = inf.inflate(input, &mut out).unwrap();
            input = &input[n..];
            if input.is_empty() && out.len() < out.capacity() {
                return out;
            }
        }
    }

    fn params(sbits: u8, cbits: u8, snct: bool, cnct: bool) -> DeflateParams {
        DeflateParams {
            server_max_window_bits: sbits,
            client_max_window_bits: cbits,
            server_no_context_takeover: snct,
            client_no_context_takeover: cnct,
        }
    }

    // RFC 6455 §9.1: extension lists, parameters, quoted values, several headers.
    #[test]
    fn extension_header_grammar() {
        let exts = parse_extensions(&headers(&[
            "permessage-deflate; client_max_window_bits, permessage-deflate; server_max_window_bits=\"10\"",
            " foo ;a=1 ; b , ,",
        ]))
        .unwrap();
        assert_eq!(exts.len(), 3);
        assert_eq!(exts[0].params, [("client_max_window_bits".into(), None)]);
        assert_eq!(exts[1].params, [("server_max_window_bits".into(), Some("10".into()))]);
        assert_eq!(exts[2].name, "foo");
        assert!(parse_extensions(&headers(&["permessage-deflate; =1"])).is_err());
        assert!(parse_extensions(&headers(&["permessage-deflate x"])).is_err());
        assert!(parse_extensions(&headers(&["a; b=\"unterminated"])).is_err());
    }

    // RFC 7692 §7.1.2.1/§7.1.2.2: 8..=15, decimal, no leading zeros.
    #[test]
    fn window_bits_values() {
        for b in 8..=15u8 {
            assert_eq!(window_bits(&b.to_string()), Some(b));
        }
        for bad in ["7", "16", "08", "", "+9", "9 ", "0x9", "１０"] {
            assert_eq!(window_bits(bad), None, "{bad:?}");
        }
    }

    fn server(offer: &str, config: &DeflateConfig) -> Option<Agreement> {
        negotiate(&headers(&[offer]), config)
    }

    // RFC 7692 §7.1: a server declines offers with unknown, duplicate or invalid parameters.
    #[test]
    fn server_declines_invalid_offers() {
        let c = DeflateConfig::default();
        for offer in [
            "permessage-deflate; foo",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=\"\"",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=0",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        ] {
            assert_eq!(server(offer, &c), None, "{offer}");
        }
        // The next valid offer is taken instead (§5: offers in order of preference).
        let a = server("permessage-deflate; foo, permessage-deflate", &c).unwrap();
        assert_eq!(a.offer_index, 1);
        assert_eq!(a.response, "permessage-deflate");
        // Other extensions are not ours to accept.
        assert_eq!(server("x-webkit-deflate-frame", &c), None);
    }

    // RFC 7692 §7.1.1.1, §7.1.1.2, §7.1.2.1, §7.1.2.2: the server's answer to each parameter.
    #[test]
    fn server_answers_each_parameter() {
        let c = DeflateConfig::default();
        let a = server("permessage-deflate", &c).unwrap();
        assert_eq!(
            (a.params, a.response.as_str()),
            (params(15, 15, false, false), "permessage-deflate")
        );
        // A requested server_no_context_takeover is accepted (§7.1.1.1).
        let a = server("permessage-deflate; server_no_context_takeover", &c).unwrap();
        assert_eq!(a.response, "permessage-deflate; server_no_context_takeover");
        assert!(a.params.server_no_context_takeover);
        // The client's hint needs no answer (§7.1.1.2); we keep our window.
        let a = server("permessage-deflate; client_no_context_takeover", &c).unwrap();
        assert_eq!(a.response, "permessage-deflate");
        assert!(!a.params.client_no_context_takeover);
        // A server window limit is answered with the same value or less (§7.1.2.1).
        let a = server("permessage-deflate; server_max_window_bits=10", &c).unwrap();
        assert_eq!(a.response, "permessage-deflate; server_max_window_bits=10");
        let small = DeflateConfig {
            server_max_window_bits: 9,
            ..c.clone()
        };
        let a = server("permessage-deflate; server_max_window_bits=10", &small).unwrap();
        assert_eq!(a.params.server_max_window_bits, 9);
        let a = server("permessage-deflate", &small).unwrap();
        assert_eq!(a.response, "permessage-deflate; server_max_window_bits=9");
        // The client's window: limited only when the offer allows it (§7.1.2.2).
        let limit = DeflateConfig {
            client_max_window_bits: 10,
            ..c.clone()
        };
        assert_eq!(server("permessage-deflate", &limit), None);
        let a = server("permessage-deflate; client_max_window_bits", &limit).unwrap();
        assert_eq!(a.response, "permessage-deflate; client_max_window_bits=10");
        assert_eq!(a.params.client_max_window_bits, 10);
        let a = server("permessage-deflate; client_max_window_bits=9", &limit).unwrap();
        assert_eq!(a.params.client_max_window_bits, 9);
        let a = server("permessage-deflate; client_max_window_bits=12", &c).unwrap();
        assert_eq!(a.response, "permessage-deflate; client_max_window_bits=12");
        let a = server("permessage-deflate; client_max_window_bits", &c).unwrap();
        assert_eq!(a.response, "permessage-deflate");
        // Quoted values are the same values (RFC 6455 §9.1).
        let a = server("permessage-deflate; server_max_window_bits=\"12\"", &c).unwrap();
        assert_eq!(a.params.server_max_window_bits, 12);
        // A server demanding no context takeover from the client says so.
        let nct = DeflateConfig {
            client_no_context_takeover: true,
            server_no_context_takeover: true,
            ..c
        };
        let a = server("permessage-deflate", &nct).unwrap();
        assert_eq!(
            a.response,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        assert_eq!(a.params, params(15, 15, true, true));
    }

    fn client(response: &str, offers: &[DeflateConfig]) -> Result<Option<DeflateParams>, HandshakeError> {
        check_response(&headers(&[response]), offers)
    }

    // RFC 7692 §7.1: a client fails the connection on a response that breaks a rule.
    #[test]
    fn client_fails_on_invalid_responses() {
        let offer = [DeflateConfig::default()];
        for resp in [
            "permessage-deflate; foo",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_no_context_takeover=1",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate, permessage-deflate",
        ] {
            assert!(
                matches!(client(resp, &offer), Err(HandshakeError::Extension(_))),
                "{resp}: {:?}",
                client(resp, &offer)
            );
        }
        // RFC 6455 §4.2.2 / RFC 7692 §5: an extension that was not offered.
        assert_eq!(
            client("x-foo", &offer),
            Err(HandshakeError::UnofferedExtension("x-foo".into()))
        );
        assert_eq!(
            client("permessage-deflate", &[]),
            Err(HandshakeError::UnofferedExtension("permessage-deflate".into()))
        );
    }

    // RFC 7692 §7.1.1.1, §7.1.1.2, §7.1.2.1, §7.1.2.2: the response against the offer.
    #[test]
    fn client_checks_the_response_against_its_offer() {
        let d = DeflateConfig::default();
        assert_eq!(client("", core::slice::from_ref(&d)), Ok(None));
        assert_eq!(
            client("permessage-deflate", core::slice::from_ref(&d)),
            Ok(Some(params(15, 15, false, false)))
        );
        // The server may declare no context takeover and smaller windows unasked.
        assert_eq!(
            client(
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=10",
                core::slice::from_ref(&d)
            ),
            Ok(Some(params(9, 10, true, false)))
        );
        // §7.1.1.1: a requested server_no_context_takeover must be in the response.
        let snct = DeflateConfig {
            server_no_context_takeover: true,
            ..d.clone()
        };
        assert!(client("permessage-deflate", core::slice::from_ref(&snct)).is_err());
        // ... unless another offer matches.
        assert!(client("permessage-deflate", &[snct, d.clone()]).is_ok());
        // §7.1.2.1: a requested limit needs an answer of the same or smaller value.
        let sbits = DeflateConfig {
            server_max_window_bits: 10,
            ..d.clone()
        };
        assert!(client("permessage-deflate", core::slice::from_ref(&sbits)).is_err());
        assert!(
            client(
                "permessage-deflate; server_max_window_bits=11",
                core::slice::from_ref(&sbits)
            )
            .is_err()
        );
        assert_eq!(
            client("permessage-deflate; server_max_window_bits=8", &[sbits]),
            Ok(Some(params(8, 15, false, false)))
        );
        // §7.1.2.2: the client window can be limited below what was offered, not above.
        let cbits = DeflateConfig {
            client_max_window_bits: 10,
            ..d.clone()
        };
        assert!(
            client(
                "permessage-deflate; client_max_window_bits=11",
                core::slice::from_ref(&cbits)
            )
            .is_err()
        );
        assert_eq!(
            client("permessage-deflate", &[cbits]),
            Ok(Some(params(15, 10, false, false)))
        );
        // §7.1.1.2: our promise holds whatever the response says.
        let cnct = DeflateConfig {
            client_no_context_takeover: true,
            ..d
        };
        assert_eq!(
            client("permessage-deflate", &[cnct]),
            Ok(Some(params(15, 15, false, true)))
        );
    }

    #[test]
    fn offers_are_written_as_configured() {
        assert_eq!(
            DeflateConfig::default().offer(),
            "permessage-deflate; client_max_window_bits"
        );
        let c = DeflateConfig {
            server_max_window_bits: 10,
            client_max_window_bits: 9,
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            ..DeflateConfig::default()
        };
        assert_eq!(
            c.offer(),
            "permessage-deflate; client_no_context_takeover; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9"
        );
        // What the server answers to it, the client accepts; the client keeps
        // its own promise of no context takeover (§7.1.1.2), the server need
        // not rely on it.
        let a = negotiate(&headers(&[&c.offer()]), &DeflateConfig::default()).unwrap();
        let promised = DeflateParams {
            client_no_context_takeover: true,
            ..a.params
        };
        assert_eq!(client(&a.response, &[c]).unwrap(), Some(promised));
    }

    // RFC 7692 §7.2.3.1: "Hello" compressed in one block is f2 48 cd c9 c9 07 00.
    #[test]
    fn rfc_example_hello() {
        let p = params(15, 15, false, false);
        let mut inf = Inflater::new(&p, false);
        let mut wire = vec![0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        wire.extend_from_slice(&TAIL);
        assert_eq!(inflate_all(&mut inf, &wire), b"Hello");
        inf.end_message();
        // §7.2.3.2: the same message again, sharing the window: f2 00 11 00 00.
        let mut wire = vec![0xf2, 0x00, 0x11, 0x00, 0x00];
        wire.extend_from_slice(&TAIL);
        assert_eq!(inflate_all(&mut inf, &wire), b"Hello");
        inf.end_message();
        // §7.2.3.3: a stored (uncompressed) block.
        let mut wire = vec![0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00];
        wire.extend_from_slice(&TAIL);
        assert_eq!(inflate_all(&mut inf, &wire), b"Hello");
        inf.end_message();
        // §7.2.3.4: a block with BFINAL set; what follows it is ignored.
        let mut wire = vec![0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        wire.extend_from_slice(&TAIL);
        assert_eq!(inflate_all(&mut inf, &wire), b"Hello");
        inf.end_message();
        // §7.2.3.6: an empty message compresses to 00.
        let mut def = Deflater::new(&p, true, &DeflateConfig::default());
        let mut out = Vec::new();
        def.compress(b"", true, &mut out);
        assert_eq!(out, [0x00]);
        // Our compressor writes "Hello" as the RFC does (fixed Huffman block).
        let mut out = Vec::new();
        let mut def = Deflater::new(&p, true, &DeflateConfig::default());
        def.compress(b"Hello", true, &mut out);
        assert_eq!(out, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        // §7.2.3.2: and the second one reuses the window.
        let mut out = Vec::new();
        def.compress(b"Hello", true, &mut out);
        assert_eq!(out, [0xf2, 0x00, 0x11, 0x00, 0x00]);
        // An empty message after others is still 00 (§7.2.3.6).
        let mut out = Vec::new();
        def.compress(b"", true, &mut out);
        assert_eq!(out, [0x00]);
    }

    // Window bits 8: compressed with a 9-bit window, the stream inflates with an
    // 8-bit one (no distance beyond 250), so a 256-byte-window peer is served.
    #[test]
    fn window_bits_8_streams_fit_a_256_byte_window() {
        let p = params(8, 8, false, false);
        let mut def = Deflater::new(&p, true, &DeflateConfig::default());
        // Repetitions at distances 100..600: the far ones must not be referenced.
        let mut data = Vec::new();
        let mut x = 1u32;
        for _ in 0..20_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            data.push(b'a' + ((x >> 16) % 8) as u8);
        }
        for i in 600..data.len() {
            if i % 7 == 0 {
                data[i] = data[i - 300];
            }
        }
        let mut out = Vec::new();
        def.compress(&data, true, &mut out);
        out.extend_from_slice(&TAIL);
        // zlib-rs inflates raw streams with 8 bits directly.
        let mut inflate = zlib_rs::Inflate::new(false, 8);
        let mut back = vec![0u8; data.len() + 64];
        let r = inflate.decompress(&out, &mut back, zlib_rs::InflateFlush::SyncFlush);
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(&back[..inflate.total_out() as usize], &data[..]);
    }

    // RFC 7692 §7.1.1: without context takeover the state is freed after each message.
    #[test]
    fn no_context_takeover_frees_state() {
        let p = params(15, 15, true, true);
        let mut def = Deflater::new(&p, true, &DeflateConfig::default());
        let mut out = Vec::new();
        def.compress(b"Hello Hello Hello", true, &mut out);
        assert!(!def.is_allocated());
        let mut inf = Inflater::new(&p, true);
        out.extend_from_slice(&TAIL);
        assert_eq!(inflate_all(&mut inf, &out), b"Hello Hello Hello");
        inf.end_message();
        assert!(!inf.is_allocated());
        // With takeover the state stays.
        let p = params(15, 15, false, false);
        let mut def = Deflater::new(&p, true, &DeflateConfig::default());
        def.compress(b"Hello", true, &mut Vec::new());
        assert!(def.is_allocated());
    }

    #[test]
    fn corrupt_streams_are_errors() {
        let mut inf = Inflater::new(&params(15, 15, false, false), true);
        let mut out = Vec::with_capacity(64);
        // BTYPE 11 is reserved (RFC 1951 §3.2.3).
        assert_eq!(inf.inflate(&[0xff, 0xff, 0xff], &mut out), Err(InflateError));
    }
}
