//! Every protocol violation fails the connection with its close code
//! (RFC 6455 §7.1.7, §7.4.1). Each test feeds hand-built frames to an OPEN
//! machine and decodes the close frame it emitted.

use crate::util::*;
use wsmachine::{CloseCode, Config, Connection, DataKind, Error, Event, ProtocolError, ReadyState, Role};

const ROLES: [Role; 2] = [Role::Server, Role::Client];

/// Feeds `bytes` to an OPEN machine of `role` and checks that it failed with
/// `error`: the events, exactly one close frame on the wire carrying the
/// error's code and description (masked iff the machine is a client), CLOSED.
fn assert_fails(role: Role, config: Config, bytes: &[u8], error: ProtocolError) -> Connection {
    let mut conn = open(role, config);
    let evs = feed(&mut conn, bytes);
    assert_eq!(evs, failed(error.clone()), "{role:?}");
    let frames = output_frames(&mut conn);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].close_code(), Some(error.close_code().0));
    assert_eq!(frames[0].close_reason(), error.to_string());
    assert_eq!(frames[0].mask.is_some(), role == Role::Client, "RFC 6455 §5.1");
    assert_eq!(conn.state(), ReadyState::Closed);
    assert!(conn.should_close_transport(), "RFC 6455 §7.1.7: drop the connection");
    conn
}

// RFC 6455 §5.2: RSV1-3 must be 0 without a negotiated extension (1002).
#[test]
fn rsv_bits_are_1002() {
    for role in ROLES {
        for rsv in 1..=7 {
            for op in [OP_TEXT, OP_BINARY, OP_PING] {
                let mask = (role == Role::Server).then_some(KEY);
                assert_fails(
                    role,
                    Config::default(),
                    &raw_frame(true, rsv, op, mask, b"x"),
                    ProtocolError::ReservedBits,
                );
            }
        }
    }
}

// RFC 6455 §5.2: opcodes 0x3-0x7 and 0xB-0xF are reserved (1002), failed on
// the first header byte pair.
#[test]
fn reserved_opcodes_are_1002() {
    for role in ROLES {
        for op in (0x3..=0x7).chain(0xB..=0xF) {
            let frame = frame_to(role, true, op, b"payload");
            assert_fails(role, Config::default(), &frame[..2], ProtocolError::ReservedOpcode(op));
        }
    }
}

// RFC 6455 §5.1: a server fails an unmasked client frame (1002).
#[test]
fn unmasked_frame_at_server_is_1002() {
    assert_fails(
        Role::Server,
        Config::default(),
        &server_frame(true, OP_TEXT, b"hi"),
        ProtocolError::UnmaskedFrame,
    );
    // Control frames too.
    assert_fails(
        Role::Server,
        Config::default(),
        &server_frame(true, OP_PING, b""),
        ProtocolError::UnmaskedFrame,
    );
}

// RFC 6455 §5.1: a client fails a masked server frame (1002).
#[test]
fn masked_frame_at_client_is_1002() {
    assert_fails(
        Role::Client,
        Config::default(),
        &client_frame(true, OP_TEXT, b"hi"),
        ProtocolError::MaskedFrame,
    );
    assert_fails(
        Role::Client,
        Config::default(),
        &client_frame(true, OP_CLOSE, b""),
        ProtocolError::MaskedFrame,
    );
}

// RFC 6455 §5.5: control frames carry at most 125 bytes (1002), known from the header.
#[test]
fn control_frame_over_125_is_1002() {
    for role in ROLES {
        let mask = (role == Role::Server).then_some(KEY);
        for op in [OP_PING, OP_PONG, OP_CLOSE] {
            let header = raw_header(true, 0, op, mask, 126);
            assert_fails(
                role,
                Config::default(),
                &header,
                ProtocolError::ControlFrameTooLong(126),
            );
        }
        let header = raw_header(true, 0, OP_PING, mask, 70_000);
        assert_fails(
            role,
            Config::default(),
            &header,
            ProtocolError::ControlFrameTooLong(70_000),
        );
    }
}

