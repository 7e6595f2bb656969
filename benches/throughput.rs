//! Throughput of wsmachine beside tungstenite, fastwebsockets,
//! tokio-websockets and `memcpy`, all in memory, from the same input bytes,
//! through the same kind of stream, in one run.
//!
//! ```text
//! cargo bench --features tokio --bench throughput                     # everything (~15 min on 2 cores)
//! cargo bench --features tokio --bench throughput -- receive_text     # one group
//! cargo bench --features tokio --bench throughput -- 'wsmachine/1MiB' # a criterion filter (a regex)
//! python3 scripts/bench_table.py                                      # the table: × memcpy, × fastest peer
//! ```
//!
//! Groups, each holding wsmachine (its tokio driver, and its blocking
//! driver), tungstenite, fastwebsockets, tokio-websockets and `memcpy` at
//! 16 B, 125 B, 1 KiB, 64 KiB and 1 MiB:
//!
//! | group | what one iteration does |
//! |---|---|
//! | `receive_binary` | server: read pre-built masked client frames of binary messages |
//! | `receive_text` | the same with text (mixed 1- to 4-byte UTF-8), validated |
//! | `receive_fragmented` | 1 MiB messages sent as 4 KiB frames, binary and text, reassembled |
//! | `send_server` | produce the wire bytes of binary messages and hand them to a sink |
//! | `send_client` | the same for a client, so masked |
//!
//! Throughput is reported both in messages/s (elements) and in payload bytes/s.
//!
//! The ground rules, the same for every implementation:
//!
//! - One iteration moves [`PAYLOAD_PER_ITER`] bytes of payload (at least two
//!   messages). The connection object is made once per benchmark and reused,
//!   as a long-lived connection is (steady state, warm buffers).
//! - Every implementation, wsmachine included, reads and writes through the
//!   same in-memory stream ([`MemStream`]) with the entry point its users
//!   call: wsmachine's `tokio::WebSocketStream` (`Stream`/`Sink`) and
//!   `blocking::WebSocket` (`read`/`send`), tungstenite's `read`/`send`,
//!   fastwebsockets' `read_frame`/`write_frame` and tokio-websockets'
//!   `Stream`/`Sink`. Receive reads the same immutable pre-built wire bytes
//!   every iteration; each read copies at most [`READ_MAX`] bytes into the
//!   library's own buffer, as a socket read copies out of the kernel, so
//!   every implementation pays that copy.
//! - Each message is touched (its length summed and passed through
//!   `black_box`), as an application would.
//! - Send writes one message and flushes it to the sink at once (tungstenite's
//!   `send`, fastwebsockets' `write_frame`, `SinkExt::send` for
//!   tokio-websockets, `send` of both wsmachine drivers, which is what
//!   `ws.send(..)` calls: the tokio driver's does what `SinkExt::send` does,
//!   as a method of the stream). The application holds the payload; each
//!   library is handed it in the cheapest form its API takes: a borrowed
//!   slice for fastwebsockets and wsmachine (both take one), an owned
//!   `Bytes` (a clone of the payload: a reference count, no copy) for
//!   tungstenite and tokio-websockets, which take no borrowed payload. (An
//!   owned `Bytes` costs wsmachine about 17 ns more per 16-byte message, the
//!   clone's and drop's atomic operations.) The sink copies what it is given into
//!   a preallocated buffer, the way a socket write copies into the kernel, so
//!   `memcpy` of the payload is the floor for every implementation.
//! - Before measuring, each variant is run once with a checking callback:
//!   the right number of messages, of the right kind, with the right bytes
//!   (for sends: the sink's bytes decoded by an independent decoder). For text,
//!   each receiver is also shown to reject invalid UTF-8, so none of them can
//!   skip validation.

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::{SinkExt, StreamExt};
use std::cell::{Cell, RefCell};
use std::hint::black_box;
use std::io::{self, IoSlice, Read, Write};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use wsmachine::rng::ChaCha20Rng;
use wsmachine::{Bytes, Config, Connection, Event, Role};

/// Payload sizes of every workload.
const SIZES: [(usize, &str); 5] = [
    (16, "16B"),
    (125, "125B"),
    (1 << 10, "1KiB"),
    (64 << 10, "64KiB"),
    (1 << 20, "1MiB"),
];
/// Payload bytes moved per iteration (at least two messages).
const PAYLOAD_PER_ITER: usize = 1 << 20;
/// The most one read of the in-memory stream copies (a socket read of a
/// large message returns about this much on Linux loopback).
const READ_MAX: usize = 128 << 10;
/// The fragmented workload: messages of this size ...
const FRAG_MESSAGE: usize = 1 << 20;
/// ... sent as frames of this size.
const FRAG_FRAME: usize = 4 << 10;

