//! The receive path's shortcuts (`reader.rs`): a long frame whose header
//! arrives in the same read as the end of the frame before is started in a
//! buffer of its own and unmasked as it is copied in (`Ahead`); short
//! messages are taken straight out of the bytes given to `receive` into a
//! queue read ahead of the buffer (`ReadAhead`); a long frame's payload can
//! be read straight into its buffer (`payload_buf`); the frames of a
//! fragmented message go straight into the message, unmasked as they are
//! copied (`read_fragments`, `append_fragment`). Whatever the read
//! sizes, whichever input call (`receive`, `receive_buf` or `payload_buf`),
//! the events are the ones sent, in order (RFC 6455 §5.2, §5.3), and every
//! rule still holds.

use crate::util::*;
use proptest::prelude::*;
use wsmachine::{Config, Connection, Event, Failure, ProtocolError, Role};

/// A message as the test sends it.
#[derive(Clone, Debug)]
enum Sent {
    Binary(Vec<u8>),
    Text(String),
    Ping(Vec<u8>),
    /// A message in fragments (RFC 6455 §5.4): the payload cut at `cuts`
    /// (sorted byte positions; text may be cut inside a character), and a
    /// ping between two of its frames after frame `ping` (§5.5: control
    /// frames may be injected in the middle of a fragmented message).
    Fragmented {
        text: bool,
        payload: Vec<u8>,
        cuts: Vec<usize>,
        ping: Option<usize>,
    },
}

/// The ping sent inside a fragmented message.
const INNER_PING: &[u8] = b"inside";

fn arb_len() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..200,
        (16usize << 10) - 2..(16 << 10) + 2,
        (16usize << 10)..(140 << 10),
    ]
}

fn arb_sent() -> impl Strategy<Value = Sent> {
    prop_oneof![
        4 => (arb_len(), any::<u8>()).prop_map(|(n, seed)| Sent::Binary((0..n).map(|i| (i as u8).wrapping_mul(seed | 1) ^ (i >> 9) as u8).collect())),
        3 => (arb_len(), 0usize..4).prop_map(|(n, w)| {
            let c = ['a', 'é', '€', '𝄞'][w];
            Sent::Text(core::iter::repeat_n(c, n / c.len_utf8()).collect())
        }),
        1 => proptest::collection::vec(any::<u8>(), 0..=125).prop_map(Sent::Ping),
        3 => arb_fragmented(),
    ]
}

fn arb_fragmented() -> impl Strategy<Value = Sent> {
    let sizes = prop_oneof![0usize..300, 1usize..(40 << 10), (100usize << 10)..(300 << 10)];
    let cuts = proptest::collection::vec(any::<u16>(), 1..12);
    (sizes, any::<bool>(), any::<u8>(), cuts, any::<Option<u8>>()).prop_map(|(n, text, seed, raw_cuts, ping)| {
        let payload: Vec<u8> = if text {
            // 1- to 4-byte characters, cut to a character boundary at most `n`.
            let s = "aé€𝄞".repeat(n / 10 + 1);
            let end = (0..=n).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
            s.as_bytes()[..end].to_vec()
        } else {
            (0..n)
                .map(|i| (i as u8).wrapping_mul(seed | 1) ^ (i >> 11) as u8)
                .collect()
        };
        let len = payload.len();
        let mut cuts: Vec<usize> = raw_cuts.iter().map(|&c| (c as usize * (len + 1)) >> 16).collect();
        cuts.sort_unstable();
        let frames = cuts.len() + 1;
        let ping = ping.map(|p| p as usize % (frames - 1)).filter(|_| frames > 1);
        Sent::Fragmented {
            text,
            payload,
            cuts,
            ping,
        }
    })
}

/// The frames of `sent` as they reach `role`: a client's masked, each with
/// its own key (RFC 6455 §5.3), a server's unmasked.
fn wire_to(role: Role, sent: &[Sent]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut frames = 0u32;
    let mut key = || {
        frames += 1;
        (role == Role::Server).then(|| frames.wrapping_mul(0x9E37_79B9).to_le_bytes())
    };
    for m in sent {
        let (op, payload) = match m {
            Sent::Binary(b) => (OP_BINARY, &b[..]),
            Sent::Text(t) => (OP_TEXT, t.as_bytes()),
            Sent::Ping(p) => (OP_PING, &p[..]),
            Sent::Fragmented {
                text,
                payload,
                cuts,
                ping,
            } => {
                let ends = cuts.iter().copied().chain([payload.len()]);
                let mut start = 0;
                for (i, end) in ends.enumerate() {
                    let op = match (i, text) {
                        (0, true) => OP_TEXT,
                        (0, false) => OP_BINARY,
                        _ => OP_CONT,
                    };
                    let fin = i == cuts.len();
                    out.extend(raw_frame(fin, 0, op, key(), &payload[start..end]));
                    if *ping == Some(i) {
                        out.extend(raw_frame(true, 0, OP_PING, key(), INNER_PING));
                    }
                    start = end;
                }
                continue;
            }
        };
        out.extend(raw_frame(true, 0, op, key(), payload));
    }
    out
}

