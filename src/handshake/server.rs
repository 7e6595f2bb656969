//! The server side of the opening handshake (RFC 6455 §4.2): parsing the
//! request, and the responses that accept or reject it.

use super::uri::{RequestTarget, parse_authority, parse_target};
use super::{
    HandshakeError, Headers, MAX_HEADERS, accept_key, is_header_value, is_reserved, is_token, map_parse_error, trim,
};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;

/// An HTTP request received by a server.
///
/// For a WebSocket upgrade ([`Event::Request`](crate::Event::Request)) it
/// has passed every check of RFC 6455 §4.2.1; for a plain HTTP request
/// ([`Event::HttpRequest`](crate::Event::HttpRequest)) the parse and the
/// rules of RFC 9112 §3.2 (`Host`, the request target).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method (`GET` for every upgrade).
    pub method: String,
    /// The request target in origin form: the absolute path and the query
    /// (`/chat?room=1`), ASCII, never a fragment (RFC 9112 §3.2.1; RFC
    /// 6455 §3's resource name). An absolute-form target (`GET
    /// ws://host/chat`, RFC 9112 §3.2.2, which RFC 6455 §4.1 allows) is
    /// reduced to this, its authority having matched `Host`. Only a plain
    /// HTTP request may instead have `*` (OPTIONS, RFC 9112 §3.2.4) or
    /// `host:port` (CONNECT, §3.2.3).
    pub path: String,
    /// All header lines.
    pub headers: Headers,
    /// The subprotocols the client offered, in its order of preference.
    pub protocols: Vec<String>,
    /// The extensions the client offered (each element of
    /// `Sec-WebSocket-Extensions`, parameters included).
    pub extensions: Vec<String>,
}

impl Request {
    /// The `Origin` header, for a server's allow-list (RFC 6455 §10.2).
    pub fn origin(&self) -> Option<&str> {
        self.headers.get_str("origin")
    }

    /// The `Host` header: the authority the request is for, `host[:port]`
    /// (RFC 9110 §7.2). The machine checked that there is exactly one, that
    /// it is a valid authority (RFC 9112 §3.2) and, for an absolute-form
    /// target, that it is the target's authority. `None` only for an
    /// HTTP/1.0 plain request that sent none.
    pub fn host(&self) -> Option<&str> {
        self.headers.get_str("host").map(|h| h.trim_matches([' ', '\t']))
    }

    /// Whether the request asks for a WebSocket upgrade (`Upgrade:
    /// websocket`). Every [`Event::Request`](crate::Event::Request) does;
    /// an [`Event::HttpRequest`](crate::Event::HttpRequest) does not.
    pub fn is_upgrade(&self) -> bool {
        self.headers.has_token("upgrade", "websocket")
    }
}

/// A non-101 HTTP response: a rejection of an upgrade, or the answer to a
/// plain HTTP request. It is a final response (status 200–599) and the
/// connection closes after it.
///
/// The crate writes the framing and the connection's fate: `Content-Length`
/// (none on 204 and 304, RFC 9110 §8.6) and `Connection: close` (with
/// `upgrade` when the response has an `Upgrade` header, RFC 9110 §7.8); a
/// 426 without an `Upgrade` header gets `Upgrade: websocket` (RFC 9110
/// §15.5.22). Those headers and the ones only a 101 carries
/// (`Sec-WebSocket-Accept`, `-Protocol`, `-Extensions`) cannot be added,
/// a 204 or 304 cannot have a body (RFC 9110 §6.4.1), and header names
/// must be tokens and values field values (RFC 9110 §5.1, §5.5). A
/// response that breaks one of these rules is refused, with the
/// [`Misuse`](crate::Misuse) naming it, by
/// [`check`](HttpResponse::check) and by the calls that send it
/// ([`Connection::reject`](crate::Connection::reject),
/// [`respond`](crate::Connection::respond)); nothing is sent then.
/// The answer to a `HEAD` request is sent without its body (RFC 9110
/// §9.3.2).
///
/// ```
/// use wsmachine::HttpResponse;
/// let page = HttpResponse::new(200).header("Content-Type", "text/html").body("<h1>hi</h1>");
/// # let _ = page;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct HttpResponse {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
}

