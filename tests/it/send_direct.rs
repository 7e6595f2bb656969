//! `Connection::send_direct`: a server's long borrowed payload offered to
//! the transport instead of copied into the output. Whatever the transport
//! takes, what it took followed by what is left queued is exactly the frame
//! `send` would have queued (RFC 6455 §5.2: one unmasked frame, FIN set), and
//! where the frame cannot go out as it stands the writer is never called.

use crate::util::{open, parse_frames, take_output};
use proptest::prelude::*;
use wsmachine::{CloseCode, Config, Connection, Error, Role};

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

/// What `send` queues for `payload` (binary) on a fresh server.
fn queued_by_send(payload: &[u8], text: bool) -> Vec<u8> {
    let mut conn = open(Role::Server, Config::default());
    if text {
        conn.send(std::str::from_utf8(payload).unwrap()).unwrap();
    } else {
        conn.send(payload).unwrap();
    }
    take_output(&mut conn)
}

/// Sends through `send_direct` with a transport that takes `take` bytes;
/// returns (what it was given to write, whether the writer was called).
fn direct(conn: &mut Connection, payload: &[u8], take: usize) -> Result<(Vec<u8>, bool), Error> {
    let mut wire = Vec::new();
    let mut called = false;
    conn.send_direct(payload, |[head, body]| {
        called = true;
        let all = [head, body].concat();
        let n = take.min(all.len());
        wire.extend_from_slice(&all[..n]);
        n
    })?;
    Ok((wire, called))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    // Any split between written and queued gives the same bytes as `send`.
    #[test]
    fn written_then_queued_is_the_frame_send_queues(len in 4096usize..80_000, take_frac in 0.0f64..1.2) {
        let payload = pattern(len);
        let take = (len as f64 * take_frac) as usize;
        let mut conn = open(Role::Server, Config::default());
        let (mut wire, called) = direct(&mut conn, &payload, take).unwrap();
        prop_assert!(called);
        prop_assert_eq!(conn.buffered_amount(), len + wire_header_len(len) - wire.len());
        wire.extend(take_output(&mut conn));
        prop_assert_eq!(wire, queued_by_send(&payload, false));
    }
}

fn wire_header_len(len: usize) -> usize {
    if len <= 0xFFFF { 4 } else { 10 }
}

// A transport that takes only part of the header: the rest of the header
// and the whole payload are queued, in order.
#[test]
fn a_partly_written_header_queues_the_rest_of_it() {
    let payload = pattern(70_000);
    for take in 0..=10 {
        let mut conn = open(Role::Server, Config::default());
        let (mut wire, _) = direct(&mut conn, &payload, take).unwrap();
        assert_eq!(wire.len(), take);
        wire.extend(take_output(&mut conn));
        assert_eq!(wire, queued_by_send(&payload, false), "take {take}");
    }
}

// Text goes out as a text frame, as by `send`.
#[test]
fn text_is_sent_as_text() {
    let text = "é".repeat(3000);
    let mut conn = open(Role::Server, Config::default());
    let mut wire = Vec::new();
    conn.send_direct(text.as_str(), |[head, body]| {
        wire.extend_from_slice(head);
        wire.extend_from_slice(body);
        head.len() + body.len()
    })
    .unwrap();
    assert_eq!(conn.buffered_amount(), 0);
    assert_eq!(wire, queued_by_send(text.as_bytes(), true));
    let frames = parse_frames(&wire);
    assert_eq!((frames.len(), frames[0].opcode, frames[0].fin), (1, 1, true));
}

// Where the frame cannot go to the transport as it stands, the writer is
// not called and the message is queued as `send` queues it: a client's
// frame must be masked (RFC 6455 §5.3), a short payload is copied, and
// output already queued must go first (frames are not interleaved).
#[test]
fn the_writer_is_not_called_where_the_frame_must_be_queued() {
    let long = pattern(10_000);
    // A client.
    let mut conn = open(Role::Client, Config::default());
    let (_, called) = direct(&mut conn, &long, usize::MAX).unwrap();
    assert!(!called);
    let frames = parse_frames(&take_output(&mut conn));
    assert_eq!((frames.len(), frames[0].payload.clone()), (1, long.clone()));
    // A short payload.
    let mut conn = open(Role::Server, Config::default());
    let (_, called) = direct(&mut conn, &long[..4095], usize::MAX).unwrap();
    assert!(!called);
    assert_eq!(take_output(&mut conn), queued_by_send(&long[..4095], false));
    // Output queued before: it goes first, then the message.
    let mut conn = open(Role::Server, Config::default());
    conn.ping(b"first").unwrap();
    let (_, called) = direct(&mut conn, &long, usize::MAX).unwrap();
    assert!(!called);
    let frames = parse_frames(&take_output(&mut conn));
    assert_eq!(frames.len(), 2);
    assert_eq!((frames[0].opcode, &frames[0].payload[..]), (9, &b"first"[..]));
    assert_eq!(frames[1].payload, long);
    // An owned message.
    let mut conn = open(Role::Server, Config::default());
    let mut called = false;
    conn.send_direct(wsmachine::Message::Binary(long.clone().into()), |_| {
        called = true;
        0
    })
    .unwrap();
    assert!(!called);
    assert_eq!(take_output(&mut conn), queued_by_send(&long, false));
}

// A refused message writes nothing: the same checks as `send`.
#[test]
fn a_refused_message_writes_nothing() {
    let long = pattern(10_000);
    // Not OPEN (RFC 6455 §5.5.1: no data after our close).
    let mut conn = open(Role::Server, Config::default());
    conn.close(CloseCode::NORMAL, "").unwrap();
    take_output(&mut conn);
    let mut called = false;
    let r = conn.send_direct(&long[..], |_| {
        called = true;
        0
    });
    assert!(matches!(r, Err(Error::NotOpen(_))), "{r:?}");
    assert!(!called);
    assert_eq!(conn.buffered_amount(), 0);
    // Over the output limit: refused as `send` refuses it.
    let config = Config {
        max_output_buffer: 8 << 10,
        ..Config::default()
    };
    let mut conn = open(Role::Server, config.clone());
    let r = conn.send_direct(&long[..], |_| {
        called = true;
        0
    });
    assert!(matches!(r, Err(Error::OutputFull { .. })), "{r:?}");
    assert!(!called);
    let mut conn = open(Role::Server, config);
    assert!(matches!(conn.send(&long[..]), Err(Error::OutputFull { .. })));
}

// With permessage-deflate in use (RFC 7692), a long message is compressed:
// it is not the borrowed payload, so it is queued.
#[cfg(feature = "deflate")]
#[test]
fn a_compressed_message_is_queued() {
    use wsmachine::Accept;
    use wsmachine::deflate::DeflateConfig;
    let request = crate::util::client_request().deflate(DeflateConfig::default());
    let client = Connection::client_with_rng(request, Config::default(), crate::util::rng(1)).unwrap();
    let mut p = crate::util::Pair::with_client(client, Config::default());
    p.handshake(Accept::new().deflate(DeflateConfig::default()));
    p.take_events();
    let long = vec![b'a'; 10_000];
    let (_, called) = direct(&mut p.server, &long, usize::MAX).unwrap();
    assert!(!called);
    let frames = parse_frames(&take_output(&mut p.server));
    assert_eq!(frames.len(), 1);
    assert!(
        frames[0].rsv == 4 && frames[0].payload.len() < 1000,
        "compressed (RSV1)"
    );
}
