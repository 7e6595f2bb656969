//! Allocation behaviour, measured with a counting allocator: no heap
//! allocation per message in steady state (unfragmented receive, and send),
//! the footprint of an idle OPEN connection, and `shrink_buffers`.

use crate::fuzz_harness::wire::open_role;
use crate::fuzz_harness::{alloc_count, wire};
use std::hint::black_box;
use std::sync::Mutex;
use wsmachine::rng::ChaCha20Rng;
use wsmachine::{Accept, Config, Connection, Event, Message, Role};

static SERIAL: Mutex<()> = Mutex::new(());

fn server() -> Connection {
    Connection::open_server(Config::default())
}

/// Allocations made by `f` run `n` times, after `warmup` untimed runs.
fn allocations(mut f: impl FnMut(), warmup: usize, n: usize) -> usize {
    for _ in 0..warmup {
        f();
    }
    let before = alloc_count::count_this_thread();
    for _ in 0..n {
        f();
    }
    alloc_count::count_this_thread() - before
}

// Receiving an unfragmented message allocates nothing once the buffers have
// grown: the payload is a `Bytes` slice of the receive buffer, whose space
// is reclaimed when the application drops it.
#[test]
fn receive_allocates_nothing_per_message() {
    let _g = SERIAL.lock().unwrap();
    for size in [16, 125, 1024, 64 << 10] {
        for opcode in [0x1, 0x2] {
            let payload = vec![b'a'; size];
            let frame = wire::frame(opcode, true, 0, Some([1, 2, 3, 4]), &payload);
            let mut conn = server();
            let n = allocations(
                || {
                    conn.receive(&frame);
                    match conn.poll_event() {
                        Some(Event::Text(t)) => assert_eq!(black_box(t).len(), size),
                        Some(Event::Binary(b)) => assert_eq!(black_box(b).len(), size),
                        other => panic!("{other:?}"),
                    }
                    assert!(conn.poll_event().is_none());
                },
                if size > 4096 { 100 } else { 1000 },
                if size > 4096 { 500 } else { 10000 },
            );
            assert_eq!(
                n, 0,
                "{n} allocations for the measured messages of {size} bytes (opcode {opcode})"
            );
        }
    }
}

// Sending allocates nothing once the output buffer has grown, in both roles
// (the client masks into the output buffer), with the output drained.
#[test]
fn send_allocates_nothing_per_message() {
    let _g = SERIAL.lock().unwrap();
    for role in [Role::Server, Role::Client] {
        for size in [16, 125, 1024, 64 << 10] {
            let payload = vec![b'b'; size];
            let text = "t".repeat(size);
            let mut conn = open_role(role, Config::default(), ChaCha20Rng::from_seed([0; 32]));
            let n = allocations(
                || {
                    conn.send(&payload).unwrap();
                    conn.send(&text).unwrap();
                    while !conn.pending_output().is_empty() {
                        let k = black_box(conn.pending_output()).len();
                        conn.consume_output(k);
                    }
                },
                if size > 4096 { 100 } else { 1000 },
                if size > 4096 { 500 } else { 10000 },
            );
            assert_eq!(
                n, 0,
                "{n} allocations for the measured sends of {size} bytes ({role:?})"
            );
        }
    }
    // A large `Bytes` payload handed to a server is queued, not copied: the
    // output holds it as its own chunk.
    let mut conn = server();
    let big = wsmachine::Bytes::from(vec![7u8; 1 << 20]);
    conn.send(Message::Binary(big.clone())).unwrap();
    let chunks: Vec<&[u8]> = conn.output_chunks().collect();
    assert_eq!(chunks.len(), 2, "header and payload as separate chunks");
    assert_eq!(
        chunks[1].as_ptr(),
        big.as_ptr(),
        "the payload chunk is the caller's buffer"
    );
}