// RFC 6455 §5.5: control frames must not be fragmented (1002).
#[test]
fn fragmented_control_frame_is_1002() {
    for role in ROLES {
        for op in [OP_PING, OP_PONG, OP_CLOSE] {
            let frame = frame_to(role, false, op, b"x");
            assert_fails(role, Config::default(), &frame, ProtocolError::FragmentedControlFrame);
        }
    }
}

// RFC 6455 §5.4: a continuation frame with no message in progress (1002).
#[test]
fn continuation_without_start_is_1002() {
    for role in ROLES {
        assert_fails(
            role,
            Config::default(),
            &frame_to(role, true, OP_CONT, b"x"),
            ProtocolError::UnexpectedContinuation,
        );
        // Also right after a complete message.
        let mut bytes = frame_to(role, true, OP_TEXT, b"done");
        bytes.extend(frame_to(role, false, OP_CONT, b"x"));
        let mut conn = open(role, Config::default());
        let evs = feed(&mut conn, &bytes);
        assert_eq!(evs[0], text("done"));
        assert_eq!(evs[1..], failed(ProtocolError::UnexpectedContinuation));
        assert_eq!(single_close_code(&mut conn), Some(1002));
    }
}

// RFC 6455 §5.4: a new data frame inside a fragmented message (1002).
#[test]
fn new_data_frame_inside_a_fragmented_message_is_1002() {
    for role in ROLES {
        for (first, second) in [(OP_TEXT, OP_TEXT), (OP_TEXT, OP_BINARY), (OP_BINARY, OP_TEXT)] {
            let mut bytes = frame_to(role, false, first, b"a");
            bytes.extend(frame_to(role, true, OP_PING, b"control frames are fine"));
            bytes.extend(frame_to(role, true, second, b"b"));
            let mut conn = open(role, Config::default());
            let evs = feed(&mut conn, &bytes);
            assert_eq!(evs[0], Event::Ping("control frames are fine".into()));
            assert_eq!(evs[1..], failed(ProtocolError::ExpectedContinuation));
            let frames = output_frames(&mut conn);
            assert_eq!(frames.iter().map(|f| f.opcode).collect::<Vec<_>>(), [OP_PONG, OP_CLOSE]);
            assert_eq!(frames[1].close_code(), Some(1002));
        }
    }
}

// RFC 6455 §5.2: the most significant bit of a 64-bit length must be 0 (1002).
#[test]
fn length_with_top_bit_set_is_1002() {
    for role in ROLES {
        let mask = (role == Role::Server).then_some(KEY);
        let mut header = raw_header(true, 0, OP_BINARY, mask, 1 << 20);
        header[2] |= 0x80;
        assert_fails(role, Config::default(), &header, ProtocolError::LengthTopBitSet);
    }
}

// RFC 6455 §8.1: text that is not UTF-8 fails with 1007.
#[test]
fn invalid_utf8_text_is_1007() {
    for role in ROLES {
        for bad in [
            &b"\xff"[..],
            b"ab\xc0\xafcd",
            b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80",
            b"ends inside \xe2\x82",
        ] {
            assert_fails(
                role,
                Config::default(),
                &frame_to(role, true, OP_TEXT, bad),
                ProtocolError::InvalidUtf8,
            );
            let streaming = Config {
                streaming: true,
                ..Config::default()
            };
            let mut conn = open(role, streaming);
            let evs = feed(&mut conn, &frame_to(role, true, OP_TEXT, bad));
            assert_eq!(evs[evs.len() - 2..], failed(ProtocolError::InvalidUtf8), "{bad:?}");
        }
        // Valid only per fragment is not enough: a character split badly across fragments.
        let mut bytes = frame_to(role, false, OP_TEXT, b"a\xe2");
        bytes.extend(frame_to(role, true, OP_CONT, b"\x41"));
        assert_fails(role, Config::default(), &bytes, ProtocolError::InvalidUtf8);
        // A message ending inside a character, split over fragments.
        let mut bytes = frame_to(role, false, OP_TEXT, b"a\xe2");
        bytes.extend(frame_to(role, true, OP_CONT, b"\x82"));
        assert_fails(role, Config::default(), &bytes, ProtocolError::InvalidUtf8);
    }
    // Binary may hold anything.
    let mut server = open(Role::Server, Config::default());
    assert_eq!(
        feed(&mut server, &client_frame(true, OP_BINARY, b"\xff")),
        [binary(b"\xff")]
    );
}

