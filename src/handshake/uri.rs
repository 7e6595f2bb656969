//! The URI pieces both roles check: an authority `host[:port]` (RFC 3986
//! §3.2.2, §3.2.3; a client's URL and `Host`, a server's `Host`) and an
//! HTTP/1.1 request target (RFC 9112 §3.2). Bytes and grammar only.
//!
//! Not done: IDNA (a non-ASCII host name must be given in its ASCII,
//! `xn--`, form), IPv6 zone identifiers (RFC 6874) and `IPvFuture`
//! literals.

use alloc::string::String;
use core::net::Ipv6Addr;
use core::str::FromStr;

/// Which part of an authority is malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuthorityError {
    /// The host: empty, not a reg-name, IPv4 address or bracketed IPv6
    /// address, or followed by something other than `:port`.
    Host,
    /// The port: not digits only, or above 65535.
    Port,
}

/// Whether `b` may appear in a reg-name or an IPv4 address, apart from
/// percent-encodings (RFC 3986 §3.2.2: unreserved / sub-delims).
fn is_reg_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b)
}

/// Whether `s` is a host (RFC 3986 §3.2.2): a bracketed IPv6 address
/// (`IP-literal`), or a non-empty reg-name (which covers IPv4 addresses)
/// of ASCII characters and well-formed percent-encodings. Nothing else:
/// no port, no spaces, no non-ASCII (RFC 9110 §4.2.1: an http(s) URI
/// with an empty host is invalid, and the same goes for ws(s), RFC 6455 §3).
pub(crate) fn is_host(s: &str) -> bool {
    if let Some(literal) = s.strip_prefix('[') {
        // RFC 3986 §3.2.2: IP-literal = "[" IPv6address "]"; the address
        // grammar of §3.2.2 is the one `Ipv6Addr` parses.
        return literal.strip_suffix(']').is_some_and(|a| Ipv6Addr::from_str(a).is_ok());
    }
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            // RFC 3986 §2.1: pct-encoded = "%" HEXDIG HEXDIG.
            match b.get(i + 1..i + 3) {
                Some([h, l]) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => i += 3,
                _ => return false,
            }
        } else if is_reg_name_char(c) {
            i += 1;
        } else {
            return false;
        }
    }
    !b.is_empty()
}

/// Splits an authority `host [ ":" port ]` (RFC 3986 §3.2.2, §3.2.3;
/// userinfo is the caller's to refuse) and checks both parts. The port is
/// `None` when absent or empty (RFC 3986 §3.2.3 allows an empty port:
/// the scheme's default).
pub(crate) fn parse_authority(s: &str) -> Result<(&str, Option<u16>), AuthorityError> {
    let (host, port) = if s.starts_with('[') {
        // A bracketed literal is followed by nothing or by ":port".
        let close = s.find(']').ok_or(AuthorityError::Host)?;
        let (host, after) = s.split_at(close + 1);
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or(AuthorityError::Host)?)),
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if !is_host(host) {
        return Err(AuthorityError::Host);
    }
    let port = match port {
        None | Some("") => None,
        // RFC 3986 §3.2.3: port = *DIGIT; a TCP port is at most 65535.
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse::<u16>().map_err(|_| AuthorityError::Port)?),
        Some(_) => return Err(AuthorityError::Port),
    };
    Ok((host, port))
}

