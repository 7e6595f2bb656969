//! The in-memory test harness shared by the integration tests: a client and a
//! server machine wired back to back ([`Pair`]), helpers to move bytes and
//! drain events, and a hand-written frame encoder/decoder that is independent
//! of the crate's own `frame` module, so malformed frames can be built and the
//! machine's output can be checked byte for byte.

use crate::fuzz_harness::wire::open_role;
use wsmachine::handshake::accept_key;
use wsmachine::rng::ChaCha20Rng;
use wsmachine::{Accept, ClientRequest, CloseCode, Config, Connection, Event, Instant, ReadyState, Role};

/// The key of RFC 6455 §1.3 and its accept value.
pub const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const RFC_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A deterministic random source for the client.
pub fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

/// The request a client sends in these tests.
pub fn client_request() -> ClientRequest {
    ClientRequest::new("example.com", 80, "/chat")
}

/// A client machine in CONNECTING with a fixed seed.
pub fn client(config: Config) -> Connection {
    Connection::client_with_rng(client_request(), config, rng(1)).expect("valid request")
}

/// An OPEN machine of `role` (handshake done elsewhere).
pub fn open(role: Role, config: Config) -> Connection {
    open_role(role, config, rng(2))
}

/// The upgrade request of RFC 6455 §1.3 with `extra` header lines (each
/// ending in CRLF) before the blank line.
pub fn upgrade_request(extra: &str) -> String {
    format!(
        "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {RFC_KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// Takes every queued output byte of `conn`, through `pending_output` /
/// `consume_output`.
pub fn take_output(conn: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let chunk = conn.pending_output();
        if chunk.is_empty() {
            break;
        }
        let n = chunk.len();
        out.extend_from_slice(chunk);
        conn.consume_output(n);
    }
    assert_eq!(conn.buffered_amount(), 0, "all output taken");
    out
}

/// Drains every event of `conn`.
pub fn events(conn: &mut Connection) -> Vec<Event> {
    let mut v = Vec::new();
    while let Some(e) = conn.poll_event() {
        v.push(e);
        assert!(v.len() < 1_000_000, "poll_event never returns None");
    }
    v
}

/// Feeds `bytes` to `conn` in chunks whose sizes cycle through `pattern`
/// (an empty pattern means all at once), draining events after each chunk.
pub fn feed_chunked(conn: &mut Connection, bytes: &[u8], pattern: &[usize]) -> Vec<Event> {
    let mut evs = Vec::new();
    if pattern.is_empty() {
        conn.receive(bytes);
        evs.extend(events(conn));
        return evs;
    }
    let mut rest = bytes;
    let mut i = 0;
    while !rest.is_empty() {
        let n = pattern[i % pattern.len()].clamp(1, rest.len());
        i += 1;
        let (a, b) = rest.split_at(n);
        conn.receive(a);
        evs.extend(events(conn));
        rest = b;
    }
    evs
}

/// Feeds `bytes` all at once and drains the events.
pub fn feed(conn: &mut Connection, bytes: &[u8]) -> Vec<Event> {
    feed_chunked(conn, bytes, &[])
}

/// A client and a server wired together in memory, like quinn-proto's
/// `Pair`. Events each side produced while the harness moved bytes are
/// collected in `client_events` / `server_events`.
pub struct Pair {
    pub client: Connection,
    pub server: Connection,
    pub client_events: Vec<Event>,
    pub server_events: Vec<Event>,
    /// Chunk sizes (cycled) used when moving bytes; empty = all at once.
    pub chunking: Vec<usize>,
    pub now: Instant,
}

impl Pair {
    /// Both sides in CONNECTING; the client's request is queued.
    pub fn new(client_config: Config, server_config: Config) -> Self {
        Pair::with_client(client(client_config), server_config)
    }

    pub fn with_client(client: Connection, server_config: Config) -> Self {
        Pair {
            client,
            server: Connection::server(server_config),
            client_events: Vec::new(),
            server_events: Vec::new(),
            chunking: Vec::new(),
            now: Instant::from_millis(0),
        }
    }

    /// Both sides OPEN after a full in-memory handshake (default configs).
    pub fn connected() -> Self {
        Pair::connected_with(Config::default(), Config::default())
    }

    /// Both sides OPEN after a full handshake; the Open events are checked
    /// and removed, the event lists are empty.
    pub fn connected_with(client_config: Config, server_config: Config) -> Self {
        let mut p = Pair::new(client_config, server_config);
        p.handshake(Accept::new());
        assert!(
            matches!(
                p.server_events.as_slice(),
                [Event::Open {
                    protocol: None,
                    response: None,
                    ..
                }]
            ),
            "{:?}",
            p.server_events
        );
        assert!(
            matches!(p.client_events.as_slice(), [Event::Open { protocol: None, response: Some(r), .. }] if r.status == 101),
            "{:?}",
            p.client_events
        );
        p.client_events.clear();
        p.server_events.clear();
        p
    }

    /// Runs the opening handshake, accepting the request with `accept` (the
    /// request event is consumed by the decision; the server's events are
    /// what followed it).
    pub fn handshake(&mut self, accept: Accept) {
        self.client_to_server();
        let Some(Event::Request(request)) = self.server_events.pop() else {
            panic!("no request among {:?}", self.server_events)
        };
        self.server.accept(request, accept).expect("accept");
        self.server_events.extend(events(&mut self.server));
        self.server_to_client();
        assert_eq!(self.client.state(), ReadyState::Open);
        assert_eq!(self.server.state(), ReadyState::Open);
    }

    /// Moves the client's whole output to the server; returns the bytes moved.
    pub fn client_to_server(&mut self) -> Vec<u8> {
        let bytes = take_output(&mut self.client);
        let evs = feed_chunked(&mut self.server, &bytes, &self.chunking);
        self.server_events.extend(evs);
        bytes
    }

    /// Moves the server's whole output to the client; returns the bytes moved.
    pub fn server_to_client(&mut self) -> Vec<u8> {
        let bytes = take_output(&mut self.server);
        let evs = feed_chunked(&mut self.client, &bytes, &self.chunking);
        self.client_events.extend(evs);
        bytes
    }

    /// Moves bytes both ways until neither side has output left (end of
    /// stream is never delivered implicitly: call `receive_eof` in the test).
    pub fn drive(&mut self) {
        for _ in 0..100 {
            let a = self.client_to_server();
            let b = self.server_to_client();
            if a.is_empty() && b.is_empty() {
                return;
            }
        }
        panic!("the pair never went quiet");
    }

    /// Takes the events both sides collected so far.
    pub fn take_events(&mut self) -> (Vec<Event>, Vec<Event>) {
        (
            std::mem::take(&mut self.client_events),
            std::mem::take(&mut self.server_events),
        )
    }
}

// ----- frames by hand (RFC 6455 §5.2) ------------------------------------------

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// A masking key used for client frames built by hand.
pub const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A frame header with any bits: `rsv` is the 3-bit RSV1..3 field, `len` is
/// written in its minimal form.
pub fn raw_header(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, len: u64) -> Vec<u8> {
    let mut h = vec![(u8::from(fin) << 7) | ((rsv & 7) << 4) | (opcode & 0x0F)];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match len {
        0..=125 => h.push(m | len as u8),
        126..=0xFFFF => {
            h.push(m | 126);
            h.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            h.push(m | 127);
            h.extend_from_slice(&len.to_be_bytes());
        }
    }
    if let Some(k) = mask {
        h.extend_from_slice(&k);
    }
    h
}

/// A whole frame with any bits, the payload masked with `mask` if given.
pub fn raw_frame(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut f = raw_header(fin, rsv, opcode, mask, payload.len() as u64);
    match mask {
        Some(k) => f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4])),
        None => f.extend_from_slice(payload),
    }
    f
}

