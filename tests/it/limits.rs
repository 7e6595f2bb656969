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

// RFC 6455 §5.5.2/§5.5.3: a flood of pings whose pongs are never taken. An
// endpoint may answer only the most recent ping, so the machine keeps one
// automatic pong waiting behind the unwritten output and replaces its
// payload: 50,000 pings (6 MB of pongs before this rule) leave one pong
// queued and one waiting, whatever the output limit.
#[test]
fn ping_flood_with_output_never_taken() {
    let _g = SERIAL.lock().unwrap();
    let pings: Vec<u8> = (0..50_000u32)
        .flat_map(|i| wire::frame(0x9, true, 0, Some(KEY), format!("{i:0>125}").as_bytes()))
        .collect();
    let chunk = 64 << 10;
    let (mut conn, _events, peak) = feed(server(Config::default()), &pings, chunk);
    eprintln!("peak heap: {peak} bytes, output {} bytes", conn.buffered_amount());
    // The first pong went out at once; nothing else is queued.
    assert_eq!(conn.buffered_amount(), 2 + 125, "one pong queued");
    // One input chunk, twice while the buffer holding a partial ping grows.
    assert!(peak <= 2 * chunk + CONSTANT, "peak heap {peak} bytes");
    assert_eq!(conn.state(), ReadyState::Open);
    // Once the transport takes it, the waiting pong answers the latest ping.
    let first = take_all(&mut conn);
    assert_eq!(&first[2..], format!("{:0>125}", 0).as_bytes());
    let next = take_all(&mut conn);
    assert_eq!(next[..2], [0x8a, 125]);
    assert_eq!(&next[2..], format!("{:0>125}", 49_999).as_bytes());
    assert!(take_all(&mut conn).is_empty());
    // The application's sends are unaffected.
    conn.send(&[0; 1024]).unwrap();
    conn.close(CloseCode::NORMAL, "").unwrap();
    assert_eq!(conn.state(), ReadyState::Closing);
}

// RFC 6455 §5.5.3 with other output: a pong waiting behind queued output
// goes out before the next frame the application queues (so a steady
// sender never starves the peer's keepalive), answering the latest ping.
#[test]
fn waiting_pong_goes_before_the_next_frame() {
    let _g = SERIAL.lock().unwrap();
    let mut conn = Connection::open_server(Config::default());
    conn.send("queued").unwrap();
    for payload in [&b"one"[..], b"two"] {
        conn.receive(&wire::frame(0x9, true, 0, Some(KEY), payload));
        while conn.poll_event().is_some() {}
    }
    conn.send("next").unwrap();
    let mut expected = wire::frame(0x1, true, 0, None, b"queued");
    expected.extend(wire::frame(0xA, true, 0, None, b"two"));
    expected.extend(wire::frame(0x1, true, 0, None, b"next"));
    assert_eq!(take_all(&mut conn), expected);
}

// Nothing goes out after CLOSED (RFC 6455 §7.1.1: the connection is over): a
// pong waiting behind unwritten output when the transport ends is dropped.
// (A fuzz finding: the pong was queued once the output drained.)
#[test]
fn a_waiting_pong_is_dropped_at_closed() {
    let mut conn = Connection::open_server(Config::default());
    conn.send("queued").unwrap();
    conn.receive(&wire::frame(0x9, true, 0, Some(KEY), b"late"));
    conn.receive_eof();
    while conn.poll_event().is_some() {}
    assert_eq!(conn.state(), ReadyState::Closed);
    let queued = conn.buffered_amount();
    conn.consume_output(queued);
    assert_eq!(conn.buffered_amount(), 0, "no pong after CLOSED");
}

