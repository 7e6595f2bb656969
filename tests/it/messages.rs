//! Data and control messages on an open connection (RFC 6455 §5, §6).

use crate::util::*;
use wsmachine::{
    Bytes, Config, DataKind, Error, Event, Fragment, Message, Misuse, ProtocolError, ReadyState, Role, Utf8Bytes,
};

const SIZES: [usize; 6] = [0, 125, 126, 65535, 65536, 1 << 20];

/// The header length for a payload of `len` (RFC 6455 §5.2: minimal form).
fn header_len(len: usize, masked: bool) -> usize {
    let base = match len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    };
    base + if masked { 4 } else { 0 }
}

/// Text of exactly `len` bytes with multi-byte characters in it.
fn text_of_len(len: usize) -> String {
    let mut s = String::with_capacity(len);
    let pieces = ["a", "é", "€", "𝄞"];
    let mut i = 0;
    while s.len() < len {
        let p = pieces[i % pieces.len()];
        s.push_str(if s.len() + p.len() <= len { p } else { "a" });
        i += 1;
    }
    s
}

fn binary_of_len(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 256) as u8).collect()
}

// RFC 6455 §5.2, §5.6: text and binary of every length form, client to server.
#[test]
fn every_size_client_to_server() {
    let mut p = Pair::connected();
    for len in SIZES {
        let t = text_of_len(len);
        p.client.send(&t).unwrap();
        let wire = p.client_to_server();
        assert_eq!(wire.len(), header_len(len, true) + len, "text {len}");
        let frames = parse_frames(&wire);
        assert_eq!(frames.len(), 1);
        let key = frames[0].mask.expect("RFC 6455 §5.3: client frames are masked");
        assert_eq!(frames[0], WireFrame::new(true, OP_TEXT, Some(key), t.as_bytes()));
        assert_eq!(std::mem::take(&mut p.server_events), [text(&t)], "text {len}");

        let b = binary_of_len(len);
        p.client.send(&b).unwrap();
        let wire = p.client_to_server();
        assert_eq!(wire.len(), header_len(len, true) + len, "binary {len}");
        assert_eq!(parse_frames(&wire)[0].payload, b);
        assert_eq!(std::mem::take(&mut p.server_events), [binary(&b)], "binary {len}");
    }
}

// RFC 6455 §5.2, §5.6: the same, server to client (unmasked, §5.1).
#[test]
fn every_size_server_to_client() {
    let mut p = Pair::connected();
    for len in SIZES {
        let t = text_of_len(len);
        p.server.send(&t).unwrap();
        let wire = p.server_to_client();
        let mut expected = raw_header(true, 0, OP_TEXT, None, len as u64);
        expected.extend_from_slice(t.as_bytes());
        assert!(wire == expected, "text {len}: exact bytes");
        assert_eq!(std::mem::take(&mut p.client_events), [text(&t)], "text {len}");

        let b = binary_of_len(len);
        p.server.send(Message::Binary(Bytes::from(b.clone()))).unwrap();
        let wire = p.server_to_client();
        let mut expected = raw_header(true, 0, OP_BINARY, None, len as u64);
        expected.extend_from_slice(&b);
        assert!(wire == expected, "binary {len}: exact bytes");
        assert_eq!(std::mem::take(&mut p.client_events), [binary(&b)], "binary {len}");
    }
}

// `send(Message)` both kinds, both roles; output read through output_chunks
// and poll_transmit gives the same bytes as pending_output.
#[test]
fn send_message_and_the_three_ways_to_take_output() {
    let big = Bytes::from(binary_of_len(100_000));
    let mut server = open(Role::Server, Config::default());
    server.send(Message::Text(Utf8Bytes::from("héllo"))).unwrap();
    server.send(Message::Binary(big.clone())).unwrap();
    let expected_len = 2 + 6 + 10 + big.len();
    assert_eq!(server.buffered_amount(), expected_len);
    let vectored: Vec<u8> = server.output_chunks().flatten().copied().collect();
    assert_eq!(vectored.len(), expected_len);
    let mut transmitted = Vec::new();
    for chunk in server.output_chunks() {
        transmitted.extend_from_slice(chunk);
    }
    server.consume_output(server.buffered_amount());
    assert_eq!(server.buffered_amount(), 0);
    assert_eq!(transmitted, vectored);
    assert_eq!(
        parse_frames(&transmitted),
        [
            WireFrame::new(true, OP_TEXT, None, "héllo".as_bytes()),
            WireFrame::new(true, OP_BINARY, None, &big)
        ]
    );

    let mut client = open(Role::Client, Config::default());
    client.send(Message::Binary(big.clone())).unwrap();
    let frames = output_frames(&mut client);
    assert_eq!(
        (frames[0].opcode, frames[0].mask.is_some(), &frames[0].payload[..]),
        (OP_BINARY, true, &big[..])
    );
}