/// A frame as a client sends it (masked with [`KEY`]).
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame(fin, 0, opcode, Some(KEY), payload)
}

/// A frame as a server sends it (unmasked).
pub fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame(fin, 0, opcode, None, payload)
}

/// A frame as a peer of `role` would receive it: masked when `role` is the
/// server (the sender is a client).
pub fn frame_to(role: Role, fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    match role {
        Role::Server => client_frame(fin, opcode, payload),
        Role::Client => server_frame(fin, opcode, payload),
    }
}

/// A close frame payload: code then reason.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    p
}

/// A frame decoded from a machine's output, payload unmasked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireFrame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    /// The masking key, when the frame was masked.
    pub mask: Option<[u8; 4]>,
    pub payload: Vec<u8>,
}

impl WireFrame {
    /// A frame with no RSV bits, to compare against decoded output.
    pub fn new(fin: bool, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Self {
        WireFrame {
            fin,
            rsv: 0,
            opcode,
            mask,
            payload: payload.to_vec(),
        }
    }

    /// The close code of a close frame (None when its payload is empty).
    pub fn close_code(&self) -> Option<u16> {
        assert_eq!(self.opcode, OP_CLOSE, "not a close frame: {self:?}");
        (self.payload.len() >= 2).then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }

    /// The close reason of a close frame.
    pub fn close_reason(&self) -> String {
        assert_eq!(self.opcode, OP_CLOSE);
        String::from_utf8(self.payload.get(2..).unwrap_or(&[]).to_vec()).expect("reason is UTF-8")
    }
}

/// Decodes a byte stream into whole frames; panics on trailing bytes or any
/// frame that breaks RFC 6455 §5.2 framing (the machine must emit valid
/// frames only).
pub fn parse_frames(mut bytes: &[u8]) -> Vec<WireFrame> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        assert!(bytes.len() >= 2, "truncated header: {bytes:?}");
        let (b0, b1) = (bytes[0], bytes[1]);
        let mut pos = 2;
        let len = match b1 & 0x7F {
            126 => {
                let l = u64::from(u16::from_be_bytes([bytes[2], bytes[3]]));
                assert!(l >= 126, "non-minimal 16-bit length");
                pos = 4;
                l
            }
            127 => {
                let l = u64::from_be_bytes(bytes[2..10].try_into().unwrap());
                assert!(l > 0xFFFF && l >> 63 == 0, "bad 64-bit length {l}");
                pos = 10;
                l
            }
            n => u64::from(n),
        };
        let mask = (b1 & 0x80 != 0).then(|| {
            let k: [u8; 4] = bytes[pos..pos + 4].try_into().unwrap();
            pos += 4;
            k
        });
        let len = len as usize;
        assert!(bytes.len() >= pos + len, "truncated payload");
        let mut payload = bytes[pos..pos + len].to_vec();
        if let Some(k) = mask {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= k[i % 4];
            }
        }
        frames.push(WireFrame {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 7,
            opcode: b0 & 0x0F,
            mask,
            payload,
        });
        bytes = &bytes[pos + len..];
    }
    frames
}

