//! Broadcast (issue 14): a `PreparedMessage` framed once and queued on many
//! connections with `send_prepared`. The same bytes on the wire as `send`,
//! the same rules (state, backpressure, pong ordering), and no payload
//! bytes copied per recipient (measured with the counting allocator).

use crate::fuzz_harness::alloc_count;
use crate::util::*;
use wsmachine::{
    Backpressure, CloseCode, Config, Connection, DataKind, Error, Event, Failure, Message, Misuse, PreparedMessage,
    ReadyState, Role,
};

/// Payload sizes across the 7-, 16- and 64-bit length forms (RFC 6455 §5.2).
const SIZES: [usize; 8] = [0, 1, 125, 126, 127, 65535, 65536, 100_000];

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

fn messages(n: usize) -> [Message; 2] {
    let p = payload(n);
    [
        Message::Text(String::from_utf8(p.clone()).unwrap().into()),
        Message::Binary(p.into()),
    ]
}

fn server() -> Connection {
    Connection::open_server(Config::default())
}

// RFC 6455 §5.2: the prepared frame is byte for byte what `send` writes, in
// each length form, for text and binary.
#[test]
fn server_frames_equal_send() {
    for n in SIZES {
        for message in messages(n) {
            let prepared = PreparedMessage::new(message.clone());
            assert_eq!(prepared.len(), n);
            let (mut a, mut b, mut c) = (server(), server(), server());
            a.send(message.clone()).unwrap();
            b.send_prepared(&prepared).unwrap();
            match &message {
                Message::Text(t) => c.send(t.as_str()).unwrap(),
                Message::Binary(d) => c.send(&d[..]).unwrap(),
            }
            let (wa, wb, wc) = (take_output(&mut a), take_output(&mut b), take_output(&mut c));
            assert_eq!(wa, wb, "{n} B");
            assert_eq!(wc, wb, "{n} B");
            assert_eq!(&prepared.frame()[..], &wb[..], "{n} B");
            let frames = parse_frames(&wb);
            let opcode = if prepared.kind() == DataKind::Text {
                OP_TEXT
            } else {
                OP_BINARY
            };
            assert_eq!(frames, vec![WireFrame::new(true, opcode, None, &payload(n))]);
        }
    }
}

// What a server queues is the prepared frame itself, the same memory for
// every connection, from 256 bytes of frame on; a shorter frame is copied
// (cheaper than sharing, benches/broadcast.rs), behind other output too.
#[test]
fn the_queued_chunk_is_the_prepared_frame() {
    for n in [16, 251, 252, 1024, 64 << 10] {
        let prepared = PreparedMessage::new(payload(n));
        let shared = prepared.frame().len() >= 256;
        assert_eq!(shared, n >= 252, "{n}: 4 header bytes from 126 on");
        let mut conns: Vec<Connection> = (0..3).map(|_| server()).collect();
        for conn in &mut conns {
            for _ in 0..2 {
                conn.send_prepared(&prepared).unwrap();
            }
            let chunks: Vec<&[u8]> = conn.output_chunks().collect();
            let wire: Vec<u8> = chunks.concat();
            assert_eq!(wire, [&prepared.frame()[..], &prepared.frame()[..]].concat());
            if shared {
                assert_eq!(chunks.len(), 2);
                for chunk in chunks {
                    assert_eq!(chunk.as_ptr(), prepared.frame().as_ptr(), "{n} B: shared, not copied");
                }
            } else {
                assert_eq!(chunks.len(), 1, "{n} B: copied into the output");
                assert_ne!(chunks[0].as_ptr(), prepared.frame().as_ptr());
            }
        }
    }
}

