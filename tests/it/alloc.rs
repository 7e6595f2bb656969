//! Allocation behaviour, measured with a counting allocator: what receiving
//! and sending cost per message, what kept messages hold, the footprint of
//! an idle OPEN connection and its return to it after large messages.

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

/// Allocations, bytes allocated and net bytes still held by `f` run `n`
/// times, after `warmup` runs not counted.
fn allocations_and_bytes(mut f: impl FnMut(), warmup: usize, n: usize) -> (usize, usize, isize) {
    for _ in 0..warmup {
        f();
    }
    let (count, bytes) = (
        alloc_count::count_this_thread(),
        alloc_count::bytes_allocated_this_thread(),
    );
    let held = alloc_count::bytes_this_thread();
    for _ in 0..n {
        f();
    }
    (
        alloc_count::count_this_thread() - count,
        alloc_count::bytes_allocated_this_thread() - bytes,
        held_since(held),
    )
}

// What receiving costs is in proportion to the message (issue "hostile
// peers"): a short message is copied straight from the bytes given to
// `receive` into one allocation of its own size (so that keeping it keeps
// nothing else alive), and nothing else is allocated (issue "performance":
// no receive buffer in between); a long one is read into a buffer of its
// size and handed out as a slice of it, no copy (the buffer, and the small
// handle `bytes` makes to share it). Nothing stays allocated between
// messages.
#[test]
fn receive_allocates_in_proportion_to_the_message() {
    let _g = SERIAL.lock().unwrap();
    for size in [16, 125, 1024, 8 << 10, 64 << 10] {
        for opcode in [0x1, 0x2] {
            let payload = vec![b'a'; size];
            let frame = wire::frame(opcode, true, 0, Some([1, 2, 3, 4]), &payload);
            let mut conn = server();
            let runs = if size > 4096 { 200 } else { 2000 };
            let (count, bytes, held) = allocations_and_bytes(
                || {
                    conn.receive(&frame);
                    match conn.poll_event() {
                        Some(Event::Text(t)) => assert_eq!(black_box(t).len(), size),
                        Some(Event::Binary(b)) => assert_eq!(black_box(b).len(), size),
                        other => panic!("{other:?}"),
                    }
                    assert!(conn.poll_event().is_none());
                },
                10,
                runs,
            );
            let (per_message, bytes_per_message) = (count as f64 / runs as f64, bytes / runs);
            eprintln!("receive {size} B (opcode {opcode}): {per_message} allocations, {bytes_per_message} B");
            let short = size < 16 << 10;
            assert_eq!(
                per_message,
                if short { 1.0 } else { 2.0 },
                "allocations per message of {size} bytes"
            );
            let most = if short { size } else { frame.len() + 64 };
            assert!(
                bytes_per_message <= most,
                "{bytes_per_message} bytes allocated per message of {size} bytes"
            );
            // Nothing is kept between messages.
            assert_eq!(held, 0, "heap held after messages of {size} bytes");
        }
    }
}

// A kept short message holds its own size, not the read it came in: the
// drivers read up to 64 KiB at a time, and a chat history of 10,000 ten-byte
// lines, each in its own read, must not pin 10,000 read buffers. Target of
// the issue: heap held by 10,000 retained 10-byte messages ≤ 1 MiB.
#[test]
fn retained_small_messages_hold_their_size() {
    let _g = SERIAL.lock().unwrap();
    let frame = wire::frame(0x1, true, 0, Some([1, 2, 3, 4]), b"0123456789");
    for through_receive_buf in [false, true] {
        let mut kept = Vec::with_capacity(10_000);
        let before = alloc_count::bytes_this_thread();
        let mut conn = server();
        for _ in 0..10_000 {
            if through_receive_buf {
                // A driver reading straight into the machine's buffer, 64 KiB asked.
                let buf = conn.receive_buf();
                buf.reserve(64 << 10);
                buf.extend_from_slice(&frame);
            } else {
                conn.receive(&frame);
            }
            match conn.poll_event() {
                Some(Event::Text(t)) => kept.push(t),
                other => panic!("{other:?}"),
            }
        }
        let held = held_since(before) as usize;
        eprintln!(
            "10,000 kept 10-byte messages (receive_buf: {through_receive_buf}): {held} B held, \
             besides the {} B Vec of their handles",
            kept.capacity() * std::mem::size_of::<wsmachine::Utf8Bytes>()
        );
        assert!(held <= 1 << 20, "10,000 kept 10-byte messages hold {held} bytes");
        assert!(kept.iter().all(|t| &**t == "0123456789"));
        drop(conn);
    }
}