// RFC 6455 §5.3: every client frame gets a fresh masking key.
#[test]
fn masking_keys_differ_between_frames() {
    let mut client = open(Role::Client, Config::default());
    for _ in 0..8 {
        client.send(b"same").unwrap();
    }
    let keys: Vec<_> = output_frames(&mut client).iter().map(|f| f.mask.unwrap()).collect();
    let mut unique = keys.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), keys.len(), "{keys:?}");
}

// RFC 6455 §10.4 + §7.4.1: a frame over max_frame_size fails with 1009 on its
// header alone, before its payload is buffered.
#[test]
fn frame_over_max_frame_size_is_1009() {
    let config = Config {
        max_frame_size: 1000,
        ..Config::default()
    };
    // Exactly the limit is fine.
    let mut server = open(Role::Server, config.clone());
    assert_eq!(
        feed(&mut server, &client_frame(true, OP_BINARY, &[7; 1000])),
        [binary(&[7; 1000])]
    );
    // One byte more: the header is enough to fail.
    let header = raw_header(true, 0, OP_BINARY, Some(KEY), 1001);
    assert_eq!(
        feed(&mut server, &header),
        failed(ProtocolError::FrameTooLarge { len: 1001, limit: 1000 })
    );
    let frames = output_frames(&mut server);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].close_code(), Some(1009));
    assert_eq!(server.state(), ReadyState::Closed);
    assert!(server.should_close_transport());

    // The client enforces its limit on server frames too; a 64-bit length.
    let mut client = open(Role::Client, config);
    let header = raw_header(true, 0, OP_TEXT, None, 1 << 40);
    assert_eq!(
        feed(&mut client, &header),
        failed(ProtocolError::FrameTooLarge {
            len: 1 << 40,
            limit: 1000
        })
    );
    let frames = output_frames(&mut client);
    assert_eq!(
        (frames.len(), frames[0].close_code(), frames[0].mask.is_some()),
        (1, Some(1009), true)
    );
}

// The same through a Pair: the sender learns it from the 1009 close frame.
#[test]
fn frame_too_large_end_to_end() {
    let mut p = Pair::connected_with(
        Config::default(),
        Config {
            max_frame_size: 10,
            ..Config::default()
        },
    );
    p.client.send("more than ten bytes").unwrap();
    p.drive();
    let (c, s) = p.take_events();
    assert_eq!(s, failed(ProtocolError::FrameTooLarge { len: 19, limit: 10 }));
    let reason = ProtocolError::FrameTooLarge { len: 19, limit: 10 }.to_string();
    assert_eq!(c, [closed(1009, &reason, true)]);
}