// RFC 6455 §5.3: a client masks every frame with a fresh key, so a prepared
// message is masked (copied) per connection: the same bytes as `send` from
// the same key sequence, and a different key each frame.
#[test]
fn a_client_masks_per_connection() {
    for n in [0, 125, 126, 65536] {
        for message in messages(n) {
            let prepared = PreparedMessage::new(message.clone());
            let mut a = Connection::open_client(Config::default(), rng(7));
            let mut b = Connection::open_client(Config::default(), rng(7));
            a.send(message.clone()).unwrap();
            b.send_prepared(&prepared).unwrap();
            b.send_prepared(&prepared).unwrap();
            let (wa, wb) = (take_output(&mut a), take_output(&mut b));
            assert_eq!(wb[..wa.len()], wa[..], "{n} B");
            let frames = parse_frames(&wb);
            assert_eq!(frames.len(), 2);
            for f in &frames {
                assert!(f.mask.is_some());
                assert_eq!(f.payload, payload(n));
            }
            assert_ne!(frames[0].mask, frames[1].mask, "a fresh key per frame");
        }
    }
}

// The receiving side gets the message, through our own client.
#[test]
fn a_client_receives_it() {
    let mut p = Pair::connected();
    for n in [5, 70_000] {
        for message in messages(n) {
            p.server.send_prepared(&PreparedMessage::new(message.clone())).unwrap();
            p.server_to_client();
            let (client, _) = p.take_events();
            let expected = match &message {
                Message::Text(t) => text(t.as_str()),
                Message::Binary(b) => binary(b),
            };
            assert_eq!(client, vec![expected]);
        }
    }
}

// The state rule of `send`: refused with the same error once CLOSING or
// CLOSED, and while a fragmented message is unfinished (RFC 6455 §5.4);
// nothing is queued.
#[test]
fn refused_as_send_is() {
    let prepared = PreparedMessage::new("late");
    for role in [Role::Server, Role::Client] {
        let mut conn = open(role, Config::default());
        conn.send_fragment(DataKind::Text, b"part", false).unwrap();
        let before = conn.buffered_amount();
        assert_eq!(conn.send_prepared(&prepared), Err(Misuse::MessageInProgress.into()));
        assert_eq!(conn.send("x"), Err(Misuse::MessageInProgress.into()));
        assert_eq!(conn.buffered_amount(), before);
        conn.send_fragment(DataKind::Text, b"", true).unwrap();

        conn.close(CloseCode::NORMAL, "").unwrap();
        let before = conn.buffered_amount();
        let refused = conn.send_prepared(&prepared);
        assert_eq!(refused, Err(Error::NotOpen(ReadyState::Closing)));
        assert_eq!(refused, conn.send("late"));
        assert_eq!(conn.buffered_amount(), before);
    }
    // CLOSED: the peer's close answered.
    let mut p = Pair::connected();
    p.client.close(CloseCode::NORMAL, "").unwrap();
    p.drive();
    assert_eq!(p.server.state(), ReadyState::Closed);
    assert_eq!(
        p.server.send_prepared(&prepared),
        Err(Error::NotOpen(ReadyState::Closed))
    );
    assert_eq!(p.server.send("late"), Err(Error::NotOpen(ReadyState::Closed)));
}

// `Config::max_output_buffer`, both backpressure policies: the same outcome
// as `send` with the same message.
#[test]
fn backpressure_limits_apply() {
    for backpressure in [Backpressure::Refuse, Backpressure::Close] {
        let config = Config {
            max_output_buffer: 100_000,
            backpressure,
            ..Config::default()
        };
        let prepared = PreparedMessage::new(payload(60_000));
        let mut a = Connection::open_server(config.clone());
        let mut b = Connection::open_server(config.clone());
        a.send(Message::Binary(payload(60_000).into())).unwrap();
        b.send_prepared(&prepared).unwrap();
        let (ra, rb) = (a.send(payload(60_000)), b.send_prepared(&prepared));
        assert_eq!(ra, rb);
        assert!(matches!(rb, Err(Error::OutputFull { limit: 100_000, .. })), "{rb:?}");
        assert_eq!(a.state(), b.state());
        assert_eq!(a.buffered_amount(), b.buffered_amount());
        match backpressure {
            Backpressure::Refuse => {
                assert_eq!(b.state(), ReadyState::Open);
                assert_eq!(b.buffered_amount(), prepared.frame().len());
            }
            Backpressure::Close => {
                // Given up (1008): output dropped, transport to close now.
                assert_eq!(b.state(), ReadyState::Closed);
                assert_eq!(b.buffered_amount(), 0);
                assert!(b.should_close_transport());
                assert!(matches!(
                    events(&mut b).first(),
                    Some(Event::Error(Failure::OutputFull { .. }))
                ));
            }
            _ => unreachable!(),
        }
    }
}

