//! permessage-deflate (RFC 7692) under a counting allocator: a
//! decompression bomb ends with 1009 before its memory is reserved, and the
//! memory a connection holds for each setting (window bits, context
//! takeover) is measured.

use crate::fuzz_harness::{alloc_count, wire};
use std::sync::Mutex;
use wsmachine::deflate::DeflateConfig;
use wsmachine::{Accept, Config, Connection, Event, Failure, ProtocolError, ReadyState};

/// The counters are per thread, so tests elsewhere in the binary do not
/// disturb a measurement; these cases still run one at a time, so their
/// large inputs are not in memory together.
static SERIAL: Mutex<()> = Mutex::new(());

const KEY: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

/// A request offering permessage-deflate with `offer`.
fn request(offer: &str) -> Vec<u8> {
    format!(
        "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: {offer}\r\n\r\n"
    )
    .into_bytes()
}

/// A server that accepted `offer` with `config`; its 101 is consumed.
fn server(config: Config, offer: &str, deflate: DeflateConfig) -> Connection {
    let mut conn = Connection::server(config);
    conn.receive(&request(offer));
    while let Some(e) = conn.poll_event() {
        if let Event::Request(pending) = e {
            conn.accept(pending, Accept::new().deflate(deflate.clone())).unwrap();
        }
    }
    conn.consume_output(conn.buffered_amount());
    assert!(conn.deflate().is_some(), "deflate negotiated");
    conn
}

/// `data` compressed as a permessage-deflate payload (raw deflate, sync
/// flush, tail removed) with a `bits`-bit window, by an independent
/// compressor.
fn compress(data: &[u8], bits: u8) -> Vec<u8> {
    let mut d = zlib_rs::Deflate::new(9, false, bits.max(9));
    let mut out = vec![0u8; data.len() + data.len() / 8 + 1024];
    let status = d.compress(data, &mut out, zlib_rs::DeflateFlush::SyncFlush).unwrap();
    assert_eq!(status, zlib_rs::Status::Ok);
    let n = d.total_out() as usize;
    out.truncate(n);
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(n - 4);
    out
}

// RFC 7692 §8 and the message limit: a ~1 KiB message that inflates to
// about 1 MiB, against a 256 KiB limit, fails with 1009 while the heap
// stays under the limit plus a constant (the inflater's state and window,
// the machine's buffers): the memory for the inflated bytes past the limit
// is never reserved.
#[test]
fn decompression_bomb_ends_with_1009_before_the_memory_is_reserved() {
    let _g = SERIAL.lock().unwrap();
    const LIMIT: usize = 256 << 10;
    const CONSTANT: usize = 128 << 10;
    let bomb = compress(&vec![0u8; 1 << 20], 15);
    eprintln!("bomb: {} compressed bytes inflate to {} bytes", bomb.len(), 1 << 20);
    assert!(bomb.len() <= 1100, "{}", bomb.len());
    let frame = wire::frame(0x2, true, 0b100, Some(KEY), &bomb);
    for chunk in [frame.len(), 100, 1] {
        let config = Config {
            max_message_size: LIMIT,
            ..Config::default()
        };
        let base = alloc_count::reset_peak_this_thread();
        let mut conn = server(config, "permessage-deflate", DeflateConfig::default());
        let mut events = Vec::new();
        for piece in frame.chunks(chunk) {
            conn.receive(piece);
            while let Some(e) = conn.poll_event() {
                events.push(e);
            }
        }
        let peak = (alloc_count::peak_this_thread() - base) as usize;
        eprintln!("chunks of {chunk}: peak heap {peak} bytes (limit {LIMIT})");
        assert!(peak < LIMIT + CONSTANT, "peak heap {peak} bytes");
        assert!(
            matches!(
                events.first(),
                Some(Event::Error(Failure::Protocol(ProtocolError::MessageTooLarge { len, limit: LIMIT })))
                    if *len as usize == LIMIT + 1
            ),
            "{events:?}"
        );
        assert_eq!(conn.state(), ReadyState::Closed);
        let out: Vec<u8> = conn.output_chunks().flatten().copied().collect();
        // The close frame (RFC 6455 §7.4.1): 1009.
        assert_eq!(out[0], 0x88);
        assert_eq!(u16::from_be_bytes([out[2], out[3]]), 1009);
    }
}

