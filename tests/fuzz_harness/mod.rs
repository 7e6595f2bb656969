//! The bodies of the fuzz targets, shared by `fuzz/fuzz_targets/*` (run by
//! cargo-fuzz on nightly) and by `tests/it/fuzz_regressions.rs`, which replays
//! the checked-in corpora and every past finding on stable `cargo test`.
//!
//! Each function takes raw fuzzer bytes, drives the machine, and asserts
//! invariants (panicking when one breaks), not only "does not crash".

#![allow(dead_code)]

pub mod alloc_count;
#[cfg(feature = "deflate")]
pub mod deflate;
pub mod differential;
pub mod wire;

use arbitrary::{Arbitrary, Unstructured};
use std::time::Duration;
use wire::open_role;
use wsmachine::internal::frame::FrameHeader;
use wsmachine::rng::ChaCha20Rng;
use wsmachine::{
    Accept, ClientRequest, CloseCode, Config, Connection, DataKind, Event, HttpResponse, Instant, ReadyState, Role,
};

/// Limits small enough for the fuzzer to reach them.
pub fn small_config(streaming: bool) -> Config {
    Config {
        max_frame_size: 64 << 10,
        max_message_size: 256 << 10,
        max_handshake_size: 4 << 10,
        max_output_buffer: 256 << 10,
        streaming,
        close_timeout: Duration::from_millis(500),
        ..Config::default()
    }
}

/// Splits `data` into chunks whose sizes come from `u`.
fn chunks<'a>(u: &mut Unstructured<'_>, data: &'a [u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let n = (u.int_in_range(1..=64usize).unwrap_or(rest.len())).min(rest.len());
        let (a, b) = rest.split_at(n);
        out.push(a);
        rest = b;
    }
    out
}

/// `frame_decode`: whatever decodes re-encodes to the same bytes (minimal
/// length forms aside), never reading past the input, in any chunking.
pub fn frame_decode(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let split = u.int_in_range(0..=data.len().min(4096)).unwrap_or(0);
    let input = &data[data.len() - (data.len() - split).min(data.len())..];
    let mut buf: Vec<u8> = Vec::new();
    for chunk in chunks(&mut u, input) {
        buf.extend_from_slice(chunk);
        loop {
            match FrameHeader::decode(&buf) {
                Ok(None) => break,
                Err(_) => {
                    buf.clear();
                    break;
                }
                Ok(Some((h, n))) => {
                    assert!(n <= buf.len() && n <= 14, "header length {n} past input {}", buf.len());
                    assert!(h.payload_len < 1 << 63);
                    let mut out = [0u8; 14];
                    let m = h.encode(&mut out);
                    assert_eq!(m, h.encoded_len());
                    // Same header again from the re-encoding.
                    assert_eq!(FrameHeader::decode(&out[..m]), Ok(Some((h, m))));
                    if m == n {
                        assert_eq!(&out[..m], &buf[..n], "re-encoding differs");
                    } else {
                        // Only a non-minimal length form may differ.
                        assert!(m < n, "re-encoding longer than the input");
                        assert_eq!(out[0], buf[0]);
                    }
                    // Skip the payload we have; the rest is the next frame's.
                    let skip = (n as u64).saturating_add(h.payload_len).min(buf.len() as u64) as usize;
                    buf.drain(..skip);
                    if skip < n {
                        break;
                    }
                }
            }
        }
    }
}

/// The invariants a connection run checks after every step: the state
/// never moves backwards, no byte is emitted or queued after CLOSED (what
/// waits may be dropped), and the heap
/// (counted on the calling thread from `baseline`, so other threads of the
/// process do not disturb it) stays within `bound`.
pub struct Watch {
    state: ReadyState,
    emitted_at_close: Option<u64>,
    baseline: isize,
    bound: usize,
}

impl Watch {
    /// `baseline`: [`alloc_count::bytes_this_thread`] before the machines were made.
    pub fn new(state: ReadyState, baseline: isize, bound: usize) -> Self {
        Watch {
            state,
            emitted_at_close: None,
            baseline,
            bound,
        }
    }

    /// After a step: the machine is in `state` and has emitted (or queued)
    /// `emitted` bytes in all.
    pub fn step(&mut self, state: ReadyState, emitted: u64) {
        assert!(
            state >= self.state,
            "state moved backwards: {:?} -> {state:?}",
            self.state
        );
        self.state = state;
        if state == ReadyState::Closed {
            let at_close = *self.emitted_at_close.get_or_insert(emitted);
            assert!(
                emitted <= at_close,
                "bytes emitted after CLOSED: {emitted} > {at_close}"
            );
            // Output waiting at CLOSED may be dropped (a close reply the
            // peer took none of for the close timeout), never added to.
            self.emitted_at_close = Some(emitted);
        }
        let heap = (alloc_count::bytes_this_thread() - self.baseline).max(0) as usize;
        assert!(heap <= self.bound, "heap {heap} above the bound {}", self.bound);
    }
}

