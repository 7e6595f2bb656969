//! Property tests (DESIGN.md, "How it is checked"):
//! (a) any message sequence survives encode → arbitrary re-chunking → decode;
//! (b) feeding bytes one at a time gives the same events as feeding them at once;
//! (c) the state never moves backwards and no call panics, whatever the operations.

use crate::util::*;
use proptest::prelude::*;
use proptest::sample::Index;
use std::time::Duration;
use wsmachine::{
    Accept, Bytes, CloseCode, Config, Connection, DataKind, Event, HttpResponse, Instant, Message, ReadyState, Role,
    Utf8Bytes,
};

/// The case count: `default`, or `PROPTEST_CASES` when set (for long runs).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ----- (a) round trip --------------------------------------------------------------

#[derive(Clone, Debug)]
enum MsgOp {
    Text(String),
    Binary(Vec<u8>),
    /// A data message sent with `send_fragment`, cut at `cuts`, with a ping
    /// after some pieces.
    Fragmented {
        kind: DataKind,
        data: Vec<u8>,
        cuts: Vec<Index>,
        pings: Vec<Option<Vec<u8>>>,
    },
    Ping(Vec<u8>),
}

fn arb_string(max_chars: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::collection::vec(any::<char>(), 0..max_chars).prop_map(|v| v.into_iter().collect()),
        "[a-z €𝄞κόσμε]{0,300}",
    ]
}

fn arb_ping() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..=125)
}

fn arb_msg_op() -> impl Strategy<Value = MsgOp> {
    prop_oneof![
        3 => arb_string(1200).prop_map(MsgOp::Text),
        3 => proptest::collection::vec(any::<u8>(), 0..4096).prop_map(MsgOp::Binary),
        3 => (
            any::<bool>(),
            arb_string(600),
            proptest::collection::vec(any::<u8>(), 0..3000),
            proptest::collection::vec(any::<Index>(), 0..5),
            proptest::collection::vec(proptest::option::of(arb_ping()), 0..6),
        )
            .prop_map(|(is_text, s, b, cuts, pings)| MsgOp::Fragmented {
                kind: if is_text { DataKind::Text } else { DataKind::Binary },
                data: if is_text { s.into_bytes() } else { b },
                cuts,
                pings,
            }),
        1 => arb_ping().prop_map(MsgOp::Ping),
    ]
}

/// The pieces of a fragmented message, each with the ping sent after it.
fn pieces(data: &[u8], cuts: &[Index], pings: &[Option<Vec<u8>>]) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
    at.push(0);
    at.push(data.len());
    at.sort_unstable();
    at.windows(2)
        .enumerate()
        .map(|(i, w)| (data[w[0]..w[1]].to_vec(), pings.get(i).cloned().flatten()))
        .collect()
}

/// Sends `op` from `conn`; returns the events the peer must report and the
/// pongs the sender must get back.
fn send_op(conn: &mut Connection, op: &MsgOp) -> (Vec<Event>, Vec<Event>) {
    let (mut peer, mut pongs) = (Vec::new(), Vec::new());
    match op {
        MsgOp::Text(t) => {
            conn.send(t).unwrap();
            peer.push(text(t));
        }
        MsgOp::Binary(b) => {
            conn.send(Message::Binary(Bytes::from(b.clone()))).unwrap();
            peer.push(binary(b));
        }
        MsgOp::Ping(p) => {
            conn.ping(p).unwrap();
            peer.push(Event::Ping(Bytes::from(p.clone())));
            pongs.push(Event::Pong(Bytes::from(p.clone())));
        }
        MsgOp::Fragmented {
            kind,
            data,
            cuts,
            pings,
        } => {
            let pieces = pieces(data, cuts, pings);
            let last = pieces.len() - 1;
            for (i, (piece, ping)) in pieces.iter().enumerate() {
                conn.send_fragment(*kind, piece, i == last).unwrap();
                if i == last {
                    peer.push(match kind {
                        DataKind::Text => Event::Text(Utf8Bytes::try_from_bytes(Bytes::from(data.clone())).unwrap()),
                        DataKind::Binary => binary(data),
                    });
                }
                if let Some(p) = ping {
                    conn.ping(p).unwrap();
                    peer.push(Event::Ping(Bytes::from(p.clone())));
                    pongs.push(Event::Pong(Bytes::from(p.clone())));
                }
            }
        }
    }
    (peer, pongs)
}