// RFC 6455 §10.4: a message over max_message_size across fragments fails with 1009.
#[test]
fn message_over_max_message_size_is_1009() {
    let config = Config {
        max_message_size: 1000,
        ..Config::default()
    };
    let mut server = open(Role::Server, config.clone());
    let mut ok = client_frame(false, OP_BINARY, &[1; 600]);
    ok.extend(client_frame(true, OP_CONT, &[2; 400]));
    let evs = feed(&mut server, &ok);
    assert_eq!(evs.len(), 1);
    assert!(matches!(&evs[0], Event::Binary(b) if b.len() == 1000));

    let mut bytes = client_frame(false, OP_TEXT, &[b'a'; 600]);
    bytes.extend(client_frame(false, OP_CONT, &[b'b'; 300]));
    bytes.extend(raw_header(true, 0, OP_CONT, Some(KEY), 101));
    assert_eq!(
        feed(&mut server, &bytes),
        failed(ProtocolError::MessageTooLarge { len: 1001, limit: 1000 })
    );
    assert_eq!(single_close_code(&mut server), Some(1009));

    // Also in streaming mode, where nothing is reassembled.
    let mut server = open(
        Role::Server,
        Config {
            streaming: true,
            ..config
        },
    );
    let mut bytes = client_frame(false, OP_BINARY, &[1; 999]);
    bytes.extend(client_frame(false, OP_CONT, &[2; 1]));
    bytes.extend(client_frame(true, OP_CONT, &[3; 1]));
    let evs = feed(&mut server, &bytes);
    assert_eq!(
        evs[evs.len() - 2..],
        failed(ProtocolError::MessageTooLarge { len: 1001, limit: 1000 })
    );
    assert_eq!(single_close_code(&mut server), Some(1009));
}

// RFC 6455 §5.4, §5.5.2: control frames between fragments; each ping is
// answered at once and the message is reassembled in order.
#[test]
fn fragments_with_interleaved_pings() {
    let mut p = Pair::connected();
    p.client.send_fragment(DataKind::Text, b"Hel", false).unwrap();
    p.client.ping(b"1").unwrap();
    p.client.send_fragment(DataKind::Text, b"lo ", false).unwrap();
    p.client.ping(b"2").unwrap();
    assert_eq!(p.client.send("x"), Err(Error::Misuse(Misuse::MessageInProgress)));
    assert_eq!(
        p.client.send_fragment(DataKind::Binary, b"x", true),
        Err(Error::Misuse(Misuse::FragmentKindMismatch {
            message: DataKind::Text,
            fragment: DataKind::Binary
        }))
    );
    p.client.send_fragment(DataKind::Text, b"world", true).unwrap();

    let frames = parse_frames(&p.client_to_server());
    let shape: Vec<_> = frames.iter().map(|f| (f.fin, f.opcode, f.payload.as_slice())).collect();
    assert_eq!(
        shape,
        [
            (false, OP_TEXT, &b"Hel"[..]),
            (true, OP_PING, b"1"),
            (false, OP_CONT, b"lo "),
            (true, OP_PING, b"2"),
            (true, OP_CONT, b"world"),
        ]
    );
    assert_eq!(
        p.server_events,
        [Event::Ping("1".into()), Event::Ping("2".into()), text("Hello world")]
    );
    // RFC 6455 §5.5.3: the pongs carry the pings' payloads.
    assert_eq!(
        parse_frames(&p.server_to_client()),
        [
            WireFrame::new(true, OP_PONG, None, b"1"),
            WireFrame::new(true, OP_PONG, None, b"2")
        ]
    );
    assert_eq!(p.client_events, [Event::Pong("1".into()), Event::Pong("2".into())]);
    // A whole message may follow.
    p.client.send("next").unwrap();
    p.client_to_server();
    assert_eq!(p.server_events.last(), Some(&text("next")));
}

// RFC 6455 §5.4: the same from the server, binary, with a chunked transport.
#[test]
fn server_fragments_reassembled_by_the_client_in_any_chunking() {
    let mut p = Pair::connected();
    p.chunking = vec![1, 2, 3, 5, 8];
    for (i, piece) in [&b"ab"[..], b"", b"cdef", b"g"].iter().enumerate() {
        p.server.send_fragment(DataKind::Binary, piece, i == 3).unwrap();
        p.server.ping(&[i as u8]).unwrap();
    }
    p.drive();
    let (c, s) = p.take_events();
    let ping = |i: u8| Event::Ping(Bytes::from(vec![i]));
    let expected = vec![ping(0), ping(1), ping(2), binary(b"abcdefg"), ping(3)];
    assert_eq!(c, expected);
    // The client answers each ping, but a pong waiting behind unwritten
    // output is replaced by a newer one (RFC 6455 §5.5.3): the pongs are
    // in order, and the last ping is answered.
    let pongs: Vec<u8> = s
        .iter()
        .map(|e| match e {
            Event::Pong(p) if p.len() == 1 => p[0],
            other => panic!("expected a pong, got {other:?}"),
        })
        .collect();
    assert!(pongs.windows(2).all(|w| w[0] < w[1]), "pongs {pongs:?}");
    assert_eq!(pongs.last(), Some(&3), "pongs {pongs:?}");
}