/// The masked client frames of `sent`.
fn wire(sent: &[Sent]) -> Vec<u8> {
    wire_to(Role::Server, sent)
}

/// How a test read hands its bytes to the machine.
#[derive(Clone, Copy, Debug)]
enum Input {
    /// `receive`.
    Receive,
    /// Appended through `receive_buf`.
    ReceiveBuf,
    /// Into `payload_buf` (at most what it says is due) when it offers a
    /// buffer, as the tokio driver reads; else `receive`.
    PayloadBuf,
}

fn arb_input() -> impl Strategy<Value = Input> {
    prop_oneof![Just(Input::Receive), Just(Input::ReceiveBuf), Just(Input::PayloadBuf)]
}

/// Feeds `bytes` in reads whose sizes cycle through `reads`, each through
/// the input call it names.
fn feed_reads(conn: &mut Connection, bytes: &[u8], reads: &[(usize, Input)]) -> Vec<Event> {
    let mut seen = Vec::new();
    let mut rest = bytes;
    let mut i = 0;
    while !rest.is_empty() {
        let (n, input) = reads[i % reads.len()];
        i += 1;
        let mut n = n.clamp(1, rest.len());
        match input {
            Input::Receive => conn.receive(&rest[..n]),
            Input::ReceiveBuf => conn.receive_buf().extend_from_slice(&rest[..n]),
            Input::PayloadBuf => match conn.payload_buf() {
                Some((buf, due)) => {
                    assert!(due > 0, "a payload buffer with nothing due");
                    n = n.min(due);
                    let room = buf.capacity() - buf.len();
                    buf.extend_from_slice(&rest[..n]);
                    assert!(n <= room, "payload_buf offered {room} bytes of room for {due} due");
                }
                None => conn.receive(&rest[..n]),
            },
        }
        seen.extend(events(conn));
        rest = &rest[n..];
    }
    seen
}

fn check(sent: &[Sent], seen: &[Event]) {
    // A ping inside a fragmented message is seen before the message.
    let expected: Vec<Sent> = sent
        .iter()
        .flat_map(|m| match m {
            Sent::Fragmented {
                text, payload, ping, ..
            } => {
                let message = if *text {
                    Sent::Text(String::from_utf8(payload.clone()).unwrap())
                } else {
                    Sent::Binary(payload.clone())
                };
                let inner = ping.map(|_| Sent::Ping(INNER_PING.to_vec()));
                inner.into_iter().chain([message]).collect::<Vec<_>>()
            }
            m => vec![m.clone()],
        })
        .collect();
    assert_eq!(seen.len(), expected.len(), "one event per message and ping: {seen:?}");
    for (i, (m, e)) in expected.iter().zip(seen).enumerate() {
        match (m, e) {
            (Sent::Binary(b), Event::Binary(got)) => assert!(got[..] == b[..], "binary message {i} differs"),
            (Sent::Text(t), Event::Text(got)) => assert!(&got[..] == t.as_str(), "text message {i} differs"),
            (Sent::Ping(p), Event::Ping(got)) => assert!(got[..] == p[..], "ping {i} differs"),
            (m, e) => panic!("message {i}: sent {m:?}, got {e:?}"),
        }
    }
}

fn arb_reads() -> impl Strategy<Value = Vec<(usize, Input)>> {
    prop_oneof![
        Just(vec![(64 << 10, Input::Receive)]),
        Just(vec![(128 << 10, Input::Receive)]),
        Just(vec![(16 << 10, Input::PayloadBuf)]),
        Just(vec![(64 << 10, Input::ReceiveBuf)]),
        proptest::collection::vec((1usize..(80 << 10), arb_input()), 1..6),
        proptest::collection::vec((1usize..40, arb_input()), 1..4),
    ]
}

