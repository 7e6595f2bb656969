//! permessage-deflate (RFC 7692) between two machines in memory: the
//! handshake in both roles, round trips across parameters, the wire format
//! of compressed frames, RSV1 rules, fragmented and streamed messages.

use crate::util::*;
use wsmachine::deflate::{DeflateConfig, DeflateParams};
use wsmachine::{
    Accept, ClientRequest, Compression, Config, Connection, DataKind, Event, Message, ProtocolError, ReadyState, Role,
};

/// A connected pair that negotiated deflate with these offers and server config.
fn deflate_pair(offers: &[DeflateConfig], server: DeflateConfig, client_config: Config, server_config: Config) -> Pair {
    let mut request = client_request();
    for o in offers {
        request = request.deflate(o.clone());
    }
    let client = Connection::client_with_rng(request, client_config, rng(1)).unwrap();
    let mut p = Pair::with_client(client, server_config);
    p.handshake(Accept::new().deflate(server));
    p
}

fn default_pair() -> Pair {
    let mut p = deflate_pair(
        &[DeflateConfig::default()],
        DeflateConfig::default(),
        Config::default(),
        Config::default(),
    );
    p.take_events();
    p
}

fn open_extensions(events: &[Event]) -> Option<String> {
    events.iter().find_map(|e| match e {
        Event::Open { extensions, .. } => Some(extensions.clone()),
        _ => None,
    })
}

/// Text of a realistic size that compresses well.
fn json_like(n: usize) -> String {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < n {
        s.push_str(&format!(
            "{{\"id\":{i},\"user\":\"user{}\",\"action\":\"update\",\"value\":{}}},",
            i % 17,
            i * 31 % 1000
        ));
        i += 1;
    }
    s.truncate(n);
    s
}

// RFC 7692 §5, §7: both sides report what was agreed.
#[test]
fn negotiated_parameters_are_reported() {
    let mut p = deflate_pair(
        &[DeflateConfig::default()],
        DeflateConfig {
            server_max_window_bits: 10,
            server_no_context_takeover: true,
            ..DeflateConfig::default()
        },
        Config::default(),
        Config::default(),
    );
    let (c, s) = p.take_events();
    let expected = "permessage-deflate; server_no_context_takeover; server_max_window_bits=10";
    assert_eq!(open_extensions(&c).as_deref(), Some(expected));
    assert_eq!(open_extensions(&s).as_deref(), Some(expected));
    let params = DeflateParams {
        server_max_window_bits: 10,
        client_max_window_bits: 15,
        server_no_context_takeover: true,
        client_no_context_takeover: false,
    };
    assert_eq!(p.client.deflate(), Some(params));
    assert_eq!(p.server.deflate(), Some(params));
}

// RFC 7692 §5: a server that does not accept the extension declines every
// offer; the connection opens without it.
#[test]
fn declined_offer_opens_uncompressed() {
    let client = Connection::client_with_rng(
        client_request().deflate(DeflateConfig::default()),
        Config::default(),
        rng(1),
    )
    .unwrap();
    let mut p = Pair::with_client(client, Config::default());
    p.handshake(Accept::new());
    let (c, s) = p.take_events();
    assert_eq!(open_extensions(&c).as_deref(), Some(""));
    assert_eq!(open_extensions(&s).as_deref(), Some(""));
    assert_eq!(p.client.deflate(), None);
    let text = json_like(1000);
    p.client.send(&text).unwrap();
    let frames = parse_frames(&take_output(&mut p.client));
    assert_eq!(frames[0].rsv, 0);
    assert_eq!(frames[0].payload, text.as_bytes());
}

// RFC 7692 §6.1, §7.2.1: a compressed message has RSV1 on its first frame
// and its payload is the deflate stream without the 00 00 ff ff tail.
#[test]
fn compressed_frames_on_the_wire() {
    let mut p = default_pair();
    let text = json_like(2000);
    p.server.send(&text).unwrap();
    let frames = output_frames(&mut p.server);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].rsv, 0b100, "RSV1 set");
    assert!(frames[0].payload.len() < text.len() / 3, "{}", frames[0].payload.len());
    assert!(!frames[0].payload.ends_with(&[0, 0, 0xff, 0xff]));
    // Below the threshold: sent as is; control frames never compressed.
    p.server.send("short").unwrap();
    p.server.ping(&[b'x'; 125]).unwrap();
    let frames = output_frames(&mut p.server);
    assert_eq!(frames[0].rsv, 0);
    assert_eq!(frames[0].payload, b"short");
    assert_eq!(frames[1].rsv, 0);
    // Per message: forced on or off.
    p.server
        .send_with(Message::Text("short".into()), Compression::On)
        .unwrap();
    p.server
        .send_with(Message::Text(text.as_str().into()), Compression::Off)
        .unwrap();
    let frames = output_frames(&mut p.server);
    assert_eq!(frames[0].rsv, 0b100);
    assert_eq!(frames[1].rsv, 0);
    assert_eq!(frames[1].payload, text.as_bytes());
}