// RFC 6455 §5.6 / §8.1: a character may be split between fragments.
#[test]
fn send_fragment_may_split_a_character() {
    let mut p = Pair::connected();
    let euro = "€".as_bytes();
    p.client.send_fragment(DataKind::Text, &[b'a', euro[0]], false).unwrap();
    p.client.send_fragment(DataKind::Text, &euro[1..2], false).unwrap();
    p.client.send_fragment(DataKind::Text, &euro[2..], true).unwrap();
    p.client_to_server();
    assert_eq!(p.server_events, [text("a€")]);
}

// RFC 6455 §8.1: text fragments that are not UTF-8 are refused and nothing is sent.
#[test]
fn send_fragment_refuses_invalid_utf8() {
    let mut c = open(Role::Client, Config::default());
    // Invalid at once.
    assert_eq!(
        c.send_fragment(DataKind::Text, b"ok\xff", false),
        Err(Error::Misuse(Misuse::InvalidUtf8))
    );
    assert_eq!(c.buffered_amount(), 0);
    // Ends inside a character.
    assert_eq!(
        c.send_fragment(DataKind::Text, b"a\xe2\x82", true),
        Err(Error::Misuse(Misuse::InvalidUtf8))
    );
    assert_eq!(c.buffered_amount(), 0);
    // Invalid only together with the previous fragment.
    c.send_fragment(DataKind::Text, b"a\xe2", false).unwrap();
    let queued = c.buffered_amount();
    assert_eq!(
        c.send_fragment(DataKind::Text, b"A", false),
        Err(Error::Misuse(Misuse::InvalidUtf8))
    );
    assert_eq!(c.buffered_amount(), queued, "nothing sent for the refused fragment");
    // The message can still be finished correctly.
    c.send_fragment(DataKind::Text, b"\x82\xac", true).unwrap();
    let frames = output_frames(&mut c);
    let payload: Vec<u8> = frames.iter().flat_map(|f| f.payload.clone()).collect();
    assert_eq!(payload, "a€".as_bytes());
    assert_eq!(
        frames.iter().map(|f| (f.opcode, f.fin)).collect::<Vec<_>>(),
        [(OP_TEXT, false), (OP_CONT, true)]
    );
    // Binary fragments are not checked.
    c.send_fragment(DataKind::Binary, b"\xff", true).unwrap();
}

