//! permessage-deflate (RFC 7692) throughput beside the uncompressed path,
//! and the compression ratio of a realistic JSON stream (issue 6).
//!
//! ```text
//! cargo bench --bench deflate                 # everything (~3 min on 2 cores)
//! cargo bench --bench deflate -- compress     # one group
//! ```
//!
//! | group | what one iteration does |
//! |---|---|
//! | `compress` | a server sends one message (text or binary, 1 KiB / 64 KiB / 1 MiB) and its output is taken: `deflate` (level 6, context takeover, window 15) beside `plain` (the same send uncompressed) |
//! | `decompress` | a client receives one server frame of that message: `deflate` (compressed by the server with `server_no_context_takeover`, so every frame is independent and can be replayed) beside `plain` |
//!
//! Throughput is in payload (uncompressed) bytes per second. Sends rotate
//! through distinct messages (256 KiB of them, more than the 32 KiB window)
//! so context takeover cannot turn a repeated message into one
//! back-reference; the output is copied into a sink as a socket write would. Before the benchmarks the ratio of a
//! JSON stream (10,000 chat/market-data messages, 60-400 bytes each) is
//! printed for a few settings.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use std::hint::black_box;
use std::time::Duration;
use wsmachine::deflate::DeflateConfig;
use wsmachine::rng::ChaCha20Rng;
use wsmachine::{Accept, ClientRequest, Compression, Config, Connection, Event, Message};

const SIZES: [(usize, &str); 3] = [(1 << 10, "1KiB"), (64 << 10, "64KiB"), (1 << 20, "1MiB")];

/// A small deterministic generator.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }
}

const NAMES: [&str; 8] = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"];
const SYMBOLS: [&str; 6] = ["BTC-USD", "ETH-USD", "SOL-USD", "AAPL", "MSFT", "EUR-USD"];

/// One realistic JSON message: a chat line or a market-data tick.
fn json_message(r: &mut Lcg, i: u64) -> String {
    if r.next() % 3 == 0 {
        let words = [
            "hello", "the", "deploy", "is", "done", "see", "you", "at", "noon", "thanks", "ok", "lgtm",
        ];
        let n = 3 + r.next() % 30;
        let text: Vec<&str> = (0..n).map(|_| words[(r.next() % 12) as usize]).collect();
        format!(
            r#"{{"type":"chat","id":{i},"room":"general","user":"{}","ts":{},"text":"{}"}}"#,
            NAMES[(r.next() % 8) as usize],
            1_764_000_000_000u64 + i * 137,
            text.join(" ")
        )
    } else {
        format!(
            r#"{{"type":"tick","seq":{i},"symbol":"{}","bid":{}.{:02},"ask":{}.{:02},"size":{},"ts":{}}}"#,
            SYMBOLS[(r.next() % 6) as usize],
            100 + r.next() % 900,
            r.next() % 100,
            100 + r.next() % 900,
            r.next() % 100,
            r.next() % 10_000,
            1_764_000_000_000u64 + i * 137
        )
    }
}

/// `len` bytes of JSON messages joined as an array (text workload).
fn text_payload(len: usize, seed: u64) -> String {
    let mut r = Lcg(seed);
    let mut s = String::from("[");
    let mut i = 0;
    while s.len() < len {
        s.push_str(&json_message(&mut r, i));
        s.push(',');
        i += 1;
    }
    s.truncate(len);
    s
}

/// `len` bytes of binary records: a counter, a slowly varying reading and
/// noisy low bits (sensor or game-state frames).
fn binary_payload(len: usize, seed: u64) -> Vec<u8> {
    let mut r = Lcg(seed);
    let mut v = Vec::with_capacity(len + 16);
    let mut level: i32 = 1000;
    let mut i: u32 = 0;
    while v.len() < len {
        level += (r.next() % 21) as i32 - 10;
        v.extend_from_slice(&i.to_le_bytes());
        v.extend_from_slice(&level.to_le_bytes());
        v.extend_from_slice(&((r.next() & 0xff) as u16).to_le_bytes());
        i += 1;
    }
    v.truncate(len);
    v
}

/// A client and a server that negotiated deflate with `server_config`.
fn pair(server_config: DeflateConfig) -> (Connection, Connection) {
    let mut client = Connection::client_with_rng(
        ClientRequest::new("bench", 80, "/").deflate(DeflateConfig::default()),
        Config::default(),
        ChaCha20Rng::from_seed([1; 32]),
    )
    .unwrap();
    let mut server = Connection::server(Config::default());
    move_bytes(&mut client, &mut server);
    while let Some(e) = server.poll_event() {
        if let Event::Request(request) = e {
            server
                .accept(request, Accept::new().deflate(server_config.clone()))
                .unwrap();
        }
    }
    move_bytes(&mut server, &mut client);
    while client.poll_event().is_some() {}
    assert!(client.deflate().is_some());
    (client, server)
}

fn move_bytes(from: &mut Connection, to: &mut Connection) {
    for chunk in from.output_chunks() {
        to.receive(chunk);
    }
    from.consume_output(from.buffered_amount());
}

fn take(conn: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in conn.output_chunks() {
        out.extend_from_slice(chunk);
    }
    conn.consume_output(conn.buffered_amount());
    out
}

