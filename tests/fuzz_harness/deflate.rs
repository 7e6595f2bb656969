//! `deflate`: two machines that negotiated permessage-deflate (RFC 7692)
//! with parameters chosen by the fuzzer, so the inflate path meets both
//! honest and hostile compressed payloads.
//!
//! While the bytes in transit are untouched, every message the sender sends
//! (whole or fragmented, compressed or not) must arrive unchanged. Once the
//! fuzzer corrupts a byte in transit or injects a frame of its own, only the
//! safety invariants hold: no panic, heap within the limits plus a constant,
//! a failure carries a close code for what was wrong (1002, 1007 or 1009),
//! the receiver's output parses as frames for its role, and nothing is
//! emitted after CLOSED.

use super::{Watch, alloc_count, small_config, wire};
use arbitrary::{Arbitrary, Unstructured};
use std::collections::VecDeque;
use wsmachine::deflate::DeflateConfig;
use wsmachine::rng::ChaCha20Rng;
use wsmachine::{
    Accept, ClientRequest, CloseCode, Compression, Config, Connection, DataKind, Event, Failure, Message,
    ProtocolError, ReadyState, Role,
};

/// The fuzzer's choice of one side's permessage-deflate settings.
#[derive(Arbitrary, Debug)]
struct Params {
    server_bits: u8,
    client_bits: u8,
    server_nct: bool,
    client_nct: bool,
    level: u8,
    threshold: u16,
}

