//! The client side of the opening handshake (RFC 6455 §4.1): the request,
//! and the checks on the server's response.

use super::uri::{AuthorityError, parse_authority};
use super::{HandshakeError, Headers, MAX_HEADERS, map_parse_error};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// A `ws://` or `wss://` URL that could not be used (RFC 6455 §3).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlError {
    /// The scheme is not `ws` or `wss`.
    Scheme,
    /// The host is missing or malformed (RFC 3986 §3.2.2): not a reg-name
    /// or IPv4 address of ASCII characters, nor a bracketed IPv6 address
    /// followed by nothing but `:port`. A non-ASCII name must be given in
    /// its ASCII (`xn--`) form: IDNA is not done.
    Host,
    /// The port is not a number from 1 to 65535.
    Port,
    /// URLs of WebSocket connections must not carry a fragment (`#…`).
    Fragment,
    /// User information (`user@host`) is not supported.
    UserInfo,
    /// The path or query has whitespace or control characters (ASCII or
    /// not).
    Path,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlError::Scheme => "the URL scheme must be ws:// or wss://",
            UrlError::Host => "the URL has no valid host (non-ASCII names must be given in their ASCII form)",
            UrlError::Port => "the URL port must be a number from 1 to 65535",
            UrlError::Fragment => "a WebSocket URL must not have a fragment (RFC 6455 §3)",
            UrlError::UserInfo => "user information in the URL is not supported",
            UrlError::Path => "the URL path and query must not contain whitespace or control characters",
        })
    }
}

/// Where a `ws://` or `wss://` URL points (RFC 6455 §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// The host (an IPv6 address keeps its brackets).
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) secure: bool,
    /// Path and query, starting with `/`.
    pub(crate) path: String,
}

/// Parses a `ws://host[:port]/path?query` or `wss://…` URL (RFC 6455 §3,
/// RFC 3986). Non-ASCII in the path and query is percent-encoded as UTF-8
/// (RFC 3986 §2.1, as the WHATWG URL parser does); in the host it is
/// refused (no IDNA).
pub(crate) fn parse_url(url: &str) -> Result<Target, UrlError> {
    let (scheme, rest) = url.split_once("://").ok_or(UrlError::Scheme)?;
    let secure = if scheme.eq_ignore_ascii_case("ws") {
        false
    } else if scheme.eq_ignore_ascii_case("wss") {
        true
    } else {
        return Err(UrlError::Scheme);
    };
    if rest.contains('#') {
        return Err(UrlError::Fragment);
    }
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.contains('@') {
        return Err(UrlError::UserInfo);
    }
    // RFC 3986 §3.2.2, §3.2.3: host, then `:port` (digits; empty = the default).
    let (host, port) = parse_authority(authority).map_err(|e| match e {
        AuthorityError::Host => UrlError::Host,
        AuthorityError::Port => UrlError::Port,
    })?;
    let port = match port {
        None if secure => 443,
        None => 80,
        Some(0) => return Err(UrlError::Port),
        Some(n) => n,
    };
    Ok(Target {
        host: host.to_string(),
        port,
        secure,
        path: origin_form(path).ok_or(UrlError::Path)?,
    })
}

/// `path` (with its query) as a request target in origin form (RFC 9112
/// §3.2.1): `/` added in front when missing, non-ASCII percent-encoded as
/// UTF-8 (RFC 3986 §2.1). `None` when it has whitespace or control
/// characters, ASCII or not (RFC 3986 §3.3, §3.4: they are not URI
/// characters, and CR, LF or a space would end the request line).
pub(crate) fn origin_form(path: &str) -> Option<String> {
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let mut target = String::with_capacity(path.len() + 1);
    if !path.starts_with('/') {
        target.push('/');
    }
    for c in path.chars() {
        if c.is_ascii() {
            target.push(c);
        } else {
            let mut utf8 = [0u8; 4];
            for b in c.encode_utf8(&mut utf8).bytes() {
                target.push_str(&format!("%{b:02X}"));
            }
        }
    }
    Some(target)
}

