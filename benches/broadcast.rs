//! Broadcast (issue 14): one message to 10,000 server connections, framed
//! once (`PreparedMessage` + `send_prepared`) against framing it per
//! connection (`send` of an owned `Bytes`, `send` of a borrowed `&[u8]`).
//!
//! ```text
//! cargo bench --bench broadcast                # the table, then criterion (~1 min)
//! cargo bench --bench broadcast -- 64KiB       # one size
//! ```
//!
//! One iteration is one broadcast: the message is queued on every
//! connection (for `prepared` it is framed first, once, inside the timed
//! part), then each connection's output is drained with `consume_output`,
//! as after a socket write that took everything (the bytes are not read:
//! the kernel's copy is the same for every variant).
//!
//! Before criterion runs, a table is printed per size and variant:
//!
//! - `ns/recipient`: the median of 15 broadcasts, divided by 10,000;
//! - `copied B/recipient`: measured from the queued output: the bytes of
//!   every connection's output chunks that do not lie in the message's own
//!   memory (the prepared frame, or the `Bytes` handed to `send`), i.e.
//!   what was copied into the connection's buffer, header included;
//!   `payload B copied` is that minus the frame header (which `send` writes
//!   per connection; a prepared frame under 256 bytes is copied whole, as
//!   that is cheaper than sharing it);
//! - `alloc B/recipient`: bytes allocated during the broadcast (a counting
//!   global allocator), divided by 10,000.
//!
//! A second table (not in criterion: a per-connection compression of
//! 10,000 × 64 KiB takes seconds) does the same to peers that negotiated
//! permessage-deflate with `server_no_context_takeover`: JSON text
//! compressed once (`prepared`) against compressed per connection (`send`);
//! there `copied` counts every queued byte outside the one frame the first
//! two connections share.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};
use wsmachine::deflate::DeflateConfig;
use wsmachine::handshake::{Header, Headers};
use wsmachine::{Accept, Bytes, Config, Connection, Message, PreparedMessage, Upgrade};

/// Counts the bytes allocated (frees not subtracted).
struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: defers to the system allocator; only adds counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Relaxed);
        // SAFETY: the caller's contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size, Relaxed);
        // SAFETY: the caller's contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static A: Counting = Counting;

const RECIPIENTS: usize = 10_000;
const SIZES: [(usize, &str); 3] = [(16, "16B"), (1 << 10, "1KiB"), (64 << 10, "64KiB")];

#[derive(Clone, Copy, Debug)]
enum Variant {
    /// `PreparedMessage::new` once, `send_prepared` on each connection.
    Prepared,
    /// `send(Message::Binary(bytes.clone()))` on each connection.
    SendBytes,
    /// `send(&bytes[..])` on each connection.
    SendSlice,
}

const VARIANTS: [(Variant, &str); 3] = [
    (Variant::Prepared, "prepared"),
    (Variant::SendBytes, "send_bytes"),
    (Variant::SendSlice, "send_slice"),
];

fn room() -> Vec<Connection> {
    (0..RECIPIENTS)
        .map(|_| {
            Connection::open_server(Config {
                ping_interval: None,
                ..Config::default()
            })
        })
        .collect()
}

/// Queues `payload` on every connection; returns the prepared message when
/// there is one (the memory the shared chunks point into).
fn queue(room: &mut [Connection], variant: Variant, payload: &Bytes) -> Option<PreparedMessage> {
    match variant {
        Variant::Prepared => {
            let prepared = PreparedMessage::new(payload.clone());
            for conn in room.iter_mut() {
                conn.send_prepared(&prepared).unwrap();
            }
            Some(prepared)
        }
        Variant::SendBytes => {
            for conn in room.iter_mut() {
                conn.send(Message::Binary(payload.clone())).unwrap();
            }
            None
        }
        Variant::SendSlice => {
            for conn in room.iter_mut() {
                conn.send(&payload[..]).unwrap();
            }
            None
        }
    }
}

fn drain(room: &mut [Connection]) {
    for conn in room.iter_mut() {
        let n = conn.buffered_amount();
        conn.consume_output(black_box(n));
    }
}

fn broadcast(room: &mut [Connection], variant: Variant, payload: &Bytes) {
    black_box(queue(room, variant, payload));
    drain(room);
}

/// Whether `chunk` lies inside `region`.
fn inside(chunk: &[u8], region: &[u8]) -> bool {
    let (c, r) = (chunk.as_ptr() as usize, region.as_ptr() as usize);
    c >= r && c + chunk.len() <= r + region.len()
}

/// Bytes queued on `room` outside the message's own memory, per recipient.
fn copied_per_recipient(room: &[Connection], prepared: Option<&PreparedMessage>, payload: &Bytes) -> usize {
    let region: &[u8] = prepared.map_or(&payload[..], |p| &p.frame()[..]);
    let copied: usize = room
        .iter()
        .flat_map(|c| c.output_chunks())
        .filter(|chunk| !inside(chunk, region))
        .map(<[u8]>::len)
        .sum();
    copied / room.len()
}

/// The header length of a server frame of `len` bytes (RFC 6455 §5.2).
fn header_len(len: usize) -> usize {
    match len {
        0..=125 => 2,
        126..=65535 => 4,
        _ => 10,
    }
}

