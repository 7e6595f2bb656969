//! The HTTP/1.1 Upgrade exchange that opens a connection (RFC 6455 §4), as
//! bytes and header checks: no connection state, no extension semantics.
//!
//! [`client`] writes requests and checks responses; [`server`] parses
//! requests and writes responses; [`extensions`] holds the
//! `Sec-WebSocket-Extensions` grammar every extension negotiates with;
//! [`origin`] the server's `Origin` check (RFC 6455 §10.2). Both
//! roles parse with `httparse` (no allocation while parsing, headers bounded
//! by an array) and share the helpers here: the accept key, token lists, and
//! the head-size limit. What the application asks for (the client's
//! [`ClientRequest`](crate::ClientRequest), the server's
//! [`Accept`](crate::Accept)) sits a layer up, in `crate::upgrade`, because it
//! names extensions.

pub mod client;
pub mod extensions;
pub mod origin;
pub mod server;
pub(crate) mod uri;

use alloc::string::String;
use alloc::vec::Vec;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use core::fmt;

pub use client::{Response, UrlError};
pub use extensions::{ExtensionElement, parse_extensions};
pub use origin::{InvalidOrigin, Origin, OriginError, OriginPolicy};
pub use server::{HttpResponse, Request, accept_key_for, check_extended_connect};

/// The GUID appended to the key before hashing (RFC 6455 §1.3).
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Most header lines a handshake may carry; more is answered like an
/// oversized head (431).
pub const MAX_HEADERS: usize = 64;

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2).
///
/// ```
/// // The example of RFC 6455 §1.3.
/// assert_eq!(
///     wsmachine::handshake::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
///     "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
/// );
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key);
    sha.update(GUID);
    STANDARD.encode(sha.digest().bytes())
}