/// A server's answer to the opening handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code (101 when the upgrade was accepted).
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// The header lines.
    pub headers: Headers,
    /// The subprotocol the server chose, if any.
    pub protocol: Option<String>,
}

/// Parses a response head from `buf`. `Ok(None)`: incomplete.
/// On success returns the response, its minor HTTP version (1 for
/// HTTP/1.1) and the head's length.
pub(crate) fn parse_response(buf: &[u8]) -> Result<Option<(Response, u8, usize)>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => Ok(Some((
            Response {
                status: resp.code.unwrap_or(0),
                reason: resp.reason.unwrap_or("").to_string(),
                headers: Headers::from_parsed(resp.headers),
                protocol: None,
            },
            resp.version.unwrap_or(0),
            len,
        ))),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(map_parse_error(e)),
    }
}

/// Checks a response's status, version and upgrade headers against the
/// key sent (RFC 6455 §4.1, client steps 1–4). The extensions (step 5) are
/// the extension layer's to check; the subprotocol (step 6) is
/// [`check_protocol`]'s.
pub(crate) fn check_response(resp: &Response, version: u8, expected_accept: &str) -> Result<(), HandshakeError> {
    if resp.status != 101 {
        return Err(HandshakeError::Status(resp.status));
    }
    // RFC 6455 §4.1 client step 1 and RFC 9110 §7.8: the switch happens
    // on an HTTP/1.1 connection (HTTP/1.0 has no Upgrade).
    if version != 1 {
        return Err(HandshakeError::HttpVersion);
    }
    // RFC 6455 §4.1 client step 2: exactly one Upgrade, "websocket"
    // (case-insensitive), not a list with other protocols.
    let mut upgrades = resp.headers.get_all("upgrade");
    match (upgrades.next(), upgrades.next()) {
        (Some(v), None) if super::trim(v).eq_ignore_ascii_case(b"websocket") => {}
        _ => return Err(HandshakeError::UpgradeNotWebSocket),
    }
    // Step 3: Connection contains the "upgrade" token (a list, RFC 9110 §7.6.1).
    if !resp.headers.has_token("connection", "upgrade") {
        return Err(HandshakeError::ConnectionNotUpgrade);
    }
    let mut accepts = resp.headers.get_all("sec-websocket-accept");
    match (accepts.next(), accepts.next()) {
        (Some(v), None) if super::trim(v) == expected_accept.as_bytes() => Ok(()),
        _ => Err(HandshakeError::InvalidAccept),
    }
}

/// RFC 6455 §4.2.2 client step 6: the subprotocol the server chose must be
/// one of `offered` (at most one). Records it in the response.
pub(crate) fn check_protocol(resp: &mut Response, offered: &[String]) -> Result<(), HandshakeError> {
    let mut chosen = resp.headers.list("sec-websocket-protocol");
    match (chosen.next(), chosen.next()) {
        (None, _) => {}
        (Some(p), None) => {
            let p = String::from_utf8_lossy(p).into_owned();
            if !offered.contains(&p) {
                return Err(HandshakeError::UnofferedProtocol(p));
            }
            resp.protocol = Some(p);
        }
        (Some(p), Some(_)) => {
            return Err(HandshakeError::UnofferedProtocol(
                String::from_utf8_lossy(p).into_owned(),
            ));
        }
    }
    Ok(())
}

/// The parts of a request head a client sends (RFC 6455 §4.1).
pub(crate) struct RequestHead<'a> {
    pub(crate) host: &'a str,
    pub(crate) port: u16,
    pub(crate) secure: bool,
    pub(crate) path: &'a str,
    pub(crate) protocols: &'a [String],
    /// The `Sec-WebSocket-Extensions` value offered, if any.
    pub(crate) extensions: Option<&'a str>,
    pub(crate) headers: &'a [(String, String)],
}