fn table() {
    eprintln!("broadcast to {RECIPIENTS} connections (server role, no extension); median of 15 broadcasts each");
    eprintln!(
        "{:>6} {:>11} {:>13} {:>19} {:>17} {:>18}",
        "size", "variant", "ns/recipient", "copied B/recipient", "payload B copied", "alloc B/recipient"
    );
    for (size, name) in SIZES {
        let payload = Bytes::from(vec![0x5au8; size]);
        let mut room = room();
        for (variant, vname) in VARIANTS {
            // Warm up: every connection's buffers and chunk list exist.
            broadcast(&mut room, variant, &payload);
            let before = ALLOCATED.load(Relaxed);
            let prepared = queue(&mut room, variant, &payload);
            let allocated = (ALLOCATED.load(Relaxed) - before) / RECIPIENTS;
            let copied = copied_per_recipient(&room, prepared.as_ref(), &payload);
            let payload_copied = copied.saturating_sub(header_len(size));
            drain(&mut room);
            let mut times: Vec<Duration> = (0..15)
                .map(|_| {
                    let t = Instant::now();
                    broadcast(&mut room, variant, &payload);
                    t.elapsed()
                })
                .collect();
            times.sort();
            let ns = times[times.len() / 2].as_nanos() as f64 / RECIPIENTS as f64;
            eprintln!("{name:>6} {vname:>11} {ns:>13.1} {copied:>19} {payload_copied:>17} {allocated:>18}");
        }
    }
}

/// A server connection that agreed to permessage-deflate with
/// `server_no_context_takeover` (RFC 7692 §7.1.1.1), through `Upgrade`.
fn deflate_connection() -> Connection {
    let header = |name: &str, value: &str| Header {
        name: name.into(),
        value: value.into(),
    };
    let request = Headers(vec![
        header("Host", "bench"),
        header("Upgrade", "websocket"),
        header("Connection", "Upgrade"),
        header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        header("Sec-WebSocket-Version", "13"),
        header(
            "Sec-WebSocket-Extensions",
            "permessage-deflate; server_no_context_takeover",
        ),
    ]);
    let config = DeflateConfig {
        server_no_context_takeover: true,
        ..DeflateConfig::default()
    };
    let upgrade = Upgrade::new("GET", &request, Accept::new().deflate(config)).unwrap();
    let conn = Connection::from_upgrade(
        upgrade,
        Config {
            ping_interval: None,
            ..Config::default()
        },
    );
    assert!(conn.deflate().is_some_and(|d| d.server_no_context_takeover));
    conn
}

/// JSON-like text of `n` bytes.
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

/// The same broadcast to peers that negotiated permessage-deflate without
/// server context takeover: compressed once (`prepared`) or per
/// connection (`send_slice`, as `send` must without a shared encoding).
fn deflate_table() {
    eprintln!(
        "\nbroadcast of JSON text to {RECIPIENTS} permessage-deflate peers (server_no_context_takeover, level 6); median of 3"
    );
    eprintln!(
        "{:>6} {:>11} {:>13} {:>19} {:>18}",
        "size", "variant", "ns/recipient", "copied B/recipient", "alloc B/recipient"
    );
    let mut room: Vec<Connection> = (0..RECIPIENTS).map(|_| deflate_connection()).collect();
    for (size, name) in [(1 << 10, "1KiB"), (64 << 10, "64KiB")] {
        let text = json(size);
        for vname in ["prepared", "send_slice"] {
            let run = |room: &mut [Connection]| -> (usize, usize) {
                let before = ALLOCATED.load(Relaxed);
                let prepared = (vname == "prepared").then(|| PreparedMessage::new(text.as_str()));
                for conn in room.iter_mut() {
                    match &prepared {
                        Some(p) => conn.send_prepared(p).unwrap(),
                        None => conn.send(text.as_str()).unwrap(),
                    }
                }
                let allocated = (ALLOCATED.load(Relaxed) - before) / RECIPIENTS;
                // Shared when the first two connections queue the same memory.
                let first = |c: &Connection| c.output_chunks().next().map(|c| (c.as_ptr(), c.len()));
                let shared = first(&room[0]).filter(|f| Some(*f) == first(&room[1]));
                let copied: usize = room
                    .iter()
                    .flat_map(|c| c.output_chunks())
                    .filter(|c| shared != Some((c.as_ptr(), c.len())))
                    .map(<[u8]>::len)
                    .sum();
                drain(room);
                (copied / RECIPIENTS, allocated)
            };
            run(&mut room);
            let mut times = Vec::new();
            let mut measured = (0, 0);
            for _ in 0..3 {
                let t = Instant::now();
                measured = run(&mut room);
                times.push(t.elapsed());
            }
            times.sort();
            let ns = times[1].as_nanos() as f64 / RECIPIENTS as f64;
            let (copied, allocated) = measured;
            eprintln!("{name:>6} {vname:>11} {ns:>13.1} {copied:>19} {allocated:>18}");
        }
    }
}

fn bench(c: &mut Criterion) {
    table();
    deflate_table();
    for (size, name) in SIZES {
        let payload = Bytes::from(vec![0x5au8; size]);
        let mut room = room();
        let mut group = c.benchmark_group(format!("broadcast_{name}"));
        group.throughput(Throughput::Elements(RECIPIENTS as u64));
        group.sample_size(20);
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(3));
        for (variant, vname) in VARIANTS {
            group.bench_function(BenchmarkId::from_parameter(vname), |b| {
                b.iter(|| broadcast(&mut room, variant, &payload));
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
