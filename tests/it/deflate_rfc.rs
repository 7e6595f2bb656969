//! permessage-deflate decoding exactly as RFC 7692 §7.2 says: the examples
//! of §7.2.3 byte for byte, blocks with BFINAL set (the deflate stream ends,
//! the LZ77 window does not), messages cut short (not on a block boundary
//! once 0x00 0x00 0xff 0xff is appended: 1007), and streams from an
//! independent compressor (flate2, sync and final flushes) that must round
//! trip for every window size, with and without context takeover.

use crate::util::*;
use flate2::{Compress, Compression, FlushCompress};
use proptest::prelude::*;
use wsmachine::deflate::DeflateConfig;
use wsmachine::{Accept, Config, Connection, Event, ProtocolError, ReadyState};

/// A client and a server that agreed on permessage-deflate with the server
/// compressing with `bits` and, if `no_takeover`, resetting after every
/// message; the Open events are taken.
fn pair_with(bits: u8, no_takeover: bool, client_config: Config) -> Pair {
    let config = DeflateConfig {
        server_max_window_bits: bits,
        server_no_context_takeover: no_takeover,
        ..DeflateConfig::default()
    };
    let request = client_request().deflate(config.clone());
    let client = Connection::client_with_rng(request, client_config, rng(1)).unwrap();
    let mut p = Pair::with_client(client, Config::default());
    p.handshake(Accept::new().deflate(config));
    let params = p.client.deflate().expect("deflate agreed");
    assert_eq!(
        (params.server_max_window_bits, params.server_no_context_takeover),
        (bits, no_takeover)
    );
    p.take_events();
    p
}

fn pair() -> Pair {
    pair_with(15, false, Config::default())
}

/// A compressed (RSV1) server frame.
fn compressed(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame(fin, 0b100, opcode, None, payload)
}

fn invalid() -> Vec<Event> {
    failed(ProtocolError::InvalidCompressedData)
}

/// "Hello" in a fixed Huffman block with BFINAL set, then the header octet
/// of an empty stored block (RFC 7692 §7.2.3.4).
const HELLO_FINAL: [u8; 8] = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
/// "Hello" as one back-reference into the window (RFC 7692 §7.2.3.2).
const HELLO_AGAIN: [u8; 5] = [0xf2, 0x00, 0x11, 0x00, 0x00];

// RFC 7692 §7.2.3.4, §7.2.2: a message flushed with a BFINAL block, then a
// second message that refers back to it under context takeover. The final
// block ends the deflate stream, not the window: the window is the history
// of all the uncompressed output of the previous messages. Fed all at once
// and one byte at a time.
#[test]
fn final_block_then_a_reference_to_it() {
    let bytes = [
        compressed(true, OP_TEXT, &HELLO_FINAL),
        compressed(true, OP_TEXT, &HELLO_AGAIN),
    ]
    .concat();
    for pattern in [&[][..], &[1], &[3, 1, 2]] {
        let mut p = pair();
        assert_eq!(
            feed_chunked(&mut p.client, &bytes, pattern),
            [text("Hello"), text("Hello")],
            "{pattern:?}"
        );
        assert_eq!(p.client.state(), ReadyState::Open);
    }
    // The same from a client to a server (masked), in fragments.
    let mut p = pair_with(15, false, Config::default());
    let bytes = [
        raw_frame(false, 0b100, OP_TEXT, Some(KEY), &HELLO_FINAL[..3]),
        raw_frame(true, 0, OP_CONT, Some(KEY), &HELLO_FINAL[3..]),
        raw_frame(true, 0b100, OP_TEXT, Some(KEY), &HELLO_AGAIN),
    ]
    .concat();
    assert_eq!(feed(&mut p.server, &bytes), [text("Hello"), text("Hello")]);
}

