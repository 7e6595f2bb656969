//! Which web origins may open a WebSocket on this server: the defence
//! against cross-site WebSocket hijacking (RFC 6455 §10.2).
//!
//! Browsers apply no same-origin rule to WebSockets: any page the user has
//! open can call `new WebSocket("ws://127.0.0.1:9999/")`, and the request
//! carries the user's cookies. What the browser does do is say which page
//! asked, in the `Origin` header (RFC 6455 §4.1 item 8, RFC 6454 §7), and
//! a page cannot forge or remove it. A server that serves browsers checks
//! it before accepting, and answers a foreign origin with 403 (RFC 6455
//! §4.2.2 item 4, /origin/: a server that does not wish to accept "MUST
//! return an appropriate HTTP error code (e.g., a 403 Forbidden)").
//!
//! [`OriginPolicy`] holds the rule (same origin as the request's `Host`,
//! an allow-list, or any), [`Origin`] a parsed origin, and
//! [`OriginError`] why a request was refused, with the 403 to send.
//!
//! Requests without `Origin` are allowed unless the policy says
//! [`require_origin`](OriginPolicy::require_origin): browsers always send
//! one, so its absence means a non-browser client (which could send any
//! `Origin` it liked anyway). `Origin: null` (an opaque origin: a sandboxed
//! iframe, a `file:` or `data:` page) is refused by every policy but
//! [`any`](OriginPolicy::any), and cannot be allow-listed: any page can
//! produce it.

use super::{Headers, Request, trim};
use crate::handshake::HttpResponse;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// A web origin as a server receives it in `Origin` (RFC 6454 §7.1:
/// `scheme "://" host [ ":" port ]`), normalised: scheme and host in lower
/// case (they compare ASCII case-insensitively, RFC 6454 §4, §5), and the
/// scheme's default port left out (`http://a:80` is `http://a`).
///
/// ```
/// use wsmachine::Origin;
/// let origin: Origin = "HTTPS://Chat.Example:443".parse()?;
/// assert_eq!(origin.to_string(), "https://chat.example");
/// assert_eq!((origin.scheme(), origin.host(), origin.port()), ("https", "chat.example", None));
/// assert_eq!(origin, Origin::parse("https://chat.example")?);
/// # Ok::<(), wsmachine::InvalidOrigin>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    scheme: String,
    host: String,
    /// `None`: the scheme's default port (or no port, for a scheme without one).
    port: Option<u16>,
}

/// Why a text is not one serialized origin (RFC 6454 §7.1).
///
/// ```
/// use wsmachine::{InvalidOrigin, Origin};
/// assert_eq!(Origin::parse("https://a.example/"), Err(InvalidOrigin::Trailing));
/// assert_eq!(Origin::parse("null"), Err(InvalidOrigin::Null));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidOrigin {
    /// `null`: an opaque origin (RFC 6454 §7.3), which names no site and
    /// so cannot be compared or allow-listed.
    Null,
    /// No scheme, or one that is not `ALPHA *( ALPHA / DIGIT / "+" / "-" /
    /// "." )` followed by `://` (RFC 3986 §3.1).
    Scheme,
    /// The host is empty, not ASCII, or not a reg-name, IPv4 address or
    /// bracketed IPv6 literal (RFC 3986 §3.2.2); user information
    /// (`user@host`) is not part of an origin.
    Host,
    /// The port is empty, not all digits, or above 65535 (RFC 3986 §3.2.3).
    Port,
    /// Something follows the authority: a path (even `/`), query, fragment
    /// or space. An origin has none (RFC 6454 §6.2); a list of several
    /// origins is refused too (RFC 6455 §4.1 item 8 sends exactly one).
    Trailing,
}

impl fmt::Display for InvalidOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InvalidOrigin::Null => "the opaque origin \"null\" names no site",
            InvalidOrigin::Scheme => "an origin starts with a scheme and \"://\"",
            InvalidOrigin::Host => "the origin has no valid host (ASCII reg-name, IPv4 or [IPv6])",
            InvalidOrigin::Port => "the origin's port must be digits, at most 65535",
            InvalidOrigin::Trailing => "an origin is scheme://host[:port], with nothing after it",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for InvalidOrigin {}

/// The default port of a scheme a WebSocket origin can have (RFC 6454
/// §4 step 5, through the schemes' own specifications).
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

/// Whether `b` may appear in a reg-name or IPv4 address (RFC 3986 §3.2.2:
/// unreserved, pct-encoded, sub-delims).
fn is_reg_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b)
}

