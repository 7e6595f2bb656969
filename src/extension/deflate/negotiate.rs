//! permessage-deflate negotiation (RFC 7692 §5, §7.1): the server's answer
//! to an offer, the client's check of the answer.

use super::{Agreement, DeflateConfig, DeflateParams, EXTENSION_NAME};
use crate::handshake::{HandshakeError, Headers, parse_extensions};
use alloc::format;
use alloc::string::{String, ToString};

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

#[cfg(test)]
mod tests {
    use super::super::params;
    use super::*;
    use crate::handshake::extensions::extension_headers as headers;
    #[allow(unused_imports)]
    use alloc::{format, string::String, string::ToString, vec, vec::Vec};

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
}