/// The `Host` value (RFC 9112 §3.2, RFC 9110 §7.2), or HTTP/2's
/// `:authority` (RFC 9113 §8.3.1): the host, with the port unless it is the
/// scheme's default.
pub(crate) fn authority(host: &str, port: u16, secure: bool) -> String {
    let default_port = if secure { 443 } else { 80 };
    if port == default_port {
        host.to_string()
    } else {
        format!("{host}:{port}")
    }
}

/// Writes the request head with the given `Sec-WebSocket-Key`.
pub(crate) fn encode_request(head: &RequestHead<'_>, key: &str, out: &mut Vec<u8>) {
    let host = authority(head.host, head.port, head.secure);
    out.extend_from_slice(
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n",
            head.path, host, key
        )
        .as_bytes(),
    );
    if !head.protocols.is_empty() {
        out.extend_from_slice(format!("Sec-WebSocket-Protocol: {}\r\n", head.protocols.join(", ")).as_bytes());
    }
    if let Some(offer) = head.extensions {
        out.extend_from_slice(format!("Sec-WebSocket-Extensions: {offer}\r\n").as_bytes());
    }
    for (n, v) in head.headers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use alloc::{format, string::String, string::ToString, vec, vec::Vec};

    fn response(extra: &str) -> Response {
        let head = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n{extra}\r\n"
        );
        parse_response(head.as_bytes()).unwrap().unwrap().0
    }

    /// Parses `head` and checks it against `accept`.
    fn checked(head: &[u8], accept: &str) -> Result<(), HandshakeError> {
        let (r, version, _) = parse_response(head).unwrap().unwrap();
        check_response(&r, version, accept)
    }

    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    // RFC 6455 §4.2.2 (client side): each check of the response.
    #[test]
    fn response_checks() {
        let protocols = ["chat".to_string()];
        assert!(check_response(&response(""), 1, ACCEPT).is_ok());
        let mut r = response("Sec-WebSocket-Protocol: chat\r\n");
        assert!(check_protocol(&mut r, &protocols).is_ok());
        assert_eq!(r.protocol.as_deref(), Some("chat"));
        assert_eq!(
            check_protocol(&mut response("Sec-WebSocket-Protocol: other\r\n"), &protocols),
            Err(HandshakeError::UnofferedProtocol("other".into()))
        );
        assert_eq!(
            check_protocol(&mut response("Sec-WebSocket-Protocol: chat, chat\r\n"), &protocols),
            Err(HandshakeError::UnofferedProtocol("chat".into()))
        );
        assert_eq!(
            check_response(&response(""), 1, "wrong"),
            Err(HandshakeError::InvalidAccept)
        );
        assert_eq!(
            checked(b"HTTP/1.1 403 Forbidden\r\n\r\n", ACCEPT),
            Err(HandshakeError::Status(403))
        );
        assert_eq!(
            checked(b"HTTP/1.1 101 OK\r\nConnection: upgrade\r\n\r\n", ACCEPT),
            Err(HandshakeError::UpgradeNotWebSocket)
        );
        assert_eq!(
            checked(b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n\r\n", ACCEPT),
            Err(HandshakeError::ConnectionNotUpgrade)
        );
    }

    // RFC 6455 §4.1: the request carries Host, Upgrade, Connection, the key and version 13.
    #[test]
    fn request_encoding() {
        let mut out = Vec::new();
        let head = RequestHead {
            host: "example.com",
            port: 8080,
            secure: false,
            path: "/chat",
            protocols: &["a".to_string(), "b".to_string()],
            extensions: Some("x-test"),
            headers: &[("Origin".to_string(), "http://example.com".to_string())],
        };
        encode_request(&head, "dGhlIHNhbXBsZSBub25jZQ==", &mut out);
        let text = core::str::from_utf8(&out).unwrap();
        assert!(text.starts_with("GET /chat HTTP/1.1\r\nHost: example.com:8080\r\n"));
        assert!(text.contains("\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
        assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"));
        assert!(text.contains("\r\nSec-WebSocket-Protocol: a, b\r\n"));
        assert!(text.contains("\r\nSec-WebSocket-Extensions: x-test\r\n"));
        assert!(text.ends_with("Origin: http://example.com\r\n\r\n"));
    }
}
