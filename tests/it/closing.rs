//! The closing handshake and every other way a connection ends
//! (RFC 6455 §5.5.1, §7).

use crate::util::*;
use std::time::Duration;
use wsmachine::{CloseCode, Config, DataKind, Error, Event, Failure, Instant, ProtocolError, ReadyState, Role};

// RFC 6455 §7.1.2, §5.5.1, §7.1.1: the client starts the closing handshake;
// the server answers once and closes the TCP connection first.
#[test]
fn client_initiates() {
    let mut p = Pair::connected();
    p.client.close(CloseCode::NORMAL, "bye").unwrap();
    assert_eq!(p.client.state(), ReadyState::Closing);

    let wire = parse_frames(&p.client_to_server());
    assert_eq!(wire.len(), 1);
    assert!(wire[0].mask.is_some());
    assert_eq!(
        (wire[0].opcode, wire[0].fin, wire[0].payload.as_slice()),
        (OP_CLOSE, true, &close_payload(1000, "bye")[..])
    );

    assert_eq!(p.server_events, [closed(1000, "bye", true)]);
    assert_eq!(p.server.state(), ReadyState::Closed);
    assert!(!p.server.should_close_transport(), "the answer is not written yet");
    let reply = p.server_to_client();
    assert_eq!(
        reply,
        server_frame(true, OP_CLOSE, &close_payload(1000, "")),
        "answered once, code echoed"
    );
    assert!(
        p.server.should_close_transport(),
        "§7.1.1: the server closes the TCP connection first"
    );

    assert_eq!(p.client_events, [closed(1000, "", true)]);
    assert_eq!(p.client.state(), ReadyState::Closed);
    assert_eq!(p.client.buffered_amount(), 0, "no second close frame");
    assert!(
        !p.client.should_close_transport(),
        "§7.1.1: the client waits for the server's EOF"
    );
    p.client.receive_eof();
    assert!(p.client.should_close_transport());
    assert_eq!(events(&mut p.client), [], "EOF after CLOSED changes nothing");
    assert_eq!(p.client.state(), ReadyState::Closed);
}