fn round_trip(p: &mut Pair, messages: &[Message]) {
    for m in messages {
        p.client.send(m.clone()).unwrap();
        p.server.send(m.clone()).unwrap();
    }
    p.drive();
    let (c, s) = p.take_events();
    let expected: Vec<Event> = messages
        .iter()
        .map(|m| match m {
            Message::Text(t) => Event::Text(t.clone()),
            Message::Binary(b) => Event::Binary(b.clone()),
        })
        .collect();
    assert!(c == expected, "client got {} events: {:.300?}", c.len(), c);
    assert!(s == expected, "server got {} events: {:.300?}", s.len(), s);
}

fn sample_messages() -> Vec<Message> {
    let mut noise = Vec::new();
    let mut x = 7u32;
    for _ in 0..70_000 {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        noise.push((x >> 24) as u8);
    }
    vec![
        Message::Text(json_like(300).as_str().into()),
        Message::Text(json_like(300).as_str().into()),
        Message::Text("".into()),
        Message::Text("Hello".into()),
        Message::Binary(noise.clone().into()),
        Message::Text(json_like(200_000).as_str().into()),
        Message::Binary(vec![0u8; 100_000].into()),
        Message::Text("é€😀".repeat(100).as_str().into()),
        Message::Binary(noise[..1000].to_vec().into()),
    ]
}

// RFC 7692 §7.1.1, §7.1.2: every window size 8..=15 with and without
// context takeover, each direction, messages of all kinds and sizes.
#[test]
fn round_trips_across_parameters() {
    for bits in 8..=15u8 {
        for takeover in [true, false] {
            let config = DeflateConfig {
                server_max_window_bits: bits,
                client_max_window_bits: bits,
                server_no_context_takeover: !takeover,
                client_no_context_takeover: !takeover,
                threshold: 0,
                ..DeflateConfig::default()
            };
            let mut p = deflate_pair(
                std::slice::from_ref(&config),
                config.clone(),
                Config::default(),
                Config::default(),
            );
            let (c, _) = p.take_events();
            assert!(open_extensions(&c).unwrap().starts_with("permessage-deflate"));
            let params = p.client.deflate().unwrap();
            assert_eq!(params.server_max_window_bits, bits);
            assert_eq!(params.client_max_window_bits, bits);
            round_trip(&mut p, &sample_messages());
            // Fed one byte at a time too.
            p.chunking = vec![1, 7, 300];
            round_trip(&mut p, &sample_messages()[..4]);
            if !takeover {
                assert_eq!(p.client.deflate_state_allocated(), (false, false), "bits {bits}");
                assert_eq!(p.server.deflate_state_allocated(), (false, false), "bits {bits}");
            } else {
                assert_eq!(p.client.deflate_state_allocated(), (true, true), "bits {bits}");
            }
        }
    }
}

// RFC 7692 §6.1: a fragmented message is compressed as one stream, RSV1 on
// its first frame only; control frames between fragments are not compressed.
#[test]
fn fragmented_sends_are_compressed() {
    let mut p = default_pair();
    let text = json_like(30_000);
    let (a, b) = text.split_at(10_000);
    let (b, c) = b.split_at(10_000);
    p.client.send_fragment(DataKind::Text, a.as_bytes(), false).unwrap();
    p.client.ping(b"between").unwrap();
    p.client.send_fragment(DataKind::Text, b.as_bytes(), false).unwrap();
    p.client.send_fragment(DataKind::Text, c.as_bytes(), true).unwrap();
    let bytes = take_output(&mut p.client);
    let frames = parse_frames(&bytes);
    let rsv: Vec<u8> = frames.iter().map(|f| f.rsv).collect();
    assert_eq!(rsv, [0b100, 0, 0, 0]);
    assert_eq!(frames[1].opcode, OP_PING);
    let evs = feed(&mut p.server, &bytes);
    assert_eq!(evs, [Event::Ping("between".into()), text_event(&text)]);
    // Uncompressed fragments when asked.
    p.client
        .send_fragment_with(DataKind::Binary, b"abc", false, Compression::Off)
        .unwrap();
    p.client.send_fragment(DataKind::Binary, b"def", true).unwrap();
    let bytes = take_output(&mut p.client);
    assert!(parse_frames(&bytes).iter().all(|f| f.rsv == 0));
    assert_eq!(feed(&mut p.server, &bytes), [binary(b"abcdef")]);
}