// An idle OPEN connection (handshake done, nothing pending) holds at most
// 1 KiB: the struct plus what it keeps on the heap.
#[test]
fn idle_open_connection_footprint() {
    let _g = SERIAL.lock().unwrap();
    let request = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let before = alloc_count::bytes_this_thread();
    let mut conn = Connection::server(Config::default());
    conn.receive(request);
    while let Some(e) = conn.poll_event() {
        if let Event::Request(request) = e {
            conn.accept(request, Accept::new()).unwrap();
        }
    }
    for chunk in conn.output_chunks() {
        black_box(chunk);
    }
    conn.consume_output(conn.buffered_amount());
    // Counted on this thread only: other test threads starting meanwhile do not count.
    let heap = (alloc_count::bytes_this_thread() - before) as usize;
    let total = heap + std::mem::size_of::<Connection>();
    eprintln!(
        "idle server connection: {} bytes struct + {heap} bytes heap = {total}",
        std::mem::size_of::<Connection>()
    );
    assert!(total <= 1024, "idle OPEN server connection holds {total} bytes");

    let before = alloc_count::bytes_this_thread();
    let conn = Connection::open_client(Config::default(), ChaCha20Rng::from_seed([0; 32]));
    // Counted on this thread only: other test threads starting meanwhile do not count.
    let heap = (alloc_count::bytes_this_thread() - before) as usize;
    let total = heap + std::mem::size_of::<Connection>();
    eprintln!("idle client connection: {total} bytes");
    assert!(total <= 1024, "idle OPEN client connection holds {total} bytes");
    drop(conn);
}

/// Heap held on this thread since `before`, in bytes.
fn held_since(before: isize) -> isize {
    alloc_count::bytes_this_thread() - before
}

// Buffers keep their high-water size (no allocation per message), and
// `shrink_buffers` gives it back: after a 1 MiB message each way the
// connection returns to within a few hundred bytes of its idle footprint.
#[test]
fn shrink_buffers_returns_to_the_idle_footprint() {
    let _g = SERIAL.lock().unwrap();
    let before = alloc_count::bytes_this_thread();
    let mut conn = Connection::open_client(Config::default(), ChaCha20Rng::from_seed([0; 32]));
    let idle = held_since(before);
    // Received: 1 MiB in one frame from the server, delivered and dropped.
    let big = vec![7u8; 1 << 20];
    let frame = wire::frame(0x2, true, 0, None, &big);
    for chunk in frame.chunks(16 << 10) {
        conn.receive(chunk);
    }
    match conn.poll_event() {
        Some(Event::Binary(b)) => assert_eq!(b.len(), 1 << 20),
        other => panic!("expected the message, got {other:?}"),
    }
    // Sent: 1 MiB, masked into the output queue, then taken.
    conn.send(&big).unwrap();
    for chunk in conn.output_chunks() {
        black_box(chunk);
    }
    conn.consume_output(conn.buffered_amount());
    drop((big, frame));
    let grown = held_since(before);
    assert!(grown >= idle + (1 << 20), "the buffers kept their size: {grown} B");
    conn.shrink_buffers();
    let shrunk = held_since(before);
    eprintln!("client connection heap: idle {idle} B, after 1 MiB each way {grown} B, shrunk {shrunk} B");
    assert!(shrunk <= idle + 512, "after shrink_buffers {shrunk} B (idle {idle} B)");
    drop(conn);
}

// What is still buffered survives: half a frame in, shrink, the rest in,
// the message is whole; queued output is kept byte for byte.
#[test]
fn shrink_buffers_keeps_what_is_buffered() {
    let _g = SERIAL.lock().unwrap();
    let mut conn = server();
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let frame = wire::frame(0x2, true, 0, Some([1, 2, 3, 4]), &payload);
    let (a, b) = frame.split_at(60_001);
    conn.receive(a);
    assert!(conn.poll_event().is_none());
    conn.send(b"queued before the shrink").unwrap();
    conn.shrink_buffers();
    conn.receive(b);
    match conn.poll_event() {
        Some(Event::Binary(got)) => assert_eq!(&got[..], &payload[..]),
        other => panic!("expected the message, got {other:?}"),
    }
    let mut out = Vec::new();
    for chunk in conn.output_chunks() {
        out.extend_from_slice(chunk);
    }
    conn.consume_output(conn.buffered_amount());
    assert_eq!(out, wire::frame(0x2, true, 0, None, b"queued before the shrink"));
}