/// Splits `authority` into host and port text (RFC 3986 §3.2.2, §3.2.3):
/// a bracketed IPv6 literal or a reg-name, then `:` and the port if any.
/// The host is checked; the port is returned unchecked.
fn split_authority(authority: &[u8]) -> Result<(&[u8], Option<&[u8]>), InvalidOrigin> {
    let (host, port) = if authority.first() == Some(&b'[') {
        let close = authority.iter().position(|&b| b == b']').ok_or(InvalidOrigin::Host)?;
        let (host, after) = authority.split_at(close + 1);
        let literal = &host[1..close];
        if literal.is_empty() || !literal.iter().all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
            return Err(InvalidOrigin::Host);
        }
        match after {
            [] => (host, None),
            [b':', port @ ..] => (host, Some(port)),
            _ => return Err(InvalidOrigin::Host),
        }
    } else {
        match authority.iter().position(|&b| b == b':') {
            Some(i) => (&authority[..i], Some(&authority[i + 1..])),
            None => (authority, None),
        }
    };
    if host.is_empty() || (host.first() != Some(&b'[') && !host.iter().all(|&b| is_reg_name_char(b))) {
        return Err(InvalidOrigin::Host);
    }
    Ok((host, port))
}

/// A port: one or more digits, at most 65535 (RFC 3986 §3.2.3).
fn parse_port(digits: &[u8]) -> Result<u16, InvalidOrigin> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(InvalidOrigin::Port);
    }
    digits.iter().try_fold(0u16, |n, &d| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u16::from(d - b'0')))
            .ok_or(InvalidOrigin::Port)
    })
}

/// ASCII text in lower case (every byte was checked to be ASCII).
fn lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| char::from(b.to_ascii_lowercase())).collect()
}

impl Origin {
    /// Parses one serialized origin (RFC 6454 §7.1), strictly: `scheme
    /// "://" host [ ":" port ]` and nothing else; `null` is
    /// [`InvalidOrigin::Null`].
    ///
    /// ```
    /// use wsmachine::{InvalidOrigin, Origin};
    /// assert_eq!(Origin::parse("http://127.0.0.1:9999")?.port(), Some(9999));
    /// assert_eq!(Origin::parse("http://[::1]:80")?.to_string(), "http://[::1]");
    /// assert_eq!(Origin::parse("http://user@a.example"), Err(InvalidOrigin::Host));
    /// # Ok::<(), InvalidOrigin>(())
    /// ```
    pub fn parse(text: &str) -> Result<Origin, InvalidOrigin> {
        Origin::parse_bytes(text.as_bytes())
    }

    /// [`parse`](Origin::parse) on a header value's bytes (HTTP allows
    /// non-ASCII bytes; an origin has none).
    fn parse_bytes(text: &[u8]) -> Result<Origin, InvalidOrigin> {
        // RFC 6454 §7.1: `origin-list-or-null = %x6E %x75 %x6C %x6C / origin-list`.
        if text == b"null" {
            return Err(InvalidOrigin::Null);
        }
        // RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
        let colon = text.iter().position(|&b| b == b':').ok_or(InvalidOrigin::Scheme)?;
        let (scheme, rest) = text.split_at(colon);
        let valid_scheme = scheme.first().is_some_and(u8::is_ascii_alphabetic)
            && scheme
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        let authority = match rest.strip_prefix(b"://") {
            Some(authority) if valid_scheme => authority,
            _ => return Err(InvalidOrigin::Scheme),
        };
        // RFC 6454 §6.2: the serialization ends with the host or port; no
        // path, query, fragment or second origin follows.
        if authority
            .iter()
            .any(|&b| matches!(b, b'/' | b'?' | b'#' | b' ' | b'\t'))
        {
            return Err(InvalidOrigin::Trailing);
        }
        let (host, port) = split_authority(authority)?;
        let scheme = lower(scheme);
        let port = match port {
            None => None,
            Some(digits) => Some(parse_port(digits)?).filter(|&p| Some(p) != default_port(&scheme)),
        };
        Ok(Origin {
            host: lower(host),
            scheme,
            port,
        })
    }