fn text_event(s: &str) -> Event {
    Event::Text(s.into())
}

// Streaming mode: a compressed message comes out as inflated fragments, in
// bounded pieces, as its bytes arrive.
#[test]
fn streaming_mode_inflates_fragments() {
    let streaming = Config {
        streaming: true,
        ..Config::default()
    };
    let mut p = deflate_pair(
        &[DeflateConfig::default()],
        DeflateConfig::default(),
        Config::default(),
        streaming,
    );
    p.take_events();
    let text = json_like(300_000);
    p.client.send(&text).unwrap();
    let (a, b) = text.split_at(1000);
    p.client.send_fragment(DataKind::Text, a.as_bytes(), false).unwrap();
    p.client.send_fragment(DataKind::Text, b.as_bytes(), true).unwrap();
    p.chunking = vec![4096];
    p.client_to_server();
    let (_, s) = p.take_events();
    let mut messages = Vec::new();
    let mut current = Vec::new();
    for e in s {
        let Event::Fragment(f) = e else { panic!("{e:?}") };
        assert!(f.data.len() <= 32 << 10, "pieces are bounded");
        assert_eq!(f.first, current.is_empty() && messages.len() < 2 && f.first);
        current.extend_from_slice(&f.data);
        if f.fin {
            messages.push(std::mem::take(&mut current));
        }
    }
    assert_eq!(messages, [text.as_bytes(), text.as_bytes()]);
}

// RFC 7692 §6.1: RSV1 on a continuation frame or a control frame fails the
// connection with 1002; RSV2/RSV3 still do; RSV1 without the extension too.
#[test]
fn misplaced_compression_bits() {
    let cases: [(Vec<u8>, ProtocolError); 4] = [
        (
            raw_frame(true, 0b100, OP_PING, Some(KEY), b"x"),
            ProtocolError::CompressedBitMisplaced,
        ),
        (
            [
                raw_frame(false, 0b100, OP_TEXT, Some(KEY), &[0xf2, 0x48]),
                raw_frame(true, 0b100, OP_CONT, Some(KEY), &[0xcd]),
            ]
            .concat(),
            ProtocolError::CompressedBitMisplaced,
        ),
        (
            raw_frame(true, 0b010, OP_TEXT, Some(KEY), b"x"),
            ProtocolError::ReservedBits,
        ),
        (
            raw_frame(true, 0b110, OP_TEXT, Some(KEY), b"x"),
            ProtocolError::ReservedBits,
        ),
    ];
    for (bytes, error) in cases {
        let mut p = default_pair();
        let evs = feed(&mut p.server, &bytes);
        assert_eq!(evs, failed(error.clone()), "{error:?}");
        assert_eq!(single_close_code(&mut p.server), Some(1002));
    }
    // Without the extension RSV1 is a reserved bit (RFC 6455 §5.2).
    let mut p = Pair::connected();
    let evs = feed(&mut p.server, &raw_frame(true, 0b100, OP_TEXT, Some(KEY), b"x"));
    assert_eq!(evs, failed(ProtocolError::ReservedBits));
}