impl HttpResponse {
    /// A response with this status and an empty body.
    pub fn new(status: u16) -> Self {
        HttpResponse {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// Adds a header line.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Checks the status, the header lines and the body against the rules
    /// the type's documentation lists.
    pub(crate) fn validate(&self) -> Result<(), InvalidHead> {
        // RFC 9110 §15.2: a 1xx is interim, and the client would wait for
        // the final response that never comes; 101 is `accept`'s.
        if !(200..=599).contains(&self.status) {
            return Err(InvalidHead::Status(self.status));
        }
        check_headers(&self.headers)?;
        // RFC 9112 §6, RFC 9110 §7.6.1: the framing and the connection's
        // fate are the crate's; RFC 6455 §4.2.2: these belong to a 101.
        const OWNED: &[&str] = &[
            "content-length",
            "transfer-encoding",
            "connection",
            "sec-websocket-accept",
            "sec-websocket-protocol",
            "sec-websocket-extensions",
        ];
        check_reserved(&self.headers, OWNED, false)?;
        // RFC 9110 §6.4.1: 204 and 304 responses have no content.
        if !self.body.is_empty() && !self.may_have_content() {
            return Err(InvalidHead::Body(self.status));
        }
        Ok(())
    }

    /// RFC 9110 §6.4.1, §8.6: 204 and 304 carry neither content nor
    /// `Content-Length` (1xx never get here).
    fn may_have_content(&self) -> bool {
        !matches!(self.status, 204 | 304)
    }

    /// The response the server sends when the handshake broke a rule.
    pub(crate) fn for_error(e: &HandshakeError) -> Self {
        let r = HttpResponse::new(e.status()).header("Content-Type", "text/plain; charset=utf-8");
        let r = match e {
            // RFC 6455 §4.4: name the versions the server supports.
            HandshakeError::UnsupportedVersion => r.header("Sec-WebSocket-Version", "13"),
            HandshakeError::MethodNotGet => r.header("Allow", "GET"),
            _ => r,
        };
        r.body(format!("{e}\n"))
    }

    /// Writes the response (already validated). `head_request`: the answer
    /// to a `HEAD`, sent without the body (RFC 9110 §9.3.2) but with the
    /// `Content-Length` a `GET` would have had (§8.6).
    pub(crate) fn encode(&self, head_request: bool, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("HTTP/1.1 {} {}\r\n", self.status, reason_phrase(self.status)).as_bytes());
        for (n, v) in &self.headers {
            out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        let mut upgrade = self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("upgrade"));
        if self.status == 426 && !upgrade {
            // RFC 9110 §15.5.22: a 426 names the protocol to upgrade to.
            out.extend_from_slice(b"Upgrade: websocket\r\n");
            upgrade = true;
        }
        if self.may_have_content() {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        // RFC 9110 §7.8: whoever sends Upgrade lists it in Connection.
        out.extend_from_slice(if upgrade {
            &b"Connection: upgrade, close\r\n\r\n"[..]
        } else {
            b"Connection: close\r\n\r\n"
        });
        if !head_request {
            out.extend_from_slice(&self.body);
        }
    }
}

/// What the application put in a head the crate writes that may not go on
/// the wire (mapped to [`Misuse`](crate::Misuse) a layer up).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum InvalidHead {
    /// A status outside 200–599 (101 is `accept`'s).
    Status(u16),
    /// A header name that is not a token, or a value that is not a field value.
    Header(String),
    /// A header the crate writes itself.
    Reserved(String),
    /// A body on a status that has none (204, 304).
    Body(u16),
}

/// Every header name is a token (RFC 9110 §5.1) and every value a field
/// value (RFC 9110 §5.5): nothing can end the line (header injection). The
/// error names the first offending header.
pub(crate) fn check_headers(headers: &[(String, String)]) -> Result<(), InvalidHead> {
    match headers.iter().find(|(n, v)| !is_token(n) || !is_header_value(v)) {
        None => Ok(()),
        Some((n, _)) => Err(InvalidHead::Header(n.clone())),
    }
}

/// None of `headers` is one the crate writes itself: one of `owned`, or
/// (with `sec_websocket`) any `Sec-WebSocket-*`.
pub(crate) fn check_reserved(
    headers: &[(String, String)],
    owned: &[&str],
    sec_websocket: bool,
) -> Result<(), InvalidHead> {
    match headers.iter().find(|(n, _)| is_reserved(n, owned, sec_websocket)) {
        None => Ok(()),
        Some((n, _)) => Err(InvalidHead::Reserved(n.clone())),
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// The outcome of parsing a complete request head.
#[derive(Debug)]
pub(crate) enum Parsed {
    /// A valid WebSocket upgrade, with its key.
    Upgrade(Request, String),
    /// An HTTP request that does not ask for a WebSocket upgrade.
    Http(Request),
}

/// The elements of every `name` header, as text (RFC 9110 §5.6.1 lists).
pub(crate) fn list_of(headers: &Headers, name: &str) -> Vec<String> {
    headers
        .list(name)
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .collect()
}

/// Parses and checks a request head (RFC 9112 §3.2, RFC 6455 §4.2.1).
/// `Ok(None)`: incomplete.
pub(crate) fn parse_request(buf: &[u8]) -> Result<Option<(Parsed, usize)>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(map_parse_error(e)),
    };
    let headers = Headers::from_parsed(req.headers);
    let method = req.method.unwrap_or("");
    let target = parse_target(req.path.unwrap_or("")).map_err(HandshakeError::InvalidTarget)?;
    let http11 = req.version == Some(1);
    // A request that does not ask for websocket is plain HTTP: the
    // application may answer it (serve a page, a health check), once it
    // passed RFC 9112 §3.2.
    let upgrade = headers.has_token("upgrade", "websocket");
    let key = if upgrade {
        // RFC 6455 §4.2.1, items 1–6, in order.
        if method != "GET" {
            return Err(HandshakeError::MethodNotGet);
        }
        if !http11 {
            return Err(HandshakeError::HttpVersion);
        }
        // RFC 6455 §4.1 item 3: the resource name, or an absolute http(s) URI.
        if !matches!(target, RequestTarget::Origin(_) | RequestTarget::Absolute { .. }) {
            return Err(HandshakeError::InvalidTarget(
                "an upgrade's target is a path (origin form) or an absolute URI (RFC 6455 §4.1)",
            ));
        }
        Some(check_upgrade_headers(&headers)?)
    } else {
        check_host(&headers, http11)?;
        match (&target, method) {
            (RequestTarget::Asterisk, "OPTIONS") | (RequestTarget::Authority(_), "CONNECT") => {}
            (RequestTarget::Asterisk, _) => {
                return Err(HandshakeError::InvalidTarget(
                    "'*' is only for OPTIONS (RFC 9112 §3.2.4)",
                ));
            }
            (RequestTarget::Authority(_), _) => {
                return Err(HandshakeError::InvalidTarget(
                    "the authority form is only for CONNECT (RFC 9112 §3.2.3)",
                ));
            }
            _ => {}
        }
        None
    };
    let path = match target {
        RequestTarget::Origin(p) | RequestTarget::Authority(p) => String::from(p),
        RequestTarget::Asterisk => String::from("*"),
        RequestTarget::Absolute { authority, path } => {
            // RFC 9112 §3.2.2: the target's authority is the one that
            // counts, and §3.2 has the client send it as Host too; where
            // they differ, the application (which reads Host) and a proxy
            // (which reads the target) could route the request apart.
            let host = headers.get("host").map(trim);
            if host.is_some_and(|h| !h.eq_ignore_ascii_case(authority.as_bytes())) {
                return Err(HandshakeError::HostMismatch);
            }
            path
        }
    };
    let protocols = list_of(&headers, "sec-websocket-protocol");
    // RFC 6455 §4.1 item 10: each offered subprotocol is a token.
    if key.is_some() && !protocols.iter().all(|p| super::is_token(p)) {
        return Err(HandshakeError::InvalidProtocolList);
    }
    let request = Request {
        method: String::from(method),
        path,
        protocols,
        extensions: list_of(&headers, "sec-websocket-extensions"),
        headers,
    };
    let parsed = match key {
        Some(key) => Parsed::Upgrade(request, key),
        None => Parsed::Http(request),
    };
    Ok(Some((parsed, len)))
}

/// RFC 9112 §3.2: exactly one `Host` (required in HTTP/1.1), whose value is
/// an authority with a non-empty host (RFC 9110 §4.2.1, §7.2; RFC 3986
/// §3.2.2); a list is more than one.
fn check_host(headers: &Headers, required: bool) -> Result<(), HandshakeError> {
    let mut hosts = headers.get_all("host");
    match (hosts.next(), hosts.next()) {
        (None, _) if required => Err(HandshakeError::MissingHost),
        (None, _) => Ok(()),
        (Some(_), Some(_)) => Err(HandshakeError::MultipleHosts),
        (Some(h), None) if h.contains(&b',') => Err(HandshakeError::MultipleHosts),
        (Some(h), None) => match core::str::from_utf8(trim(h)).map(parse_authority) {
            Ok(Ok(_)) => Ok(()),
            _ => Err(HandshakeError::InvalidHost),
        },
    }
}

/// RFC 9112 §6.3: a request has a body when it has `Transfer-Encoding` or
/// a `Content-Length` (other than 0). An upgrade's bytes after the head are
/// frames (RFC 6455 §4.1), so a body would make a proxy in front and this
/// server disagree about where the frames start.
fn check_no_body(headers: &Headers) -> Result<(), HandshakeError> {
    if headers.get("transfer-encoding").is_some() {
        return Err(HandshakeError::RequestBody);
    }
    let mut lengths = headers.get_all("content-length").flat_map(|v| v.split(|&b| b == b','));
    match lengths.all(|l| {
        let l = trim(l);
        !l.is_empty() && l.iter().all(|&b| b == b'0')
    }) {
        true => Ok(()),
        false => Err(HandshakeError::RequestBody),
    }
}

/// RFC 6455 §4.2.1, items 2 and 4–6 (after the method and the HTTP
/// version): `Host`, `Connection: Upgrade`, version 13 and a 16-byte key;
/// and no body. Returns the key.
fn check_upgrade_headers(headers: &Headers) -> Result<String, HandshakeError> {
    check_host(headers, true)?;
    if !headers.has_token("connection", "upgrade") {
        return Err(HandshakeError::ConnectionNotUpgrade);
    }
    // RFC 6455 §4.2.2: a version other than 13 gets 426 (§4.4).
    {
        let mut versions = headers.get_all("sec-websocket-version");
        match (versions.next(), versions.next()) {
            (Some(v), None) if trim(v) == b"13" => {}
            _ => return Err(HandshakeError::UnsupportedVersion),
        }
    }
    let key = {
        let mut keys = headers.get_all("sec-websocket-key");
        let key = match (keys.next(), keys.next()) {
            (Some(k), None) => trim(k),
            _ => return Err(HandshakeError::InvalidKey),
        };
        let mut decoded = [0u8; 18];
        match STANDARD.decode_slice(key, &mut decoded) {
            Ok(16) => {}
            _ => return Err(HandshakeError::InvalidKey),
        }
        String::from_utf8_lossy(key).into_owned()
    };
    check_no_body(headers)?;
    Ok(key)
}

/// Checks an upgrade request that an HTTP server already parsed (hyper,
/// axum, ...) with the same rules as [`Connection::server`](crate::Connection::server)
/// (RFC 6455 §4.2.1; one valid `Host`, RFC 9112 §3.2; no body, RFC 9112
/// §6.3) and returns the `Sec-WebSocket-Accept` value for its 101
/// response. The HTTP version (1.1 or later) and the request target are
/// the HTTP server's to check. An error's [`status`](HandshakeError::status) is the status to
/// answer with (426 also names version 13 in `Sec-WebSocket-Version`).
///
/// ```
/// use wsmachine::handshake::server::accept_key_for;
/// use wsmachine::handshake::{Header, Headers};
/// let header = |name: &str, value: &str| Header { name: name.into(), value: value.into() };
/// let headers = Headers(vec![
///     header("Host", "server.example.com"),
///     header("Upgrade", "websocket"),
///     header("Connection", "Upgrade"),
///     header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
///     header("Sec-WebSocket-Version", "13"),
/// ]);
/// assert_eq!(accept_key_for("GET", &headers).unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key_for(method: &str, headers: &Headers) -> Result<String, HandshakeError> {
    if !headers.has_token("upgrade", "websocket") {
        return Err(HandshakeError::UpgradeNotWebSocket);
    }
    if method != "GET" {
        return Err(HandshakeError::MethodNotGet);
    }
    let key = check_upgrade_headers(headers)?;
    Ok(accept_key(key.as_bytes()))
}