/// 64 bytes: 21 in ASCII characters, 8 in 2-byte, 27 in 3-byte and 8 in
/// 4-byte characters. Repeated (and cut on a character boundary, padded with
/// ASCII) to make text payloads.
const TEXT_PATTERN: &str = "Hello, wörld! Grüße ½ — 日本語のテキスト 🦀🚀 ";

fn messages_for(size: usize) -> usize {
    (PAYLOAD_PER_ITER / size).max(2)
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
}

fn throughput(messages: usize, payload_bytes: usize) -> Throughput {
    Throughput::ElementsAndBytes {
        elements: messages as u64,
        bytes: payload_bytes as u64,
    }
}

// ----- inputs -------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Binary,
    Text,
}

impl Kind {
    fn opcode(self) -> u8 {
        match self {
            Kind::Text => 0x1,
            Kind::Binary => 0x2,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Binary => "binary",
        }
    }
}

fn binary_payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8).collect()
}

fn text_payload(len: usize) -> Vec<u8> {
    let mut s = String::with_capacity(len);
    for c in TEXT_PATTERN.chars().cycle() {
        if s.len() + c.len_utf8() > len {
            break;
        }
        s.push(c);
    }
    while s.len() < len {
        s.push('.');
    }
    s.into_bytes()
}

fn payload(kind: Kind, len: usize) -> Vec<u8> {
    match kind {
        Kind::Binary => binary_payload(len),
        Kind::Text => text_payload(len),
    }
}

fn header_len(payload_len: usize, masked: bool) -> usize {
    let len_bytes = match payload_len {
        0..=125 => 0,
        126..=0xFFFF => 2,
        _ => 8,
    };
    2 + len_bytes + if masked { 4 } else { 0 }
}

/// Encodes one frame, written here rather than with the crate's codec so the
/// input does not depend on the code being measured.
fn encode_frame(out: &mut Vec<u8>, fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) {
    out.push(u8::from(fin) << 7 | opcode);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let len = payload.len();
    if len <= 125 {
        out.push(mask_bit | len as u8);
    } else if len <= 0xFFFF {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i & 3]));
        }
        None => out.extend_from_slice(payload),
    }
}

/// A different masking key for every frame, as a client sends.
fn key_for(frame: usize) -> [u8; 4] {
    ((frame as u32).wrapping_mul(0x9E37_79B9) ^ 0xA5C3_5A3C).to_le_bytes()
}

/// `count` messages of `payload`, as masked client frames of at most
/// `frame_size` payload bytes each.
fn client_wire(kind: Kind, payload: &[u8], count: usize, frame_size: usize) -> Vec<u8> {
    let frames_per_message = payload.len().div_ceil(frame_size).max(1);
    let mut out = Vec::with_capacity(count * (payload.len() + frames_per_message * 14));
    let mut n = 0;
    for _ in 0..count {
        let pieces: Vec<&[u8]> = payload.chunks(frame_size).collect();
        for (i, piece) in pieces.iter().enumerate() {
            let opcode = if i == 0 { kind.opcode() } else { 0x0 };
            encode_frame(&mut out, i + 1 == pieces.len(), opcode, piece, Some(key_for(n)));
            n += 1;
        }
    }
    out
}

/// What the receivers must deliver for one iteration.
struct Expected<'a> {
    kind: Kind,
    payload: &'a [u8],
    count: usize,
}

/// Counts what a receiver delivered; asserts it against [`Expected`] when
/// checking.
struct Collector<'a> {
    expected: Option<&'a Expected<'a>>,
    messages: usize,
    bytes: usize,
}

impl<'a> Collector<'a> {
    fn counting() -> Self {
        Collector {
            expected: None,
            messages: 0,
            bytes: 0,
        }
    }

    fn checking(expected: &'a Expected<'a>) -> Self {
        Collector {
            expected: Some(expected),
            messages: 0,
            bytes: 0,
        }
    }

    #[inline(always)]
    fn message(&mut self, kind: Kind, data: &[u8]) {
        if let Some(e) = self.expected {
            assert_eq!(kind, e.kind, "message {} has the wrong kind", self.messages);
            assert!(data == e.payload, "message {} has the wrong bytes", self.messages);
        }
        self.messages += 1;
        self.bytes += black_box(data.len());
    }

    fn finish(self, who: &str) -> usize {
        if let Some(e) = self.expected {
            assert_eq!(self.messages, e.count, "{who}: wrong number of messages");
            assert_eq!(self.bytes, e.count * e.payload.len(), "{who}: wrong number of bytes");
            eprintln!(
                "checked {who}: {} {} messages of {} B",
                e.count,
                e.kind.name(),
                e.payload.len()
            );
        }
        self.bytes
    }
}