/// Which rule of the opening handshake was broken (RFC 6455 §4).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The request or response head is larger than the configured limit.
    TooLarge {
        /// The limit in bytes ([`Config::max_handshake_size`](crate::Config::max_handshake_size)).
        limit: usize,
    },
    /// More than [`MAX_HEADERS`] header lines.
    TooManyHeaders,
    /// Not parseable as HTTP/1.1 (what the parser reported).
    Malformed(&'static str),
    /// The request method is not GET (RFC 6455 §4.1).
    MethodNotGet,
    /// The HTTP version is not 1.1: a request older than HTTP/1.1 (RFC 6455
    /// §4.1), or a 101 response that is not `HTTP/1.1` (RFC 6455 §4.1,
    /// client step 1; RFC 9112 §2.3).
    HttpVersion,
    /// No `Host` header in an HTTP/1.1 request (RFC 9112 §3.2, RFC 6455 §4.1).
    MissingHost,
    /// More than one `Host` header line, or a list in one (RFC 9112 §3.2).
    MultipleHosts,
    /// A `Host` value that is empty or not `host[:port]` (RFC 9112 §3.2,
    /// RFC 9110 §4.2.1, §7.2, RFC 3986 §3.2.2).
    InvalidHost,
    /// An absolute-form request target whose authority is not the `Host`
    /// value (RFC 9112 §3.2, §3.2.2: a client sends them identical).
    HostMismatch,
    /// The request target breaks RFC 9112 §3.2 or is not a resource name
    /// (RFC 6455 §3, §4.1); says which rule.
    InvalidTarget(&'static str),
    /// An upgrade request that carries a body (`Transfer-Encoding`, or a
    /// `Content-Length` other than 0): where the frames start would be
    /// ambiguous (RFC 9112 §6.3, RFC 6455 §4.1).
    RequestBody,
    /// `Upgrade` does not name `websocket` (RFC 6455 §4.2.1); in a response,
    /// it is not exactly one `websocket` (RFC 6455 §4.1, client step 2).
    UpgradeNotWebSocket,
    /// `Connection` does not contain the `upgrade` token (RFC 6455 §4.1, §4.2.2).
    ConnectionNotUpgrade,
    /// `Sec-WebSocket-Key` is missing, repeated, or not 16 bytes in base64 (RFC 6455 §4.1).
    InvalidKey,
    /// `Sec-WebSocket-Version` is missing or not 13 (RFC 6455 §4.4): answered with 426.
    UnsupportedVersion,
    /// The server answered with this status instead of 101 (RFC 6455 §4.2.2).
    Status(u16),
    /// The server answered an HTTP/2 extended CONNECT with this status, not
    /// a 2xx (RFC 8441 §5).
    ConnectStatus(u16),
    /// `Sec-WebSocket-Accept` is missing or does not match the key (RFC 6455 §4.2.2).
    InvalidAccept,
    /// The server chose a subprotocol the client did not offer (RFC 6455 §4.2.2).
    UnofferedProtocol(String),
    /// The server accepted an extension the client did not offer (RFC 6455 §4.2.2).
    UnofferedExtension(String),
    /// The server's answer to an offered extension breaks one of its rules
    /// (for permessage-deflate, RFC 7692 §7.1); says which.
    Extension(String),
    /// `Sec-WebSocket-Protocol` offers an element that is not a token
    /// (RFC 6455 §4.1: each subprotocol is one).
    InvalidProtocolList,
    /// The client sent more than this many bytes after its request head
    /// while the server's decision was pending. RFC 6455 §4.1: a client
    /// waits for the server's response before sending further data; the
    /// server holds at most [`Config::max_handshake_size`](crate::Config::max_handshake_size)
    /// bytes of it, no more.
    EarlyData {
        /// The limit in bytes.
        limit: usize,
    },
    /// An HTTP/2 WebSocket request whose method is not CONNECT (RFC 8441
    /// §4, §5: the extended CONNECT); answered with 405.
    MethodNotConnect,
    /// An HTTP/2 CONNECT without a `:protocol` pseudo-header, or with one
    /// that is not `websocket` (RFC 8441 §4, §5); answered with 400.
    ProtocolNotWebSocket,
}

impl HandshakeError {
    /// The HTTP status a server answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::TooLarge { .. } | HandshakeError::TooManyHeaders => 431,
            HandshakeError::MethodNotGet | HandshakeError::MethodNotConnect => 405,
            HandshakeError::UnsupportedVersion => 426,
            _ => 400,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::TooLarge { limit } => write!(f, "handshake head larger than the {limit}-byte limit"),
            HandshakeError::TooManyHeaders => write!(f, "more than {MAX_HEADERS} header lines"),
            HandshakeError::Malformed(why) => write!(f, "malformed HTTP: {why}"),
            HandshakeError::MethodNotGet => f.write_str("the opening handshake must be a GET request"),
            HandshakeError::HttpVersion => f.write_str("the opening handshake needs HTTP/1.1 (RFC 6455 §4.1)"),
            HandshakeError::MissingHost => f.write_str("the request has no Host header (RFC 9112 §3.2)"),
            HandshakeError::MultipleHosts => f.write_str("the request has more than one Host (RFC 9112 §3.2)"),
            HandshakeError::InvalidHost => {
                f.write_str("the Host header is not host[:port] (RFC 9112 §3.2, RFC 3986 §3.2.2)")
            }
            HandshakeError::HostMismatch => {
                f.write_str("the request target's authority is not the Host header (RFC 9112 §3.2.2)")
            }
            HandshakeError::InvalidTarget(why) => write!(f, "invalid request target: {why}"),
            HandshakeError::RequestBody => f.write_str(
                "an upgrade request must not carry a body (Transfer-Encoding, or Content-Length other than 0)",
            ),
            HandshakeError::UpgradeNotWebSocket => {
                f.write_str("the Upgrade header does not name websocket (RFC 6455 §4)")
            }
            HandshakeError::ConnectionNotUpgrade => f.write_str("the Connection header does not contain 'upgrade'"),
            HandshakeError::InvalidKey => f.write_str("Sec-WebSocket-Key is missing or not 16 bytes of base64"),
            HandshakeError::UnsupportedVersion => f.write_str("Sec-WebSocket-Version is missing or not 13"),
            HandshakeError::Status(s) => write!(f, "the server answered {s} instead of 101 Switching Protocols"),
            HandshakeError::ConnectStatus(s) => {
                write!(
                    f,
                    "the server answered the extended CONNECT with {s}, not 2xx (RFC 8441 §5)"
                )
            }
            HandshakeError::InvalidAccept => f.write_str("Sec-WebSocket-Accept is missing or does not match the key"),
            HandshakeError::UnofferedProtocol(p) => {
                write!(f, "the server chose subprotocol {p:?}, which was not offered")
            }
            HandshakeError::UnofferedExtension(e) => {
                write!(f, "the server accepted extension {e:?}, which was not offered")
            }
            HandshakeError::Extension(why) => write!(f, "extension negotiation failed: {why}"),
            HandshakeError::InvalidProtocolList => {
                f.write_str("Sec-WebSocket-Protocol offers an element that is not a token (RFC 6455 §4.1)")
            }
            HandshakeError::MethodNotConnect => {
                f.write_str("a WebSocket over HTTP/2 is opened by an extended CONNECT request (RFC 8441 §4)")
            }
            HandshakeError::ProtocolNotWebSocket => {
                f.write_str("the CONNECT request's :protocol pseudo-header is not websocket (RFC 8441 §4)")
            }
            HandshakeError::EarlyData { limit } => write!(
                f,
                "more than {limit} bytes sent after the request head before the server's answer (RFC 6455 §4.1)"
            ),
        }
    }
}

/// One header line as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The name as sent (compare case-insensitively).
    pub name: String,
    /// The raw value (HTTP allows non-UTF-8 bytes).
    pub value: Vec<u8>,
}