/// Streaming mode: joins the fragments of each message back into a whole
/// message event, checking the `first`/`fin` flags on the way.
fn join_fragments(events: Vec<Event>) -> Vec<Event> {
    let mut out = Vec::new();
    let mut current: Option<(DataKind, Vec<u8>)> = None;
    for e in events {
        match e {
            Event::Fragment(f) => {
                assert_eq!(f.first, current.is_none(), "first flag of {f:?}");
                let (kind, mut buf) = current.take().unwrap_or((f.kind, Vec::new()));
                assert_eq!(kind, f.kind);
                buf.extend_from_slice(&f.data);
                if f.fin {
                    out.push(match kind {
                        DataKind::Text => Event::Text(Utf8Bytes::try_from_bytes(Bytes::from(buf)).unwrap()),
                        DataKind::Binary => Event::Binary(Bytes::from(buf)),
                    });
                } else {
                    current = Some((kind, buf));
                }
            }
            other => out.push(other),
        }
    }
    assert!(current.is_none(), "an unfinished message");
    out
}

fn round_trip(ops: &[MsgOp], chunking: Vec<usize>, client_sends: bool, streaming: bool) {
    let receiver_config = Config {
        streaming,
        ..Config::default()
    };
    let mut p = if client_sends {
        Pair::connected_with(Config::default(), receiver_config)
    } else {
        Pair::connected_with(receiver_config, Config::default())
    };
    p.chunking = chunking;
    let (mut expect_peer, mut expect_pongs) = (Vec::new(), Vec::new());
    for op in ops {
        let sender = if client_sends { &mut p.client } else { &mut p.server };
        let (peer, pongs) = send_op(sender, op);
        expect_peer.extend(peer);
        expect_pongs.extend(pongs);
    }
    p.drive();
    let (c, s) = p.take_events();
    let (sender_events, receiver_events) = if client_sends { (c, s) } else { (s, c) };
    let receiver_events = if streaming {
        join_fragments(receiver_events)
    } else {
        receiver_events
    };
    assert_eq!(receiver_events, expect_peer);
    assert_pongs_answer(&sender_events, &expect_pongs);
    assert_eq!(
        (p.client.state(), p.server.state()),
        (ReadyState::Open, ReadyState::Open)
    );
}

fn arb_chunking() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        Just(vec![]),
        Just(vec![1]),
        proptest::collection::vec(1usize..64, 1..8),
        proptest::collection::vec(1usize..5000, 1..4),
    ]
}

/// The oldest request event the server surfaced and nobody answered yet.
fn take_request(events: &mut Vec<Event>) -> Option<Event> {
    let i = events
        .iter()
        .position(|e| matches!(e, Event::Request(_) | Event::HttpRequest(_)))?;
    Some(events.remove(i))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(48), ..ProptestConfig::default() })]

    // RFC 6455 §5.4, §5.6, §5.5.2: client → server, any chunking.
    #[test]
    fn messages_survive_client_to_server(
        ops in proptest::collection::vec(arb_msg_op(), 0..8),
        chunking in arb_chunking(),
        streaming in any::<bool>(),
    ) {
        round_trip(&ops, chunking, true, streaming);
    }

    // The same, server → client.
    #[test]
    fn messages_survive_server_to_client(
        ops in proptest::collection::vec(arb_msg_op(), 0..8),
        chunking in arb_chunking(),
        streaming in any::<bool>(),
    ) {
        round_trip(&ops, chunking, false, streaming);
    }
}

// ----- (b) chunking does not change the events ------------------------------------

/// What `run` saw: an upgrade request (consumed by its acceptance, so kept
/// as its path), or any other event.
#[derive(Debug, PartialEq)]
enum Seen {
    Request(String),
    Event(Event),
}

/// Feeds `bytes` to `conn` in pieces of `chunk` bytes (all at once when
/// `None`), accepting an upgrade request as soon as it is reported; returns
/// what it saw, all output, and the final state.
fn run(mut conn: Connection, bytes: &[u8], chunk: Option<usize>) -> (Vec<Seen>, Vec<u8>, ReadyState) {
    let mut evs = Vec::new();
    let mut out = Vec::new();
    for piece in bytes.chunks(chunk.unwrap_or(bytes.len().max(1))) {
        conn.receive(piece);
        while let Some(e) = conn.poll_event() {
            match e {
                Event::Request(request) => {
                    evs.push(Seen::Request(request.path.clone()));
                    conn.accept(request, Accept::new()).unwrap();
                }
                e => evs.push(Seen::Event(e)),
            }
        }
    }
    // The output is taken once at the end: when it is drained changes what
    // it holds (an automatic pong waiting behind output carries the latest
    // ping's payload, RFC 6455 §5.5.3), how the input was cut must not.
    out.extend(take_output(&mut conn));
    (evs, out, conn.state())
}