// RFC 6455 §8.1 (and DESIGN: fail fast): invalid text is failed in the bytes
// that contain it, before its frame is complete.
#[test]
fn invalid_utf8_fails_before_the_frame_completes() {
    for role in ROLES {
        for streaming in [false, true] {
            let mut payload = b"abc\xfe".to_vec();
            payload.resize(100, b'x');
            let frame = frame_to(role, true, OP_TEXT, &payload);
            let header_len = frame.len() - 100;
            let config = Config {
                streaming,
                ..Config::default()
            };
            let mut conn = open(role, config);
            let evs = feed(&mut conn, &frame[..header_len + 10]);
            let tail = &evs[evs.len().saturating_sub(2)..];
            assert_eq!(
                tail,
                failed(ProtocolError::InvalidUtf8),
                "{role:?} streaming={streaming}"
            );
            assert_eq!(single_close_code(&mut conn), Some(1007));
            // The rest of the frame is ignored.
            assert_eq!(feed(&mut conn, &frame[header_len + 10..]), []);
        }
        // Same in a continuation frame of a fragmented message, and when
        // the bad byte arrives alone.
        let mut bytes = frame_to(role, false, OP_TEXT, b"fine");
        let cont = frame_to(role, true, OP_CONT, &[b'z', b'z', 0xc3, 0x28, b'z', b'z']);
        let cut = bytes.len() + cont.len() - 2; // up to and including the 0x28
        bytes.extend(cont);
        let mut conn = open(role, Config::default());
        assert_eq!(
            feed_chunked(&mut conn, &bytes[..cut], &[1]),
            failed(ProtocolError::InvalidUtf8)
        );
    }
}

// RFC 6455 §7.4.1/§7.4.2: codes that may not appear on the wire fail with 1002.
#[test]
fn invalid_close_codes_are_1002() {
    for role in ROLES {
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            let frame = frame_to(role, true, OP_CLOSE, &close_payload(code, "bye"));
            assert_fails(role, Config::default(), &frame, ProtocolError::InvalidCloseCode(code));
        }
    }
}

// RFC 6455 §5.5.1, §7.4.1: a close frame with a valid code is echoed (the
// code; the reason is not repeated) and the connection closes cleanly.
#[test]
fn valid_close_codes_are_echoed() {
    let codes = (1000..=1003).chain(1007..=1014).chain([3000, 3999, 4000, 4999]);
    for role in ROLES {
        for code in codes.clone() {
            let mut conn = open(role, Config::default());
            let evs = feed(
                &mut conn,
                &frame_to(role, true, OP_CLOSE, &close_payload(code, "reason ✓")),
            );
            assert_eq!(evs, [closed(code, "reason ✓", true)], "{role:?} {code}");
            let frames = output_frames(&mut conn);
            assert_eq!(frames.len(), 1);
            assert_eq!(frames[0].payload, code.to_be_bytes(), "{code}");
            assert_eq!(conn.state(), ReadyState::Closed);
        }
    }
}

// RFC 6455 §5.5.1: an empty close frame is answered with an empty one; the
// application sees 1005 (§7.1.5).
#[test]
fn empty_close_is_answered_empty_and_reported_as_1005() {
    for role in ROLES {
        let mut conn = open(role, Config::default());
        let evs = feed(&mut conn, &frame_to(role, true, OP_CLOSE, b""));
        assert_eq!(evs, [closed(1005, "", true)]);
        assert_eq!(single_close_code(&mut conn), None);
    }
}

// RFC 6455 §5.5.1: a body, if present, starts with a 2-byte code; 1 byte is 1002.
#[test]
fn one_byte_close_payload_is_1002() {
    for role in ROLES {
        assert_fails(
            role,
            Config::default(),
            &frame_to(role, true, OP_CLOSE, b"\x03"),
            ProtocolError::CloseFrameOneByte,
        );
    }
}