// RFC 6455 §5.5.3: a pong that waited behind other output is queued before
// the next frame, a prepared one too, as `send` does.
#[test]
fn a_waiting_pong_goes_first() {
    let prepared = PreparedMessage::new(payload(10_000));
    let mut wires = Vec::new();
    for use_prepared in [false, true] {
        let mut conn = server();
        conn.send("first").unwrap();
        conn.receive(&client_frame(true, OP_PING, b"p"));
        assert!(events(&mut conn).iter().all(|e| matches!(e, Event::Ping(_))));
        if use_prepared {
            conn.send_prepared(&prepared).unwrap();
        } else {
            conn.send(payload(10_000)).unwrap();
        }
        wires.push(take_output(&mut conn));
    }
    assert_eq!(wires[0], wires[1]);
    let frames = parse_frames(&wires[1]);
    let opcodes: Vec<u8> = frames.iter().map(|f| f.opcode).collect();
    assert_eq!(opcodes, [OP_TEXT, OP_PONG, OP_BINARY]);
}

// Issue 14's target: payload bytes copied per recipient = 0. One 64 KiB
// message queued on 1,000 server connections and written out: what the
// whole broadcast allocates stays far below one payload copy per recipient
// (a copy each would be 64 MiB), and every connection's output chunk is the
// prepared frame's memory.
#[test]
fn broadcast_copies_no_payload_per_recipient() {
    const RECIPIENTS: usize = 1000;
    const SIZE: usize = 64 << 10;
    let mut conns: Vec<Connection> = (0..RECIPIENTS).map(|_| server()).collect();
    let prepared = PreparedMessage::new(payload(SIZE));
    // One message first: every connection's output queue has its chunk list.
    for conn in &mut conns {
        conn.send_prepared(&prepared).unwrap();
        take_output(conn);
    }
    for round in 0..2 {
        let (count, bytes) = (
            alloc_count::count_this_thread(),
            alloc_count::bytes_allocated_this_thread(),
        );
        for conn in &mut conns {
            conn.send_prepared(&prepared).unwrap();
        }
        for conn in &conns {
            let chunk = conn.output_chunks().next().unwrap();
            assert_eq!(chunk.as_ptr(), prepared.frame().as_ptr());
            assert_eq!(chunk.len(), SIZE + 10); // the 64-bit length form
        }
        for conn in &mut conns {
            let n = conn.buffered_amount();
            conn.consume_output(n); // as a socket write
        }
        let allocations = alloc_count::count_this_thread() - count;
        let allocated = alloc_count::bytes_allocated_this_thread() - bytes;
        eprintln!(
            "round {round}: {RECIPIENTS} recipients × {SIZE} B: {allocations} allocations, {allocated} bytes allocated ({} B per recipient)",
            allocated / RECIPIENTS
        );
        // Zero, in steady state: no allocation at all.
        assert_eq!(allocated, 0);
        assert_eq!(allocations, 0);
    }
    // Against the per-connection encoding the same measure sees the copies.
    let bytes = alloc_count::bytes_allocated_this_thread();
    for conn in &mut conns {
        conn.send(&payload(SIZE)[..]).unwrap();
    }
    let copied = alloc_count::bytes_allocated_this_thread() - bytes;
    assert!(copied >= RECIPIENTS * SIZE, "{copied}");
}

#[cfg(feature = "deflate")]
mod deflate {
    use super::*;
    use flate2::{Decompress, FlushDecompress};
    use wsmachine::deflate::DeflateConfig;
    use wsmachine::{Accept, Compression};