/// Bytes that look like frames often enough to reach deep states: random
/// header bits, mask or not, small lengths, and plain random runs.
fn arb_garbage() -> impl Strategy<Value = Vec<u8>> {
    let frameish = (
        any::<u8>(),
        any::<bool>(),
        0u8..=130,
        proptest::collection::vec(any::<u8>(), 0..140),
    )
        .prop_map(|(b0, masked, len, payload)| {
            let mut f = vec![b0, (u8::from(masked) << 7) | len.min(127)];
            if len == 126 {
                f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            } else if len > 126 {
                f.extend_from_slice(&(payload.len() as u64).to_be_bytes());
            }
            if masked {
                f.extend_from_slice(&KEY);
            }
            f.extend(
                payload
                    .iter()
                    .take(if len <= 125 { len as usize } else { payload.len() }),
            );
            f
        });
    proptest::collection::vec(
        prop_oneof![frameish, proptest::collection::vec(any::<u8>(), 0..40)],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

/// The bytes an OPEN machine of `role` emits for `ops`, optionally closing
/// after, and the events its peer must report for them.
fn wire_of(role: Role, ops: &[MsgOp], close: bool) -> (Vec<u8>, Vec<Event>) {
    let mut sender = open(role, Config::default());
    let mut expected = Vec::new();
    for op in ops {
        expected.extend(send_op(&mut sender, op).0);
    }
    if close {
        sender.close(CloseCode::NORMAL, "end").unwrap();
        expected.push(closed(1000, "end", true));
    }
    (take_output(&mut sender), expected)
}

/// Runs a server (or client) over handshake + frames from `ops` + `garbage`,
/// whole and one byte per `receive`; the two runs must agree on events,
/// output and state. Returns the events after the handshake and the events
/// the frames of `ops` must give.
fn same_events_whole_and_bytewise(
    server_side: bool,
    ops: &[MsgOp],
    close: bool,
    garbage: &[u8],
) -> (Vec<Event>, Vec<Event>) {
    let (make, mut bytes): (fn() -> Connection, Vec<u8>) = if server_side {
        (
            || Connection::server(Config::default()),
            upgrade_request("").into_bytes(),
        )
    } else {
        let request = String::from_utf8(take_output(&mut client(Config::default()))).unwrap();
        (
            || {
                let mut c = client(Config::default());
                take_output(&mut c);
                c
            },
            response_for(&request, "").into_bytes(),
        )
    };
    let peer_role = if server_side { Role::Client } else { Role::Server };
    let (wire, expected) = wire_of(peer_role, ops, close);
    bytes.extend(wire);
    bytes.extend_from_slice(garbage);
    let mut whole = run(make(), &bytes, None);
    let bytewise = run(make(), &bytes, Some(1));
    assert_eq!(whole.0, bytewise.0, "events");
    assert_eq!(whole.1, bytewise.1, "output");
    assert_eq!(whole.2, bytewise.2, "state");
    // The handshake succeeded; what follows is the frames' events.
    let open_at = whole
        .0
        .iter()
        .position(|e| matches!(e, Seen::Event(Event::Open { .. })));
    let open_at = open_at.unwrap_or_else(|| panic!("no Open: {:?}", whole.0));
    assert_eq!(open_at, usize::from(server_side), "{:?}", whole.0);
    let after_open = whole.0.drain(open_at + 1..).map(|seen| match seen {
        Seen::Event(e) => e,
        Seen::Request(path) => panic!("a second request ({path}) after Open"),
    });
    (after_open.collect(), expected)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(48), ..ProptestConfig::default() })]

    // Chunking is invisible: valid streams, both roles.
    #[test]
    fn bytewise_equals_whole_for_valid_streams(
        ops in proptest::collection::vec(arb_msg_op(), 0..5),
        close in any::<bool>(),
        server_side in any::<bool>(),
    ) {
        let (events, expected) = same_events_whole_and_bytewise(server_side, &ops, close, &[]);
        prop_assert_eq!(events, expected);
    }

    // Chunking is invisible: garbage after a valid handshake and valid frames.
    #[test]
    fn bytewise_equals_whole_for_garbage(
        ops in proptest::collection::vec(arb_msg_op(), 0..3),
        garbage in arb_garbage(),
        server_side in any::<bool>(),
    ) {
        let (events, expected) = same_events_whole_and_bytewise(server_side, &ops, false, &garbage);
        // The valid frames come first, whatever the garbage does after them.
        prop_assert_eq!(&events[..expected.len()], &expected[..]);
    }
}

