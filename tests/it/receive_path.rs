//! The receive path with long frames back to back: a long frame whose header
//! arrives in the same read as the end of the frame before is started in a
//! buffer of its own and unmasked as it is copied in (`reader.rs`, `Ahead`).
//! Whatever the read sizes, whichever input call (`receive` or
//! `receive_buf`), the messages are the ones sent (RFC 6455 §5.2, §5.3),
//! and every rule still holds for such a frame.

use crate::util::*;
use proptest::prelude::*;
use wsmachine::{Config, Connection, Event, Failure, ProtocolError, Role};

/// A message as the test sends it.
#[derive(Clone, Debug)]
enum Sent {
    Binary(Vec<u8>),
    Text(String),
    Ping(Vec<u8>),
}

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
    ]
}

/// The masked client frames of `sent`, each with its own key.
fn wire(sent: &[Sent]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, m) in sent.iter().enumerate() {
        let key = (i as u32).wrapping_mul(0x9E37_79B9).to_le_bytes();
        let (op, payload) = match m {
            Sent::Binary(b) => (OP_BINARY, &b[..]),
            Sent::Text(t) => (OP_TEXT, t.as_bytes()),
            Sent::Ping(p) => (OP_PING, &p[..]),
        };
        out.extend(raw_frame(true, 0, op, Some(key), payload));
    }
    out
}

/// Feeds `bytes` in reads whose sizes cycle through `reads`, each through
/// `receive` or, when its flag says so, appended through `receive_buf`.
fn feed_reads(conn: &mut Connection, bytes: &[u8], reads: &[(usize, bool)]) -> Vec<Event> {
    let mut seen = Vec::new();
    let mut rest = bytes;
    let mut i = 0;
    while !rest.is_empty() {
        let (n, direct) = reads[i % reads.len()];
        i += 1;
        let (a, b) = rest.split_at(n.clamp(1, rest.len()));
        if direct {
            conn.receive_buf().extend_from_slice(a);
        } else {
            conn.receive(a);
        }
        seen.extend(events(conn));
        rest = b;
    }
    seen
}

fn check(sent: &[Sent], seen: &[Event]) {
    assert_eq!(seen.len(), sent.len(), "one event per frame: {seen:?}");
    for (i, (m, e)) in sent.iter().zip(seen).enumerate() {
        match (m, e) {
            (Sent::Binary(b), Event::Binary(got)) => assert!(got[..] == b[..], "binary message {i} differs"),
            (Sent::Text(t), Event::Text(got)) => assert!(&got[..] == t.as_str(), "text message {i} differs"),
            (Sent::Ping(p), Event::Ping(got)) => assert!(got[..] == p[..], "ping {i} differs"),
            (m, e) => panic!("message {i}: sent {m:?}, got {e:?}"),
        }
    }
}

fn arb_reads() -> impl Strategy<Value = Vec<(usize, bool)>> {
    prop_oneof![
        Just(vec![(64 << 10, false)]),
        Just(vec![(128 << 10, false)]),
        Just(vec![(64 << 10, true)]),
        proptest::collection::vec((1usize..(80 << 10), any::<bool>()), 1..6),
        proptest::collection::vec((1usize..40, any::<bool>()), 1..4),
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
        let seen = feed_reads(&mut conn, &bytes, &[(64 << 10, false)]);
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
    let seen = feed_reads(&mut conn, &bytes, &[(64 << 10, false)]);
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
    let seen = feed_reads(&mut conn, &bytes, &[(64 << 10, false)]);
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