    /// The scheme, in lower case (`https`).
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The host, in lower case (an IPv6 literal keeps its brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port if it is not the scheme's default (`http://a:8080` gives
    /// `Some(8080)`, `http://a:80` and `http://a` give `None`).
    ///
    /// ```
    /// # use wsmachine::Origin;
    /// assert_eq!(Origin::parse("https://a.example:8443")?.port(), Some(8443));
    /// assert_eq!(Origin::parse("https://a.example:443")?.port(), None);
    /// # Ok::<(), wsmachine::InvalidOrigin>(())
    /// ```
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The port the origin's pages are served on: its own, or the scheme's
    /// default (80 for `http`/`ws`, 443 for `https`/`wss`); `None` for a
    /// scheme without a default and no port.
    ///
    /// ```
    /// # use wsmachine::Origin;
    /// assert_eq!(Origin::parse("https://a.example")?.effective_port(), Some(443));
    /// assert_eq!(Origin::parse("chrome-extension://abc")?.effective_port(), None);
    /// # Ok::<(), wsmachine::InvalidOrigin>(())
    /// ```
    pub fn effective_port(&self) -> Option<u16> {
        self.port.or_else(|| default_port(&self.scheme))
    }
}

impl core::str::FromStr for Origin {
    type Err = InvalidOrigin;
    fn from_str(text: &str) -> Result<Origin, InvalidOrigin> {
        Origin::parse(text)
    }
}

/// The ASCII serialization of the origin (RFC 6454 §6.2).
impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// Why an [`OriginPolicy`] refused a request. Every refusal is answered
/// with [`response`](OriginError::response), a 403 Forbidden (RFC 6455
/// §4.2.2 item 4).
///
/// ```
/// use wsmachine::{Origin, OriginError, OriginPolicy, handshake::{Header, Headers}};
/// let header = |name: &str, value: &str| Header { name: name.into(), value: value.into() };
/// let headers = Headers(vec![header("Host", "chat.example"), header("Origin", "https://evil.example")]);
/// let refused = OriginPolicy::same_origin().check_headers(&headers).unwrap_err();
/// assert_eq!(refused, OriginError::NotAllowed(Origin::parse("https://evil.example")?));
/// assert_eq!(refused.response().status(), 403);
/// # Ok::<(), wsmachine::InvalidOrigin>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OriginError {
    /// A well-formed origin the policy does not allow: a page of another
    /// site (RFC 6455 §10.2).
    NotAllowed(Origin),
    /// `Origin: null`: an opaque origin (a sandboxed iframe, a `file:` or
    /// `data:` page; RFC 6454 §7.3), which any page can produce.
    Null,
    /// The `Origin` value is not one serialized origin (RFC 6454 §7.1).
    Malformed(InvalidOrigin),
    /// More than one `Origin` header line (RFC 6454 §7.3: a user agent
    /// includes at most one Origin header field).
    Repeated,
    /// No `Origin` header, and the policy
    /// [requires one](OriginPolicy::require_origin).
    Missing,
    /// The policy compares with the request's `Host`, and it is missing,
    /// repeated, or not `host [ ":" port ]` (RFC 9110 §7.2).
    InvalidHost,
}

impl OriginError {
    /// The status a refused request is answered with: 403 Forbidden.
    ///
    /// ```
    /// assert_eq!(wsmachine::OriginError::Missing.status(), 403);
    /// ```
    pub fn status(&self) -> u16 {
        403
    }

    /// The answer to send: 403 Forbidden with a short plain-text reason,
    /// through [`Connection::reject`](crate::Connection::reject) (or an
    /// HTTP server's own response, for a handshake done elsewhere).
    ///
    /// ```
    /// use wsmachine::OriginError;
    /// let response = OriginError::Null.response();
    /// assert_eq!(response.status(), 403);
    /// ```
    pub fn response(&self) -> HttpResponse {
        HttpResponse::new(self.status())
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(format!("{self}\n"))
    }
}

impl fmt::Display for OriginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OriginError::NotAllowed(origin) => write!(f, "origin {origin} is not allowed"),
            OriginError::Null => f.write_str("the opaque origin \"null\" is not allowed"),
            OriginError::Malformed(why) => write!(f, "malformed Origin header: {why}"),
            OriginError::Repeated => f.write_str("more than one Origin header"),
            OriginError::Missing => f.write_str("the request has no Origin header"),
            OriginError::InvalidHost => f.write_str("the Host header cannot be compared with the Origin"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for OriginError {}

/// The base rule of a policy (its allow-list is checked first).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Rule {
    /// The origin's host and port are the request's `Host`.
    SameOrigin,
    /// Only the allow-list.
    ListOnly,
    /// Every origin.
    Any,
}