// ----- (c) the state never moves backwards -----------------------------------------

#[derive(Clone, Debug)]
enum Op {
    /// Move up to `max` bytes of one side's output to the other.
    Transfer {
        from_client: bool,
        max: usize,
    },
    Accept {
        protocol: bool,
    },
    Reject {
        status: u16,
    },
    Garbage {
        to_client: bool,
        bytes: Vec<u8>,
    },
    Frame {
        to_client: bool,
        fin: bool,
        rsv: u8,
        opcode: u8,
        payload: Vec<u8>,
    },
    SendText {
        client: bool,
        text: String,
    },
    SendBinary {
        client: bool,
        data: Vec<u8>,
    },
    Fragment {
        client: bool,
        text: bool,
        data: Vec<u8>,
        fin: bool,
    },
    Ping {
        client: bool,
        data: Vec<u8>,
    },
    Pong {
        client: bool,
        data: Vec<u8>,
    },
    Close {
        client: bool,
        code: u16,
        reason: String,
    },
    Time {
        advance_ms: u64,
    },
    Eof {
        client: bool,
    },
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<bool>(), 1usize..400).prop_map(|(from_client, max)| Op::Transfer { from_client, max }),
        2 => any::<bool>().prop_map(|protocol| Op::Accept { protocol }),
        1 => prop_oneof![Just(101u16), Just(200), Just(403), 0u16..1200].prop_map(|status| Op::Reject { status }),
        2 => (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(to_client, bytes)| Op::Garbage { to_client, bytes }),
        3 => (
            any::<bool>(),
            any::<bool>(),
            prop_oneof![4 => Just(0u8), 1 => 0u8..8],
            prop_oneof![Just(0u8), Just(1), Just(2), Just(8), Just(9), Just(10), 0u8..16],
            proptest::collection::vec(any::<u8>(), 0..200),
        )
            .prop_map(|(to_client, fin, rsv, opcode, payload)| Op::Frame { to_client, fin, rsv, opcode, payload }),
        3 => (any::<bool>(), arb_string(100)).prop_map(|(client, text)| Op::SendText { client, text }),
        2 => (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..300))
            .prop_map(|(client, data)| Op::SendBinary { client, data }),
        2 => (any::<bool>(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..50), any::<bool>())
            .prop_map(|(client, text, data, fin)| Op::Fragment { client, text, data, fin }),
        1 => (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..130)).prop_map(|(client, data)| Op::Ping { client, data }),
        1 => (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..130)).prop_map(|(client, data)| Op::Pong { client, data }),
        1 => (any::<bool>(), prop_oneof![Just(1000u16), Just(1005), 0u16..5100], "[a-z]{0,130}")
            .prop_map(|(client, code, reason)| Op::Close { client, code, reason }),
        2 => prop_oneof![0u64..100, 0u64..20_000].prop_map(|advance_ms| Op::Time { advance_ms }),
        1 => any::<bool>().prop_map(|client| Op::Eof { client }),
    ]
}

/// What the test knows about one side.
#[derive(Default)]
struct Watch {
    last: Option<ReadyState>,
    closed_events: usize,
    events_after_closed: Vec<String>,
}

impl Watch {
    fn check(&mut self, conn: &mut Connection, who: &str) {
        while let Some(e) = conn.poll_event() {
            if self.closed_events > 0 {
                self.events_after_closed.push(format!("{e:?}"));
            }
            if matches!(e, Event::Closed(_)) {
                self.closed_events += 1;
            }
        }
        let now = conn.state();
        if let Some(last) = self.last {
            assert!(now >= last, "{who}: state moved backwards {last:?} -> {now:?}");
        }
        self.last = Some(now);
        assert!(
            self.closed_events <= 1,
            "{who}: Closed reported {} times",
            self.closed_events
        );
        assert!(
            self.events_after_closed.is_empty(),
            "{who}: events after Closed: {:?}",
            self.events_after_closed
        );
        assert_eq!(
            now == ReadyState::Closed,
            self.closed_events == 1,
            "{who}: CLOSED iff Event::Closed"
        );
    }
}