// The same bomb split over many continuation frames, and in streaming mode:
// still 1009, memory still bounded.
#[test]
fn decompression_bomb_in_fragments_and_streaming() {
    let _g = SERIAL.lock().unwrap();
    const LIMIT: usize = 256 << 10;
    const CONSTANT: usize = 128 << 10;
    let bomb = compress(&vec![b'a'; 4 << 20], 15);
    let mut input = Vec::new();
    let pieces: Vec<&[u8]> = bomb.chunks(64).collect();
    for (i, p) in pieces.iter().enumerate() {
        let opcode = if i == 0 { 0x1 } else { 0x0 };
        let rsv = if i == 0 { 0b100 } else { 0 };
        input.extend(wire::frame(opcode, i + 1 == pieces.len(), rsv, Some(KEY), p));
    }
    for streaming in [false, true] {
        let config = Config {
            max_message_size: LIMIT,
            streaming,
            ..Config::default()
        };
        let base = alloc_count::reset_peak_this_thread();
        let mut conn = server(config, "permessage-deflate", DeflateConfig::default());
        let mut error = None;
        let mut delivered = 0;
        for piece in input.chunks(512) {
            conn.receive(piece);
            while let Some(e) = conn.poll_event() {
                match e {
                    Event::Fragment(f) => delivered += f.data.len(),
                    Event::Error(e) => error = Some(e),
                    _ => {}
                }
            }
        }
        let peak = (alloc_count::peak_this_thread() - base) as usize;
        eprintln!("streaming {streaming}: peak heap {peak} bytes, {delivered} bytes delivered");
        assert!(peak < LIMIT + CONSTANT, "peak heap {peak} bytes");
        assert!(delivered <= LIMIT);
        assert!(
            matches!(error, Some(Failure::Protocol(ProtocolError::MessageTooLarge { .. }))),
            "{error:?}"
        );
    }
}

/// Heap held by a server connection that negotiated `offer`/`deflate`, after
/// it received one compressed message and sent one: (while idle, peak).
fn footprint(offer: &str, deflate: DeflateConfig, bits_in: u8) -> (usize, usize) {
    let text: String = (0..400)
        .map(|i| format!("{{\"id\":{i},\"name\":\"user{}\",\"ok\":true}},", i % 13))
        .collect();
    let frame = wire::frame(0x1, true, 0b100, Some(KEY), &compress(text.as_bytes(), bits_in));
    let before = alloc_count::bytes_this_thread();
    let base = alloc_count::reset_peak_this_thread();
    let mut conn = server(Config::default(), offer, deflate);
    conn.receive(&frame);
    let mut got = None;
    while let Some(e) = conn.poll_event() {
        if let Event::Text(t) = e {
            got = Some(t);
        }
    }
    let got = got.expect("the message");
    assert_eq!(got.as_str(), text);
    conn.send(got.as_str()).unwrap();
    drop(got);
    conn.consume_output(conn.buffered_amount());
    let peak = (alloc_count::peak_this_thread() - base) as usize;
    let held = (alloc_count::bytes_this_thread() - before) as usize + std::mem::size_of::<Connection>();
    let no_takeover = conn
        .deflate()
        .is_some_and(|p| p.server_no_context_takeover && p.client_no_context_takeover);
    assert_eq!(conn.deflate_state_allocated(), (!no_takeover, !no_takeover));
    drop(conn);
    (held, peak)
}

// The per-connection cost of each setting (README): window bits 8..=15 with
// and without context takeover. Without takeover both halves are freed
// after every message, so an idle connection holds no deflate state.
#[test]
fn memory_per_setting() {
    let _g = SERIAL.lock().unwrap();
    eprintln!("| window bits | context takeover | held while idle | peak while busy |");
    eprintln!("|---|---|---|---|");
    let mut rows = Vec::new();
    for bits in (8..=15u8).rev() {
        for takeover in [true, false] {
            let config = DeflateConfig {
                server_max_window_bits: bits,
                client_max_window_bits: bits,
                server_no_context_takeover: !takeover,
                client_no_context_takeover: !takeover,
                ..DeflateConfig::default()
            };
            let offer = "permessage-deflate; client_max_window_bits";
            let (held, peak) = footprint(offer, config, bits);
            eprintln!(
                "| {bits} | {} | {:.1} KiB | {:.1} KiB |",
                if takeover { "yes" } else { "no" },
                held as f64 / 1024.0,
                peak as f64 / 1024.0
            );
            rows.push((bits, takeover, held, peak));
        }
    }
    let (plain_held, _) = {
        // The same connection without deflate, for reference.
        let before = alloc_count::bytes_this_thread();
        let mut conn = Connection::server(Config::default());
        conn.receive(&request("x-none"));
        while let Some(e) = conn.poll_event() {
            if let Event::Request(pending) = e {
                conn.accept(pending, Accept::new()).unwrap();
            }
        }
        conn.consume_output(conn.buffered_amount());
        let held = (alloc_count::bytes_this_thread() - before) as usize + std::mem::size_of::<Connection>();
        drop(conn);
        (held, 0)
    };
    eprintln!("without deflate: {plain_held} bytes");
    for (bits, takeover, held, peak) in rows {
        if takeover {
            // Compressor and decompressor stay: zlib-rs's tables (a fixed
            // 128 KiB hash head, 4 bytes per window byte, 80 KiB of pending
            // symbols) plus the inflate window.
            assert!(held < 480 << 10, "bits {bits}: {held}");
        } else {
            // Nothing of the codec is kept between messages: what is held is
            // the connection plus the retained capacity of its receive and
            // output buffers.
            assert!(held < plain_held + (4 << 10), "bits {bits}: {held} vs {plain_held}");
        }
        assert!(peak < 512 << 10, "bits {bits}: peak {peak}");
    }
}