/// The frames `conn` has queued (its output is consumed).
pub fn output_frames(conn: &mut Connection) -> Vec<WireFrame> {
    parse_frames(&take_output(conn))
}

/// The single close frame `conn` emitted; asserts there is exactly one frame
/// and that it is a close frame; returns its code.
pub fn single_close_code(conn: &mut Connection) -> Option<u16> {
    let frames = output_frames(conn);
    assert_eq!(frames.len(), 1, "{frames:?}");
    frames[0].close_code()
}

/// Splits an HTTP head off `bytes`: (head text, rest).
pub fn split_head(bytes: &[u8]) -> (String, Vec<u8>) {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head")
        + 4;
    (String::from_utf8(bytes[..end].to_vec()).unwrap(), bytes[end..].to_vec())
}

/// The value of header `name` in an HTTP head (case-insensitive name).
pub fn header_value(head: &str, name: &str) -> Option<String> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// The 101 response a correct server sends to a client whose request head is
/// `request`, with `extra` header lines.
pub fn response_for(request: &str, extra: &str) -> String {
    let key = header_value(request, "Sec-WebSocket-Key").expect("the request has a key");
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n{extra}\r\n",
        accept_key(key.as_bytes())
    )
}

/// Shorthand for the expected `Event::Closed`.
pub fn closed(code: u16, reason: &str, was_clean: bool) -> Event {
    Event::Closed(wsmachine::CloseInfo {
        code: CloseCode(code),
        reason: reason.to_string(),
        was_clean,
    })
}

/// The events a machine reports when it fails the connection because of
/// `error` (RFC 6455 §7.1.7): the error, then CLOSED with the error's close
/// code and description, not clean.
pub fn failed(error: wsmachine::ProtocolError) -> Vec<Event> {
    let code = error.close_code().0;
    let reason = error.to_string();
    vec![
        Event::Error(wsmachine::Failure::Protocol(error)),
        closed(code, &reason, false),
    ]
}

/// Shorthand for an expected `Event::Text`.
pub fn text(s: &str) -> Event {
    Event::Text(s.into())
}

/// Shorthand for an expected `Event::Binary`.
pub fn binary(b: &[u8]) -> Event {
    Event::Binary(wsmachine::Bytes::copy_from_slice(b))
}

/// RFC 6455 §5.5.3: the pongs `got` answer the pings whose pongs are
/// `expected`: in order, some skipped (a pong waiting behind unwritten
/// output is replaced by a newer one), the last ping always answered.
pub fn assert_pongs_answer(got: &[Event], expected: &[Event]) {
    let mut rest = expected.iter();
    for pong in got {
        assert!(
            rest.any(|e| e == pong),
            "pong {pong:?} out of order or unexpected: got {got:?}, pings answered {expected:?}"
        );
    }
    assert_eq!(got.last(), expected.last(), "the last ping is answered: got {got:?}");
}
