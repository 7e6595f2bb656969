//! The `Sec-WebSocket-Extensions` header grammar (RFC 6455 §9.1), shared by
//! every extension's negotiation: a list of elements, each a token with
//! `;`-separated parameters whose values may be tokens or quoted strings.

use super::{Headers, is_tchar};
use alloc::string::String;
use alloc::vec::Vec;

/// One element of a `Sec-WebSocket-Extensions` list: a name and its
/// parameters (a value unquoted when it was a quoted-string).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionElement {
    /// The extension token, for example `permessage-deflate`.
    pub name: String,
    /// `name` or `name=value` parameters in order.
    pub params: Vec<(String, Option<String>)>,
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
pub fn parse_extensions(headers: &Headers) -> Result<Vec<ExtensionElement>, &'static str> {
    let mut out = Vec::new();
    for value in headers.get_all("sec-websocket-extensions") {
        parse_extension_list(value, &mut out)?;
    }
    Ok(out)
}

fn parse_extension_list(value: &[u8], out: &mut Vec<ExtensionElement>) -> Result<(), &'static str> {
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
        out.push(ExtensionElement { name, params });
    }
}

/// `Sec-WebSocket-Extensions` header lines with these values (tests of
/// every extension's negotiation use them).
#[cfg(test)]
pub(crate) fn extension_headers(values: &[&str]) -> Headers {
    Headers(
        values
            .iter()
            .map(|v| super::Header {
                name: "Sec-WebSocket-Extensions".into(),
                value: v.as_bytes().to_vec(),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use alloc::{format, string::String, string::ToString, vec, vec::Vec};

    // RFC 6455 §9.1: extension lists, parameters, quoted values, several headers.
    #[test]
    fn extension_header_grammar() {
        let exts = parse_extensions(&extension_headers(&[
            "permessage-deflate; client_max_window_bits, permessage-deflate; server_max_window_bits=\"10\"",
            " foo ;a=1 ; b , ,",
        ]))
        .unwrap();
        assert_eq!(exts.len(), 3);
        assert_eq!(exts[0].params, [("client_max_window_bits".into(), None)]);
        assert_eq!(exts[1].params, [("server_max_window_bits".into(), Some("10".into()))]);
        assert_eq!(exts[2].name, "foo");
        assert_eq!(exts[2].params, [("a".into(), Some("1".into())), ("b".into(), None)]);
        assert!(parse_extensions(&extension_headers(&["permessage-deflate; =1"])).is_err());
        assert!(parse_extensions(&extension_headers(&["permessage-deflate x"])).is_err());
        assert!(parse_extensions(&extension_headers(&["a; b=\"unterminated"])).is_err());
    }
}