// RFC 6455 §5.4: streaming mode hands out pieces as they arrive.
#[test]
fn streaming_delivers_fragments() {
    let server_config = Config {
        streaming: true,
        ..Config::default()
    };
    let mut p = Pair::connected_with(Config::default(), server_config);
    p.chunking = vec![3, 1, 7];
    let message = "κόσμε — streaming text €𝄞 that is long enough to be split in many pieces";
    let bytes = message.as_bytes();
    let (a, rest) = bytes.split_at(20);
    let (b, c) = rest.split_at(31);
    p.client.send_fragment(DataKind::Text, a, false).unwrap();
    p.client.ping(b"mid").unwrap();
    p.client.send_fragment(DataKind::Text, b, false).unwrap();
    p.client.send_fragment(DataKind::Text, c, true).unwrap();
    p.client.send(&[9; 40]).unwrap();
    p.client_to_server();

    let mut text_pieces = Vec::new();
    let mut bin_pieces = Vec::new();
    let mut pings = 0;
    for e in std::mem::take(&mut p.server_events) {
        match e {
            Event::Fragment(f) if f.kind == DataKind::Text => text_pieces.push(f),
            Event::Fragment(f) => bin_pieces.push(f),
            Event::Ping(d) if d == "mid" => pings += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(pings, 1);
    for pieces in [&text_pieces, &bin_pieces] {
        assert!(pieces.len() > 2, "chunked delivery gives several pieces: {pieces:?}");
        let flags: Vec<_> = pieces.iter().map(|f| (f.first, f.fin)).collect();
        let mut expected = vec![(false, false); pieces.len()];
        expected[0].0 = true;
        expected.last_mut().unwrap().1 = true;
        assert_eq!(flags, expected);
    }
    let joined: Vec<u8> = text_pieces.iter().flat_map(|f| f.data.to_vec()).collect();
    assert_eq!(joined, bytes);
    let joined: Vec<u8> = bin_pieces.iter().flat_map(|f| f.data.to_vec()).collect();
    assert_eq!(joined, [9; 40]);
}

// Streaming mode, whole frames in one read: one piece per frame; an empty
// message is one empty piece that is both first and last.
#[test]
fn streaming_whole_frames_and_empty_messages() {
    let mut server = open(
        Role::Server,
        Config {
            streaming: true,
            ..Config::default()
        },
    );
    let mut bytes = client_frame(true, OP_BINARY, b"");
    bytes.extend(client_frame(false, OP_TEXT, b"ab"));
    bytes.extend(client_frame(true, OP_CONT, b"c"));
    let frag = |kind, data: &'static [u8], first, fin| {
        Event::Fragment(Fragment {
            kind,
            data: Bytes::from_static(data),
            first,
            fin,
        })
    };
    assert_eq!(
        feed(&mut server, &bytes),
        [
            frag(DataKind::Binary, b"", true, true),
            frag(DataKind::Text, b"ab", true, false),
            frag(DataKind::Text, b"c", false, true),
        ]
    );
}

// RFC 6455 §5.5.2 / §5.5.3: with auto_pong off, nothing answers a ping
// until the application does.
#[test]
fn auto_pong_off_leaves_the_answer_to_the_application() {
    let mut p = Pair::connected_with(
        Config::default(),
        Config {
            auto_pong: false,
            ..Config::default()
        },
    );
    p.client.ping(b"are you there").unwrap();
    p.client_to_server();
    assert_eq!(p.server_events, [Event::Ping("are you there".into())]);
    assert_eq!(p.server.buffered_amount(), 0, "no automatic pong");
    p.server.pong(b"are you there").unwrap();
    assert_eq!(
        parse_frames(&p.server_to_client()),
        [WireFrame::new(true, OP_PONG, None, b"are you there")]
    );
    assert_eq!(p.client_events, [Event::Pong("are you there".into())]);
}

// RFC 6455 §5.5.2: with auto_pong on, a ping gets exactly one pong with the same payload.
#[test]
fn auto_pong_answers_each_ping() {
    let mut server = open(Role::Server, Config::default());
    let payload = [0x5a; 125];
    assert_eq!(
        feed(&mut server, &client_frame(true, OP_PING, &payload)),
        [Event::Ping(Bytes::copy_from_slice(&payload))]
    );
    assert_eq!(
        output_frames(&mut server),
        [WireFrame::new(true, OP_PONG, None, &payload)]
    );
    // An unsolicited pong is just reported (§5.5.3).
    assert_eq!(
        feed(&mut server, &client_frame(true, OP_PONG, b"u")),
        [Event::Pong("u".into())]
    );
    assert_eq!(server.buffered_amount(), 0);
}

// RFC 6455 §5.5: control payloads are at most 125 bytes.
#[test]
fn control_payloads_over_125_are_refused() {
    let mut c = open(Role::Client, Config::default());
    let long = [0u8; 126];
    assert!(matches!(c.ping(&long), Err(Error::Misuse(_))));
    assert!(matches!(c.pong(&long), Err(Error::Misuse(_))));
    assert!(matches!(
        c.close(wsmachine::CloseCode::NORMAL, &"r".repeat(124)),
        Err(Error::Misuse(_))
    ));
    assert_eq!(c.buffered_amount(), 0);
    c.ping(&long[..125]).unwrap();
    assert_eq!(c.buffered_amount(), 2 + 4 + 125);
}

// Config::max_output_buffer: a whole-message send that would pass the limit
// fails with OutputFull and queues nothing.
#[test]
fn output_full_refuses_whole_messages() {
    let mut server = open(
        Role::Server,
        Config {
            max_output_buffer: 100,
            ..Config::default()
        },
    );
    assert_eq!(
        server.send(&[0; 100]),
        Err(Error::OutputFull {
            buffered: 0,
            limit: 100
        })
    );
    assert_eq!(server.buffered_amount(), 0);
    server.send(&[0; 50]).unwrap();
    assert_eq!(server.buffered_amount(), 52);
    assert_eq!(
        server.send("x".repeat(40)),
        Err(Error::OutputFull {
            buffered: 52,
            limit: 100
        })
    );
    assert_eq!(
        server.send(Message::Binary(Bytes::from(vec![0; 40]))),
        Err(Error::OutputFull {
            buffered: 52,
            limit: 100
        })
    );
    assert_eq!(server.buffered_amount(), 52);
    // Draining the output makes room again.
    take_output(&mut server);
    server.send("x".repeat(40)).unwrap();
}

// Config::max_output_buffer says "a send that would pass it fails with
// OutputFull and queues nothing"; send_fragment is a send.
#[test]
fn output_full_refuses_fragments() {
    let mut server = open(
        Role::Server,
        Config {
            max_output_buffer: 100,
            ..Config::default()
        },
    );
    assert_eq!(
        server.send_fragment(DataKind::Binary, &[0; 200], false),
        Err(Error::OutputFull {
            buffered: 0,
            limit: 100
        })
    );
    assert_eq!(server.buffered_amount(), 0);
}

// Same rule for pings and pongs the application sends: only close frames
// are exempt from the limit (Config::max_output_buffer).
#[test]
fn output_full_refuses_application_pings() {
    let mut server = open(
        Role::Server,
        Config {
            max_output_buffer: 100,
            ..Config::default()
        },
    );
    server.send(&[0; 80]).unwrap();
    assert_eq!(
        server.ping(&[0; 100]),
        Err(Error::OutputFull {
            buffered: 82,
            limit: 100
        })
    );
    assert_eq!(
        server.pong(&[0; 100]),
        Err(Error::OutputFull {
            buffered: 82,
            limit: 100
        })
    );
    assert_eq!(server.buffered_amount(), 82);
}

// An automatic pong that would pass max_output_buffer is not queued (RFC 6455 §5.5.3).
#[test]
fn auto_pong_is_dropped_when_the_output_is_full() {
    let mut server = open(
        Role::Server,
        Config {
            max_output_buffer: 100,
            ..Config::default()
        },
    );
    server.send(&[0; 80]).unwrap();
    let queued = server.buffered_amount();
    assert_eq!(
        feed(&mut server, &client_frame(true, OP_PING, &[1; 20])),
        [Event::Ping(Bytes::from(vec![1; 20]))]
    );
    assert_eq!(server.buffered_amount(), queued);
    // With room, it goes out.
    take_output(&mut server);
    feed(&mut server, &client_frame(true, OP_PING, &[2; 20]));
    assert_eq!(
        output_frames(&mut server),
        [WireFrame::new(true, OP_PONG, None, &[2; 20])]
    );
}

// RFC 6455 §5.6: a binary message and a text message with the same bytes
// are different events.
#[test]
fn text_and_binary_are_distinct() {
    let mut server = open(Role::Server, Config::default());
    let mut bytes = client_frame(true, OP_TEXT, b"same");
    bytes.extend(client_frame(true, OP_BINARY, b"same"));
    assert_eq!(feed(&mut server, &bytes), [text("same"), binary(b"same")]);
}

// Events are produced lazily: a message is handed out before the next one is
// read, so an answer to it precedes the reply to a close frame behind it.
#[test]
fn an_answer_to_a_message_goes_out_before_the_close_reply() {
    let mut server = open(Role::Server, Config::default());
    let mut bytes = client_frame(true, OP_TEXT, b"echo me");
    bytes.extend(client_frame(true, OP_CLOSE, &close_payload(1000, "")));
    server.receive(&bytes);
    assert_eq!(server.poll_event(), Some(text("echo me")));
    server.send("echo me").unwrap();
    let rest = events(&mut server);
    assert_eq!(rest, [closed(1000, "", true)]);
    let frames = output_frames(&mut server);
    assert_eq!(
        frames,
        [
            WireFrame::new(true, OP_TEXT, None, b"echo me"),
            WireFrame::new(true, OP_CLOSE, None, &close_payload(1000, ""))
        ]
    );
}