/// The header lines of a request or response, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<Header>);

impl Headers {
    fn from_parsed(parsed: &[httparse::Header<'_>]) -> Self {
        Headers(
            parsed
                .iter()
                .map(|h| Header {
                    name: String::from(h.name),
                    value: h.value.to_vec(),
                })
                .collect(),
        )
    }

    /// The first value of header `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_slice())
    }

    /// The first value of header `name` as text, if it is UTF-8.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| core::str::from_utf8(v).ok())
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.0
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_slice())
    }

    /// Iterates over all header lines.
    pub fn iter(&self) -> core::slice::Iter<'_, Header> {
        self.0.iter()
    }

    /// The comma-separated elements of every `name` header, trimmed, empty
    /// elements skipped (RFC 9110 §5.6.1 lists).
    pub fn list<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.get_all(name)
            .flat_map(|v| v.split(|&b| b == b','))
            .map(trim)
            .filter(|t| !t.is_empty())
    }

    /// Whether the `name` list contains `token` (case-insensitive).
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.list(name).any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
    }
}

pub(crate) fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !matches!(b, b' ' | b'\t')).unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |e| e + 1);
    v.get(start..end).unwrap_or(&[])
}

/// Finds the end of an HTTP head (the blank line) in `buf`, scanning from
/// `from` so that a head arriving byte by byte is scanned once in total.
/// Returns the index just past the blank line.
pub(crate) fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    // Step back so a terminator split across two reads is still found.
    let start = from.saturating_sub(3);
    let tail = buf.get(start..)?;
    for (i, &b) in tail.iter().enumerate() {
        if b != b'\n' {
            continue;
        }
        let rest = &tail[i + 1..];
        if rest.first() == Some(&b'\n') {
            return Some(start + i + 2);
        }
        if rest.starts_with(b"\r\n") {
            return Some(start + i + 3);
        }
    }
    None
}

/// Whether `b` may appear in an HTTP token (RFC 9110 §5.6.2 `tchar`).
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `s` is a non-empty HTTP token (RFC 9110 §5.6.2): the form of
/// header names, subprotocol names and extension names.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// Whether `v` is a field value (RFC 9110 §5.5): visible characters,
/// obs-text (non-ASCII) and inner spaces or tabs; no control character
/// (CR and LF would end the line: header injection), no leading or
/// trailing whitespace.
pub(crate) fn is_header_value(v: &str) -> bool {
    let b = v.as_bytes();
    let field_vchar = |c: &u8| c.is_ascii_graphic() || !c.is_ascii();
    b.iter().all(|c| field_vchar(c) || matches!(c, b' ' | b'\t'))
        && b.first().is_none_or(field_vchar)
        && b.last().is_none_or(field_vchar)
}

/// Whether header `name` is one of `reserved` (case-insensitive), or a
/// `Sec-WebSocket-*` header when `sec_websocket` is set.
pub(crate) fn is_reserved(name: &str, reserved: &[&str], sec_websocket: bool) -> bool {
    reserved.iter().any(|r| name.eq_ignore_ascii_case(r))
        || (sec_websocket && name.get(..14).is_some_and(|p| p.eq_ignore_ascii_case("sec-websocket-")))
}

fn map_parse_error(e: httparse::Error) -> HandshakeError {
    match e {
        httparse::Error::TooManyHeaders => HandshakeError::TooManyHeaders,
        other => HandshakeError::Malformed(match other {
            httparse::Error::HeaderName => "invalid header name",
            httparse::Error::HeaderValue => "invalid header value",
            httparse::Error::NewLine => "invalid line ending",
            httparse::Error::Status => "invalid status",
            httparse::Error::Token => "invalid token",
            httparse::Error::Version => "invalid HTTP version",
            _ => "invalid request line",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use alloc::{format, string::String, string::ToString, vec, vec::Vec};

    #[test]
    fn head_end_found_across_reads() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nrest";
        for from in 0..head.len() {
            assert_eq!(find_head_end(head, from.min(26)), Some(27), "from {from}");
        }
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r", 0), None);
        assert_eq!(find_head_end(b"GET / HTTP/1.1\nHost: a\n\nx", 0), Some(24));
    }

    #[test]
    fn token_lists_are_case_insensitive_and_trimmed() {
        let h = Headers(alloc::vec![
            Header {
                name: "Connection".into(),
                value: b"keep-alive, Upgrade".to_vec()
            },
            Header {
                name: "connection".into(),
                value: b" ,close".to_vec()
            },
        ]);
        assert!(h.has_token("CONNECTION", "upgrade"));
        assert!(h.has_token("connection", "close"));
        assert!(!h.has_token("connection", "upgrade,"));
        assert_eq!(h.list("connection").count(), 3);
    }
}