// ----- the in-memory transport ---------------------------------------------------

/// Where written bytes go: copied into a preallocated buffer (as a socket
/// write copies into the kernel), and into `log` while checking.
struct Sink {
    buf: Vec<u8>,
    pos: usize,
    written: usize,
    log: Option<Vec<u8>>,
}

impl Sink {
    fn new() -> Self {
        Sink {
            buf: vec![0; 2 * PAYLOAD_PER_ITER + 64],
            pos: 0,
            written: 0,
            log: None,
        }
    }

    #[inline]
    fn write(&mut self, data: &[u8]) {
        if self.pos + data.len() > self.buf.len() {
            self.pos = 0;
        }
        let end = self.pos + data.len();
        self.buf[self.pos..end].copy_from_slice(data);
        self.pos = end;
        self.written += data.len();
        if let Some(log) = self.log.as_mut() {
            log.extend_from_slice(data);
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> usize {
        let mut n = 0;
        for b in bufs {
            self.write(b);
            n += b.len();
        }
        n
    }
}

/// The bytes a stream serves, rewound before every iteration.
struct Input {
    data: Vec<u8>,
    pos: Cell<usize>,
}

impl Input {
    fn new(data: Vec<u8>) -> Rc<Self> {
        Rc::new(Input {
            data,
            pos: Cell::new(0),
        })
    }

    fn rewind(&self) {
        self.pos.set(0);
    }

    /// What one read returns: at most `max` and at most [`READ_MAX`] bytes.
    #[inline]
    fn next(&self, max: usize) -> &[u8] {
        let pos = self.pos.get();
        let n = max.min(READ_MAX).min(self.data.len() - pos);
        self.pos.set(pos + n);
        &self.data[pos..pos + n]
    }
}

/// The in-memory stream every implementation runs over: reads like a
/// `Cursor` over the input (at most [`READ_MAX`] bytes a read), writes into
/// the sink. Shared handles let the benchmark rewind and inspect
/// it while a peer owns it.
#[derive(Clone)]
struct MemStream {
    input: Rc<Input>,
    sink: Rc<RefCell<Sink>>,
}

impl MemStream {
    fn new(input: Vec<u8>) -> Self {
        MemStream {
            input: Input::new(input),
            sink: Rc::new(RefCell::new(Sink::new())),
        }
    }
}

impl Read for MemStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let src = self.input.next(buf.len());
        buf[..src.len()].copy_from_slice(src);
        Ok(src.len())
    }
}

