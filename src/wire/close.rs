//! Close codes (RFC 6455 §7.4) and the close-frame payload (§5.5.1).

use core::fmt;

/// A WebSocket close status code (RFC 6455 §7.4).
///
/// Any `u16` can be wrapped; [`CloseCode::is_valid_on_wire`] says whether the
/// code may appear in a close frame.
///
/// ```
/// use wsmachine::CloseCode;
/// assert!(CloseCode::NORMAL.is_valid_on_wire());
/// assert!(!CloseCode::ABNORMAL.is_valid_on_wire()); // 1006 is never sent
/// assert!(CloseCode::from(4000).is_valid_on_wire()); // private use
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: normal closure; the purpose of the connection was fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer violated the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: no status code was present (never sent on the wire).
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: the connection closed without a close frame (never sent on the wire).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: message data inconsistent with its type (invalid UTF-8 in text).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message violated the endpoint's policy.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a frame or message is too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting.
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later.
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 1014: bad gateway.
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);
    /// 1015: TLS handshake failure (never sent on the wire).
    pub const TLS_HANDSHAKE: CloseCode = CloseCode(1015);

    /// Whether this code may be carried by a close frame (RFC 6455 §7.4.1,
    /// §7.4.2 and the IANA registry): 1000–1003, 1007–1014 and 3000–4999.
    ///
    /// 1004–1006, 1015, codes below 1000 and 1016–2999 are not.
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        code.0
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The longest close reason that fits a control frame: 125 bytes of payload
/// minus the 2-byte code (RFC 6455 §5.5).
pub const MAX_CLOSE_REASON: usize = 123;

/// A close frame's content (RFC 6455 §5.5.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code; `None` when the frame had no payload.
    pub code: Option<CloseCode>,
    /// The reason, possibly empty.
    pub reason: alloc::string::String,
}

/// Why a received close payload is invalid (RFC 6455 §5.5.1, §7.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseError {
    /// A 1-byte payload: a body must start with a 2-byte code (§5.5.1).
    OneByte,
    /// A code that may not appear on the wire (§7.4).
    InvalidCode(u16),
    /// A reason that is not UTF-8 (§5.5.1).
    InvalidReason,
}

/// Parses a received close payload, enforcing RFC 6455 §5.5.1 and §7.4.
pub(crate) fn parse_close(payload: &[u8]) -> Result<CloseFrame, CloseError> {
    match payload {
        [] => Ok(CloseFrame {
            code: None,
            reason: alloc::string::String::new(),
        }),
        // §5.5.1: if there is a body, its first two bytes are the code.
        [_] => Err(CloseError::OneByte),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_valid_on_wire() {
                return Err(CloseError::InvalidCode(code.0));
            }
            let reason = core::str::from_utf8(reason).map_err(|_| CloseError::InvalidReason)?;
            Ok(CloseFrame {
                code: Some(code),
                reason: reason.into(),
            })
        }
    }
}

/// Writes a close payload (code, then as much of `reason` as fits in
/// [`MAX_CLOSE_REASON`] bytes, cut on a character boundary) into `buf` and
/// returns its length.
pub(crate) fn encode_close(code: CloseCode, reason: &str, buf: &mut [u8; 125]) -> usize {
    let reason = fit_reason(reason).as_bytes();
    buf[..2].copy_from_slice(&code.0.to_be_bytes());
    buf[2..2 + reason.len()].copy_from_slice(reason);
    2 + reason.len()
}

/// `reason` cut to fit a close frame ([`MAX_CLOSE_REASON`] bytes), on a
/// character boundary.
pub(crate) fn fit_reason(reason: &str) -> &str {
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use alloc::{format, string::String, string::ToString, vec, vec::Vec};

    // RFC 6455 §7.4.1/§7.4.2: which codes may be on the wire.
    #[test]
    fn valid_and_invalid_codes() {
        for c in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999,
        ] {
            assert!(CloseCode(c).is_valid_on_wire(), "{c}");
        }
        for c in [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
            assert!(!CloseCode(c).is_valid_on_wire(), "{c}");
        }
    }

    // RFC 6455 §5.5.1: empty body, 1-byte body, code, UTF-8 reason.
    #[test]
    fn close_payloads() {
        assert_eq!(parse_close(&[]).unwrap().code, None);
        assert_eq!(parse_close(&[0x03]), Err(CloseError::OneByte));
        let f = parse_close(b"\x03\xe8bye").unwrap();
        assert_eq!((f.code, f.reason.as_str()), (Some(CloseCode::NORMAL), "bye"));
        assert_eq!(parse_close(b"\x03\xed"), Err(CloseError::InvalidCode(1005)));
        assert_eq!(parse_close(b"\x03\xe8\xff"), Err(CloseError::InvalidReason));
    }

    // RFC 6455 §5.5: a control payload is at most 125 bytes; the reason is cut on a character boundary.
    #[test]
    fn encoded_reasons_fit_a_control_frame() {
        let mut buf = [0u8; 125];
        let long = "é".repeat(100);
        let n = encode_close(CloseCode::NORMAL, &long, &mut buf);
        assert_eq!(n, 2 + 122);
        assert_eq!(parse_close(&buf[..n]).unwrap().reason, "é".repeat(61));
        assert_eq!(encode_close(CloseCode::GOING_AWAY, "", &mut buf), 2);
        assert_eq!(&buf[..2], &1001u16.to_be_bytes());
    }
}
