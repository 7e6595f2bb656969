#![allow(dead_code)]
//! An independent reading of the wire, for checking what the machine emits,
//! and builders for raw frames.

use wsmachine::rng::ChaCha20Rng;
use wsmachine::{Accept, ClientRequest, Config, Connection, Event, ReadyState, Role};

/// Builds one frame by hand: any opcode (4 bits), RSV bits (3 bits), mask.
pub fn frame(opcode: u8, fin: bool, rsv: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | ((rsv & 7) << 4) | (opcode & 0xF)];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(m | n as u8),
        n if n <= 0xFFFF => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(k) => {
            out.extend_from_slice(&k);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// The value of header `name` in an HTTP head.
pub fn header_value(head: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(head);
    text.split("\r\n").find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// An OPEN machine of `role` (handshake done elsewhere); `rng` masks for a client.
pub fn open_role(role: Role, config: Config, rng: ChaCha20Rng) -> Connection {
    match role {
        Role::Server => Connection::open_server(config),
        Role::Client => Connection::open_client(config, rng),
    }
}

/// Hands everything `from` has queued to `to`.
pub fn pump(from: &mut Connection, to: &mut Connection) {
    // Until nothing is left: an automatic pong waiting behind the output is
    // queued once it drains (RFC 6455 §5.5.3).
    while from.buffered_amount() > 0 {
        for chunk in from.output_chunks() {
            to.receive(chunk);
        }
        from.consume_output(from.buffered_amount());
    }
}

/// A client and a server machine after a real handshake, both OPEN, no
/// events or output pending.
pub fn open_pair(config: Config) -> (Connection, Connection) {
    let request = ClientRequest::new("localhost", 80, "/");
    let mut client = Connection::client_with_rng(request, config.clone(), ChaCha20Rng::from_seed([3; 32])).unwrap();
    let mut server = Connection::server(config);
    pump(&mut client, &mut server);
    match server.poll_event() {
        Some(Event::Request(request)) => server.accept(request, Accept::new()).unwrap(),
        other => panic!("expected a request, got {other:?}"),
    }
    assert!(matches!(server.poll_event(), Some(Event::Open { .. })));
    pump(&mut server, &mut client);
    assert!(matches!(client.poll_event(), Some(Event::Open { .. })));
    assert_eq!((client.state(), server.state()), (ReadyState::Open, ReadyState::Open));
    (client, server)
}

/// Checks, independently of the crate's decoder, that a byte stream is
/// valid frames as `sender` must send them (RFC 6455 §5), and that events
/// stop after `Closed`.
pub struct FrameChecker {
    sender: Role,
    buf: Vec<u8>,
    in_message: Option<bool>, // Some(is_text)
    text: Vec<u8>,
    closed: bool,
    events_closed: bool,
}

impl FrameChecker {
    pub fn new(sender: Role) -> Self {
        FrameChecker {
            sender,
            buf: Vec::new(),
            in_message: None,
            text: Vec::new(),
            closed: false,
            events_closed: false,
        }
    }

    pub fn event(&mut self, e: &Event) {
        assert!(!self.events_closed, "event after Closed: {e:?}");
        if matches!(e, Event::Closed(_)) {
            self.events_closed = true;
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        while let Some(n) = self.one() {
            self.buf.drain(..n);
        }
    }

    /// Checks the first complete frame in `buf`; returns its length.
    fn one(&mut self) -> Option<usize> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        let (fin, rsv, op, masked, len7) = (
            b[0] & 0x80 != 0,
            b[0] & 0x70,
            b[0] & 0x0F,
            b[1] & 0x80 != 0,
            b[1] & 0x7F,
        );
        let (len, mut pos) = match len7 {
            126 => {
                let l = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]) as u64;
                assert!(l >= 126, "non-minimal 16-bit length {l}");
                (l, 4)
            }
            127 => {
                let mut a = [0u8; 8];
                a.copy_from_slice(b.get(2..10)?);
                let l = u64::from_be_bytes(a);
                assert!(l > 0xFFFF && l >> 63 == 0, "bad 64-bit length {l}");
                (l, 10)
            }
            n => (u64::from(n), 2),
        };
        let key = if masked {
            let k = b.get(pos..pos + 4)?;
            pos += 4;
            Some([k[0], k[1], k[2], k[3]])
        } else {
            None
        };
        let end = pos + usize::try_from(len).ok()?;
        let raw = b.get(pos..end)?;
        let payload: Vec<u8> = match key {
            Some(k) => raw.iter().enumerate().map(|(i, x)| x ^ k[i % 4]).collect(),
            None => raw.to_vec(),
        };
        assert!(!self.closed, "frame after a close frame");
        assert_eq!(rsv, 0, "RSV bits set");
        assert_eq!(
            masked,
            self.sender == Role::Client,
            "masking must match the sender's role (§5.1)"
        );
        match op {
            0x8..=0xA => {
                assert!(fin, "fragmented control frame");
                assert!(len <= 125, "control frame of {len} bytes");
                if op == 0x8 {
                    self.closed = true;
                    if !payload.is_empty() {
                        assert!(payload.len() >= 2, "1-byte close payload");
                        let code = u16::from_be_bytes([payload[0], payload[1]]);
                        assert!(
                            wsmachine::CloseCode(code).is_valid_on_wire(),
                            "invalid close code {code} sent"
                        );
                        assert!(std::str::from_utf8(&payload[2..]).is_ok(), "close reason not UTF-8");
                    }
                }
            }
            0x1 | 0x2 => {
                assert!(self.in_message.is_none(), "new data frame inside a fragmented message");
                self.text.clear();
                self.data(op == 0x1, fin, &payload);
            }
            0x0 => {
                let text = self.in_message.expect("continuation without a message");
                self.data(text, fin, &payload);
            }
            other => panic!("reserved opcode {other:#x} sent"),
        }
        Some(end)
    }

    fn data(&mut self, text: bool, fin: bool, payload: &[u8]) {
        if text {
            self.text.extend_from_slice(payload);
            if fin {
                assert!(
                    std::str::from_utf8(&self.text).is_ok(),
                    "text message sent is not UTF-8"
                );
                self.text.clear();
            }
        }
        self.in_message = if fin { None } else { Some(text) };
    }
}