// RFC 6455 §7.1.1: a client whose server never closes the TCP connection
// closes it itself after the close timeout.
#[test]
fn client_closes_the_transport_after_the_timeout() {
    let mut p = Pair::connected();
    p.client.close(CloseCode::NORMAL, "").unwrap();
    p.drive();
    assert_eq!(p.client.state(), ReadyState::Closed);
    assert!(!p.client.should_close_transport());
    let t0 = Instant::from_millis(10_000);
    p.client.handle_timeout(t0);
    assert_eq!(p.client.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    p.client.handle_timeout(t0 + Duration::from_millis(4_999));
    assert!(!p.client.should_close_transport());
    p.client.handle_timeout(t0 + Duration::from_secs(5));
    assert!(p.client.should_close_transport());
    assert_eq!(p.client.poll_timeout(), None);
    assert_eq!(events(&mut p.client), [], "no error: the close was clean");
}

// RFC 6455 §7.1.2: the server starts the closing handshake.
#[test]
fn server_initiates() {
    let mut p = Pair::connected();
    p.server.close(CloseCode::GOING_AWAY, "restart").unwrap();
    assert_eq!(p.server.state(), ReadyState::Closing);
    assert_eq!(
        p.server_to_client(),
        server_frame(true, OP_CLOSE, &close_payload(1001, "restart"))
    );
    assert_eq!(p.client_events, [closed(1001, "restart", true)]);
    assert_eq!(p.client.state(), ReadyState::Closed);
    assert!(!p.client.should_close_transport());

    let reply = parse_frames(&p.client_to_server());
    assert_eq!(reply.len(), 1);
    assert_eq!(
        (reply[0].close_code(), reply[0].payload.len(), reply[0].mask.is_some()),
        (Some(1001), 2, true)
    );
    assert_eq!(p.server_events, [closed(1001, "", true)]);
    assert_eq!(p.server.state(), ReadyState::Closed);
    assert!(p.server.should_close_transport());
    assert_eq!(p.server.buffered_amount(), 0);
    assert_eq!(p.server.poll_timeout(), None);
}

// RFC 6455 §7.1.3 (both sides close at once): each gets the other's close
// frame, neither answers it, both end clean with the peer's code.
#[test]
fn both_close_simultaneously() {
    let mut p = Pair::connected();
    p.client.close(CloseCode(4000), "from client").unwrap();
    p.server.close(CloseCode(4001), "from server").unwrap();
    let c_out = take_output(&mut p.client);
    let s_out = take_output(&mut p.server);
    assert_eq!(feed(&mut p.server, &c_out), [closed(4000, "from client", true)]);
    assert_eq!(feed(&mut p.client, &s_out), [closed(4001, "from server", true)]);
    assert_eq!(p.server.buffered_amount(), 0, "no answer to a close after ours");
    assert_eq!(p.client.buffered_amount(), 0, "no answer to a close after ours");
    assert_eq!(
        (p.client.state(), p.server.state()),
        (ReadyState::Closed, ReadyState::Closed)
    );
    assert!(p.server.should_close_transport());
    assert!(!p.client.should_close_transport());
}

// RFC 6455 §7.1.1 / §7.1.7: the peer never answers our close frame.
#[test]
fn close_timeout_when_the_peer_never_answers() {
    for role in [Role::Client, Role::Server] {
        let config = Config {
            close_timeout: Duration::from_millis(250),
            ping_interval: None,
            ..Config::default()
        };
        let mut conn = open(role, config);
        assert_eq!(conn.poll_timeout(), None, "no timer while OPEN without keepalive");
        conn.close(CloseCode::NORMAL, "").unwrap();
        // Due at once (at the latest time passed in), so the caller's next
        // handle_timeout gives it its deadline.
        assert_eq!(conn.poll_timeout(), Some(Instant::from_millis(0)), "due at once");
        let t0 = Instant::from_millis(1_000);
        conn.handle_timeout(t0);
        let deadline = t0 + Duration::from_millis(250);
        assert_eq!(conn.poll_timeout(), Some(deadline));
        conn.handle_timeout(t0 + Duration::from_millis(249));
        assert_eq!(events(&mut conn), []);
        assert_eq!(conn.state(), ReadyState::Closing);
        assert!(!conn.should_close_transport());
        take_output(&mut conn);
        conn.handle_timeout(deadline);
        assert_eq!(
            events(&mut conn),
            [Event::Error(Failure::CloseTimeout), closed(1006, "", false)]
        );
        assert_eq!(conn.state(), ReadyState::Closed);
        assert!(conn.should_close_transport());
        assert_eq!(conn.poll_timeout(), None);
        assert_eq!(conn.buffered_amount(), 0);
    }
}

// A close answered in time does not fire the old close-reply deadline.
#[test]
fn an_answered_close_does_not_time_out() {
    let mut p = Pair::connected();
    p.server.close(CloseCode::NORMAL, "").unwrap();
    let t0 = Instant::from_millis(0);
    p.server.handle_timeout(t0);
    assert_eq!(p.server.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    p.drive();
    let (_, s) = p.take_events();
    assert_eq!(s, [closed(1000, "", true)]);
    assert_eq!(p.server.poll_timeout(), None);
    p.server.handle_timeout(t0 + Duration::from_secs(60));
    assert_eq!(events(&mut p.server), []);

    // Client side: its close-reply deadline becomes the transport deadline.
    let mut p = Pair::connected();
    p.client.close(CloseCode::NORMAL, "").unwrap();
    p.client.handle_timeout(t0);
    p.drive();
    p.client.handle_timeout(t0 + Duration::from_secs(5));
    let (c, _) = p.take_events();
    assert_eq!(c, [closed(1000, "", true)], "no CloseTimeout after a clean close");
}

// RFC 6455 §5.5.1: after sending a close frame, an endpoint sends no more
// data; a ping received while CLOSING is reported but not answered.
#[test]
fn nothing_is_sent_after_a_close_frame() {
    let mut p = Pair::connected();
    p.client.close(CloseCode::NORMAL, "").unwrap();
    let closing = Err(Error::NotOpen(ReadyState::Closing));
    assert_eq!(p.client.send("x"), closing);
    assert_eq!(p.client.send(b"x"), closing);
    assert_eq!(p.client.send_fragment(DataKind::Binary, b"x", true), closing);
    assert_eq!(p.client.ping(b"x"), closing);
    assert_eq!(p.client.pong(b"x"), closing);
    assert_eq!(p.client.close(CloseCode::NORMAL, ""), closing);
    let out = parse_frames(&take_output(&mut p.client));
    assert_eq!(out.len(), 1, "only the close frame: {out:?}");

    // The server's data sent before it saw our close is still delivered; its
    // ping is reported but not answered.
    p.server.send("late data").unwrap();
    p.server.ping(b"late ping").unwrap();
    p.server_to_client();
    assert_eq!(p.client_events, [text("late data"), Event::Ping("late ping".into())]);
    assert_eq!(p.client.buffered_amount(), 0, "auto-pong suppressed after our close");
    assert_eq!(p.client.state(), ReadyState::Closing);
}

// RFC 6455 §7.1.5, §7.1.7: the transport ends in the middle of a message:
// CLOSED with 1006, not clean, and no close frame is sent to a dead transport.
#[test]
fn eof_mid_message_is_1006_unclean() {
    for role in [Role::Server, Role::Client] {
        let frame = frame_to(role, true, OP_TEXT, b"0123456789");
        let mut conn = open(role, Config::default());
        assert_eq!(feed(&mut conn, &frame[..frame.len() - 3]), []);
        conn.receive_eof();
        assert_eq!(events(&mut conn), [closed(1006, "", false)]);
        assert_eq!(conn.state(), ReadyState::Closed);
        assert!(conn.should_close_transport());
        assert_eq!(conn.buffered_amount(), 0);

        // Between the fragments of a message.
        let mut conn = open(role, Config::default());
        assert_eq!(feed(&mut conn, &frame_to(role, false, OP_BINARY, b"part")), []);
        conn.receive_eof();
        assert_eq!(events(&mut conn), [closed(1006, "", false)]);

        // While CLOSING: our close was never answered.
        let mut conn = open(role, Config::default());
        conn.close(CloseCode::NORMAL, "").unwrap();
        take_output(&mut conn);
        conn.receive_eof();
        assert_eq!(events(&mut conn), [closed(1006, "", false)]);
        assert_eq!(conn.poll_timeout(), None);
    }
}

// RFC 6455 §7.1.7: a protocol error while CLOSING fails the connection
// without a second close frame.
#[test]
fn protocol_error_while_closing_sends_no_second_close() {
    let mut client = open(Role::Client, Config::default());
    client.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(output_frames(&mut client).len(), 1);
    assert_eq!(
        feed(&mut client, &client_frame(true, OP_TEXT, b"masked")),
        failed(ProtocolError::MaskedFrame)
    );
    assert_eq!(client.buffered_amount(), 0);
    assert!(client.should_close_transport());
}

// RFC 6455 §7.4: only codes valid on the wire may be sent, with at most 123
// bytes of reason (§5.5); close needs an OPEN connection.
#[test]
fn close_arguments_are_checked() {
    let mut server = open(Role::Server, Config::default());
    for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
        assert!(
            matches!(server.close(CloseCode(code), ""), Err(Error::Misuse(_))),
            "{code}"
        );
    }
    assert!(matches!(
        server.close(CloseCode::NORMAL, &"é".repeat(62)),
        Err(Error::Misuse(_))
    ));
    assert_eq!(server.buffered_amount(), 0);
    assert_eq!(server.state(), ReadyState::Open);
    let reason = "r".repeat(123);
    server.close(CloseCode(4999), &reason).unwrap();
    assert_eq!(
        take_output(&mut server),
        server_frame(true, OP_CLOSE, &close_payload(4999, &reason))
    );

    let mut connecting = client(Config::default());
    assert_eq!(
        connecting.close(CloseCode::NORMAL, ""),
        Err(Error::NotOpen(ReadyState::Connecting))
    );
}

// RFC 6455 §7.1.2: messages queued before the close frame arrive before it.
#[test]
fn messages_before_the_close_arrive_first() {
    let mut p = Pair::connected();
    p.client.send("first").unwrap();
    p.client.send(b"second").unwrap();
    p.client.close(CloseCode::NORMAL, "done").unwrap();
    p.chunking = vec![1];
    p.drive();
    let (c, s) = p.take_events();
    assert_eq!(s, [text("first"), binary(b"second"), closed(1000, "done", true)]);
    assert_eq!(c, [closed(1000, "", true)]);
}

// WebSocket API bufferedAmount: bytes queued minus bytes handed to the transport.
#[test]
fn buffered_amount_is_queued_minus_consumed() {
    let mut server = open(Role::Server, Config::default());
    assert_eq!(server.buffered_amount(), 0);
    server.send("0123456789").unwrap();
    assert_eq!(server.buffered_amount(), 12);
    server.ping(b"").unwrap();
    assert_eq!(server.buffered_amount(), 14);
    server.send(&[0; 200]).unwrap();
    assert_eq!(server.buffered_amount(), 14 + 4 + 200);
    server.consume_output(5);
    assert_eq!(server.buffered_amount(), 213);
    assert_eq!(
        server.pending_output()[0],
        b'3',
        "the front moved by 5 bytes (2 of header, 3 of payload)"
    );
    let chunk = server.pending_output().len();
    server.consume_output(chunk);
    assert_eq!(server.buffered_amount(), 213 - chunk);
    server.consume_output(usize::MAX);
    assert_eq!(server.buffered_amount(), 0);
    assert!(server.pending_output().is_empty());
    assert_eq!(server.output_chunks().count(), 0);

    let mut client = open(Role::Client, Config::default());
    client.send("abc").unwrap();
    assert_eq!(client.buffered_amount(), 2 + 4 + 3, "masked frames carry the key");
    client.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(client.buffered_amount(), 9 + 2 + 4 + 2);
}

// The whole lifecycle through a chunked transport, as a transcript.
#[test]
fn full_conversation_then_close() {
    let mut p = Pair::connected();
    p.chunking = vec![2, 9, 1];
    p.client.send("hello").unwrap();
    p.drive();
    assert_eq!(p.take_events().1, [text("hello")]);
    p.server.send("hello back").unwrap();
    p.server.close(CloseCode::NORMAL, "").unwrap();
    p.drive();
    let (c, s) = p.take_events();
    assert_eq!(c, [text("hello back"), closed(1000, "", true)]);
    assert_eq!(s, [closed(1000, "", true)]);
    assert!(p.server.should_close_transport());
    p.client.receive_eof();
    assert!(p.client.should_close_transport());
}

// RFC 6455 §7.1.5: a close frame that was received before the end of the
// stream counts as received. A driver that reads "data, then EOF" in one
// loop iteration and calls `receive` then `receive_eof` before polling loses
// the last message and reports an unclean 1006 instead of a clean 1000:
// `receive_eof` discards input that `poll_event` has not processed yet.
#[test]
fn eof_after_an_unpolled_close_frame_is_still_clean() {
    let mut client = open(Role::Client, Config::default());
    let mut bytes = server_frame(true, OP_TEXT, b"last words");
    bytes.extend(server_frame(true, OP_CLOSE, &close_payload(1000, "")));
    client.receive(&bytes);
    client.receive_eof();
    assert_eq!(events(&mut client), [text("last words"), closed(1000, "", true)]);
}

// RFC 6455 §7.1.1: following the documented loop exactly (receive, then
// `handle_timeout(now)`, then events, then output, then sleep until
// `poll_timeout()`), a close the peer never answers ends CLOSED 1006 after
// the close timeout, with no extra call.
#[test]
fn the_documented_loop_gets_the_close_timeout() {
    let config = Config {
        close_timeout: Duration::from_secs(5),
        ..Config::default()
    };
    let mut conn = open(Role::Server, config);
    let mut now = Instant::from_millis(40_000);
    let mut seen = Vec::new();
    let mut closed_at = None;
    for turn in 0..10 {
        conn.receive(&[]); // the peer says nothing
        conn.handle_timeout(now);
        while let Some(event) = conn.poll_event() {
            seen.push(event);
        }
        if turn == 0 {
            conn.close(CloseCode::NORMAL, "bye").unwrap();
        }
        conn.consume_output(conn.buffered_amount());
        if conn.state() == ReadyState::Closed {
            closed_at = Some(now);
            break;
        }
        // Sleep until the deadline (or a second, when there is none).
        now = conn.poll_timeout().map_or(now + Duration::from_secs(1), |t| t.max(now));
    }
    assert_eq!(closed_at, Some(Instant::from_millis(45_000)));
    assert!(
        matches!(seen.as_slice(), [Event::Error(Failure::CloseTimeout), Event::Closed(i)] if i.code == CloseCode::ABNORMAL && !i.was_clean)
    );
}

// A `Duration::MAX` close timeout means never: no overflow, no deadline.
#[test]
fn a_duration_max_close_timeout_never_fires() {
    let config = Config {
        close_timeout: Duration::MAX,
        ..Config::default()
    };
    let mut conn = open(Role::Client, config);
    conn.close(CloseCode::NORMAL, "").unwrap();
    conn.handle_timeout(Instant::from_millis(1));
    assert_eq!(conn.poll_timeout(), None);
    conn.handle_timeout(Instant::from_duration(Duration::MAX));
    assert_eq!(conn.state(), ReadyState::Closing);
    assert_eq!(events(&mut conn), []);
}