/// Mostly short messages, many to a read (more than are ever read ahead at
/// once), with long ones and pings among them.
fn arb_short_sent() -> impl Strategy<Value = Sent> {
    prop_oneof![
        6 => (0usize..300, any::<u8>()).prop_map(|(n, seed)| Sent::Binary(vec![seed; n])),
        3 => (0usize..300).prop_map(|n| Sent::Text("é".repeat(n / 2))),
        1 => arb_sent(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn long_frames_back_to_back_arrive_intact(
        sent in proptest::collection::vec(arb_sent(), 1..8),
        reads in arb_reads(),
    ) {
        let mut conn = open(Role::Server, Config::default());
        let seen = feed_reads(&mut conn, &wire(&sent), &reads);
        check(&sent, &seen);
    }

    #[test]
    fn many_short_messages_to_a_read_arrive_intact_and_in_order(
        sent in proptest::collection::vec(arb_short_sent(), 1..200),
        reads in arb_reads(),
        client in any::<bool>(),
    ) {
        let role = if client { Role::Client } else { Role::Server };
        let mut conn = open(role, Config::default());
        let seen = feed_reads(&mut conn, &wire_to(role, &sent), &reads);
        check(&sent, &seen);
    }

    #[test]
    fn a_client_reads_long_and_short_frames_intact(
        sent in proptest::collection::vec(arb_sent(), 1..8),
        reads in arb_reads(),
    ) {
        let mut conn = open(Role::Client, Config::default());
        let seen = feed_reads(&mut conn, &wire_to(Role::Client, &sent), &reads);
        check(&sent, &seen);
    }
}

// Short messages read ahead come before anything behind them: invalid text
// among them (RFC 6455 §8.1: 1007) is reported after exactly the messages
// before it, and nothing after it is delivered; a ping among them is
// reported in its place.
#[test]
fn an_error_among_short_messages_ends_them_in_order() {
    let mut bytes = Vec::new();
    for i in 0..100u8 {
        bytes.extend(raw_frame(true, 0, OP_BINARY, Some(KEY), &[i; 10]));
    }
    bytes.extend(raw_frame(true, 0, OP_PING, Some(KEY), b"p"));
    bytes.extend(raw_frame(true, 0, OP_TEXT, Some(KEY), b"ok \xFF bad"));
    for i in 0..20u8 {
        bytes.extend(raw_frame(true, 0, OP_BINARY, Some(KEY), &[i; 10]));
    }
    for reads in [
        vec![(1 << 20, Input::Receive)],
        vec![(100, Input::Receive)],
        vec![(7, Input::PayloadBuf)],
    ] {
        let mut conn = open(Role::Server, Config::default());
        let seen = feed_reads(&mut conn, &bytes, &reads);
        for (i, e) in seen[..100].iter().enumerate() {
            assert!(
                matches!(e, Event::Binary(b) if b[..] == [i as u8; 10]),
                "{reads:?} {i}: {e:?}"
            );
        }
        assert!(
            matches!(&seen[100], Event::Ping(p) if &p[..] == b"p"),
            "{:?}",
            &seen[100]
        );
        assert!(
            matches!(&seen[101], Event::Error(Failure::Protocol(ProtocolError::InvalidUtf8))),
            "{reads:?}: {:?}",
            &seen[101..]
        );
        assert!(matches!(&seen[102], Event::Closed(_)), "{:?}", &seen[102..]);
        assert_eq!(seen.len(), 103, "{reads:?}: nothing after CLOSED");
    }
}

// Nothing is read after CLOSED (RFC 6455 §7.1.7): messages read ahead but not
// yet polled are dropped when the connection closes, here when our close
// gets no answer in time.
#[test]
fn messages_read_ahead_are_dropped_at_closed() {
    let mut bytes = Vec::new();
    for i in 0..10u8 {
        bytes.extend(raw_frame(true, 0, OP_BINARY, Some(KEY), &[i; 5]));
    }
    let config = Config {
        close_timeout: core::time::Duration::from_secs(1),
        ..Config::default()
    };
    let mut conn = open(Role::Server, config);
    conn.receive(&bytes);
    assert!(matches!(conn.poll_event(), Some(Event::Binary(b)) if b[..] == [0; 5]));
    conn.close(wsmachine::CloseCode::NORMAL, "").unwrap();
    conn.handle_timeout(wsmachine::Instant::from_millis(0));
    conn.handle_timeout(wsmachine::Instant::from_millis(5_000));
    let rest = events(&mut conn);
    assert!(
        matches!(&rest[..], [Event::Error(Failure::CloseTimeout), Event::Closed(_)]),
        "{rest:?}"
    );
}

// RFC 6455 §8.1 holds for a text frame read straight into its buffer
// (`payload_buf`): the bad byte fails the connection with 1007 as soon as
// the piece holding it is read, before the frame is complete.
#[test]
fn invalid_text_read_into_the_payload_buffer_is_1007() {
    let mut text = vec![b'a'; 200 << 10];
    text[100 << 10] = 0xC0;
    let bytes = raw_frame(true, 0, OP_TEXT, Some([3, 1, 4, 1]), &text);
    let mut conn = open(Role::Server, Config::default());
    conn.receive(&bytes[..16 << 10]);
    assert!(events(&mut conn).is_empty());
    assert!(
        conn.payload_buf()
            .is_some_and(|(_, due)| due == text.len() + 14 - (16 << 10))
    );
    let seen = feed_reads(&mut conn, &bytes[16 << 10..150 << 10], &[(16 << 10, Input::PayloadBuf)]);
    assert!(
        matches!(
            &seen[..],
            [
                Event::Error(Failure::Protocol(ProtocolError::InvalidUtf8)),
                Event::Closed(_)
            ]
        ),
        "{seen:?}"
    );
}

// A long frame read ahead is held to the rules like any other: RFC 6455
// §8.1, invalid UTF-8 in a text message fails the connection with 1007,
// whether the bad byte is in a frame started ahead, in the part of a long
// frame unmasked as it is copied in, or in a frame behind another.
#[test]
fn invalid_text_is_1007_wherever_it_is_read() {
    let text = |len: usize, bad_at: usize| {
        let mut t = vec![b'a'; len];
        t[bad_at] = 0xFF;
        raw_frame(true, 0, OP_TEXT, Some([9, 8, 7, 6]), &t)
    };
    let after_binary = [
        raw_frame(true, 0, OP_BINARY, Some(KEY), &[1u8; 20 << 10]),
        text(20 << 10, 10 << 10),
    ]
    .concat();
    let cases: [(&str, Vec<u8>, usize); 3] = [
        ("first frame, started ahead", text(20 << 10, 10 << 10), 0),
        ("deep in a long frame", text(200 << 10, 150 << 10), 0),
        ("behind a binary frame", after_binary, 1),
    ];
    for (what, bytes, messages_before) in cases {
        let mut conn = open(Role::Server, Config::default());
        let seen = feed_reads(&mut conn, &bytes, &[(64 << 10, Input::Receive)]);
        assert!(
            seen[..messages_before].iter().all(|e| matches!(e, Event::Binary(_))),
            "{what}: {seen:?}"
        );
        assert!(
            matches!(
                &seen[messages_before],
                Event::Error(Failure::Protocol(ProtocolError::InvalidUtf8))
            ),
            "{what}: {:?}",
            &seen[messages_before..]
        );
        assert!(
            take_output(&mut conn).windows(2).any(|w| w == 1007u16.to_be_bytes()),
            "{what}: no 1007"
        );
    }
}

// RFC 6455 §5.4: a data frame while a fragmented message is unfinished is an
// error; the frame after a fragment is never started ahead, and the reader
// refuses it (1002).
#[test]
fn a_new_message_inside_a_fragmented_one_is_still_1002() {
    let mut bytes = raw_frame(false, 0, OP_BINARY, Some(KEY), &[3u8; 20 << 10]);
    bytes.extend(raw_frame(true, 0, OP_BINARY, Some(KEY), &[4u8; 20 << 10]));
    let mut conn = open(Role::Server, Config::default());
    let seen = feed_reads(&mut conn, &bytes, &[(64 << 10, Input::Receive)]);
    assert!(
        matches!(
            seen.first(),
            Some(Event::Error(Failure::Protocol(ProtocolError::ExpectedContinuation)))
        ),
        "{seen:?}"
    );
}

// The limits are checked before a buffer is reserved for a frame read ahead:
// a frame over `max_message_size` right after another gets 1009, and the
// buffer for it is never made (the peak stays near one read).
#[test]
fn a_frame_over_the_limit_after_another_is_1009() {
    let config = Config {
        max_message_size: 64 << 10,
        ..Config::default()
    };
    let mut bytes = raw_frame(true, 0, OP_BINARY, Some(KEY), &[1u8; 20 << 10]);
    bytes.extend(raw_header(true, 0, OP_BINARY, Some(KEY), 1 << 30));
    bytes.extend(vec![0u8; 30 << 10]);
    let mut conn = open(Role::Server, config);
    let seen = feed_reads(&mut conn, &bytes, &[(64 << 10, Input::Receive)]);
    assert!(matches!(&seen[0], Event::Binary(b) if b.len() == 20 << 10));
    assert!(
        matches!(
            &seen[1],
            Event::Error(Failure::Protocol(
                ProtocolError::FrameTooLarge { .. } | ProtocolError::MessageTooLarge { .. }
            ))
        ),
        "{seen:?}"
    );
}

// The frames of a fragmented message read straight into the message keep
// every rule: invalid text in any fragment is 1007 (RFC 6455 §8.1) after
// exactly the messages before it, a message whose fragments together pass
// `max_message_size` is 1009 (checked on the header of the frame that
// passes it), and a frame that is neither a continuation nor a
// control frame inside the message is 1002 (§5.4).
#[test]
fn fragments_read_into_their_message_keep_every_rule() {
    let binary = raw_frame(true, 0, OP_BINARY, Some(KEY), &[1u8; 100]);
    let mut bad_text = binary.clone();
    bad_text.extend(raw_frame(false, 0, OP_TEXT, Some(KEY), "é".repeat(2000).as_bytes()));
    let mut invalid = vec![b'a'; 3000];
    invalid[1500] = 0xFF;
    bad_text.extend(raw_frame(false, 0, OP_CONT, Some([1, 2, 3, 4]), &invalid));
    bad_text.extend(raw_frame(true, 0, OP_CONT, Some(KEY), b"end"));

    let mut too_long = binary.clone();
    for i in 0..5u8 {
        too_long.extend(raw_frame(
            i == 4,
            0,
            if i == 0 { OP_BINARY } else { OP_CONT },
            Some(KEY),
            &[i; 20 << 10],
        ));
    }

    let mut new_message_inside = binary.clone();
    new_message_inside.extend(raw_frame(false, 0, OP_BINARY, Some(KEY), &[5u8; 300]));
    new_message_inside.extend(raw_frame(true, 0, OP_TEXT, Some(KEY), b"no"));

    let config = Config {
        max_message_size: 64 << 10,
        ..Config::default()
    };
    type Case = (&'static str, Vec<u8>, fn(&ProtocolError) -> bool, u16);
    let cases: [Case; 3] = [
        (
            "invalid text",
            bad_text,
            |e| matches!(e, ProtocolError::InvalidUtf8),
            1007,
        ),
        (
            "over the message limit",
            too_long,
            |e| matches!(e, ProtocolError::MessageTooLarge { .. }),
            1009,
        ),
        (
            "a new message inside",
            new_message_inside,
            |e| matches!(e, ProtocolError::ExpectedContinuation),
            1002,
        ),
    ];
    for (what, bytes, is_error, code) in cases {
        for read in [64 << 10, 1000, 7] {
            let mut conn = open(Role::Server, config.clone());
            let seen = feed_reads(&mut conn, &bytes, &[(read, Input::Receive)]);
            assert!(
                matches!(&seen[0], Event::Binary(b) if b[..] == [1u8; 100]),
                "{what}, {read}: {seen:?}"
            );
            assert!(
                matches!(&seen[1], Event::Error(Failure::Protocol(e)) if is_error(e)),
                "{what}, {read}: {:?}",
                &seen[1..]
            );
            assert!(
                seen[2..]
                    .iter()
                    .all(|e| !matches!(e, Event::Binary(_) | Event::Text(_))),
                "{what}, {read}: a message after the error: {seen:?}"
            );
            assert!(
                take_output(&mut conn).windows(2).any(|w| w == code.to_be_bytes()),
                "{what}, {read}: no {code}"
            );
        }
    }
}

// A binary message read straight into its buffer is unmasked in batches
// (`UNMASK_BATCH`, 512 KiB) rather than after every read: messages longer
// than a batch, read in sizes that put batch ends at every key position
// (RFC 6455 §5.3: byte i is XORed with key byte i mod 4), whichever input
// call each read takes, arrive as sent; a text message among them is still
// validated (§8.1).
#[test]
fn long_binary_messages_unmasked_in_batches_arrive_intact() {
    let long =
        |n: usize, seed: u8| Sent::Binary((0..n).map(|i| (i as u8).wrapping_mul(seed) ^ (i >> 13) as u8).collect());
    let sent = [
        long(1_300_003, 7),
        Sent::Text("€".repeat(1000)),
        long((512 << 10) + 1, 11),
        long(600 << 10, 13),
    ];
    let reads: [&[(usize, Input)]; 4] = [
        &[(100_003, Input::PayloadBuf)],
        &[
            (128 << 10, Input::PayloadBuf),
            (1, Input::PayloadBuf),
            (2, Input::Receive),
        ],
        &[
            (65_537, Input::PayloadBuf),
            (3, Input::ReceiveBuf),
            (70_001, Input::Receive),
        ],
        &[(1 << 20, Input::PayloadBuf)],
    ];
    for r in reads {
        let mut conn = open(Role::Server, Config::default());
        let seen = feed_reads(&mut conn, &wire(&sent), r);
        check(&sent, &seen);
    }
}