/// Drains every event of `conn`, answering requests; returns them.
/// What `drain` saw: the events, with the requests (which it answers) as marks.
#[derive(Debug)]
enum Seen {
    Request,
    HttpRequest,
    Event(Event),
}

fn drain(conn: &mut Connection, accept: bool) -> Vec<Seen> {
    let mut events = Vec::new();
    while let Some(e) = conn.poll_event() {
        match e {
            Event::Request(req) if accept => {
                let proto = req.protocols.first().cloned();
                let a = match proto {
                    Some(p) => Accept::new().protocol(&p),
                    None => Accept::new(),
                };
                conn.accept(req, a).expect("accepting a surfaced request");
                events.push(Seen::Request);
            }
            Event::Request(req) => {
                conn.reject(req, HttpResponse::new(404).body("no"))
                    .expect("rejecting a surfaced request");
                events.push(Seen::Request);
            }
            Event::HttpRequest(req) => {
                conn.respond(req, HttpResponse::new(404).body("no"))
                    .expect("answering a surfaced request");
                events.push(Seen::HttpRequest);
            }
            e => events.push(Seen::Event(e)),
        }
        assert!(events.len() < 1_000_000);
    }
    events
}

fn take_all(conn: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    // Twice at most: an automatic pong waiting behind the output is queued
    // once the output drains (RFC 6455 §5.5.3), and nothing waits behind it.
    for _ in 0..2 {
        for chunk in conn.output_chunks() {
            out.extend_from_slice(chunk);
        }
        conn.consume_output(conn.buffered_amount());
    }
    assert_eq!(conn.buffered_amount(), 0);
    out
}

/// `server_handshake`: arbitrary request bytes in arbitrary chunks. An
/// accepted request yields a response a client accepts (checked by
/// replaying it into a client whose key matches); a rejected one yields a
/// well-formed HTTP response. Memory stays under the handshake limit.
pub fn server_handshake(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let accept = u.arbitrary::<bool>().unwrap_or(true);
    let rest = u.take_rest();
    let mut u2 = Unstructured::new(rest);
    let config = small_config(false);
    let mut server = Connection::server(config.clone());
    let mut events = Vec::new();
    for chunk in chunks(&mut u2, rest) {
        server.receive(chunk);
        events.extend(drain(&mut server, accept));
        if server.state() == ReadyState::Closed {
            break;
        }
    }
    let out = take_all(&mut server);
    if out.is_empty() {
        // Still waiting for the head: it must be under the limit.
        assert!(events.is_empty() || matches!(events[0], Seen::Request | Seen::HttpRequest));
        return;
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let status = resp.parse(&out).expect("the server's response parses");
    assert!(status.is_complete(), "the server's response is complete");
    let code = resp.code.expect("status code");
    match events.first() {
        Some(Seen::Request) if accept => {
            assert_eq!(code, 101);
            assert!(
                matches!(events.get(1), Some(Seen::Event(Event::Open { .. }))),
                "{events:?}"
            );
        }
        Some(Seen::Request | Seen::HttpRequest) => assert_eq!(code, 404),
        Some(Seen::Event(Event::Error(wsmachine::Failure::Handshake { error, .. }))) => {
            assert_eq!(code, error.status());
            assert!(matches!(code, 400 | 405 | 426 | 431));
        }
        other => panic!("response {code} without a request or error event: {other:?}"),
    }
}

/// `client_handshake`: arbitrary response bytes in arbitrary chunks, after a
/// real request; the machine either opens (then the response really was a
/// valid 101 for its key) or fails with a handshake error, never panics.
pub fn client_handshake(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let seed: [u8; 32] = u.arbitrary().unwrap_or([0; 32]);
    let use_valid_prefix = u.arbitrary::<bool>().unwrap_or(false);
    let request = ClientRequest::new("example.com", 80, "/").protocol("chat");
    let mut client = Connection::client_with_rng(request, small_config(false), ChaCha20Rng::from_seed(seed)).unwrap();
    let req = take_all(&mut client);
    let mut input = Vec::new();
    if use_valid_prefix {
        // A correct 101 for this key, then the fuzzer's bytes (frames).
        let key = wire::header_value(&req, "sec-websocket-key").expect("request has a key");
        input.extend_from_slice(
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                wsmachine::handshake::accept_key(key.as_bytes())
            )
            .as_bytes(),
        );
    }
    let rest = u.take_rest();
    input.extend_from_slice(rest);
    let mut u2 = Unstructured::new(rest);
    let mut events = Vec::new();
    for chunk in chunks(&mut u2, &input) {
        client.receive(chunk);
        events.extend(drain(&mut client, false));
    }
    match events.first() {
        None => assert_eq!(client.state(), ReadyState::Connecting),
        Some(Seen::Event(Event::Open { response, .. })) => {
            let r = response.as_ref().expect("client Open carries the response");
            assert_eq!(r.status, 101);
        }
        Some(Seen::Event(Event::Error(wsmachine::Failure::Handshake { .. }))) => {
            assert_eq!(client.state(), ReadyState::Closed);
            assert!(matches!(events.last(), Some(Seen::Event(Event::Closed(_)))));
        }
        other => panic!("unexpected first event {other:?}"),
    }
}