/// Which origins may open a WebSocket (RFC 6455 §10.2): the check a server
/// for browsers makes before accepting a request.
///
/// - [`same_origin`](OriginPolicy::same_origin) (also the
///   [`Default`]): the page must come from the host and port the request
///   was sent to (its `Host`). Only `http`, `https`, `ws` and `wss`
///   origins qualify.
/// - [`allow_list`](OriginPolicy::allow_list): exactly these origins;
///   [`allow`](OriginPolicy::allow) adds one to any policy (same origin
///   *or* these).
/// - [`any`](OriginPolicy::any): no check (an explicit opt-out, for a
///   public service that uses no ambient credentials such as cookies).
///
/// Every policy allows a request without `Origin` (not a browser, see the
/// [module docs](crate::handshake::origin)) unless
/// [`require_origin`](OriginPolicy::require_origin) is set, and every
/// policy but `any` refuses `Origin: null`, an `Origin` that is not one
/// serialized origin, and a repeated `Origin`.
///
/// **Same origin compares authority, not scheme.** The machine does not
/// know whether its transport is TLS, or whether a proxy terminated it, so
/// `same_origin` allows an origin whose host equals the `Host` header's
/// (ASCII case-insensitively, textually: `localhost` and `127.0.0.1` are
/// different) and whose port equals the `Host` port, a `Host` without port
/// meaning the origin scheme's default: `Host: chat.example` matches
/// `https://chat.example` (443) and `http://chat.example` (80), but not
/// `http://chat.example:8080`. A page on `https://chat.example` talking to
/// `wss://chat.example` (TLS on 443) and one on `http://127.0.0.1:9999`
/// talking to `ws://127.0.0.1:9999` both pass. Behind a reverse proxy that
/// rewrites `Host`, or when the page and the socket are on different hosts
/// or ports, or to insist on `https`, name the public origins with
/// [`allow_list`](OriginPolicy::allow_list).
///
/// ```
/// use wsmachine::{Accept, Config, Connection, Event, OriginPolicy};
/// let policy = OriginPolicy::same_origin();
/// let mut server = Connection::server(Config::default());
/// server.receive(b"GET /chat HTTP/1.1\r\nHost: 127.0.0.1:9999\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///     Sec-WebSocket-Version: 13\r\nOrigin: http://evil.example\r\n\r\n");
/// let Some(Event::Request(request)) = server.poll_event() else { panic!() };
/// match policy.check(&request) {
///     Ok(()) => server.accept(request, Accept::new())?,
///     Err(refused) => server.reject(request, refused.response())?,
/// }
/// assert!(server.pending_output().starts_with(b"HTTP/1.1 403 Forbidden\r\n"));
/// # Ok::<(), wsmachine::DecisionError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginPolicy {
    rule: Rule,
    allowed: Vec<Origin>,
    require_origin: bool,
}

impl Default for OriginPolicy {
    /// [`OriginPolicy::same_origin`].
    fn default() -> Self {
        OriginPolicy::same_origin()
    }
}

impl OriginPolicy {
    /// Pages from the host and port of the request's `Host` (see the type's
    /// docs for what is compared).
    ///
    /// ```
    /// use wsmachine::OriginPolicy;
    /// use wsmachine::handshake::{Header, Headers};
    /// let header = |name: &str, value: &str| Header { name: name.into(), value: value.into() };
    /// let request = |origin: &str| Headers(vec![header("Host", "127.0.0.1:9999"), header("Origin", origin)]);
    /// let policy = OriginPolicy::same_origin();
    /// assert!(policy.check_headers(&request("http://127.0.0.1:9999")).is_ok());
    /// assert!(policy.check_headers(&request("http://localhost:9999")).is_err());
    /// assert!(policy.check_headers(&request("http://127.0.0.1:8000")).is_err());
    /// ```
    pub fn same_origin() -> Self {
        OriginPolicy {
            rule: Rule::SameOrigin,
            allowed: Vec::new(),
            require_origin: false,
        }
    }