// RFC 6455 §5.5.1 + §8.1: the close reason must be UTF-8 (1007).
#[test]
fn non_utf8_close_reason_is_1007() {
    for role in ROLES {
        let mut payload = close_payload(1000, "ok");
        payload.extend_from_slice(b"\xff\xfe");
        assert_fails(
            role,
            Config::default(),
            &frame_to(role, true, OP_CLOSE, &payload),
            ProtocolError::InvalidCloseReason,
        );
    }
}

// RFC 6455 §7.1.7 / §7.1.1: after CLOSED, input is ignored and nothing can be sent.
#[test]
fn after_closed_input_is_ignored_and_sends_fail() {
    for role in ROLES {
        let mut conn = assert_fails(
            role,
            Config::default(),
            &frame_to(role, true, OP_CONT, b""),
            ProtocolError::UnexpectedContinuation,
        );
        assert_eq!(feed(&mut conn, &frame_to(role, true, OP_TEXT, b"late")), []);
        assert_eq!(feed(&mut conn, &frame_to(role, true, OP_PING, b"late")), []);
        assert_eq!(feed(&mut conn, b"\xff\xff garbage"), []);
        conn.receive_eof();
        assert_eq!(events(&mut conn), []);
        let not_open = Err(Error::NotOpen(ReadyState::Closed));
        assert_eq!(conn.send("x"), not_open);
        assert_eq!(conn.send(b"x"), not_open);
        assert_eq!(conn.send(wsmachine::Message::Binary("x".into())), not_open);
        assert_eq!(conn.send_fragment(DataKind::Text, b"x", false), not_open);
        assert_eq!(conn.ping(b"x"), not_open);
        assert_eq!(conn.pong(b"x"), not_open);
        assert_eq!(conn.close(CloseCode::NORMAL, ""), not_open);
        assert_eq!(conn.buffered_amount(), 0, "nothing queued after CLOSED");
        assert_eq!(conn.state(), ReadyState::Closed);
    }
}

// RFC 6455 §7.1.7: a violation after a valid message: the message is still
// delivered first, then the failure.
#[test]
fn valid_messages_before_a_violation_are_delivered() {
    let mut bytes = client_frame(true, OP_TEXT, b"one");
    bytes.extend(client_frame(true, OP_BINARY, b"two"));
    bytes.extend(raw_frame(true, 0b100, OP_TEXT, Some(KEY), b"three"));
    bytes.extend(client_frame(true, OP_TEXT, b"never"));
    let mut server = open(Role::Server, Config::default());
    let mut expected = vec![text("one"), binary(b"two")];
    expected.extend(failed(ProtocolError::ReservedBits));
    assert_eq!(feed(&mut server, &bytes), expected);
    assert_eq!(single_close_code(&mut server), Some(1002));
}

// The peer's handshake faults map to their HTTP status in one place
// (`HandshakeError::status`), and each says which rule it broke: RFC 9112
// §3.2 (Host, the request target) and §6.3 (a body) are 400s; RFC 6455
// §4.4's version is 426, RFC 9110 §15.5.6's method 405, RFC 6585 §5's size
// 431.
#[test]
fn handshake_errors_map_to_their_status() {
    use wsmachine::HandshakeError as H;
    for (error, status, rule) in [
        (H::MissingHost, 400, "RFC 9112 §3.2"),
        (H::MultipleHosts, 400, "RFC 9112 §3.2"),
        (H::InvalidHost, 400, "RFC 9112 §3.2"),
        (H::HostMismatch, 400, "RFC 9112 §3.2.2"),
        (H::InvalidTarget("x"), 400, "invalid request target"),
        (H::RequestBody, 400, "must not carry a body"),
        (H::HttpVersion, 400, "RFC 6455 §4.1"),
        (H::UpgradeNotWebSocket, 400, "RFC 6455 §4"),
        (H::UnsupportedVersion, 426, "13"),
        (H::MethodNotGet, 405, "GET"),
        (H::TooManyHeaders, 431, "header lines"),
    ] {
        assert_eq!(error.status(), status, "{error:?}");
        assert!(error.to_string().contains(rule), "{error}");
    }
}