// RFC 7692 §7.2.1: "The next DEFLATE block follows the padded data" of a
// block with BFINAL set. Inside one message a new deflate stream may start
// after it, at the next octet, sharing the window (§7.2.2).
#[test]
fn new_stream_after_a_final_block_in_the_same_message() {
    // "Hello" (final, without the stored header) then "Hello" by reference.
    let mut payload = HELLO_FINAL[..7].to_vec();
    payload.extend_from_slice(&HELLO_AGAIN);
    let mut p = pair();
    assert_eq!(
        feed(&mut p.client, &compressed(true, OP_TEXT, &payload)),
        [text("HelloHello")]
    );
    // Several final flushes by flate2, each stream compressed on its own.
    let parts = ["first part, first part; ", "second part, second part; ", "third"];
    let mut payload = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        payload.extend(deflate_raw(
            part.as_bytes(),
            15,
            if last { Flush::Sync } else { Flush::Final },
        ));
    }
    payload.truncate(payload.len() - 4);
    for pattern in [&[][..], &[1], &[7]] {
        let mut p = pair();
        let evs = feed_chunked(&mut p.client, &compressed(true, OP_TEXT, &payload), pattern);
        assert_eq!(evs, [text(&parts.concat())], "{pattern:?}");
    }
}

// RFC 7692 §7.2.2 with RFC 1951 §3.2.3: after a final block the rest of the
// message is decoded as deflate blocks too; octets that are not (here a
// reserved block type) fail the connection with 1007 instead of being
// dropped.
#[test]
fn garbage_after_a_final_block_is_invalid() {
    let mut payload = HELLO_FINAL[..7].to_vec();
    payload.extend_from_slice(&[0xff, 0xff]);
    let mut p = pair();
    assert_eq!(feed(&mut p.client, &compressed(true, OP_TEXT, &payload)), invalid());
    assert_eq!(single_close_code(&mut p.client), Some(1007));
}

// RFC 7692 §7.2.3.5: "Hello" in two blocks in one message.
#[test]
fn rfc_two_blocks_in_one_message() {
    let payload = [
        0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
    ];
    let mut p = pair();
    let frame = compressed(true, OP_TEXT, &payload);
    assert_eq!(frame[..2], [0xc1, 0x0d]);
    assert_eq!(feed_chunked(&mut p.client, &frame, &[1]), [text("Hello")]);
}

// RFC 7692 §7.2.3.6: an empty last fragment is sent as 0x00 (an empty stored
// block's header; the tail completes it); a message of just 0x00 is empty.
#[test]
fn rfc_empty_fragment() {
    let mut p = pair();
    let bytes = [
        compressed(
            false,
            OP_TEXT,
            &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x00, 0xff, 0xff],
        ),
        raw_frame(true, 0, OP_CONT, None, &[0x00]),
        compressed(true, OP_TEXT, &[0x00]),
    ]
    .concat();
    assert_eq!(feed(&mut p.client, &bytes), [text("Hello"), text("")]);
}

// RFC 7692 §7.2.2: the payload with the tail appended must end on a block
// boundary. A message cut short anywhere else fails with 1007 and is never
// delivered, with characters missing or invented. The text is compressed by
// flate2 in pieces, each one block and a sync flush, so the only boundaries
// are the flush points (cut 4 octets before each flush ends) and the end.
#[test]
fn messages_cut_short_fail_with_1007() {
    let text_bytes = sample_text(6000);
    let pieces: Vec<&[u8]> = text_bytes.chunks(900).collect();
    let mut compress = Compress::new_with_window_bits(Compression::new(6), false, 15);
    let mut payload = Vec::new();
    // (cut, what the message holds when cut there)
    let mut boundaries = Vec::new();
    let mut plain = 0;
    for piece in &pieces {
        payload.extend(flush(&mut compress, piece, Flush::Sync));
        plain += piece.len();
        assert!(payload.ends_with(&[0, 0, 0xff, 0xff]));
        boundaries.push((payload.len() - 4, plain));
    }
    payload.truncate(payload.len() - 4);
    assert!(payload.len() > 1000, "{}", payload.len());
    let mut delivered = 0;
    for cut in 0..=payload.len() {
        let mut p = pair();
        let evs = feed(&mut p.client, &compressed(true, OP_TEXT, &payload[..cut]));
        match boundaries.iter().find(|(at, _)| *at == cut) {
            Some(&(_, plain)) => {
                let expected = std::str::from_utf8(&text_bytes[..plain]).unwrap();
                assert_eq!(evs, [text(expected)], "cut at {cut}");
                delivered += 1;
            }
            None => {
                assert_eq!(evs, invalid(), "cut at {cut} of {}", payload.len());
                assert_eq!(single_close_code(&mut p.client), Some(1007));
            }
        }
    }
    assert_eq!(delivered, pieces.len());

    // Streaming mode, one byte at a time: what was handed out before the end
    // never becomes a complete message.
    let streaming = Config {
        streaming: true,
        ..Config::default()
    };
    for cut in (1..payload.len()).step_by(37) {
        if boundaries.iter().any(|(at, _)| *at == cut) {
            continue;
        }
        let mut p = pair_with(15, false, streaming.clone());
        let evs = feed_chunked(&mut p.client, &compressed(true, OP_TEXT, &payload[..cut]), &[1]);
        assert!(
            !evs.iter().any(|e| matches!(e, Event::Fragment(f) if f.fin)),
            "cut at {cut}: {evs:?}"
        );
        assert_eq!(evs[evs.len() - 2..], invalid(), "cut at {cut}");
    }
}