/// One step of a connection fuzz run.
#[derive(Arbitrary, Debug)]
pub enum Op {
    /// Raw bytes from the peer.
    Receive(Vec<u8>),
    /// A well-formed-ish frame from the peer (to get past the header checks).
    Frame {
        opcode: u8,
        fin: bool,
        rsv: u8,
        masked: bool,
        payload: Vec<u8>,
    },
    SendText(String),
    SendBinary(Vec<u8>),
    SendFragment {
        text: bool,
        data: Vec<u8>,
        fin: bool,
    },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(u16, String),
    PassTime(u16),
    TakeOutput(u16),
    Eof,
    Events,
    /// `shrink_buffers`: what is buffered must survive it.
    Shrink,
}

/// `connection_server` / `connection_client`: an OPEN machine driven by an
/// arbitrary sequence of operations. Invariants: the state never moves
/// backwards; after CLOSED nothing more is emitted; every byte emitted parses
/// as valid frames for the role; the buffered amount is what was queued
/// minus what was taken; heap stays within the configured limits plus a
/// constant.
pub fn connection(role: Role, data: &[u8]) {
    let mut u = Unstructured::new(data);
    let streaming = u.arbitrary::<bool>().unwrap_or(false);
    let auto_pong = u.arbitrary::<bool>().unwrap_or(true);
    let ops: Vec<Op> = u.arbitrary().unwrap_or_default();
    let config = Config {
        auto_pong,
        ..small_config(streaming)
    };
    let bound = 4 * (config.max_message_size + config.max_output_buffer + config.max_frame_size) + (1 << 20);
    let baseline = alloc_count::bytes_this_thread();
    let mut conn = open_role(role, config, ChaCha20Rng::from_seed([9; 32]));
    let mut checker = wire::FrameChecker::new(role);
    let mut watch = Watch::new(conn.state(), baseline, bound);
    let mut now = 0u64;
    let mut emitted = 0u64; // bytes taken from the machine so far
    for op in ops {
        let before = conn.buffered_amount();
        let mut queued_by_app = None;
        match op {
            Op::Receive(bytes) => conn.receive(&bytes),
            Op::Frame {
                opcode,
                fin,
                rsv,
                masked,
                payload,
            } => conn.receive(&wire::frame(
                opcode & 0xF,
                fin,
                rsv & 7,
                masked.then_some([1, 2, 3, 4]),
                &payload,
            )),
            Op::SendText(t) => queued_by_app = Some(conn.send(&t).is_ok()),
            Op::SendBinary(b) => queued_by_app = Some(conn.send(&b).is_ok()),
            Op::SendFragment { text, data, fin } => {
                let kind = if text { DataKind::Text } else { DataKind::Binary };
                queued_by_app = Some(conn.send_fragment(kind, &data, fin).is_ok());
            }
            Op::Ping(p) => queued_by_app = Some(conn.ping(&p).is_ok()),
            Op::Pong(p) => queued_by_app = Some(conn.pong(&p).is_ok()),
            Op::Close(code, reason) => queued_by_app = Some(conn.close(CloseCode(code), &reason).is_ok()),
            Op::PassTime(ms) => {
                now += u64::from(ms);
                conn.handle_timeout(Instant::from_millis(now));
            }
            Op::TakeOutput(n) => {
                let n = usize::from(n).min(conn.buffered_amount());
                let mut taken = Vec::new();
                while taken.len() < n {
                    let front = conn.pending_output();
                    let k = front.len().min(n - taken.len());
                    taken.extend_from_slice(&front[..k]);
                    conn.consume_output(k);
                }
                let after = conn.buffered_amount();
                if after != before - n {
                    // RFC 6455 §5.5.3: an automatic pong waiting behind the
                    // output is queued once it drains, and nothing else is.
                    assert_eq!(before, n, "consume reduces the buffered amount exactly");
                    let pong = conn.pending_output();
                    assert!(
                        pong[0] == 0x8a && after <= 2 + 4 + 125 && pong.len() == after,
                        "only a pong came in"
                    );
                }
                emitted += n as u64;
                checker.feed(&taken);
            }
            Op::Eof => conn.receive_eof(),
            Op::Shrink => {
                conn.shrink_buffers();
                assert_eq!(conn.buffered_amount(), before, "shrinking changed the output");
            }
            Op::Events => {
                while let Some(e) = conn.poll_event() {
                    checker.event(&e);
                }
            }
        }
        if let Some(ok) = queued_by_app {
            // A failed call queues nothing.
            if !ok {
                assert_eq!(conn.buffered_amount(), before, "a failed call queued bytes");
            }
        }
        // Lazy processing: drain events after every op, as drivers do.
        while let Some(e) = conn.poll_event() {
            checker.event(&e);
        }
        watch.step(conn.state(), emitted + conn.buffered_amount() as u64);
    }
    // Everything left parses too.
    let rest = take_all(&mut conn);
    checker.feed(&rest);
}