impl Params {
    fn config(&self) -> DeflateConfig {
        DeflateConfig {
            server_max_window_bits: 8 + self.server_bits % 8,
            client_max_window_bits: 8 + self.client_bits % 8,
            server_no_context_takeover: self.server_nct,
            client_no_context_takeover: self.client_nct,
            level: self.level % 10,
            threshold: usize::from(self.threshold % 512),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// A whole message from the sender.
    Send {
        text: bool,
        body: Vec<u8>,
        compression: u8,
    },
    /// A message in fragments cut at these sizes.
    Fragmented {
        text: bool,
        body: Vec<u8>,
        cuts: Vec<u8>,
        compression: u8,
    },
    Ping(Vec<u8>),
    /// A message of one repeated byte, 1 KiB to 320 KiB, compressed: small on
    /// the wire, possibly past the receiver's message limit once inflated
    /// (then it must fail with 1009 before the memory is reserved; so must
    /// a frame past the frame limit, at level 0).
    Large {
        byte: u8,
        kib: u16,
    },
    /// Hand this many bytes in transit to the receiver.
    Deliver(u16),
    /// Flip bits of one byte in transit (from here on, only the safety
    /// invariants are checked).
    Corrupt {
        at: u16,
        xor: u8,
    },
    /// A frame of the fuzzer's own after what is in transit (RSV1 is the
    /// "compressed" bit).
    Inject {
        opcode: u8,
        fin: bool,
        rsv: u8,
        payload: Vec<u8>,
    },
}

fn compression(c: u8) -> Compression {
    match c % 3 {
        0 => Compression::Auto,
        1 => Compression::On,
        _ => Compression::Off,
    }
}

/// A client and a server after a handshake in which the client offered
/// `offer` and the server accepted with `answer` (deflate may still have been
/// declined, for example for an unanswerable window); both OPEN.
fn open_pair(
    client_config: Config,
    server_config: Config,
    offer: DeflateConfig,
    answer: DeflateConfig,
) -> (Connection, Connection) {
    let request = ClientRequest::new("localhost", 80, "/").deflate(offer);
    let mut client = Connection::client_with_rng(request, client_config, ChaCha20Rng::from_seed([5; 32])).unwrap();
    let mut server = Connection::server(server_config);
    wire::pump(&mut client, &mut server);
    match server.poll_event() {
        Some(Event::Request(request)) => server.accept(request, Accept::new().deflate(answer)).unwrap(),
        other => panic!("expected a request, got {other:?}"),
    }
    assert!(matches!(server.poll_event(), Some(Event::Open { .. })));
    wire::pump(&mut server, &mut client);
    assert!(matches!(client.poll_event(), Some(Event::Open { .. })));
    assert_eq!((client.state(), server.state()), (ReadyState::Open, ReadyState::Open));
    // Both sides use deflate or neither; what each compresses with fits what
    // the other inflates with. A client may keep its own promises beyond the
    // answer (a smaller window it offered, client_no_context_takeover).
    match (client.deflate(), server.deflate()) {
        (None, None) => {}
        (Some(c), Some(s)) => {
            assert!(c.client_max_window_bits <= s.client_max_window_bits, "{c:?} vs {s:?}");
            assert!(s.server_max_window_bits <= c.server_max_window_bits, "{c:?} vs {s:?}");
            assert!(
                c.client_no_context_takeover >= s.client_no_context_takeover,
                "{c:?} vs {s:?}"
            );
            assert_eq!(c.server_no_context_takeover, s.server_no_context_takeover);
        }
        (c, s) => panic!("one side uses deflate: client {c:?}, server {s:?}"),
    }
    (client, server)
}

pub fn deflate(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(offer) = u.arbitrary::<Params>() else { return };
    let Ok(answer) = u.arbitrary::<Params>() else { return };
    let streaming = u.arbitrary::<bool>().unwrap_or(false);
    let client_sends = u.arbitrary::<bool>().unwrap_or(true);
    let ops: Vec<Op> = u.arbitrary().unwrap_or_default();

    // The receiver has the small limits; the sender may queue and send
    // messages past them (Op::Large).
    let config = small_config(streaming);
    let tx_config = Config {
        max_message_size: 2 << 20,
        max_output_buffer: 4 << 20,
        ..config.clone()
    };
    // Two machines, each with a compressor and a decompressor (zlib state
    // and windows, a few hundred KiB at most) on top of the core bound, and
    // the sender's large message with its compressed copy.
    let bound =
        2 * (4 * (config.max_message_size + config.max_output_buffer + config.max_frame_size) + (2 << 20)) + (8 << 20);
    let baseline = alloc_count::bytes_this_thread();
    let (mut client, mut server) = if client_sends {
        open_pair(tx_config, config.clone(), offer.config(), answer.config())
    } else {
        open_pair(config.clone(), tx_config, offer.config(), answer.config())
    };
    let (tx, rx, rx_role) = if client_sends {
        (&mut client, &mut server, Role::Server)
    } else {
        (&mut server, &mut client, Role::Client)
    };
    let sender_mask = (rx_role == Role::Server).then_some([7, 1, 9, 3]);

    let mut in_transit: Vec<u8> = Vec::new();
    // Messages sent and not yet received, checked as they arrive (so the
    // harness's own memory stays small next to the heap it bounds).
    let mut expected: VecDeque<Expect> = VecDeque::new();
    let mut partial: Option<(DataKind, Vec<u8>)> = None; // streaming
    // Bytes in transit were corrupted or a frame injected: from here on
    // only the safety invariants hold.
    let mut tampered = false;
    // A message past the receiver's limit was sent: it must fail with 1009.
    let mut too_big = false;
    let mut larges = 0;
    let mut rx_checker = wire::FrameChecker::new(rx_role);
    let mut watch = Watch::new(rx.state(), baseline, bound);
    let mut rx_output = 0u64;

    for op in ops {
        match op {
            Op::Send {
                text,
                body,
                compression: c,
            } => {
                if body.len() > 60_000 {
                    continue;
                }
                let (kind, body, msg) = if text {
                    let t = String::from_utf8_lossy(&body).into_owned();
                    (DataKind::Text, t.clone().into_bytes(), Message::Text(t.into()))
                } else {
                    (DataKind::Binary, body.clone(), Message::Binary(body.into()))
                };
                if tx.send_with(msg, compression(c)).is_ok() {
                    expected.push_back(Expect::Bytes(kind, body));
                }
            }
            Op::Fragmented {
                text,
                body,
                cuts,
                compression: c,
            } => {
                if body.len() > 60_000 {
                    continue;
                }
                let (kind, body) = if text {
                    (DataKind::Text, String::from_utf8_lossy(&body).into_owned().into_bytes())
                } else {
                    (DataKind::Binary, body)
                };
                let mut rest = &body[..];
                let mut ok = true;
                for cut in cuts.iter().take(16) {
                    let n = usize::from(*cut).min(rest.len());
                    let (a, b) = rest.split_at(n);
                    ok &= tx.send_fragment_with(kind, a, false, compression(c)).is_ok();
                    rest = b;
                }
                ok &= tx.send_fragment_with(kind, rest, true, compression(c)).is_ok();
                assert!(ok, "sending fragments failed on a healthy connection");
                expected.push_back(Expect::Bytes(kind, body));
            }
            Op::Large { byte, kib } => {
                larges += 1;
                if larges > 4 || in_transit.len() > 1 << 20 {
                    // A few per input keep runs fast; and the network holds
                    // enough already (level 0 leaves runs uncompressed).
                    continue;
                }
                // Up to 320 KiB: past the receiver's 256 KiB limit, cheap enough
                // to compress at every level.
                let len = (usize::from(kib) % 320 + 1) << 10;
                let body = wsmachine::Bytes::from(vec![byte; len]);
                let queued = tx.buffered_amount();
                if tx.send_with(Message::Binary(body.clone()), Compression::On).is_ok() {
                    // Past the message limit once inflated, or (at level 0,
                    // stored blocks) a frame past the frame limit.
                    let frame = tx.buffered_amount() - queued;
                    if body.len() > config.max_message_size || frame > config.max_frame_size {
                        too_big = true;
                    } else {
                        expected.push_back(Expect::Run(byte, len));
                    }
                }
            }
            Op::Ping(mut p) => {
                p.truncate(125);
                let _ = tx.ping(&p);
            }
            Op::Deliver(n) => {
                let n = usize::from(n).max(1).min(in_transit.len());
                let chunk: Vec<u8> = in_transit.drain(..n).collect();
                rx.receive(&chunk);
            }
            Op::Corrupt { at, xor } => {
                if !in_transit.is_empty() && xor != 0 {
                    let i = usize::from(at) % in_transit.len();
                    in_transit[i] ^= xor;
                    tampered = true;
                }
            }
            Op::Inject {
                opcode,
                fin,
                rsv,
                payload,
            } => {
                in_transit.extend_from_slice(&wire::frame(opcode & 0xF, fin, rsv & 7, sender_mask, &payload));
                tampered = true;
            }
        }
        // The transport takes whatever the sender queued: between steps
        // everything sent is in `in_transit`.
        for chunk in tx.output_chunks() {
            in_transit.extend_from_slice(chunk);
        }
        tx.consume_output(tx.buffered_amount());
        // The receiver: events, then what it answers (pongs, close).
        while let Some(e) = rx.poll_event() {
            rx_checker.event(&e);
            if let Some(done) = data_event(&e, &mut partial) {
                if let (Some((kind, data)), false) = (done, tampered || too_big) {
                    check(&mut expected, kind, &data);
                }
                continue;
            }
            match e {
                Event::Error(Failure::Protocol(p)) => {
                    assert!(tampered || too_big, "a healthy stream failed: {p}");
                    if !tampered {
                        assert!(
                            matches!(
                                p,
                                ProtocolError::MessageTooLarge { .. } | ProtocolError::FrameTooLarge { .. }
                            ),
                            "an over-limit message failed with {p}"
                        );
                    }
                    let code = p.close_code();
                    assert!(
                        matches!(
                            code,
                            CloseCode::PROTOCOL_ERROR | CloseCode::INVALID_PAYLOAD | CloseCode::MESSAGE_TOO_BIG
                        ),
                        "{p} maps to {code:?}"
                    );
                }
                Event::Error(other) => panic!("unexpected error event {other:?}"),
                Event::Ping(_) => {}
                Event::Pong(_) | Event::Closed(_) => {
                    assert!(tampered || too_big, "{e:?} on a healthy stream");
                }
                other => panic!("unexpected event {other:?}"),
            }
        }
        for chunk in rx.output_chunks() {
            rx_output += chunk.len() as u64;
            rx_checker.feed(chunk);
        }
        rx.consume_output(rx.buffered_amount());
        watch.step(rx.state(), rx_output);
    }

    if tampered || too_big {
        return;
    }
    // Healthy to the end: everything in flight arrives, unchanged, in order.
    rx.receive(&in_transit);
    while let Some(e) = rx.poll_event() {
        match data_event(&e, &mut partial) {
            Some(Some((kind, data))) => check(&mut expected, kind, &data),
            Some(None) => {}
            None => assert!(matches!(e, Event::Ping(_)), "unexpected event {e:?}"),
        }
    }
    assert!(partial.is_none(), "a streamed message did not end");
    assert!(
        expected.is_empty(),
        "{} message(s) sent but not received",
        expected.len()
    );
    assert_eq!(rx.state(), ReadyState::Open);
}

/// A message the receiver must deliver. A one-byte run is kept as such.
#[derive(Debug)]
enum Expect {
    Bytes(DataKind, Vec<u8>),
    Run(u8, usize),
}

/// The oldest message sent must be the one received.
fn check(expected: &mut VecDeque<Expect>, kind: DataKind, data: &[u8]) {
    let Some(e) = expected.pop_front() else {
        panic!("a {kind:?} message of {} bytes that nobody sent", data.len());
    };
    let same = match &e {
        Expect::Bytes(k, body) => *k == kind && body[..] == *data,
        Expect::Run(byte, len) => kind == DataKind::Binary && data.len() == *len && data.iter().all(|b| b == byte),
    };
    assert!(
        same,
        "received {kind:?} of {} bytes, expected {:?}",
        data.len(),
        match &e {
            Expect::Bytes(k, body) => format!("{k:?} of {} bytes", body.len()),
            Expect::Run(b, n) => format!("a run of {n} bytes {b:#x}"),
        }
    );
}

/// For a data event: `Some(Some(message))` when a message is complete,
/// `Some(None)` for a streamed piece that does not end one (joined in
/// `partial`); `None` for any other event.
#[allow(clippy::option_option)]
fn data_event(e: &Event, partial: &mut Option<(DataKind, Vec<u8>)>) -> Option<Option<(DataKind, Vec<u8>)>> {
    match e {
        Event::Text(t) => Some(Some((DataKind::Text, t.as_bytes().to_vec()))),
        Event::Binary(b) => Some(Some((DataKind::Binary, b.to_vec()))),
        Event::Fragment(f) => {
            assert_eq!(f.first, partial.is_none(), "first flag of a streamed piece");
            let (kind, mut buf) = partial.take().unwrap_or((f.kind, Vec::new()));
            assert_eq!(kind, f.kind, "kind changed inside a message");
            buf.extend_from_slice(&f.data);
            if f.fin {
                Some(Some((kind, buf)))
            } else {
                *partial = Some((kind, buf));
                Some(None)
            }
        }
        _ => None,
    }
}