// Sending short messages allocates nothing once the output buffer has
// grown, in both roles (the client masks into the output buffer), with the
// output drained; a long message's buffer is given back once written, so
// nothing stays allocated between messages.
#[test]
fn send_allocates_nothing_per_short_message() {
    let _g = SERIAL.lock().unwrap();
    for role in [Role::Server, Role::Client] {
        for size in [16, 125, 1000, 64 << 10] {
            let payload = vec![b'b'; size];
            let text = "t".repeat(size);
            let mut conn = open_role(role, Config::default(), ChaCha20Rng::from_seed([0; 32]));
            let before = alloc_count::bytes_this_thread();
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
            if size <= 1000 {
                assert_eq!(
                    n, 0,
                    "{n} allocations for the measured sends of {size} bytes ({role:?})"
                );
            }
            assert!(
                held_since(before) <= 2 << 10,
                "{} bytes held after sends of {size} bytes ({role:?})",
                held_since(before)
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
// 1.25 KiB: the struct (settings, six timers, keepalive, the queues' heads)
// plus what it keeps on the heap. (The drivers' figures with 10,000
// connections, transport and task included, are in the README.)
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
    assert!(total <= 1280, "idle OPEN server connection holds {total} bytes");

    let before = alloc_count::bytes_this_thread();
    let conn = Connection::open_client(Config::default(), ChaCha20Rng::from_seed([0; 32]));
    // Counted on this thread only: other test threads starting meanwhile do not count.
    let heap = (alloc_count::bytes_this_thread() - before) as usize;
    let total = heap + std::mem::size_of::<Connection>();
    eprintln!("idle client connection: {total} bytes");
    assert!(total <= 1280, "idle OPEN client connection holds {total} bytes");
    drop(conn);
}

/// Heap held on this thread since `before`, in bytes.
fn held_since(before: isize) -> isize {
    alloc_count::bytes_this_thread() - before
}

// An idle connection returns to its small footprint by itself: after a
// 1 MiB message each way (received, and sent and written), without calling
// `shrink_buffers`, it is back within a few hundred bytes of idle.
#[test]
fn buffers_return_to_the_idle_footprint_by_themselves() {
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
    assert!(conn.poll_event().is_none());
    // Sent: 1 MiB, masked into the output queue, then taken.
    conn.send(&big).unwrap();
    for chunk in conn.output_chunks() {
        black_box(chunk);
    }
    conn.consume_output(conn.buffered_amount());
    drop((big, frame));
    let after = held_since(before);
    eprintln!("client connection heap: idle {idle} B, after 1 MiB each way {after} B");
    assert!(after <= idle + 512, "after 1 MiB each way {after} B (idle {idle} B)");
    // `shrink_buffers` has nothing left to give back, and breaks nothing.
    conn.shrink_buffers();
    assert!(held_since(before) <= idle + 512);
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

/// A transport that hands over `input` (a few bytes per read, like a
/// socket) and takes every write.
struct Scripted {
    input: Vec<u8>,
    at: usize,
    written: usize,
}

impl Scripted {
    fn new(input: Vec<u8>) -> Self {
        Scripted {
            input,
            at: 0,
            written: 0,
        }
    }
}

impl std::io::Read for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.input.len() {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.input.len() - self.at).min(16 << 10);
        buf[..n].copy_from_slice(&self.input[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl std::io::Write for Scripted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.written += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl wsmachine::blocking::Transport for Scripted {}

#[cfg(feature = "tokio")]
impl tokio::io::AsyncRead for Scripted {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.at == this.input.len() {
            // Nothing more yet (and nothing will come: no waker is kept).
            return std::task::Poll::Pending;
        }
        let n = buf.remaining().min(this.input.len() - this.at).min(16 << 10);
        buf.put_slice(&this.input[this.at..this.at + n]);
        this.at += n;
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(feature = "tokio")]
impl tokio::io::AsyncWrite for Scripted {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.written += buf.len();
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

// Idle connections return to a small footprint by themselves under the
// blocking driver: after a 64 KiB message in and its echo out, the
// connection holds no read or write buffer (the driver reads into one
// buffer per thread; before, it grew its own by 64 KiB on every read).
#[test]
fn blocking_driver_holds_no_buffers_when_idle() {
    let _g = SERIAL.lock().unwrap();
    let payload = vec![5u8; 64 << 10];
    let input = wire::frame(0x2, true, 0, Some([1, 2, 3, 4]), &payload);
    // The thread's read buffer is made on first use: count it out.
    let mut warm = wsmachine::blocking::WebSocket::from_connection(server(), Scripted::new(vec![]));
    let _ = warm.read();
    let before = alloc_count::bytes_this_thread();
    let mut ws = wsmachine::blocking::WebSocket::from_connection(server(), Scripted::new(input));
    let idle = held_since(before);
    match ws.read() {
        Ok(Event::Binary(b)) => ws.send(Message::Binary(b)).unwrap(),
        other => panic!("{other:?}"),
    }
    assert!(matches!(ws.read(), Err(e) if e.is_would_block()));
    assert_eq!(ws.get_ref().written, 10 + (64 << 10), "the echo was written");
    let after = held_since(before);
    eprintln!("blocking connection: {idle} B of heap idle, {after} B after a 64 KiB echo");
    assert!(
        after <= idle + 512,
        "{after} B held after a 64 KiB echo (idle {idle} B)"
    );
}

// The same under the tokio driver: after a 64 KiB message in and its echo
// out, the stream holds no read or write buffer (it reads into the stack;
// before, it kept a 64 KiB receive buffer).
#[cfg(feature = "tokio")]
#[test]
fn tokio_driver_holds_no_buffers_when_idle() {
    use futures_util::StreamExt;
    let _g = SERIAL.lock().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let payload = vec![5u8; 64 << 10];
        let frame = wire::frame(0x2, true, 0, Some([1, 2, 3, 4]), &payload);
        let before = alloc_count::bytes_this_thread();
        let mut ws = wsmachine::tokio::WebSocketStream::from_connection(server(), Scripted::new(Vec::new()));
        // One poll that finds nothing yet makes the timer and the wakers.
        assert!(futures_util::FutureExt::now_or_never(ws.next()).is_none());
        let idle = held_since(before);
        ws.get_mut().input = frame;
        match ws.next().await {
            Some(Ok(Event::Binary(b))) => ws.send(Message::Binary(b)).await.unwrap(),
            other => panic!("{other:?}"),
        }
        assert!(
            futures_util::FutureExt::now_or_never(ws.next()).is_none(),
            "nothing more"
        );
        assert_eq!(ws.get_ref().written, 10 + (64 << 10), "the echo was written");
        let after = held_since(before);
        eprintln!("tokio stream: {idle} B of heap idle, {after} B after a 64 KiB echo");
        assert!(
            after <= idle + 512,
            "{after} B held after a 64 KiB echo (idle {idle} B)"
        );
    });
}