// RFC 7692 §7.2.2: a message cut after a complete sync flush (the tail not
// removed, or a fragment's end taken for the message's) leaves the appended
// tail without its block header: 1007, like any other cut.
#[test]
fn a_message_ending_in_the_flush_tail_is_cut_short() {
    let mut payload = deflate_raw(b"Hello, Hello, Hello", 15, Flush::Sync);
    assert!(payload.ends_with(&[0, 0, 0xff, 0xff]));
    let mut p = pair();
    assert_eq!(feed(&mut p.client, &compressed(true, OP_TEXT, &payload)), invalid());
    // Without the tail it is fine.
    payload.truncate(payload.len() - 4);
    let mut p = pair();
    assert_eq!(
        feed(&mut p.client, &compressed(true, OP_TEXT, &payload)),
        [text("Hello, Hello, Hello")]
    );
    // An empty payload is no block at all (a conforming sender writes 0x00,
    // §7.2.3.6).
    let mut p = pair();
    assert_eq!(feed(&mut p.client, &compressed(true, OP_BINARY, &[])), invalid());
}

/// How a compressed piece ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flush {
    /// A sync flush: the output ends with an empty stored block (0x00 0x00
    /// 0xff 0xff on an octet boundary).
    Sync,
    /// A block with BFINAL set, then the empty stored block RFC 7692 §7.2.1
    /// appends because the data does not end with one (the block header in
    /// one octet, then 0x00 0x00 0xff 0xff).
    Final,
}

/// Compresses `data` with `compress`, ending as `how` says; the output
/// always ends with 0x00 0x00 0xff 0xff. After a final flush the compressor
/// starts a new stream (and forgets its window).
fn flush(compress: &mut Compress, data: &[u8], how: Flush) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 1024);
    let mode = match how {
        Flush::Sync => FlushCompress::Sync,
        Flush::Final => FlushCompress::Finish,
    };
    let start_in = compress.total_in();
    loop {
        let done = (compress.total_in() - start_in) as usize;
        if out.len() == out.capacity() {
            out.reserve(out.capacity());
        }
        let status = compress.compress_vec(&data[done..], &mut out, mode).unwrap();
        let done = (compress.total_in() - start_in) as usize;
        if done == data.len() && out.len() < out.capacity() {
            if how == Flush::Final {
                assert_eq!(status, flate2::Status::StreamEnd);
            }
            break;
        }
    }
    // RFC 7692 §7.2.1: data that does not end with an empty stored block
    // gets one: after a final block, or when a sync flush right after
    // another wrote nothing (§7.2.3.6).
    if how == Flush::Final || out.is_empty() {
        out.extend_from_slice(&[0x00, 0x00, 0x00, 0xff, 0xff]);
    }
    if how == Flush::Final {
        compress.reset();
    }
    out
}

