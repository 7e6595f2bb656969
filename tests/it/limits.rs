//! Hard limits under hostile input, measured with a counting allocator: the
//! peak heap while the machine is fed stays within the configured limits
//! plus a small constant, and each case ends with the right close code or
//! error.

use crate::fuzz_harness::{alloc_count, wire};
use std::sync::Mutex;
use wsmachine::{CloseCode, Config, Connection, Error, Event, Failure, ProtocolError, ReadyState};

/// The counters are per thread, so tests elsewhere in the binary do not
/// disturb a measurement; these cases still run one at a time, so their
/// large inputs are not in memory together.
static SERIAL: Mutex<()> = Mutex::new(());

/// Slack for the machine's own fixed allocations (event queue, small buffers).
const CONSTANT: usize = 64 << 10;

const KEY: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

/// Feeds `input` in `chunk`-byte pieces, draining events after each, and
/// returns (events, peak heap above the level before the machine existed).
fn feed(make: impl FnOnce() -> Connection, input: &[u8], chunk: usize) -> (Connection, Vec<Event>, usize) {
    let base = alloc_count::reset_peak_this_thread();
    let mut conn = make();
    let mut events = Vec::new();
    for piece in input.chunks(chunk) {
        conn.receive(piece);
        while let Some(e) = conn.poll_event() {
            // Keep only the small events; payloads are dropped at once.
            if !matches!(e, Event::Ping(_) | Event::Text(_) | Event::Binary(_)) {
                events.push(e);
            }
        }
    }
    let peak = (alloc_count::peak_this_thread() - base) as usize;
    (conn, events, peak)
}

/// The close code of the (last) close frame a server emitted.
fn close_code_sent(conn: &mut Connection) -> Option<u16> {
    let mut out = Vec::new();
    for c in conn.output_chunks() {
        out.extend_from_slice(c);
    }
    conn.consume_output(conn.buffered_amount());
    let pos = out
        .windows(2)
        .rposition(|w| w[0] == 0x88 && (2..=125).contains(&w[1]))?;
    Some(u16::from_be_bytes([out[pos + 2], out[pos + 3]]))
}

fn server(config: Config) -> impl FnOnce() -> Connection {
    move || Connection::open_server(config)
}