/// RFC 6455 §4.1 item 10: each subprotocol a `Sec-WebSocket-Protocol`
/// offers is a token.
pub(crate) fn check_protocol_list(headers: &Headers) -> Result<(), HandshakeError> {
    match headers
        .list("sec-websocket-protocol")
        .all(|p| core::str::from_utf8(p).is_ok_and(is_token))
    {
        true => Ok(()),
        false => Err(HandshakeError::InvalidProtocolList),
    }
}

/// Checks an HTTP/2 extended CONNECT request (RFC 8441) that an HTTP/2
/// server already parsed: `method` is CONNECT and `protocol` (the
/// `:protocol` pseudo-header, RFC 8441 §4) is `websocket`; then, of the
/// headers (RFC 8441 §5), `Sec-WebSocket-Version` is 13 (RFC 6455 §4.4)
/// and each offered subprotocol a token (RFC 6455 §4.1). There is no
/// `Sec-WebSocket-Key` to check (RFC 8441 §5: it is not used; one sent is
/// ignored), and no `Upgrade` or `Connection` (RFC 9113 §8.2.2 makes them
/// malformed in HTTP/2, which the HTTP/2 server enforces); `:authority`,
/// `:scheme` and `:path` are the HTTP/2 server's to check (RFC 8441 §4). A
/// `Host` line, if any, must be a single valid authority (RFC 9112 §3.2,
/// RFC 9113 §8.3.1). An error's [`status`](HandshakeError::status) is the
/// status to answer with (426 also names version 13).
///
/// ```
/// use wsmachine::handshake::server::check_extended_connect;
/// use wsmachine::handshake::{HandshakeError, Header, Headers};
/// let headers = Headers(vec![Header { name: "sec-websocket-version".into(), value: b"13".to_vec() }]);
/// assert_eq!(check_extended_connect("CONNECT", Some("websocket"), &headers), Ok(()));
/// assert_eq!(check_extended_connect("CONNECT", None, &headers), Err(HandshakeError::ProtocolNotWebSocket));
/// assert_eq!(check_extended_connect("GET", Some("websocket"), &headers), Err(HandshakeError::MethodNotConnect));
/// ```
pub fn check_extended_connect(method: &str, protocol: Option<&str>, headers: &Headers) -> Result<(), HandshakeError> {
    // RFC 8441 §4: a new pseudo-header, `:protocol`, on a CONNECT request.
    if method != "CONNECT" {
        return Err(HandshakeError::MethodNotConnect);
    }
    // RFC 8441 §5: ":protocol pseudo-header field MUST be "websocket"" (an
    // upgrade token, compared as HTTP/1.1's Upgrade tokens are, RFC 9110 §7.8).
    if !protocol.is_some_and(|p| p.eq_ignore_ascii_case("websocket")) {
        return Err(HandshakeError::ProtocolNotWebSocket);
    }
    check_host(headers, false)?;
    // RFC 8441 §5 keeps Sec-WebSocket-Version; RFC 6455 §4.2.2 / §4.4: 13, else 426.
    let mut versions = headers.get_all("sec-websocket-version");
    match (versions.next(), versions.next()) {
        (Some(v), None) if trim(v) == b"13" => {}
        _ => return Err(HandshakeError::UnsupportedVersion),
    }
    check_protocol_list(headers)
}