/// `data` compressed by a fresh flate2 raw deflate compressor with a
/// `bits`-bit window (zlib opens 8 as 9).
fn deflate_raw(data: &[u8], bits: u8, how: Flush) -> Vec<u8> {
    let mut compress = Compress::new_with_window_bits(Compression::new(6), false, bits.max(9));
    flush(&mut compress, data, how)
}

/// ASCII text of `n` bytes that compresses with matches at many distances.
fn sample_text(n: usize) -> Vec<u8> {
    let words = [
        "deflate", "window", "block", "boundary", "final", "sync", "tail", "octet",
    ];
    let mut s = String::new();
    let mut x = 7u32;
    while s.len() < n {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        s.push_str(words[(x >> 16) as usize % words.len()]);
        s.push(if x % 5 == 0 { '\n' } else { ' ' });
    }
    s.truncate(n);
    s.into_bytes()
}

/// One message of the property: its bytes, whether it is text, how the
/// sender flushes it, and where its payload is split into frames.
#[derive(Clone, Debug)]
struct Msg {
    data: Vec<u8>,
    text: bool,
    flush: Flush,
    splits: Vec<prop::sample::Index>,
}

fn arb_msg() -> impl Strategy<Value = Msg> {
    let data = prop_oneof![
        // Compressible: words from a small alphabet, so matches reach back
        // across messages.
        proptest::collection::vec(prop::sample::select(b"abcdefgh \n".to_vec()), 0..3000),
        // Incompressible bytes: stored blocks.
        proptest::collection::vec(any::<u8>(), 0..1500),
        // Long runs: matches of length 258 at distance 1.
        (any::<u8>(), 0usize..5000).prop_map(|(b, n)| vec![b; n]),
    ];
    (
        data,
        any::<bool>(),
        prop_oneof![4 => Just(Flush::Sync), 1 => Just(Flush::Final)],
        proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
    )
        .prop_map(|(data, text, flush, splits)| Msg {
            // Text must be UTF-8: keep the ASCII.
            text: text && data.is_ascii(),
            data,
            flush,
            splits,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    // RFC 7692 §7.2.1, §7.2.2, §7.1.1, §7.1.2: messages compressed by flate2
    // (sync or final flushes, window bits 8..=15, with and without context
    // takeover), split into frames and fed in arbitrary chunks, inflate to
    // what was sent, in order.
    #[test]
    fn independent_compressor_round_trips(
        bits in 8u8..=15,
        no_takeover in any::<bool>(),
        msgs in proptest::collection::vec(arb_msg(), 1..6),
        chunking in proptest::collection::vec(1usize..700, 0..4),
    ) {
        let mut p = pair_with(bits, no_takeover, Config::default());
        let mut compress = Compress::new_with_window_bits(Compression::new(6), false, bits.max(9));
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for m in &msgs {
            if no_takeover {
                compress.reset();
            }
            let mut payload = flush(&mut compress, &m.data, m.flush);
            payload.truncate(payload.len() - 4);
            let mut cuts: Vec<usize> = m.splits.iter().map(|i| i.index(payload.len() + 1)).collect();
            cuts.sort_unstable();
            cuts.push(payload.len());
            let opcode = if m.text { OP_TEXT } else { OP_BINARY };
            let mut from = 0;
            for (i, &to) in cuts.iter().enumerate() {
                let first = i == 0;
                let fin = i + 1 == cuts.len();
                let (rsv, op) = if first { (0b100, opcode) } else { (0, OP_CONT) };
                wire.extend(raw_frame(fin, rsv, op, None, &payload[from..to]));
                from = to;
            }
            expected.push(if m.text {
                text(std::str::from_utf8(&m.data).unwrap())
            } else {
                binary(&m.data)
            });
        }
        let evs = feed_chunked(&mut p.client, &wire, &chunking);
        prop_assert_eq!(evs, expected);
        prop_assert_eq!(p.client.state(), ReadyState::Open);
        // RFC 7692 §7.1.1: under no context takeover nothing is held between messages.
        prop_assert_eq!(p.client.deflate_state_allocated().1, !no_takeover);
    }
}