/// Everything queued, taken as written.
fn take_all(conn: &mut Connection) -> Vec<u8> {
    let out = conn.pending_output().to_vec();
    conn.consume_output(out.len());
    out
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

const UPGRADE: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

// RFC 6455 §4.1: a client waits for the server's response before sending
// data. While the application's decision is pending the server keeps at most
// `max_handshake_size` bytes of what came after the request head (frames it
// will read once it accepts); past that the connection fails with 400,
// instead of buffering without limit (100 MiB were taken before this rule).
#[test]
fn bytes_while_the_decision_is_pending_are_bounded() {
    let _g = SERIAL.lock().unwrap();
    let limit = Config::default().max_handshake_size;
    // Up to the limit: kept, and read after the accept.
    let mut conn = Connection::server(Config::default());
    conn.receive(UPGRADE);
    let Some(Event::Request(request)) = conn.poll_event() else {
        panic!("no request")
    };
    let early = wire::frame(0x2, true, 0, Some(KEY), &vec![7; limit - 8]);
    assert_eq!(early.len(), limit);
    conn.receive(&early);
    assert!(conn.poll_event().is_none());
    conn.accept(request, wsmachine::Accept::new()).unwrap();
    assert!(matches!(conn.poll_event(), Some(Event::Open { .. })));
    assert!(matches!(conn.poll_event(), Some(Event::Binary(b)) if b.len() == limit - 8));

    // Past it: 100 MiB offered in 64 KiB reads; the heap stays small.
    let chunk = vec![0u8; 64 << 10];
    let base = alloc_count::reset_peak_this_thread();
    let mut conn = Connection::server(Config::default());
    conn.receive(UPGRADE);
    let Some(Event::Request(request)) = conn.poll_event() else {
        panic!("no request")
    };
    for _ in 0..1600 {
        conn.receive(&chunk);
    }
    let peak = (alloc_count::peak_this_thread() - base) as usize;
    assert!(
        peak <= CONSTANT + limit,
        "peak heap {peak} bytes while the decision was pending"
    );
    let events: Vec<Event> = std::iter::from_fn(|| conn.poll_event()).collect();
    assert!(
        matches!(
            &events[..],
            [
                Event::Error(Failure::Handshake { error: wsmachine::HandshakeError::EarlyData { limit: l }, .. }),
                Event::Closed(_)
            ] if *l == limit
        ),
        "{events:?}"
    );
    let out = String::from_utf8(conn.pending_output().to_vec()).unwrap();
    assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
    // The decision comes too late, and says so.
    let err = conn.accept(request, wsmachine::Accept::new()).unwrap_err();
    assert_eq!(err.error, Error::NotOpen(ReadyState::Closed));
}

// A plain HTTP request is answered and the connection closed: what follows
// its head is never read, so none of it is kept while the answer is pending.
#[test]
fn bytes_after_a_plain_request_are_not_kept() {
    let _g = SERIAL.lock().unwrap();
    let chunk = vec![0u8; 64 << 10];
    let base = alloc_count::reset_peak_this_thread();
    let mut conn = Connection::server(Config::default());
    conn.receive(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 104857600\r\n\r\n");
    let Some(Event::HttpRequest(request)) = conn.poll_event() else {
        panic!("no request")
    };
    for _ in 0..1600 {
        conn.receive(&chunk);
        assert!(conn.poll_event().is_none());
    }
    let peak = (alloc_count::peak_this_thread() - base) as usize;
    assert!(peak <= CONSTANT, "peak heap {peak} bytes");
    conn.respond(request, wsmachine::HttpResponse::new(413)).unwrap();
    // The answer is all that is queued: none of the 100 MiB was kept.
    let out = String::from_utf8(conn.pending_output().to_vec()).unwrap();
    assert!(out.starts_with("HTTP/1.1 413 "), "{out}");
    assert!(out.len() < 512, "{} bytes queued", out.len());
}

// `Backpressure::Close` (the browser's `send()` when data cannot be
// buffered; uWebSockets' closeOnBackpressureLimit): a send that would pass
// `max_output_buffer` gives the connection up with 1008. The output is
// dropped, so the transport can be closed at once even though the peer
// reads nothing; the default (`Refuse`) keeps today's `OutputFull`.
#[test]
fn backpressure_close_gives_the_connection_up() {
    let _g = SERIAL.lock().unwrap();
    let cap = 64 << 10;
    let config = |backpressure| Config {
        max_output_buffer: cap,
        backpressure,
        ..Config::default()
    };
    let mut conn = Connection::open_server(config(wsmachine::Backpressure::Close));
    let message = vec![1u8; 10_000];
    let mut sent = 0;
    let err = loop {
        match conn.send(&message) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(sent, 6);
    assert!(matches!(err, Error::OutputFull { limit, .. } if limit == cap));
    let events: Vec<Event> = std::iter::from_fn(|| conn.poll_event()).collect();
    match &events[..] {
        [
            Event::Error(Failure::OutputFull { limit, buffered }),
            Event::Closed(info),
        ] => {
            assert_eq!((*limit, *buffered), (cap, 6 * 10_004));
            assert_eq!(info.code, CloseCode::POLICY_VIOLATION);
            assert!(!info.was_clean);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(conn.state(), ReadyState::Closed);
    assert_eq!(conn.buffered_amount(), 0, "the output is dropped");
    assert!(conn.should_close_transport(), "close the transport now");
    assert_eq!(conn.send(b"x"), Err(Error::NotOpen(ReadyState::Closed)));

    // The default refuses the send and goes on.
    let mut conn = Connection::open_server(config(wsmachine::Backpressure::Refuse));
    while conn.send(&message).is_ok() {}
    assert_eq!(conn.state(), ReadyState::Open);
    assert!(conn.poll_event().is_none());
    assert_eq!(conn.buffered_amount(), 6 * 10_004);
}