/// The form of a request target (RFC 9112 §3.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RequestTarget<'a> {
    /// `/path?query` (RFC 9112 §3.2.1).
    Origin(&'a str),
    /// `http://authority/path?query` (RFC 9112 §3.2.2), reduced to its
    /// authority and its path and query in origin form.
    Absolute {
        /// The authority, checked by [`parse_authority`].
        authority: &'a str,
        /// The path and query, starting with `/`.
        path: String,
    },
    /// `host:port`, for CONNECT (RFC 9112 §3.2.3).
    Authority(&'a str),
    /// `*`, for a server-wide OPTIONS (RFC 9112 §3.2.4).
    Asterisk,
}

/// Parses a request target (RFC 9112 §3.2). The error says which rule it
/// broke.
///
/// Characters inside the path and query are not held to RFC 3986's set:
/// browsers send some (`|`, `^`, `[`, `]`) unencoded (the WHATWG URL
/// standard's percent-encode sets), and they cannot end the request line.
/// What is refused is what changes the target's meaning or what a proxy
/// would read differently: a fragment, non-ASCII bytes, whitespace and
/// control characters (httparse already refuses those), userinfo.
pub(crate) fn parse_target(raw: &str) -> Result<RequestTarget<'_>, &'static str> {
    if raw.contains('#') {
        // RFC 9112 §3.2: request-target has no fragment; RFC 6455 §3: the
        // resource name never includes one.
        return Err("a request target has no fragment (#) (RFC 9112 §3.2, RFC 6455 §3)");
    }
    if !raw.bytes().all(|b| b.is_ascii_graphic()) {
        // RFC 9112 §3.2 / RFC 3986 §2: a URI is ASCII; anything else is
        // percent-encoded by the client.
        return Err("the request target must be ASCII without spaces or control characters (RFC 9112 §3.2)");
    }
    if raw.starts_with('/') {
        return Ok(RequestTarget::Origin(raw));
    }
    if raw == "*" {
        return Ok(RequestTarget::Asterisk);
    }
    if let Some((scheme, rest)) = raw.split_once("://") {
        // RFC 9112 §3.2.2; RFC 6455 §4.1 names http and https, and the ws
        // schemes mean the same resource.
        if !["http", "https", "ws", "wss"]
            .iter()
            .any(|s| scheme.eq_ignore_ascii_case(s))
        {
            return Err("an absolute-form target must be an http, https, ws or wss URI (RFC 9112 §3.2.2)");
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.contains('@') {
            // RFC 9110 §4.2.4: userinfo is never sent in a target URI.
            return Err("an absolute-form target must not carry userinfo (RFC 9110 §4.2.4)");
        }
        if parse_authority(authority).is_err() {
            return Err("the absolute-form target's authority is not host[:port] (RFC 3986 §3.2)");
        }
        let path = if path.starts_with('/') {
            String::from(path)
        } else {
            // RFC 9112 §3.3: an empty path is "/" in origin form.
            let mut p = String::from("/");
            p.push_str(path);
            p
        };
        return Ok(RequestTarget::Absolute { authority, path });
    }
    match parse_authority(raw) {
        // RFC 9112 §3.2.3: authority-form always has the port.
        Ok((_, Some(_))) => Ok(RequestTarget::Authority(raw)),
        _ => Err("the request target is not in origin, absolute, authority or asterisk form (RFC 9112 §3.2)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use alloc::{format, string::String, string::ToString, vec, vec::Vec};

    // RFC 3986 §3.2.2, §3.2.3: hosts and ports.
    #[test]
    fn authorities() {
        assert_eq!(parse_authority("example.com"), Ok(("example.com", None)));
        assert_eq!(parse_authority("example.com:"), Ok(("example.com", None)));
        assert_eq!(parse_authority("h:8080"), Ok(("h", Some(8080))));
        assert_eq!(parse_authority("192.0.2.1:80"), Ok(("192.0.2.1", Some(80))));
        assert_eq!(parse_authority("[2001:db8::1]:443"), Ok(("[2001:db8::1]", Some(443))));
        assert_eq!(parse_authority("[::ffff:192.0.2.1]"), Ok(("[::ffff:192.0.2.1]", None)));
        assert_eq!(parse_authority("h%41"), Ok(("h%41", None)));
        for (bad, e) in [
            ("", AuthorityError::Host),
            (":80", AuthorityError::Host),
            ("a b", AuthorityError::Host),
            ("a,b c", AuthorityError::Host),
            ("bücher.example", AuthorityError::Host),
            ("h%4", AuthorityError::Host),
            ("h%zz", AuthorityError::Host),
            ("[1:2:3]", AuthorityError::Host),
            ("[::1]x", AuthorityError::Host),
            ("[::1", AuthorityError::Host),
            ("[fe80::1%25eth0]", AuthorityError::Host),
            ("::1", AuthorityError::Host),
            ("h:65536", AuthorityError::Port),
            ("h:+1", AuthorityError::Port),
            ("h:1:2", AuthorityError::Port),
        ] {
            assert_eq!(parse_authority(bad), Err(e), "{bad:?}");
        }
    }

    // RFC 9112 §3.2: the four forms of a request target.
    #[test]
    fn request_targets() {
        assert_eq!(parse_target("/a?b=c"), Ok(RequestTarget::Origin("/a?b=c")));
        assert_eq!(parse_target("*"), Ok(RequestTarget::Asterisk));
        assert_eq!(parse_target("h:443"), Ok(RequestTarget::Authority("h:443")));
        assert_eq!(
            parse_target("HTTP://h:8080?x"),
            Ok(RequestTarget::Absolute {
                authority: "h:8080",
                path: "/?x".into()
            })
        );
        assert_eq!(
            parse_target("wss://h/chat"),
            Ok(RequestTarget::Absolute {
                authority: "h",
                path: "/chat".into()
            })
        );
        for bad in [
            "/a#b",
            "/é",
            "/a b",
            "chat",
            "h",
            "ftp://h/",
            "http://u@h/",
            "http:///x",
            "http://h:x/",
        ] {
            assert!(parse_target(bad).is_err(), "{bad:?}");
        }
    }
}