/// `roundtrip`: messages sent by a client machine, re-chunked, arrive at a
/// server machine unchanged (and back).
pub fn roundtrip(data: &[u8]) {
    #[derive(Arbitrary, Debug)]
    enum Msg {
        Text(String),
        Binary(Vec<u8>),
        /// A message sent as fragments of these sizes.
        Fragmented {
            text: bool,
            body: Vec<u8>,
            cuts: Vec<u8>,
        },
        Ping(Vec<u8>),
    }
    let mut u = Unstructured::new(data);
    let msgs: Vec<Msg> = u.arbitrary().unwrap_or_default();
    let client_to_server = u.arbitrary::<bool>().unwrap_or(true);
    let chunking: Vec<u8> = u.arbitrary().unwrap_or_default();
    let (mut client, mut server) = wire::open_pair(small_config(false));
    let (tx, rx) = if client_to_server {
        (&mut client, &mut server)
    } else {
        (&mut server, &mut client)
    };
    let mut expected: Vec<(DataKind, Vec<u8>)> = Vec::new();
    for m in msgs {
        match m {
            Msg::Text(t) => {
                if t.len() > 60_000 {
                    continue;
                }
                tx.send(&t).unwrap();
                expected.push((DataKind::Text, t.into_bytes()));
            }
            Msg::Binary(b) => {
                if b.len() > 60_000 {
                    continue;
                }
                tx.send(&b).unwrap();
                expected.push((DataKind::Binary, b));
            }
            Msg::Fragmented { text, body, cuts } => {
                let (kind, body) = if text {
                    (DataKind::Text, String::from_utf8_lossy(&body).into_owned().into_bytes())
                } else {
                    (DataKind::Binary, body)
                };
                let mut rest = &body[..];
                for c in cuts.iter().take(16) {
                    let n = usize::from(*c).min(rest.len());
                    let (a, b) = rest.split_at(n);
                    // Text fragments may split a character; validation carries it.
                    tx.send_fragment(kind, a, false).unwrap();
                    rest = b;
                }
                tx.send_fragment(kind, rest, true).unwrap();
                expected.push((kind, body));
            }
            Msg::Ping(mut p) => {
                p.truncate(125);
                tx.ping(&p).unwrap();
            }
        }
    }
    let bytes = take_all(tx);
    let mut got: Vec<(DataKind, Vec<u8>)> = Vec::new();
    let mut pos = 0;
    let mut sizes = chunking.iter().cycle();
    while pos < bytes.len() {
        let n = sizes
            .next()
            .map_or(bytes.len(), |&s| usize::from(s).max(1))
            .min(bytes.len() - pos);
        rx.receive(&bytes[pos..pos + n]);
        pos += n;
        while let Some(e) = rx.poll_event() {
            match e {
                Event::Text(t) => got.push((DataKind::Text, t.as_bytes().to_vec())),
                Event::Binary(b) => got.push((DataKind::Binary, b.to_vec())),
                Event::Ping(_) | Event::Pong(_) => {}
                other => panic!("unexpected event {other:?}"),
            }
        }
    }
    assert_eq!(got, expected);
    assert_eq!(rx.state(), ReadyState::Open);
}