/// Writes the 101 response accepting a request with key `key` (RFC 6455
/// §4.2.2, server step 5): the chosen subprotocol and the extensions'
/// answer (already negotiated), then the application's header lines
/// (already checked).
pub(crate) fn encode_switching(
    key: &str,
    protocol: Option<&str>,
    extensions: Option<&str>,
    headers: &[(String, String)],
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
            accept_key(key.as_bytes())
        )
        .as_bytes(),
    );
    if let Some(p) = protocol {
        out.extend_from_slice(format!("Sec-WebSocket-Protocol: {p}\r\n").as_bytes());
    }
    if let Some(e) = extensions {
        out.extend_from_slice(format!("Sec-WebSocket-Extensions: {e}\r\n").as_bytes());
    }
    for (n, v) in headers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use alloc::{format, string::String, string::ToString, vec, vec::Vec};

    const OK: &str = "GET /chat?x=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

    fn parse(head: &str) -> Result<Parsed, HandshakeError> {
        parse_request(head.as_bytes()).map(|r| r.expect("complete").0)
    }

    // RFC 6455 §1.3 / §4.2.1: the example request of the RFC.
    #[test]
    fn rfc_example_request() {
        let Ok(Parsed::Upgrade(req, key)) = parse(OK) else {
            panic!("not an upgrade")
        };
        assert_eq!(req.path, "/chat?x=1");
        assert_eq!(req.protocols, ["chat", "superchat"]);
        let mut out = Vec::new();
        encode_switching(&key, Some("chat"), None, &[], &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(text.contains("Sec-WebSocket-Protocol: chat\r\n"));
    }

    // RFC 6455 §4.2.1: each required element of the request.
    #[test]
    fn each_rule_of_the_request() {
        let cases = [
            (OK.replace("GET", "POST"), HandshakeError::MethodNotGet),
            (OK.replace("HTTP/1.1", "HTTP/1.0"), HandshakeError::HttpVersion),
            (
                OK.replace("Host: server.example.com\r\n", ""),
                HandshakeError::MissingHost,
            ),
            (
                OK.replace("Connection: Upgrade", "Connection: keep-alive"),
                HandshakeError::ConnectionNotUpgrade,
            ),
            (
                OK.replace("Version: 13", "Version: 8"),
                HandshakeError::UnsupportedVersion,
            ),
            (
                OK.replace("Sec-WebSocket-Version: 13\r\n", ""),
                HandshakeError::UnsupportedVersion,
            ),
            (
                OK.replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="),
                HandshakeError::InvalidKey,
            ),
            (
                OK.replace("dGhlIHNhbXBsZSBub25jZQ==", "not base64!!"),
                HandshakeError::InvalidKey,
            ),
            (
                OK.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
                HandshakeError::InvalidKey,
            ),
        ];
        for (head, expected) in cases {
            assert_eq!(parse(&head).unwrap_err(), expected, "{head}");
        }
        // RFC 6455 §4.4: the 426 answer names the supported version.
        let r = HttpResponse::for_error(&HandshakeError::UnsupportedVersion);
        let mut out = Vec::new();
        r.encode(false, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(text.contains("Sec-WebSocket-Version: 13\r\n"));
    }

    /// The header lines of a request head, as an HTTP server would hand them over.
    fn headers_of(head: &str) -> Headers {
        Headers(
            head.lines()
                .skip(1)
                .filter_map(|l| l.split_once(": "))
                .map(|(name, value)| super::super::Header {
                    name: name.into(),
                    value: value.into(),
                })
                .collect(),
        )
    }

    // RFC 6455 §4.2.1 / §4.2.2: a request parsed elsewhere (hyper) is held to
    // the same rules, and gets the accept key of the RFC's example.
    #[test]
    fn accept_key_for_a_request_parsed_elsewhere() {
        assert_eq!(
            accept_key_for("GET", &headers_of(OK)).unwrap(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(
            accept_key_for("POST", &headers_of(OK)).unwrap_err(),
            HandshakeError::MethodNotGet
        );
        assert_eq!(
            accept_key_for("GET", &headers_of(&OK.replace("Upgrade: websocket\r\n", ""))).unwrap_err(),
            HandshakeError::UpgradeNotWebSocket
        );
        let cases = [
            ("Host: server.example.com\r\n", "", HandshakeError::MissingHost),
            (
                "Connection: Upgrade",
                "Connection: keep-alive",
                HandshakeError::ConnectionNotUpgrade,
            ),
            ("Version: 13", "Version: 8", HandshakeError::UnsupportedVersion),
            ("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=", HandshakeError::InvalidKey),
        ];
        for (from, to, expected) in cases {
            let head = OK.replace(from, to);
            assert_eq!(
                accept_key_for("GET", &headers_of(&head)).unwrap_err(),
                expected,
                "{head}"
            );
            // The same verdict as the machine's own parser.
            assert_eq!(parse(&head).unwrap_err(), expected);
        }
    }

    #[test]
    fn plain_http_is_surfaced() {
        let Ok(Parsed::Http(req)) = parse("GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n") else {
            panic!()
        };
        assert_eq!(req.path, "/index.html");
    }

    #[test]
    fn partial_request_needs_more() {
        for i in 0..OK.len() {
            assert!(matches!(parse_request(&OK.as_bytes()[..i]), Ok(None)), "prefix {i}");
        }
    }
}