fn apply(p: &mut Pair, op: &Op) {
    fn side(p: &mut Pair, client: bool) -> &mut Connection {
        if client { &mut p.client } else { &mut p.server }
    }
    match op {
        Op::Transfer { from_client, max } => {
            let (from, to) = if *from_client {
                (&mut p.client, &mut p.server)
            } else {
                (&mut p.server, &mut p.client)
            };
            let chunk = from.pending_output();
            let n = chunk.len().min(*max);
            let bytes = chunk[..n].to_vec();
            from.consume_output(n);
            to.receive(&bytes);
        }
        Op::Accept { protocol } => {
            let accept = if *protocol {
                Accept::new().protocol("chat")
            } else {
                Accept::new()
            };
            // Only a surfaced request can be accepted (a decision is a value).
            if let Some(Event::Request(request)) = take_request(&mut p.server_events) {
                let _ = p.server.accept(request, accept);
            }
        }
        Op::Reject { status } => {
            let response = HttpResponse::new(*status).body("no");
            match take_request(&mut p.server_events) {
                Some(Event::Request(request)) => {
                    let _ = p.server.reject(request, response);
                }
                Some(Event::HttpRequest(request)) => {
                    let _ = p.server.respond(request, response);
                }
                _ => {}
            }
        }
        Op::Garbage { to_client, bytes } => side(p, *to_client).receive(bytes),
        Op::Frame {
            to_client,
            fin,
            rsv,
            opcode,
            payload,
        } => {
            let mask = (!*to_client).then_some(KEY);
            let f = raw_frame(*fin, *rsv, *opcode, mask, payload);
            side(p, *to_client).receive(&f);
        }
        Op::SendText { client, text } => {
            let _ = side(p, *client).send(text);
        }
        Op::SendBinary { client, data } => {
            let _ = side(p, *client).send(data);
        }
        Op::Fragment {
            client,
            text,
            data,
            fin,
        } => {
            let kind = if *text { DataKind::Text } else { DataKind::Binary };
            let _ = side(p, *client).send_fragment(kind, data, *fin);
        }
        Op::Ping { client, data } => {
            let _ = side(p, *client).ping(data);
        }
        Op::Pong { client, data } => {
            let _ = side(p, *client).pong(data);
        }
        Op::Close { client, code, reason } => {
            let _ = side(p, *client).close(CloseCode(*code), reason);
        }
        Op::Time { advance_ms } => {
            p.now = p.now + Duration::from_millis(*advance_ms);
            let now = p.now;
            p.client.handle_timeout(now);
            p.server.handle_timeout(now);
            for c in [&p.client, &p.server] {
                if let Some(deadline) = c.poll_timeout() {
                    assert!(deadline > now, "a deadline already due after handle_timeout");
                }
            }
        }
        Op::Eof { client } => side(p, *client).receive_eof(),
    }
}

fn small_config(streaming: bool) -> Config {
    Config {
        max_frame_size: 256,
        max_message_size: 1024,
        max_handshake_size: 2048,
        max_output_buffer: 4096,
        streaming,
        close_timeout: Duration::from_millis(1000),
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(200), ..ProptestConfig::default() })]

    // The ReadyState only moves forward (CONNECTING → OPEN → CLOSING →
    // CLOSED), Event::Closed is reported exactly once and last, and no
    // sequence of calls panics.
    #[test]
    fn state_never_moves_backwards(
        ops in proptest::collection::vec(arb_op(), 0..60),
        client_streaming in any::<bool>(),
        server_streaming in any::<bool>(),
        start_open in any::<bool>(),
    ) {
        let client = if start_open {
            open(Role::Client, small_config(client_streaming))
        } else {
            Connection::client_with_rng(client_request().protocol("chat"), small_config(client_streaming), rng(9)).unwrap()
        };
        let mut p = Pair::with_client(client, small_config(server_streaming));
        if start_open {
            p.server = open(Role::Server, small_config(server_streaming));
        }
        p.now = Instant::from_millis(0);
        let (mut wc, mut ws) = (Watch::default(), Watch::default());
        wc.check(&mut p.client, "client");
        ws.check(&mut p.server, "server");
        for op in &ops {
            apply(&mut p, op);
            wc.check(&mut p.client, "client");
            ws.check(&mut p.server, "server");
        }
    }
}