// RFC 6455 §5.2 / §7.4.1: a header announcing 2^63-1 bytes is refused with
// 1009 before any memory is reserved for the payload.
#[test]
fn header_announcing_2_pow_63_minus_1() {
    let _g = SERIAL.lock().unwrap();
    let mut input = vec![0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
    input.extend_from_slice(&KEY);
    input.extend_from_slice(&[0u8; 4096]);
    let (mut conn, events, peak) = feed(server(Config::default()), &input, 1);
    eprintln!("peak heap: {peak} bytes");
    assert!(peak < CONSTANT, "peak heap {peak} bytes");
    assert!(matches!(
        events.first(),
        Some(Event::Error(Failure::Protocol(ProtocolError::FrameTooLarge { len, .. }))) if *len == (1 << 63) - 1
    ));
    assert_eq!(conn.state(), ReadyState::Closed);
    assert_eq!(close_code_sent(&mut conn), Some(1009));
}

// RFC 6455 §5.4: one message in 100,000 one-byte fragments is received whole;
// memory stays within the message size (plus growth slack) and a constant.
#[test]
fn hundred_thousand_tiny_fragments() {
    let _g = SERIAL.lock().unwrap();
    let n = 100_000;
    let mut input = Vec::with_capacity(n * 7);
    for i in 0..n {
        let op = if i == 0 { 0x2 } else { 0x0 };
        input.extend(wire::frame(op, i == n - 1, 0, Some(KEY), b"x"));
    }
    let base = alloc_count::reset_peak_this_thread();
    let mut conn = server(Config::default())();
    let mut got = None;
    for piece in input.chunks(4096) {
        conn.receive(piece);
        while let Some(e) = conn.poll_event() {
            if let Event::Binary(b) = e {
                got = Some(b.len());
            }
        }
    }
    let peak = (alloc_count::peak_this_thread() - base) as usize;
    assert_eq!(got, Some(n));
    // The assembled message (capacity doubling: at most 2x) plus the input chunk.
    eprintln!("peak heap: {peak} bytes");
    assert!(
        peak <= 2 * n + CONSTANT,
        "peak heap {peak} bytes for a {n}-byte message"
    );
    assert_eq!(conn.state(), ReadyState::Open);

    // The same with a message limit below it: 1009 when the sum passes the limit.
    let limit = 50_000;
    let (mut conn, events, peak) = feed(
        server(Config {
            max_message_size: limit,
            ..Config::default()
        }),
        &input,
        4096,
    );
    eprintln!("peak heap: {peak} bytes");
    assert!(peak <= 2 * limit + CONSTANT, "peak heap {peak} bytes");
    assert!(matches!(
        events.first(),
        Some(Event::Error(Failure::Protocol(ProtocolError::MessageTooLarge { len, limit: l }))) if *len == limit as u64 + 1 && *l == limit
    ));
    assert_eq!(close_code_sent(&mut conn), Some(1009));
}

// A message one byte over the limit: in one frame it fails at the header
// (nothing buffered); in two frames it fails at the second header.
#[test]
fn message_just_over_the_limit() {
    let _g = SERIAL.lock().unwrap();
    let limit = 1 << 20;
    let config = Config {
        max_message_size: limit,
        max_frame_size: limit + 1,
        ..Config::default()
    };
    let body = vec![7u8; limit + 1];
    let one = wire::frame(0x2, true, 0, Some(KEY), &body);
    let (mut conn, events, peak) = feed(server(config.clone()), &one, 16 << 10);
    eprintln!("peak heap: {peak} bytes");
    assert!(peak < CONSTANT, "one frame: peak heap {peak} bytes");
    assert!(matches!(
        events.first(),
        Some(Event::Error(Failure::Protocol(ProtocolError::MessageTooLarge { .. })))
    ));
    assert_eq!(close_code_sent(&mut conn), Some(1009));

    let mut two = wire::frame(0x2, false, 0, Some(KEY), &body[..limit / 2 + 1]);
    two.extend(wire::frame(0x0, true, 0, Some(KEY), &body[limit / 2 + 1..]));
    let (mut conn, events, peak) = feed(server(config), &two, 16 << 10);
    eprintln!("peak heap: {peak} bytes");
    assert!(peak <= limit + CONSTANT, "two frames: peak heap {peak} bytes");
    assert!(matches!(
        events.first(),
        Some(Event::Error(Failure::Protocol(ProtocolError::MessageTooLarge { .. })))
    ));
    assert_eq!(close_code_sent(&mut conn), Some(1009));
}

// RFC 6455 §4.2.1 and the head limit: bytes trickling forever without the
// blank line end with 431 once the limit is passed; memory stays bounded.
#[test]
fn handshake_that_never_ends() {
    let _g = SERIAL.lock().unwrap();
    let mut input = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    while input.len() < 1 << 20 {
        input.extend_from_slice(b"X-Trickle: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    let limit = Config::default().max_handshake_size;
    let (conn, events, peak) = feed(|| Connection::server(Config::default()), &input, 7);
    eprintln!("peak heap: {peak} bytes");
    assert!(peak <= 2 * limit + CONSTANT, "peak heap {peak} bytes");
    assert!(matches!(
        events.first(),
        Some(Event::Error(Failure::Handshake { error: wsmachine::HandshakeError::TooLarge { limit: l }, .. })) if *l == limit
    ));
    assert_eq!(conn.state(), ReadyState::Closed);
    let out = conn.pending_output();
    assert!(out.starts_with(b"HTTP/1.1 431 "));
}

// RFC 6455 §5.5.2/§5.5.3: a flood of pings whose pongs are never taken. The
// output stays under `max_output_buffer` (later pongs are dropped, which
// §5.5.3 allows), and the application's next send fails with OutputFull.
#[test]
fn ping_flood_with_output_never_taken() {
    let _g = SERIAL.lock().unwrap();
    let cap = 256 << 10;
    let config = Config {
        max_output_buffer: cap,
        ..Config::default()
    };
    let ping = wire::frame(0x9, true, 0, Some(KEY), &[b'p'; 125]);
    let input: Vec<u8> = ping.iter().copied().cycle().take(ping.len() * 50_000).collect();
    let chunk = 64 << 10;
    let (mut conn, _events, peak) = feed(server(config), &input, chunk);
    assert!(
        conn.buffered_amount() <= cap,
        "output {} over the cap",
        conn.buffered_amount()
    );
    // The output buffer (growth doubles its capacity) and one input chunk.
    eprintln!("peak heap: {peak} bytes");
    assert!(peak <= 2 * cap + chunk + CONSTANT, "peak heap {peak} bytes");
    assert_eq!(conn.state(), ReadyState::Open);
    assert!(matches!(conn.send(&[0; 1024]), Err(Error::OutputFull { limit, .. }) if limit == cap));
    // A close still goes out, so the connection can end.
    conn.close(CloseCode::POLICY_VIOLATION, "not reading").unwrap();
    assert_eq!(conn.state(), ReadyState::Closing);
}

// Limits set to "unlimited" must not turn a huge announced length into a huge
// (or impossible) reservation: a header announcing 2^63-1 bytes is accepted as
// the start of a frame, and only a bounded amount of memory is reserved.
#[test]
fn unlimited_limits_and_a_2_pow_63_header() {
    let _g = SERIAL.lock().unwrap();
    let config = Config {
        max_frame_size: usize::MAX,
        max_message_size: usize::MAX,
        ..Config::default()
    };
    let mut input = vec![0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
    input.extend_from_slice(&KEY);
    input.extend_from_slice(&[0u8; 4096]);
    let (conn, events, peak) = feed(server(config), &input, 4096);
    eprintln!("peak heap: {peak} bytes");
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(conn.state(), ReadyState::Open);
    // At most the reservation cap (16 MiB) plus the input chunk.
    assert!(peak <= (16 << 20) + (64 << 10), "peak heap {peak} bytes");
}