    /// Exactly these origins (each `scheme://host[:port]`, compared after
    /// the normalisation of [`Origin`]); fails on the first that is not one.
    ///
    /// ```
    /// use wsmachine::OriginPolicy;
    /// let policy = OriginPolicy::allow_list(["https://chat.example", "http://localhost:3000"])?;
    /// assert!(OriginPolicy::allow_list(["https://chat.example/"]).is_err());
    /// # let _ = policy;
    /// # Ok::<(), wsmachine::InvalidOrigin>(())
    /// ```
    pub fn allow_list<'a>(origins: impl IntoIterator<Item = &'a str>) -> Result<Self, InvalidOrigin> {
        let allowed = origins.into_iter().map(Origin::parse).collect::<Result<Vec<_>, _>>()?;
        Ok(OriginPolicy {
            rule: Rule::ListOnly,
            allowed,
            require_origin: false,
        })
    }

    /// Every origin: no check at all (an explicit opt-out; a server that
    /// relies on cookies or other ambient credentials should not use it).
    ///
    /// ```
    /// use wsmachine::OriginPolicy;
    /// use wsmachine::handshake::{Header, Headers};
    /// let headers = Headers(vec![Header { name: "Origin".into(), value: b"null".to_vec() }]);
    /// assert!(OriginPolicy::any().check_headers(&headers).is_ok());
    /// ```
    pub fn any() -> Self {
        OriginPolicy {
            rule: Rule::Any,
            allowed: Vec::new(),
            require_origin: false,
        }
    }

    /// Also allows `origin` (for [`same_origin`](OriginPolicy::same_origin):
    /// the same origin, or this one).
    ///
    /// ```
    /// use wsmachine::{Origin, OriginPolicy};
    /// let policy = OriginPolicy::same_origin().allow(Origin::parse("https://app.example")?);
    /// # let _ = policy;
    /// # Ok::<(), wsmachine::InvalidOrigin>(())
    /// ```
    pub fn allow(mut self, origin: Origin) -> Self {
        self.allowed.push(origin);
        self
    }

    /// Refuses requests without `Origin` too ([`OriginError::Missing`]):
    /// for a server only browsers may use.
    ///
    /// ```
    /// use wsmachine::{OriginError, OriginPolicy};
    /// use wsmachine::handshake::Headers;
    /// let policy = OriginPolicy::same_origin().require_origin();
    /// assert_eq!(policy.check_headers(&Headers::default()), Err(OriginError::Missing));
    /// ```
    pub fn require_origin(mut self) -> Self {
        self.require_origin = true;
        self
    }

    /// Checks the `Origin` of a request the machine surfaced
    /// ([`Event::Request`](crate::Event::Request); a
    /// [`PendingRequest`](crate::PendingRequest) derefs to it). On `Err`,
    /// answer with [`OriginError::response`] (403).
    ///
    /// ```
    /// use wsmachine::{Config, Connection, Event, OriginError, OriginPolicy};
    /// let mut server = Connection::server(Config::default());
    /// server.receive(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:9999\r\nUpgrade: websocket\r\n\
    ///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    ///     Sec-WebSocket-Version: 13\r\nOrigin: null\r\n\r\n");
    /// let Some(Event::Request(request)) = server.poll_event() else { panic!() };
    /// assert_eq!(OriginPolicy::same_origin().check(&request), Err(OriginError::Null));
    /// # server.reject(request, OriginError::Null.response())?;
    /// # Ok::<(), wsmachine::DecisionError>(())
    /// ```
    pub fn check(&self, request: &Request) -> Result<(), OriginError> {
        self.check_headers(&request.headers)
    }

    /// Checks the `Origin` in the header lines of a request an HTTP server
    /// parsed (hyper, axum), before [`Upgrade::new`](crate::Upgrade::new).
    ///
    /// ```
    /// use wsmachine::handshake::{Header, Headers};
    /// use wsmachine::{Accept, OriginPolicy, Upgrade};
    /// let header = |name: &str, value: &str| Header { name: name.into(), value: value.into() };
    /// let headers = Headers(vec![
    ///     header("Host", "chat.example"),
    ///     header("Upgrade", "websocket"),
    ///     header("Connection", "Upgrade"),
    ///     header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ///     header("Sec-WebSocket-Version", "13"),
    ///     header("Origin", "https://chat.example"),
    /// ]);
    /// OriginPolicy::same_origin().check_headers(&headers).expect("same origin");
    /// let upgrade = Upgrade::new("GET", &headers, Accept::new());
    /// # let _ = upgrade;
    /// ```
    pub fn check_headers(&self, headers: &Headers) -> Result<(), OriginError> {
        let mut values = headers.get_all("origin");
        let value = match (values.next(), values.next()) {
            (None, _) if self.require_origin => return Err(OriginError::Missing),
            (None, _) => return Ok(()),
            _ if self.rule == Rule::Any => return Ok(()),
            // RFC 6454 §7.3: a request carries at most one Origin field.
            (Some(_), Some(_)) => return Err(OriginError::Repeated),
            // RFC 6454 §7.1: `"Origin:" OWS origin-list-or-null OWS`.
            (Some(value), None) => trim(value),
        };
        let origin = match Origin::parse_bytes(value) {
            Ok(origin) => origin,
            Err(InvalidOrigin::Null) => return Err(OriginError::Null),
            Err(why) => return Err(OriginError::Malformed(why)),
        };
        // RFC 6454 §5: two origins are the same when scheme, host and port are.
        if self.allowed.contains(&origin) {
            return Ok(());
        }
        match self.rule {
            Rule::SameOrigin if same_authority(&origin, headers)? => Ok(()),
            _ => Err(OriginError::NotAllowed(origin)),
        }
    }
}