// RFC 7692 §7.2.3.1 on the wire: a server frame carrying "Hello" compressed.
#[test]
fn rfc_hello_frame() {
    let mut p = default_pair();
    let frame = raw_frame(true, 0b100, OP_TEXT, None, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    assert_eq!(feed(&mut p.client, &frame), [text("Hello")]);
    // §7.2.3.2: the second one references the first (context takeover).
    let frame = raw_frame(true, 0b100, OP_TEXT, None, &[0xf2, 0x00, 0x11, 0x00, 0x00]);
    assert_eq!(feed(&mut p.client, &frame), [text("Hello")]);
    // §7.2.3.3 split over two frames, RSV1 on the first only.
    let bytes = [
        raw_frame(false, 0b100, OP_TEXT, None, &[0xf2, 0x48, 0xcd]),
        raw_frame(true, 0, OP_CONT, None, &[0xc9, 0xc9, 0x07, 0x00]),
    ]
    .concat();
    let mut p = default_pair();
    assert_eq!(feed(&mut p.client, &bytes), [text("Hello")]);
    // And the server writes "Hello" exactly as the RFC does.
    p.server
        .send_with(Message::Text("Hello".into()), Compression::On)
        .unwrap();
    let frames = output_frames(&mut p.server);
    assert_eq!(frames[0].payload, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
}

// RFC 6455 §8.1 holds for inflated text: invalid UTF-8 fails with 1007 in
// the chunk that contains it.
#[test]
fn inflated_text_is_validated() {
    let mut p = default_pair();
    p.server
        .send_with(Message::Binary(vec![0xff; 50].into()), Compression::On)
        .unwrap();
    let mut frames = output_frames(&mut p.server);
    frames[0].opcode = OP_TEXT;
    let bytes = raw_frame(true, 0b100, OP_TEXT, None, &frames[0].payload);
    let evs = feed(&mut p.client, &bytes);
    assert_eq!(evs, failed(ProtocolError::InvalidUtf8));
    // Garbage that does not inflate: 1007.
    let mut p = default_pair();
    let evs = feed(
        &mut p.client,
        &raw_frame(true, 0b100, OP_BINARY, None, &[0xff, 0xff, 0xff]),
    );
    assert_eq!(evs, failed(ProtocolError::InvalidCompressedData));
    assert_eq!(p.client.state(), ReadyState::Closed);
}

// RFC 7692 §8 / the message limit: a message that inflates past
// max_message_size fails with 1009 (the memory side is in deflate_limits.rs).
#[test]
fn inflated_size_is_limited() {
    let small = Config {
        max_message_size: 10_000,
        ..Config::default()
    };
    let mut p = deflate_pair(
        &[DeflateConfig::default()],
        DeflateConfig::default(),
        small,
        Config::default(),
    );
    p.take_events();
    p.server.send("a".repeat(10_000)).unwrap();
    p.server.send("a".repeat(10_001)).unwrap();
    p.server_to_client();
    let (c, _) = p.take_events();
    assert_eq!(c[0], text_event(&"a".repeat(10_000)));
    assert_eq!(
        c[1..],
        failed(ProtocolError::MessageTooLarge {
            len: 10_001,
            limit: 10_000
        })
    );
}

// RFC 7692 §7.1: the client fails the handshake on a response that does not
// match its offers, naming the rule.
#[test]
fn client_fails_on_a_bad_response() {
    let mut c = Connection::client_with_rng(
        ClientRequest::new("h", 80, "/").deflate(DeflateConfig {
            server_max_window_bits: 10,
            ..DeflateConfig::default()
        }),
        Config::default(),
        rng(1),
    )
    .unwrap();
    let request = String::from_utf8(take_output(&mut c)).unwrap();
    assert!(request.contains(
        "\r\nSec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10; client_max_window_bits\r\n"
    ));
    let response = response_for(
        &request,
        "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12\r\n",
    );
    let evs = feed(&mut c, response.as_bytes());
    let Event::Error(wsmachine::Failure::Handshake { error, .. }) = &evs[0] else {
        panic!("{evs:?}")
    };
    assert!(error.to_string().contains("RFC 7692 §7.1.2.1"), "{error}");
    assert_eq!(c.state(), ReadyState::Closed);
}

// The server's choice among several offers: the first acceptable one.
#[test]
fn several_offers_in_preference_order() {
    let offers = [
        DeflateConfig {
            client_max_window_bits: 9,
            client_no_context_takeover: true,
            ..DeflateConfig::default()
        },
        DeflateConfig::default(),
    ];
    let server = DeflateConfig::default();
    let mut p = deflate_pair(&offers, server, Config::default(), Config::default());
    p.take_events();
    assert_eq!(p.server.deflate().unwrap().client_max_window_bits, 9);
    assert!(p.client.deflate().unwrap().client_no_context_takeover);
    round_trip(&mut p, &sample_messages()[..3]);
}

// An OPEN connection without a handshake never compresses.
#[test]
fn open_without_handshake_has_no_deflate() {
    let mut c = open(Role::Client, Config::default());
    assert_eq!(c.deflate(), None);
    c.send_with(Message::Text("x".into()), Compression::On).unwrap();
    assert_eq!(output_frames(&mut c)[0].rsv, 0);
}