/// Distinct messages of `len` bytes: together at least 256 KiB, more than
/// the 32 KiB window, so no message repeats within the compressor's reach.
fn messages(kind: &str, len: usize) -> Vec<Message> {
    let count = ((256 << 10) / len).max(4) as u64;
    (0..count)
        .map(|seed| match kind {
            "text" => Message::Text(text_payload(len, seed).as_str().into()),
            _ => Message::Binary(binary_payload(len, seed).into()),
        })
        .collect()
}

fn compress(c: &mut Criterion) {
    let mut g = c.benchmark_group("compress");
    g.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    for kind in ["text", "binary"] {
        for (len, name) in SIZES {
            g.sample_size(if len >= 1 << 20 { 10 } else { 30 });
            g.throughput(Throughput::Bytes(len as u64));
            let msgs = messages(kind, len);
            // The output is copied into a preallocated sink, as a socket
            // write copies into the kernel (a server queues an uncompressed
            // `Bytes` payload without copying it).
            let mut sink = Vec::with_capacity(2 * len + 64);
            for (variant, compression) in [("deflate", Compression::On), ("plain", Compression::Off)] {
                let (_, mut server) = pair(DeflateConfig::default());
                let mut i = 0;
                g.bench_function(BenchmarkId::new(format!("{kind}/{variant}"), name), |b| {
                    b.iter(|| {
                        server.send_with(msgs[i % msgs.len()].clone(), compression).unwrap();
                        i += 1;
                        sink.clear();
                        for chunk in server.output_chunks() {
                            sink.extend_from_slice(chunk);
                        }
                        let n = sink.len();
                        server.consume_output(n);
                        black_box(&sink);
                        n
                    })
                });
            }
        }
    }
    g.finish();
}

fn decompress(c: &mut Criterion) {
    let mut g = c.benchmark_group("decompress");
    g.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500));
    for kind in ["text", "binary"] {
        for (len, name) in SIZES {
            g.sample_size(if len >= 1 << 20 { 10 } else { 30 });
            g.throughput(Throughput::Bytes(len as u64));
            let msg = messages(kind, len).swap_remove(0);
            for (variant, compression) in [("deflate", Compression::On), ("plain", Compression::Off)] {
                let (mut client, mut server) = pair(DeflateConfig {
                    server_no_context_takeover: true,
                    ..DeflateConfig::default()
                });
                server.send_with(msg.clone(), compression).unwrap();
                let frame = take(&mut server);
                // Checked once: the frame decodes to the message.
                client.receive(&frame);
                match client.poll_event() {
                    Some(Event::Text(t)) => assert!(Message::Text(t) == msg),
                    Some(Event::Binary(b)) => assert!(Message::Binary(b) == msg),
                    other => panic!("{other:?}"),
                }
                g.bench_function(BenchmarkId::new(format!("{kind}/{variant}"), name), |b| {
                    b.iter(|| {
                        client.receive(&frame);
                        match client.poll_event() {
                            Some(Event::Text(t)) => black_box(t).len(),
                            Some(Event::Binary(b)) => black_box(b).len(),
                            other => panic!("{other:?}"),
                        }
                    })
                });
            }
        }
    }
    g.finish();
}

/// The compression ratio of a JSON message stream, per setting.
fn print_ratios() {
    let mut r = Lcg(42);
    let stream: Vec<String> = (0..10_000).map(|i| json_message(&mut r, i)).collect();
    let raw: usize = stream.iter().map(|m| m.len()).sum();
    println!(
        "JSON stream: {} messages, {raw} bytes of payload ({} bytes on average)",
        stream.len(),
        raw / stream.len()
    );
    println!("| setting | wire bytes (frames) | ratio (wire / payload) |");
    println!("|---|---|---|");
    let settings: [(&str, DeflateConfig); 5] = [
        ("uncompressed", DeflateConfig::default()),
        ("deflate, context takeover, window 15", DeflateConfig::default()),
        (
            "deflate, context takeover, window 10",
            DeflateConfig {
                server_max_window_bits: 10,
                ..DeflateConfig::default()
            },
        ),
        (
            "deflate, no context takeover",
            DeflateConfig {
                server_no_context_takeover: true,
                ..DeflateConfig::default()
            },
        ),
        (
            "deflate, context takeover, level 1",
            DeflateConfig {
                level: 1,
                ..DeflateConfig::default()
            },
        ),
    ];
    for (name, config) in settings {
        let (mut client, mut server) = pair(config);
        let compression = if name == "uncompressed" {
            Compression::Off
        } else {
            Compression::On
        };
        let mut wire = 0;
        for m in &stream {
            server.send_with(Message::Text(m.as_str().into()), compression).unwrap();
            let bytes = take(&mut server);
            wire += bytes.len();
            client.receive(&bytes);
            match client.poll_event() {
                Some(Event::Text(t)) => assert_eq!(t.as_str(), m),
                other => panic!("{other:?}"),
            }
        }
        println!("| {name} | {wire} | {:.3} |", wire as f64 / raw as f64);
    }
    println!();
}

criterion_group!(benches, compress, decompress);

fn main() {
    print_ratios();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