/// Whether `origin` names the host and port of the request's `Host`
/// (RFC 9110 §7.2: `uri-host [ ":" port ]`); a `Host` without port (or
/// with an empty one, RFC 3986 §3.2.3) means the origin scheme's default.
fn same_authority(origin: &Origin, headers: &Headers) -> Result<bool, OriginError> {
    let Some(default) = default_port(&origin.scheme) else {
        // Not a web scheme (http, https, ws, wss): no port to compare.
        return Ok(false);
    };
    let origin_port = origin.port.unwrap_or(default);
    let mut hosts = headers.get_all("host");
    let host = match (hosts.next(), hosts.next()) {
        (Some(host), None) => trim(host),
        _ => return Err(OriginError::InvalidHost),
    };
    let (name, port) = split_authority(host).map_err(|_| OriginError::InvalidHost)?;
    let port = match port {
        None | Some([]) => default,
        Some(digits) => parse_port(digits).map_err(|_| OriginError::InvalidHost)?,
    };
    Ok(name.eq_ignore_ascii_case(origin.host.as_bytes()) && port == origin_port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::Header;
    #[allow(unused_imports)]
    use alloc::{format, string::String, string::ToString, vec, vec::Vec};

    fn headers(lines: &[(&str, &str)]) -> Headers {
        Headers(
            lines
                .iter()
                .map(|(name, value)| Header {
                    name: name.to_string(),
                    value: value.as_bytes().to_vec(),
                })
                .collect(),
        )
    }

    fn check(policy: &OriginPolicy, host: &str, origin: &str) -> Result<(), OriginError> {
        policy.check_headers(&headers(&[("Host", host), ("Origin", origin)]))
    }

    fn origin(text: &str) -> Origin {
        Origin::parse(text).unwrap()
    }

    // RFC 6454 §7.1 (`serialized-origin = scheme "://" host [ ":" port ]`)
    // with RFC 3986 §3.1, §3.2.2, §3.2.3 for its parts.
    #[test]
    fn serialized_origin_grammar() {
        for (text, scheme, host, port) in [
            ("http://a.example", "http", "a.example", None),
            ("https://a.example:8443", "https", "a.example", Some(8443)),
            ("http://127.0.0.1:9999", "http", "127.0.0.1", Some(9999)),
            ("http://[::1]:9999", "http", "[::1]", Some(9999)),
            ("http://[2001:DB8::1]", "http", "[2001:db8::1]", None),
            ("chrome-extension://abcdef", "chrome-extension", "abcdef", None),
            ("web+app.x://h:1", "web+app.x", "h", Some(1)),
            ("http://xn--bcher-kva.example", "http", "xn--bcher-kva.example", None),
            ("http://a:0", "http", "a", Some(0)),
            ("http://a:65535", "http", "a", Some(65535)),
        ] {
            let o = origin(text);
            assert_eq!((o.scheme(), o.host(), o.port()), (scheme, host, port), "{text}");
        }
        for (text, error) in [
            ("null", InvalidOrigin::Null),
            ("", InvalidOrigin::Scheme),
            ("a.example", InvalidOrigin::Scheme),
            ("://a.example", InvalidOrigin::Scheme),
            ("1http://a", InvalidOrigin::Scheme),
            ("ht_tp://a", InvalidOrigin::Scheme),
            ("http:/a", InvalidOrigin::Scheme),
            ("http:a", InvalidOrigin::Scheme),
            ("NULL", InvalidOrigin::Scheme),
            (" null", InvalidOrigin::Scheme),
            ("http://", InvalidOrigin::Host),
            ("http://:80", InvalidOrigin::Host),
            ("http://u@a", InvalidOrigin::Host),
            ("http://u:p@a", InvalidOrigin::Port),
            ("http://bücher.example", InvalidOrigin::Host),
            ("http://[]", InvalidOrigin::Host),
            ("http://[::1", InvalidOrigin::Host),
            ("http://[zz::1]", InvalidOrigin::Host),
            ("http://[::1]x", InvalidOrigin::Host),
            ("http://a:", InvalidOrigin::Port),
            ("http://a:65536", InvalidOrigin::Port),
            ("http://a:99999999999999999999", InvalidOrigin::Port),
            ("http://a:+80", InvalidOrigin::Port),
            ("http://a:8o", InvalidOrigin::Port),
            ("http://a:1:2", InvalidOrigin::Port),
            // RFC 6454 §6.2: no path, query or fragment; one origin only.
            ("http://a/", InvalidOrigin::Trailing),
            ("http://a/chat", InvalidOrigin::Trailing),
            ("http://a?x", InvalidOrigin::Trailing),
            ("http://a#x", InvalidOrigin::Trailing),
            ("http://a http://b", InvalidOrigin::Trailing),
            ("http://a\tx", InvalidOrigin::Trailing),
        ] {
            assert_eq!(Origin::parse(text), Err(error), "{text:?}");
        }
        // Non-ASCII, non-UTF-8 header bytes are refused, not a panic.
        assert_eq!(Origin::parse_bytes(b"http://a\xff"), Err(InvalidOrigin::Host));
        assert_eq!(Origin::parse_bytes(b"\xffhttp://a"), Err(InvalidOrigin::Scheme));
    }

    // RFC 6454 §4 (scheme and host lower-cased), §5 (same origin: scheme,
    // host, port equal), §6.2 (the default port is not serialized).
    #[test]
    fn normalised_comparison() {
        assert_eq!(origin("HTTP://A.Example"), origin("http://a.example"));
        assert_eq!(origin("http://a.example:80"), origin("http://a.example"));
        assert_eq!(origin("https://a.example:443"), origin("https://a.example"));
        assert_eq!(origin("ws://a:80"), origin("ws://a"));
        assert_eq!(origin("wss://a:443"), origin("wss://a"));
        assert_eq!(origin("http://a:0080"), origin("http://a"));
        assert_ne!(origin("http://a.example"), origin("https://a.example"));
        assert_ne!(origin("http://a.example:443"), origin("https://a.example"));
        assert_ne!(origin("http://a.example:8080"), origin("http://a.example"));
        assert_ne!(origin("http://a.example."), origin("http://a.example"));
        assert_ne!(origin("http://localhost"), origin("http://127.0.0.1"));
        // No default port for an unknown scheme: `:80` stays.
        assert_eq!(origin("foo://a:80").port(), Some(80));
        assert_eq!(origin("HTTPS://A.Example:443").to_string(), "https://a.example");
        assert_eq!(origin("http://A:8080").to_string(), "http://a:8080");
    }

    // RFC 6455 §10.2: a server for browsers accepts only its own pages;
    // same origin here is the Host's host and port.
    #[test]
    fn same_origin_compares_with_host() {
        let p = OriginPolicy::same_origin();
        for (host, origin) in [
            ("127.0.0.1:9999", "http://127.0.0.1:9999"),
            ("chat.example", "http://chat.example"),
            ("chat.example", "https://chat.example"),
            ("chat.example:443", "https://chat.example"),
            ("chat.example:80", "http://chat.example:80"),
            ("Chat.Example", "http://chat.example"),
            ("chat.example", "HTTP://CHAT.EXAMPLE"),
            ("chat.example:", "http://chat.example"),
            ("[::1]:9999", "http://[::1]:9999"),
            (" chat.example ", "http://chat.example"),
            ("chat.example", "ws://chat.example"),
            ("chat.example:8443", "wss://chat.example:8443"),
        ] {
            assert_eq!(check(&p, host, origin), Ok(()), "Host {host}, Origin {origin}");
        }
        for (host, origin) in [
            ("127.0.0.1:9999", "http://localhost:9999"),
            ("localhost:9999", "http://127.0.0.1:9999"),
            ("127.0.0.1:9999", "http://127.0.0.1:9998"),
            ("127.0.0.1:9999", "http://127.0.0.1"),
            ("chat.example", "http://chat.example:8080"),
            ("chat.example", "http://chat.example:443"),
            ("chat.example:443", "http://chat.example"),
            ("chat.example", "https://evil.example"),
            ("chat.example", "http://chat.example.evil.example"),
            ("chat.example", "http://evilchat.example"),
            // Not a web scheme: no port to compare with.
            ("chat.example", "chrome-extension://chat.example"),
            ("chat.example:80", "foo://chat.example:80"),
        ] {
            assert_eq!(
                check(&p, host, origin),
                Err(OriginError::NotAllowed(Origin::parse(origin).unwrap())),
                "Host {host}, Origin {origin}"
            );
        }
    }

    #[test]
    fn an_unusable_host_refuses_same_origin() {
        let p = OriginPolicy::same_origin();
        for host in ["", "a b", "a:x", "a:70000", "[::1", "u@a", "a/b"] {
            assert_eq!(
                check(&p, host, "http://a"),
                Err(OriginError::InvalidHost),
                "Host {host:?}"
            );
        }
        let two_hosts = headers(&[("Host", "a"), ("Host", "a"), ("Origin", "http://a")]);
        assert_eq!(p.check_headers(&two_hosts), Err(OriginError::InvalidHost));
        let no_host = headers(&[("Origin", "http://a")]);
        assert_eq!(p.check_headers(&no_host), Err(OriginError::InvalidHost));
        // An allow-listed origin does not need the Host.
        assert_eq!(p.allow(origin("http://a")).check_headers(&no_host), Ok(()));
    }

    #[test]
    fn allow_list_is_exact() {
        let p = OriginPolicy::allow_list(["https://chat.example", "http://localhost:3000"]).unwrap();
        for ok in [
            "https://chat.example",
            "HTTPS://chat.EXAMPLE:443",
            "http://localhost:3000",
        ] {
            assert_eq!(check(&p, "anything", ok), Ok(()), "{ok}");
        }
        // Not the Host: the list only.
        for refused in [
            "http://chat.example",
            "https://chat.example:8443",
            "http://localhost",
            "http://anything",
        ] {
            assert_eq!(
                check(&p, "anything", refused),
                Err(OriginError::NotAllowed(origin(refused))),
                "{refused}"
            );
        }
        assert_eq!(
            OriginPolicy::allow_list(["https://a", "null"]),
            Err(InvalidOrigin::Null)
        );
        assert_eq!(OriginPolicy::allow_list(["https://a/"]), Err(InvalidOrigin::Trailing));
        // Same origin or the list.
        let p = OriginPolicy::same_origin().allow(origin("https://app.example"));
        assert_eq!(check(&p, "api.example", "https://app.example"), Ok(()));
        assert_eq!(check(&p, "api.example", "https://api.example"), Ok(()));
        assert!(check(&p, "api.example", "https://other.example").is_err());
    }

    // RFC 6454 §7.3 (`null` for opaque origins; one Origin field), RFC 6455
    // §4.1 item 8 (browsers send Origin; other clients need not).
    #[test]
    fn missing_null_malformed_and_repeated() {
        for p in [
            OriginPolicy::same_origin(),
            OriginPolicy::allow_list(["http://a"]).unwrap(),
        ] {
            assert_eq!(p.check_headers(&headers(&[("Host", "a")])), Ok(()));
            assert_eq!(check(&p, "a", "null"), Err(OriginError::Null));
            assert_eq!(check(&p, "a", " null "), Err(OriginError::Null));
            assert_eq!(
                check(&p, "a", "http://a/"),
                Err(OriginError::Malformed(InvalidOrigin::Trailing))
            );
            assert_eq!(
                check(&p, "a", "http://a http://a"),
                Err(OriginError::Malformed(InvalidOrigin::Trailing))
            );
            let two = headers(&[("Host", "a"), ("Origin", "http://a"), ("origin", "http://a")]);
            assert_eq!(p.check_headers(&two), Err(OriginError::Repeated));
            assert_eq!(
                p.clone().require_origin().check_headers(&headers(&[("Host", "a")])),
                Err(OriginError::Missing)
            );
            // Allowed: the same origin, or on the list.
            assert_eq!(check(&p, "a", "http://a"), Ok(()));
        }
        let any = OriginPolicy::any();
        for value in ["null", "http://evil.example", "garbage"] {
            assert_eq!(check(&any, "a", value), Ok(()), "{value}");
        }
        assert_eq!(any.check_headers(&Headers::default()), Ok(()));
        assert_eq!(
            any.require_origin().check_headers(&Headers::default()),
            Err(OriginError::Missing)
        );
    }

    // RFC 6455 §4.2.2 item 4: a refused origin is answered 403.
    #[test]
    fn refusal_is_403() {
        let response = OriginError::NotAllowed(origin("http://evil.example")).response();
        let mut out = Vec::new();
        response.encode(false, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{text}");
        assert!(text.ends_with("origin http://evil.example is not allowed\n"), "{text}");
        assert!(response.validate().is_ok());
    }
}