    /// A connected pair that negotiated permessage-deflate, the server
    /// configured with `server`.
    fn pair(server: DeflateConfig) -> Pair {
        let request = client_request().deflate(DeflateConfig::default());
        let client = Connection::client_with_rng(request, Config::default(), rng(1)).unwrap();
        let mut p = Pair::with_client(client, Config::default());
        p.handshake(Accept::new().deflate(server));
        p.take_events();
        p
    }

    fn no_takeover() -> DeflateConfig {
        DeflateConfig {
            server_no_context_takeover: true,
            ..DeflateConfig::default()
        }
    }

    fn json(n: usize) -> String {
        let mut s = String::new();
        let mut i = 0;
        while s.len() < n {
            s.push_str(&format!(
                "{{\"id\":{i},\"user\":\"user{}\",\"action\":\"update\"}},",
                i % 17
            ));
            i += 1;
        }
        s.truncate(n);
        s
    }

    /// An independent inflater (flate2, raw deflate, 15-bit window) for one
    /// message compressed without context takeover: payload plus the tail
    /// RFC 7692 §7.2.2 appends.
    fn inflate(payload: &[u8]) -> Vec<u8> {
        let mut d = Decompress::new(false);
        let mut input = payload.to_vec();
        input.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]);
        let mut out = Vec::with_capacity(1 << 20);
        d.decompress_vec(&input, &mut out, FlushDecompress::Sync).unwrap();
        assert_eq!(d.total_in() as usize, input.len());
        out
    }

    // RFC 7692 §7.1.1.1: with server_no_context_takeover a message's
    // compressed form depends on nothing before it, so it is compressed
    // once and the same frame (the same memory) is queued on every such
    // peer; it is what `send` writes, an independent inflater and our
    // client both decode it.
    #[test]
    fn compressed_once_for_no_context_takeover_peers() {
        let text = json(20_000);
        let prepared = PreparedMessage::new(text.as_str());
        let mut pairs: Vec<Pair> = (0..3).map(|_| pair(no_takeover())).collect();
        assert!(pairs[0].server.deflate().unwrap().server_no_context_takeover);
        let mut reference = pair(no_takeover());
        let mut shared = None;
        for _ in 0..2 {
            reference.server.send(text.as_str()).unwrap();
            let expected = take_output(&mut reference.server);
            for p in &mut pairs {
                p.server.send_prepared(&prepared).unwrap();
                let chunk = p.server.output_chunks().next().unwrap();
                let ptr = chunk.as_ptr();
                assert_eq!(*shared.get_or_insert(ptr), ptr, "one compressed frame for all");
                let wire = p.server_to_client();
                assert_eq!(wire, expected, "the bytes `send` writes");
                let frames = parse_frames(&wire);
                assert_eq!(frames.len(), 1);
                assert_eq!(frames[0].rsv, 0b100, "RSV1: compressed (RFC 7692 §6)");
                assert!(frames[0].payload.len() < text.len() / 4);
                assert_eq!(inflate(&frames[0].payload), text.as_bytes());
                let (client, _) = p.take_events();
                assert_eq!(client, vec![super::text(&text)]);
            }
        }
        assert_ne!(shared.unwrap(), prepared.frame().as_ptr(), "not the uncompressed frame");
    }

    // With context takeover each compressed message depends on the ones
    // before it on that connection: the prepared message is compressed per
    // connection (as `send` would), between messages sent the normal way,
    // and the peer's stream stays decodable.
    #[test]
    fn context_takeover_peers_fall_back() {
        let text = json(5_000);
        let prepared = PreparedMessage::new(text.as_str());
        let (mut a, mut b) = (pair(DeflateConfig::default()), pair(DeflateConfig::default()));
        assert!(!b.server.deflate().unwrap().server_no_context_takeover);
        for round in 0..3 {
            a.server.send(text.as_str()).unwrap();
            b.server.send(text.as_str()).unwrap();
            a.server.send(text.as_str()).unwrap();
            b.server.send_prepared(&prepared).unwrap();
            assert_ne!(
                b.server.output_chunks().next().unwrap().as_ptr(),
                prepared.frame().as_ptr()
            );
            let (wa, wb) = (a.server_to_client(), b.server_to_client());
            assert_eq!(wa, wb, "round {round}");
            let frames = parse_frames(&wb);
            // The second message references the first (context takeover).
            if round == 0 {
                assert!(frames[1].payload.len() < frames[0].payload.len(), "{frames:?}");
            }
            let (client, _) = b.take_events();
            assert_eq!(client, vec![super::text(&text), super::text(&text)]);
        }
    }

    // One prepared message to a mixed room: no deflate, deflate without and
    // with context takeover, below and above the threshold, and
    // `Compression::Off`: everyone decodes what was sent.
    #[test]
    fn a_mixed_room() {
        for n in [10, 127, 128, 3000, 70_000] {
            let text = json(n);
            let prepared = PreparedMessage::new(text.as_str());
            let mut room = vec![Pair::connected(), pair(no_takeover()), pair(DeflateConfig::default())];
            for p in &mut room {
                p.server.send_prepared(&prepared).unwrap();
                p.server.send_prepared_with(&prepared, Compression::Off).unwrap();
                p.server.send_prepared_with(&prepared, Compression::On).unwrap();
                let frames = parse_frames(&p.server_to_client());
                assert_eq!(frames[1].rsv, 0, "Off: not compressed");
                assert_eq!(frames[1].payload, text.as_bytes());
                let (client, _) = p.take_events();
                assert_eq!(client, (0..3).map(|_| super::text(&text)).collect::<Vec<_>>(), "{n} B");
            }
        }
    }

    // Compressed once: queuing the message on 1,000 no-context-takeover
    // peers costs one compression, not 1,000 (a compressor alone is about
    // 256 KiB, and each compressed copy its size).
    #[test]
    fn one_compression_for_many_peers() {
        let text = json(64 << 10);
        let prepared = PreparedMessage::new(text.as_str());
        let mut room: Vec<Pair> = (0..200).map(|_| pair(no_takeover())).collect();
        let bytes = alloc_count::bytes_allocated_this_thread();
        for p in &mut room {
            p.server.send_prepared(&prepared).unwrap();
            let n = p.server.buffered_amount();
            p.server.consume_output(n);
        }
        let allocated = alloc_count::bytes_allocated_this_thread() - bytes;
        eprintln!("200 deflate peers × 64 KiB of JSON: {allocated} bytes allocated");
        // One compressor and one compressed frame, plus each connection's
        // chunk list: well under two compressors' worth.
        assert!(allocated < 1 << 20, "{allocated}");
        // Per connection (`send`): a compression each.
        let bytes = alloc_count::bytes_allocated_this_thread();
        for p in room.iter_mut().take(10) {
            p.server.send(text.as_str()).unwrap();
        }
        let per_connection = alloc_count::bytes_allocated_this_thread() - bytes;
        assert!(per_connection > 10 * (64 << 10), "{per_connection}");
    }
}

// Through the tokio driver: queued with `connection_mut()`, written by the
// stream's flush, received whole by our client on the other end.
#[cfg(feature = "tokio")]
#[tokio::test]
async fn through_the_tokio_driver() {
    use futures_util::{SinkExt, StreamExt};
    use wsmachine::tokio::WebSocketStream;
    let prepared = PreparedMessage::new(payload(70_000));
    let mut clients = Vec::new();
    let mut servers = Vec::new();
    for i in 0..3 {
        let (a, b) = tokio::io::duplex(16 << 10);
        servers.push(WebSocketStream::from_connection(server(), a));
        let client = Connection::open_client(Config::default(), rng(i));
        clients.push(WebSocketStream::from_connection(client, b));
    }
    let readers = tokio::spawn(async move {
        let mut got = Vec::new();
        for c in &mut clients {
            got.push(c.next().await.unwrap().unwrap());
        }
        got
    });
    for s in &mut servers {
        s.connection_mut().send_prepared(&prepared).unwrap();
    }
    for s in &mut servers {
        s.flush().await.unwrap();
    }
    let got = readers.await.unwrap();
    assert_eq!(got, (0..3).map(|_| binary(&payload(70_000))).collect::<Vec<_>>());
}