impl Write for MemStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sink.borrow_mut().write(buf);
        Ok(buf.len())
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        Ok(self.sink.borrow_mut().write_vectored(bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl wsmachine::blocking::Transport for MemStream {}

impl AsyncRead for MemStream {
    fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let src = self.input.next(buf.remaining());
        buf.put_slice(src);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for MemStream {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.sink.borrow_mut().write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(self: Pin<&mut Self>, _: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(self.sink.borrow_mut().write_vectored(bufs)))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn runtime() -> tokio::runtime::Runtime {
    // Timers on, as an application's runtime has them (wsmachine's driver
    // arms its keepalive and close timers on tokio's clock).
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread tokio runtime")
}

// ----- receivers -------------------------------------------------------------------

fn wsm_server() -> Connection {
    Connection::open_server(Config::default())
}

/// wsmachine's tokio driver over the stream (the `Stream` of events).
fn wsm_tokio_server(input: Vec<u8>) -> (wsmachine::tokio::WebSocketStream<MemStream>, Rc<Input>) {
    let stream = MemStream::new(input);
    let handle = stream.input.clone();
    (
        wsmachine::tokio::WebSocketStream::from_connection(wsm_server(), stream),
        handle,
    )
}

fn wsm_event(who: &str, event: Event, out: &mut Collector<'_>) {
    match event {
        Event::Binary(data) => out.message(Kind::Binary, &data),
        // Validated by the machine as it arrived.
        Event::Text(text) => out.message(Kind::Text, text.as_bytes()),
        other => panic!("{who}: unexpected event {other:?}"),
    }
}

// Not inlined, so a profiler can single it out (`--toggle-collect`).
#[inline(never)]
async fn wsm_tokio_receive(
    ws: &mut wsmachine::tokio::WebSocketStream<MemStream>,
    input: &Input,
    count: usize,
    out: &mut Collector<'_>,
) {
    input.rewind();
    for _ in 0..count {
        let event = ws
            .next()
            .await
            .expect("wsmachine tokio: the stream ended")
            .expect("wsmachine tokio: an error");
        wsm_event("wsmachine tokio", event, out);
    }
}

/// wsmachine's blocking driver over the stream (`read`).
fn wsm_blocking_server(input: Vec<u8>) -> (wsmachine::blocking::WebSocket<MemStream>, Rc<Input>) {
    let stream = MemStream::new(input);
    let handle = stream.input.clone();
    (
        wsmachine::blocking::WebSocket::from_connection(wsm_server(), stream),
        handle,
    )
}

// Not inlined, so a profiler can single it out (`--toggle-collect`).
#[inline(never)]
fn wsm_blocking_receive(
    ws: &mut wsmachine::blocking::WebSocket<MemStream>,
    input: &Input,
    count: usize,
    out: &mut Collector<'_>,
) {
    input.rewind();
    for _ in 0..count {
        let event = ws.read().expect("wsmachine blocking read");
        wsm_event("wsmachine blocking", event, out);
    }
}

/// tokio-websockets over the stream, taken over after a handshake done
/// elsewhere (`ServerBuilder::serve`), read as its `Stream` of messages.
fn tws_server(input: Vec<u8>) -> (tokio_websockets::WebSocketStream<MemStream>, Rc<Input>) {
    let stream = MemStream::new(input);
    let handle = stream.input.clone();
    // The default limits (64 MiB payloads) hold every workload.
    (tokio_websockets::ServerBuilder::new().serve(stream), handle)
}

// Not inlined, so a profiler can single it out (`--toggle-collect`).
#[inline(never)]
async fn tws_receive(
    ws: &mut tokio_websockets::WebSocketStream<MemStream>,
    input: &Input,
    count: usize,
    out: &mut Collector<'_>,
) {
    input.rewind();
    for _ in 0..count {
        let msg = ws
            .next()
            .await
            .expect("tokio-websockets: the stream ended")
            .expect("tokio-websockets: an error");
        // Text is validated by tokio-websockets (simdutf8) before it is handed out.
        let kind = if msg.is_text() {
            Kind::Text
        } else if msg.is_binary() {
            Kind::Binary
        } else {
            panic!("tokio-websockets: unexpected message {msg:?}")
        };
        out.message(kind, msg.as_payload());
    }
}

fn tung_server(input: Vec<u8>) -> tungstenite::WebSocket<MemStream> {
    // The default limits (64 MiB messages, 16 MiB frames) hold every workload.
    let config = tungstenite::protocol::WebSocketConfig::default();
    tungstenite::WebSocket::from_raw_socket(MemStream::new(input), tungstenite::protocol::Role::Server, Some(config))
}

// Not inlined, so a profiler can single it out (`--toggle-collect`).
#[inline(never)]
fn tung_receive(ws: &mut tungstenite::WebSocket<MemStream>, count: usize, out: &mut Collector<'_>) {
    ws.get_ref().input.rewind();
    for _ in 0..count {
        match ws.read().expect("tungstenite read") {
            tungstenite::Message::Binary(data) => out.message(Kind::Binary, &data),
            // Validated by tungstenite (`std::str::from_utf8`).
            tungstenite::Message::Text(text) => out.message(Kind::Text, text.as_str().as_bytes()),
            other => panic!("tungstenite: unexpected message {other:?}"),
        }
    }
}

fn fws_server(input: Vec<u8>) -> (fastwebsockets::WebSocket<MemStream>, Rc<Input>) {
    let stream = MemStream::new(input);
    let handle = stream.input.clone();
    let mut ws = fastwebsockets::WebSocket::after_handshake(stream, fastwebsockets::Role::Server);
    ws.set_auto_close(true);
    ws.set_auto_pong(true);
    (ws, handle)
}

fn fws_kind(opcode: fastwebsockets::OpCode) -> Kind {
    match opcode {
        fastwebsockets::OpCode::Binary => Kind::Binary,
        fastwebsockets::OpCode::Text => Kind::Text,
        other => panic!("fastwebsockets: unexpected frame {other:?}"),
    }
}

/// fastwebsockets 0.10's `read_frame` validates the UTF-8 of every final
/// text frame itself (`Frame::is_utf8`: `simdutf8` with its default `simd`
/// feature, `std::str::from_utf8` without), so a user has nothing left to
/// check for unfragmented text. Validating again here would charge it twice;
/// [`check_rejects_invalid_utf8`] shows it does reject bad text.
// Not inlined, so a profiler can single it out (`--toggle-collect`).
#[inline(never)]
async fn fws_receive(
    ws: &mut fastwebsockets::WebSocket<MemStream>,
    input: &Input,
    count: usize,
    out: &mut Collector<'_>,
) {
    input.rewind();
    for _ in 0..count {
        let frame = ws.read_frame().await.expect("fastwebsockets read_frame");
        assert!(frame.fin, "fastwebsockets: a fragment outside the fragmented workload");
        out.message(fws_kind(frame.opcode), &frame.payload);
    }
}

/// Fragmented messages: the `FragmentCollector` is how a fastwebsockets user
/// gets whole messages; it validates text across fragments (the `utf8` crate).
// Not inlined, so a profiler can single it out (`--toggle-collect`).
#[inline(never)]
async fn fws_receive_collected(
    ws: &mut fastwebsockets::FragmentCollector<MemStream>,
    input: &Input,
    count: usize,
    out: &mut Collector<'_>,
) {
    input.rewind();
    for _ in 0..count {
        let frame = ws
            .read_frame()
            .await
            .expect("fastwebsockets FragmentCollector read_frame");
        out.message(fws_kind(frame.opcode), &frame.payload);
    }
}

/// Every receiver fails a text message that is not UTF-8, so none of the
/// text figures can come from skipping validation.
fn check_rejects_invalid_utf8(rt: &tokio::runtime::Runtime) {
    let mut bad = text_payload(1000);
    bad[500] = 0xFF;
    let wire = client_wire(Kind::Text, &bad, 1, usize::MAX);

    let (mut ws, _) = wsm_tokio_server(wire.clone());
    assert!(
        matches!(rt.block_on(ws.next()), Some(Err(_))),
        "wsmachine tokio accepted invalid UTF-8"
    );
    let (mut ws, _) = wsm_blocking_server(wire.clone());
    assert!(ws.read().is_err(), "wsmachine blocking accepted invalid UTF-8");

    let (mut ws, _) = tws_server(wire.clone());
    assert!(
        matches!(rt.block_on(ws.next()), Some(Err(_))),
        "tokio-websockets accepted invalid UTF-8"
    );

    let mut ws = tung_server(wire.clone());
    assert!(ws.read().is_err(), "tungstenite accepted invalid UTF-8");

    let (mut ws, _) = fws_server(wire);
    assert!(
        rt.block_on(ws.read_frame()).is_err(),
        "fastwebsockets accepted invalid UTF-8"
    );
}

/// Measures `f` as `group`/`lib`/`label`, or, in profiling mode, runs it
/// `BENCH_ITERS` times when `group/lib/label` is `BENCH_ONLY` (and skips
/// every other benchmark). Under callgrind, the difference between two
/// runs with different counts is the cost of that many iterations,
/// whatever the setup and the checks cost:
///
/// ```text
/// BENCH_ONLY=receive_binary/wsmachine/16B BENCH_ITERS=11 valgrind --tool=callgrind target/release/deps/throughput-…
/// ```
fn bench<R>(group: &mut BenchmarkGroup<'_, WallTime>, lib: &str, label: &str, mut f: impl FnMut() -> R) {
    match profiling() {
        None => {
            group.bench_function(BenchmarkId::new(lib, label), |b| b.iter(&mut f));
        }
        Some((only, iters)) => {
            if only == format!("{}/{lib}/{label}", group_name(group)) {
                for _ in 0..iters {
                    black_box(f());
                }
            }
        }
    }
}

/// Whether to set up `group`/`lib`/`label` at all: always, but in profiling
/// mode only the one profiled (so its setup is all the rest a profile holds).
fn wanted(group: &BenchmarkGroup<'_, WallTime>, lib: &str, label: &str) -> bool {
    profiling().is_none_or(|(only, _)| only == format!("{}/{lib}/{label}", group_name(group)))
}

/// `BENCH_ONLY` and `BENCH_ITERS`, when both are set.
fn profiling() -> Option<(String, usize)> {
    let only = std::env::var("BENCH_ONLY").ok()?;
    let iters = std::env::var("BENCH_ITERS").ok()?.parse().ok()?;
    Some((only, iters))
}

thread_local! {
    /// The name of the group being set up (criterion does not expose it).
    static GROUP: RefCell<String> = const { RefCell::new(String::new()) };
}

fn group_name(_: &BenchmarkGroup<'_, WallTime>) -> String {
    GROUP.with(|g| g.borrow().clone())
}

/// Starts a benchmark group (and remembers its name for [`bench`]).
fn new_group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    GROUP.with(|g| *g.borrow_mut() = name.to_string());
    let mut group = c.benchmark_group(name);
    configure(&mut group);
    group
}

fn bench_memcpy(group: &mut BenchmarkGroup<'_, WallTime>, label: &str, bytes: usize) {
    let src = binary_payload(bytes);
    let mut dst = vec![0u8; bytes];
    bench(group, "memcpy", label, || {
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
    });
}

/// One receive workload for all four.
fn bench_receive(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &tokio::runtime::Runtime,
    kind: Kind,
    size: usize,
    frame_size: usize,
    label: &str,
) {
    let payload = payload(kind, size);
    let count = messages_for(size);
    let wire = client_wire(kind, &payload, count, frame_size);
    let expected = Expected {
        kind,
        payload: &payload,
        count,
    };
    let fragmented = frame_size < size;
    group.throughput(throughput(count, count * size));

    // wsmachine, tokio driver
    if wanted(group, "wsmachine", label) {
        let (mut ws, input) = wsm_tokio_server(wire.clone());
        let mut check = Collector::checking(&expected);
        rt.block_on(wsm_tokio_receive(&mut ws, &input, count, &mut check));
        check.finish(&format!("wsmachine {label}"));
        bench(group, "wsmachine", label, || {
            let mut out = Collector::counting();
            rt.block_on(wsm_tokio_receive(&mut ws, &input, count, &mut out));
            out.bytes
        });
    }

    // wsmachine, blocking driver
    if wanted(group, "wsmachine-blocking", label) {
        let (mut ws, input) = wsm_blocking_server(wire.clone());
        let mut check = Collector::checking(&expected);
        wsm_blocking_receive(&mut ws, &input, count, &mut check);
        check.finish(&format!("wsmachine-blocking {label}"));
        bench(group, "wsmachine-blocking", label, || {
            let mut out = Collector::counting();
            wsm_blocking_receive(&mut ws, &input, count, &mut out);
            out.bytes
        });
    }

    // tokio-websockets
    if wanted(group, "tokio-websockets", label) {
        let (mut ws, input) = tws_server(wire.clone());
        let mut check = Collector::checking(&expected);
        rt.block_on(tws_receive(&mut ws, &input, count, &mut check));
        check.finish(&format!("tokio-websockets {label}"));
        bench(group, "tokio-websockets", label, || {
            let mut out = Collector::counting();
            rt.block_on(tws_receive(&mut ws, &input, count, &mut out));
            out.bytes
        });
    }

    // tungstenite
    if wanted(group, "tungstenite", label) {
        let mut ws = tung_server(wire.clone());
        let mut check = Collector::checking(&expected);
        tung_receive(&mut ws, count, &mut check);
        check.finish(&format!("tungstenite {label}"));
        bench(group, "tungstenite", label, || {
            let mut out = Collector::counting();
            tung_receive(&mut ws, count, &mut out);
            out.bytes
        });
    }

    // fastwebsockets
    if wanted(group, "fastwebsockets", label) {
        let (ws, input) = fws_server(wire);
        if fragmented {
            let mut ws = fastwebsockets::FragmentCollector::new(ws);
            let mut check = Collector::checking(&expected);
            rt.block_on(fws_receive_collected(&mut ws, &input, count, &mut check));
            check.finish(&format!("fastwebsockets {label}"));
            bench(group, "fastwebsockets", label, || {
                let mut out = Collector::counting();
                rt.block_on(fws_receive_collected(&mut ws, &input, count, &mut out));
                out.bytes
            });
        } else {
            let mut ws = ws;
            let mut check = Collector::checking(&expected);
            rt.block_on(fws_receive(&mut ws, &input, count, &mut check));
            check.finish(&format!("fastwebsockets {label}"));
            bench(group, "fastwebsockets", label, || {
                let mut out = Collector::counting();
                rt.block_on(fws_receive(&mut ws, &input, count, &mut out));
                out.bytes
            });
        }
    }

    if wanted(group, "memcpy", label) {
        bench_memcpy(group, label, count * size);
    }
}

fn receive_binary(c: &mut Criterion) {
    let rt = runtime();
    let mut group = new_group(c, "receive_binary");
    for (size, label) in SIZES {
        bench_receive(&mut group, &rt, Kind::Binary, size, usize::MAX, label);
    }
    group.finish();
}

fn receive_text(c: &mut Criterion) {
    let rt = runtime();
    check_rejects_invalid_utf8(&rt);
    let mut group = new_group(c, "receive_text");
    for (size, label) in SIZES {
        bench_receive(&mut group, &rt, Kind::Text, size, usize::MAX, label);
    }
    group.finish();
}

fn receive_fragmented(c: &mut Criterion) {
    let rt = runtime();
    let mut group = new_group(c, "receive_fragmented");
    for kind in [Kind::Binary, Kind::Text] {
        // Label: what is fragmented, e.g. "binary_1MiB_in_4KiB".
        let label = format!("{}_1MiB_in_4KiB", kind.name());
        bench_receive(&mut group, &rt, kind, FRAG_MESSAGE, FRAG_FRAME, &label);
    }
    group.finish();
}

// ----- senders ------------------------------------------------------------------------

/// Checks what a sender wrote for one iteration: `count` final binary frames
/// carrying `payload`, masked exactly when a client sent them.
fn check_sent(who: &str, sink: &RefCell<Sink>, role: Role, payload: &[u8], count: usize) {
    let log = sink.borrow_mut().log.take().expect("logging was on");
    let masked = role == Role::Client;
    assert_eq!(
        log.len(),
        count * (header_len(payload.len(), masked) + payload.len()),
        "{who}: wrong number of bytes written"
    );
    let mut rest = &log[..];
    for i in 0..count {
        assert_eq!(rest[0], 0x82, "{who}: frame {i} is not a final binary frame");
        assert_eq!(rest[1] & 0x80 != 0, masked, "{who}: frame {i} has the wrong mask bit");
        let (len, mut at) = match rest[1] & 0x7F {
            126 => (usize::from(u16::from_be_bytes([rest[2], rest[3]])), 4),
            127 => (u64::from_be_bytes(rest[2..10].try_into().unwrap()) as usize, 10),
            n => (usize::from(n), 2),
        };
        assert_eq!(len, payload.len(), "{who}: frame {i} has the wrong length");
        let key = masked.then(|| {
            at += 4;
            [rest[at - 4], rest[at - 3], rest[at - 2], rest[at - 1]]
        });
        let body = &rest[at..at + len];
        let same = match key {
            Some(k) => body
                .iter()
                .zip(payload)
                .enumerate()
                .all(|(j, (b, p))| b ^ k[j & 3] == *p),
            None => body == payload,
        };
        assert!(same, "{who}: frame {i} carries the wrong payload");
        rest = &rest[at + len..];
    }
    eprintln!("checked {who}: {count} frames of {} B", payload.len());
}

/// A borrowed payload (see the ground rules).
// Not inlined, so a profiler can single it out (`--toggle-collect`).
#[inline(never)]
async fn wsm_tokio_send(ws: &mut wsmachine::tokio::WebSocketStream<MemStream>, payload: &[u8], count: usize) {
    for _ in 0..count {
        ws.send(payload).await.expect("wsmachine tokio send");
    }
}

/// A borrowed payload (see the ground rules).
// Not inlined, so a profiler can single it out (`--toggle-collect`).
#[inline(never)]
fn wsm_blocking_send(ws: &mut wsmachine::blocking::WebSocket<MemStream>, payload: &[u8], count: usize) {
    for _ in 0..count {
        ws.send(payload).expect("wsmachine blocking send");
    }
}

// Not inlined, so a profiler can single it out (`--toggle-collect`).
#[inline(never)]
async fn tws_send(ws: &mut tokio_websockets::WebSocketStream<MemStream>, payload: &Bytes, count: usize) {
    for _ in 0..count {
        ws.send(tokio_websockets::Message::binary(payload.clone()))
            .await
            .expect("tokio-websockets send");
    }
}

// Not inlined, so a profiler can single it out (`--toggle-collect`).
#[inline(never)]
fn tung_send(ws: &mut tungstenite::WebSocket<MemStream>, payload: &Bytes, count: usize) {
    for _ in 0..count {
        ws.send(tungstenite::Message::Binary(payload.clone()))
            .expect("tungstenite send");
    }
}

/// A borrowed payload, as a user holding `&[u8]` sends it. (A client masks in
/// place, so fastwebsockets copies it into an owned buffer first.)
// Not inlined, so a profiler can single it out (`--toggle-collect`).
#[inline(never)]
async fn fws_send(ws: &mut fastwebsockets::WebSocket<MemStream>, payload: &[u8], count: usize) {
    for _ in 0..count {
        let frame = fastwebsockets::Frame::binary(fastwebsockets::Payload::Borrowed(payload));
        ws.write_frame(frame).await.expect("fastwebsockets write_frame");
    }
}

fn bench_send(
    group: &mut BenchmarkGroup<'_, WallTime>,
    rt: &tokio::runtime::Runtime,
    role: Role,
    size: usize,
    label: &str,
) {
    let payload = Bytes::from(binary_payload(size));
    let count = messages_for(size);
    group.throughput(throughput(count, count * size));

    let wsm_conn = || match role {
        Role::Server => Connection::open_server(Config::default()),
        Role::Client => Connection::open_client(Config::default(), ChaCha20Rng::from_seed([2; 32])),
    };

    // wsmachine, tokio driver
    if wanted(group, "wsmachine", label) {
        let stream = MemStream::new(Vec::new());
        let sink = stream.sink.clone();
        let mut ws = wsmachine::tokio::WebSocketStream::from_connection(wsm_conn(), stream);
        sink.borrow_mut().log = Some(Vec::new());
        rt.block_on(wsm_tokio_send(&mut ws, &payload, count));
        check_sent(&format!("wsmachine {label}"), &sink, role, &payload, count);
        bench(group, "wsmachine", label, || {
            rt.block_on(wsm_tokio_send(&mut ws, &payload, count))
        });
    }

    // wsmachine, blocking driver
    if wanted(group, "wsmachine-blocking", label) {
        let stream = MemStream::new(Vec::new());
        let sink = stream.sink.clone();
        let mut ws = wsmachine::blocking::WebSocket::from_connection(wsm_conn(), stream);
        sink.borrow_mut().log = Some(Vec::new());
        wsm_blocking_send(&mut ws, &payload, count);
        check_sent(&format!("wsmachine-blocking {label}"), &sink, role, &payload, count);
        bench(group, "wsmachine-blocking", label, || {
            wsm_blocking_send(&mut ws, &payload, count)
        });
    }

    // tokio-websockets
    if wanted(group, "tokio-websockets", label) {
        let stream = MemStream::new(Vec::new());
        let sink = stream.sink.clone();
        let mut ws = match role {
            Role::Server => tokio_websockets::ServerBuilder::new().serve(stream),
            Role::Client => tokio_websockets::ClientBuilder::new().take_over(stream),
        };
        sink.borrow_mut().log = Some(Vec::new());
        rt.block_on(tws_send(&mut ws, &payload, count));
        check_sent(&format!("tokio-websockets {label}"), &sink, role, &payload, count);
        bench(group, "tokio-websockets", label, || {
            rt.block_on(tws_send(&mut ws, &payload, count))
        });
    }

    // tungstenite
    if wanted(group, "tungstenite", label) {
        let tung_role = match role {
            Role::Client => tungstenite::protocol::Role::Client,
            Role::Server => tungstenite::protocol::Role::Server,
        };
        let stream = MemStream::new(Vec::new());
        let sink = stream.sink.clone();
        let mut ws = tungstenite::WebSocket::from_raw_socket(stream, tung_role, None);
        sink.borrow_mut().log = Some(Vec::new());
        tung_send(&mut ws, &payload, count);
        check_sent(&format!("tungstenite {label}"), &sink, role, &payload, count);
        bench(group, "tungstenite", label, || tung_send(&mut ws, &payload, count));
    }

    // fastwebsockets
    if wanted(group, "fastwebsockets", label) {
        let fws_role = match role {
            Role::Client => fastwebsockets::Role::Client,
            Role::Server => fastwebsockets::Role::Server,
        };
        let stream = MemStream::new(Vec::new());
        let sink = stream.sink.clone();
        let mut ws = fastwebsockets::WebSocket::after_handshake(stream, fws_role);
        sink.borrow_mut().log = Some(Vec::new());
        rt.block_on(fws_send(&mut ws, &payload, count));
        check_sent(&format!("fastwebsockets {label}"), &sink, role, &payload, count);
        bench(group, "fastwebsockets", label, || {
            rt.block_on(fws_send(&mut ws, &payload, count))
        });
    }

    if wanted(group, "memcpy", label) {
        bench_memcpy(group, label, count * size);
    }
}

fn send_server(c: &mut Criterion) {
    let rt = runtime();
    let mut group = new_group(c, "send_server");
    for (size, label) in SIZES {
        bench_send(&mut group, &rt, Role::Server, size, label);
    }
    group.finish();
}

fn send_client(c: &mut Criterion) {
    let rt = runtime();
    let mut group = new_group(c, "send_client");
    for (size, label) in SIZES {
        bench_send(&mut group, &rt, Role::Client, size, label);
    }
    group.finish();
}

/// Plots cost several seconds per benchmark here, so they are off unless
/// `BENCH_PLOTS=1` is set (`--noplot` still works either way).
fn criterion() -> Criterion {
    let c = Criterion::default();
    if std::env::var_os("BENCH_PLOTS").is_some_and(|v| v != "0") {
        c
    } else {
        c.without_plots()
    }
}

criterion_group!(
    name = benches;
    config = criterion();
    targets =
    receive_binary,
    receive_text,
    receive_fragmented,
    send_server,
    send_client
);
criterion_main!(benches);
