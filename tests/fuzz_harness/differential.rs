//! `differential`: the bytes a server receives from a client after the
//! handshake, fed to wsmachine's server machine (in arbitrary chunks) and to
//! tungstenite's server `WebSocket` (an independent implementation, reading
//! the same bytes in other chunks from an in-memory stream), with equal
//! limits. Both must deliver the same data messages (kind and exact payload),
//! pings, pongs and close frame, and end the same way: a protocol failure, a
//! clean close, or simply running out of input.
//!
//! Where the two differ for a reason RFC 6455 allows, the difference is
//! normalized below, explicitly, with the section that justifies it.
//! Anything else fails the run.
//!
//! Input layout: byte 0 is flags (bit 0: wsmachine in streaming mode, its
//! fragments reassembled here; bit 1: structured input); the rest is the
//! client's byte stream, or with bit 1 a list of [`FrameSpec`]s that
//! [`build`] turns into one (so the fuzzer can shape payloads under the
//! mask and build long valid sequences).

use super::wire::frame;
use super::{chunks, small_config};
use arbitrary::{Arbitrary, Unstructured};
use std::io::{self, Read, Write};
use tungstenite::error::{CapacityError, Error as TError, ProtocolError as TProtocolError};
use tungstenite::protocol::{Message as TMessage, Role as TRole, WebSocket, WebSocketConfig};
use wsmachine::{CloseCode, Connection, DataKind, Event, Failure, ReadyState};

/// What an implementation delivered to its application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// A close frame: its code and reason, `None` for an empty one.
    Close(Option<(u16, String)>),
}

/// How a run stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// Every byte was read; the connection is still open (a frame or a
    /// message may be incomplete).
    OutOfInput,
    /// A close frame was received (the last item is the close).
    Closed,
    /// The connection failed; the close code it fails with (RFC 6455 §7.4.1)
    /// and the implementation's description.
    Failed(u16, String),
}

/// Everything one implementation did with a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub items: Vec<Item>,
    pub end: End,
}

/// The limits both implementations get: frame and message size from
/// [`small_config`] (64 KiB / 256 KiB).
const MAX_FRAME: usize = 64 << 10;
const MAX_MESSAGE: usize = 256 << 10;

/// Runs the stream through wsmachine's server machine, OPEN from the start
/// (as after an external handshake), in chunks chosen by `u`.
pub fn run_wsmachine(stream: &[u8], streaming: bool, u: &mut Unstructured<'_>) -> Outcome {
    let config = small_config(streaming);
    assert_eq!(
        (config.max_frame_size, config.max_message_size),
        (MAX_FRAME, MAX_MESSAGE)
    );
    let mut conn = Connection::open_server(config);
    let mut items = Vec::new();
    let mut end = None;
    // Streaming mode: the message being reassembled from fragments.
    let mut partial: Option<(DataKind, Vec<u8>)> = None;
    'feed: for chunk in chunks(u, stream) {
        conn.receive(chunk);
        while let Some(event) = conn.poll_event() {
            assert!(
                end.is_none() || matches!(event, Event::Closed(_)),
                "event after the end ({end:?}): {event:?}"
            );
            match event {
                Event::Text(t) => items.push(Item::Text(t.as_bytes().to_vec())),
                Event::Binary(b) => items.push(Item::Binary(b.to_vec())),
                Event::Fragment(f) => {
                    assert!(streaming, "fragment event without streaming mode");
                    if f.first {
                        assert!(partial.is_none(), "a message started inside another");
                        partial = Some((f.kind, Vec::new()));
                    }
                    let (kind, data) = partial.as_mut().expect("a fragment continues a started message");
                    assert_eq!(*kind, f.kind, "a fragment's kind changed within its message");
                    data.extend_from_slice(&f.data);
                    if f.fin {
                        let (kind, data) = partial.take().expect("message in progress");
                        items.push(match kind {
                            DataKind::Text => Item::Text(data),
                            DataKind::Binary => Item::Binary(data),
                        });
                    }
                }
                Event::Ping(p) => items.push(Item::Ping(p.to_vec())),
                Event::Pong(p) => items.push(Item::Pong(p.to_vec())),
                Event::Error(Failure::Protocol(e)) => end = Some(End::Failed(e.close_code().0, format!("{e:?}"))),
                Event::Closed(info) if info.was_clean => {
                    // The peer's close frame: 1005 when it had no code (RFC 6455 §7.1.5).
                    let code =
                        (info.code != wsmachine::CloseCode::NO_STATUS).then(|| (info.code.0, info.reason.clone()));
                    items.push(Item::Close(code));
                    end = Some(End::Closed);
                    assert_eq!(conn.state(), ReadyState::Closed);
                    break 'feed;
                }
                Event::Closed(info) => {
                    match &end {
                        Some(End::Closed) => assert!(info.was_clean, "{info:?}"),
                        Some(End::Failed(code, _)) => assert_eq!(info.code.0, *code),
                        None => panic!("Closed without a close frame or an error: {info:?}"),
                        Some(End::OutOfInput) => unreachable!(),
                    }
                    assert_eq!(conn.state(), ReadyState::Closed);
                    break 'feed;
                }
                other => panic!("unexpected event on an open server: {other:?}"),
            }
        }
        // Nobody writes the output anywhere; take it so pongs are never refused.
        conn.consume_output(conn.buffered_amount());
    }
    let end = end.unwrap_or_else(|| {
        assert_eq!(conn.state(), ReadyState::Open, "no terminal event, yet not open");
        End::OutOfInput
    });
    Outcome { items, end }
}

/// An in-memory transport for tungstenite: reads hand out the stream in
/// chunks of the given sizes (then end of stream); writes are discarded.
struct Transport<'a> {
    data: &'a [u8],
    sizes: std::vec::IntoIter<usize>,
}

impl Read for Transport<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .sizes
            .next()
            .unwrap_or(usize::MAX)
            .min(buf.len())
            .min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

impl Write for Transport<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// tungstenite's configuration with wsmachine's limits. Its defaults already
/// fail unmasked client frames (`accept_unmasked_frames: false`, RFC 6455
/// §5.1), as wsmachine does; set explicitly so a default change shows here.
fn tungstenite_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_frame_size(Some(MAX_FRAME))
        .max_message_size(Some(MAX_MESSAGE))
        .accept_unmasked_frames(false)
        .read_buffer_size(4096)
}

/// Runs the stream through tungstenite's server `WebSocket`, reading until
/// an error or the end after a close frame.
pub fn run_tungstenite(stream: &[u8], read_sizes: Vec<usize>) -> Outcome {
    let transport = Transport {
        data: stream,
        sizes: read_sizes.into_iter(),
    };
    let mut ws = WebSocket::from_raw_socket(transport, TRole::Server, Some(tungstenite_config()));
    let mut items = Vec::new();
    let mut closed = false;
    for _ in 0..=stream.len() + 1 {
        let end = match ws.read() {
            Ok(TMessage::Text(t)) => {
                items.push(Item::Text(t.as_bytes().to_vec()));
                continue;
            }
            Ok(TMessage::Binary(b)) => {
                items.push(Item::Binary(b.to_vec()));
                continue;
            }
            Ok(TMessage::Ping(p)) => {
                items.push(Item::Ping(p.to_vec()));
                continue;
            }
            Ok(TMessage::Pong(p)) => {
                items.push(Item::Pong(p.to_vec()));
                continue;
            }
            Ok(TMessage::Close(frame)) => {
                assert!(!closed, "two close frames delivered");
                closed = true;
                items.push(Item::Close(frame.map(|f| (u16::from(f.code), f.reason.to_string()))));
                continue;
            }
            Ok(TMessage::Frame(f)) => panic!("raw frame from read(): {f:?}"),
            // A server that received a close frame: the reply is written, done.
            Err(TError::ConnectionClosed) => {
                assert!(closed, "ConnectionClosed without a close frame");
                End::Closed
            }
            // End of stream before a close frame.
            Err(TError::Protocol(TProtocolError::ResetWithoutClosingHandshake)) => End::OutOfInput,
            Err(TError::Protocol(e)) => End::Failed(CloseCode::PROTOCOL_ERROR.0, format!("{e:?}")),
            Err(TError::Utf8(e)) => End::Failed(CloseCode::INVALID_PAYLOAD.0, format!("Utf8({e:?})")),
            // The same error for both limits; its `max_size` says which.
            Err(TError::Capacity(CapacityError::MessageTooLong { size, max_size })) => {
                let what = if max_size == MAX_FRAME { "Frame" } else { "Message" };
                End::Failed(CloseCode::MESSAGE_TOO_BIG.0, format!("{what}TooLong({size})"))
            }
            Err(other) => panic!("unexpected tungstenite error: {other:?}"),
        };
        assert!(!closed || end == End::Closed, "a close frame, then {end:?}");
        return Outcome { items, end };
    }
    panic!("tungstenite never stopped: {items:?}");
}

/// The end of a stream, read independently of both implementations.
struct Tail {
    /// What to append so that the trailing frame is complete: the rest of
    /// its header (zeros; a lone first byte gets a masked, empty frame), then
    /// the rest of its payload, unmasking to `b'A'`. Empty when the stream
    /// ends on a frame boundary or the trailing frame announces more than
    /// the frame limit (refused from its header by both).
    completion: Vec<u8>,
    /// The unmasked bytes received so far of a text message left
    /// unfinished at the end, if any.
    text: Option<Vec<u8>>,
}

fn tail(stream: &[u8]) -> Tail {
    let mut pos = 0usize;
    // The data message in progress: (is text, its bytes so far).
    let mut message: Option<(bool, Vec<u8>)> = None;
    while pos < stream.len() {
        let rest = &stream[pos..];
        let (b0, b1) = match rest {
            [b0, b1, ..] => (*b0, *b1),
            _ => {
                let text = message.and_then(|(is_text, bytes)| is_text.then_some(bytes));
                return Tail {
                    completion: vec![0x80, 0, 0, 0, 0],
                    text,
                };
            }
        };
        let ext = match b1 & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let masked = b1 & 0x80 != 0;
        let header_len = 2 + ext + if masked { 4 } else { 0 };
        let mut head = rest[..header_len.min(rest.len())].to_vec();
        let mut completion = vec![0u8; header_len - head.len()];
        head.extend_from_slice(&completion);
        let len = match ext {
            0 => u64::from(b1 & 0x7F),
            n => head[2..2 + n].iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
        };
        let key = masked.then(|| [0, 1, 2, 3].map(|i| head[2 + ext + i]));
        let body = &rest[header_len.min(rest.len())..];
        let complete = completion.is_empty() && body.len() as u64 >= len;
        let payload = &body[..body.len().min(usize::try_from(len).unwrap_or(usize::MAX))];
        let unmasked = payload.iter().enumerate().map(|(i, b)| b ^ key.map_or(0, |k| k[i % 4]));
        match b0 & 0x0F {
            0x1 => message = Some((true, unmasked.collect())),
            0x2 => message = Some((false, Vec::new())),
            0x0 => {
                if let Some((true, bytes)) = message.as_mut() {
                    bytes.extend(unmasked);
                }
            }
            _ => {}
        }
        if complete {
            if b0 & 0x80 != 0 && b0 & 0x08 == 0 {
                message = None;
            }
            pos += header_len + payload.len();
            continue;
        }
        if len <= MAX_FRAME as u64 {
            for i in payload.len() as u64..len {
                completion.push(b'A' ^ key.map_or(0, |k| k[(i % 4) as usize]));
            }
        }
        let text = message.and_then(|(is_text, bytes)| is_text.then_some(bytes));
        return Tail { completion, text };
    }
    Tail {
        completion: Vec::new(),
        text: None,
    }
}

/// Whether tungstenite, compared with wsmachine's `ours`, only differs the
/// way an RFC-allowed difference explains. Returns a description of the
/// normalization applied, or `None` when the outcomes are not equivalent.
fn normalize(stream: &[u8], ours: &Outcome, theirs: &Outcome, read_sizes: &[usize]) -> Option<&'static str> {
    // tungstenite only knows the close codes registered when it was written:
    // a received close frame whose code it does not allow (`CloseCode::is_allowed`)
    // is reported to the application as a close frame of its own making,
    // 1002 "Protocol violation", and the connection closes cleanly.
    let synthesized = Some(Item::Close(Some((1002, "Protocol violation".to_string()))));
    if theirs.end == End::Closed && theirs.items.last() == synthesized.as_ref() {
        let prefix = &theirs.items[..theirs.items.len() - 1];
        let our_prefix = ours.items.get(..prefix.len());
        match (&ours.end, ours.items.last()) {
            // RFC 6455 §7.4.1/§7.4.2 and the IANA close code registry (§11.7):
            // 1014 (Bad Gateway) is registered, a valid code to receive;
            // tungstenite predates it. wsmachine delivers it as sent:
            // tungstenite is wrong here.
            (End::Closed, Some(Item::Close(Some((1014, _)))))
                if ours.items.len() == theirs.items.len() && our_prefix == Some(prefix) =>
            {
                return Some("close code 1014: registered (IANA, RFC 6455 §11.7); tungstenite rewrites it to 1002");
            }
            // A code that may not be on the wire (RFC 6455 §7.4.1/§7.4.2: 1004-1006,
            // 1015, <1000, 1016-2999, >=5000). wsmachine fails the connection
            // with 1002 (Autobahn 7.9.x); tungstenite answers 1002 too but
            // reports the frame as a close. Same close code on the wire; the
            // RFC does not say how the application hears of it.
            (End::Failed(1002, why), _) if why.starts_with("InvalidCloseCode") && ours.items == prefix => {
                return Some("invalid close code: wsmachine fails with 1002, tungstenite reports a 1002 close");
            }
            _ => {}
        }
    }
    // wsmachine checks each frame header as soon as it is complete (reserved
    // opcode, RSV bits, masking, control frame rules, fragmentation order,
    // announced frame and message length) and validates text as its bytes
    // arrive, even inside an incomplete frame (RFC 6455 §8.1: fail the
    // connection when text is not UTF-8; Autobahn 6.4.x expects it to fail
    // fast). tungstenite reads a frame's whole payload before checking most
    // of these. So where wsmachine fails on a trailing frame that is not
    // complete, tungstenite runs out of input. Both are allowed by the RFC,
    // which does not order the checks against the arrival of the payload
    // (§5.2, §5.4, §5.5, §8.1, §10.4). Checked strictly: once that frame is
    // completed, tungstenite must fail too.
    if matches!(ours.end, End::Failed(..)) && theirs.end == End::OutOfInput && ours.items == theirs.items {
        let Tail { completion, text } = tail(stream);
        // Text that failed early must hold a sequence no byte can complete
        // (not merely stop inside a character): the filler would hide that.
        if let End::Failed(_, why) = &ours.end {
            if why == "InvalidUtf8" {
                let invalid = |t: &Vec<u8>| std::str::from_utf8(t).is_err_and(|e| e.error_len().is_some());
                if !text.as_ref().is_some_and(invalid) {
                    return None;
                }
            }
        }
        if !completion.is_empty() {
            let completed = [stream, &completion].concat();
            let again = run_tungstenite(&completed, read_sizes.to_vec());
            if again.items == ours.items && same_end(&ours.end, &again.end) {
                return Some("wsmachine fails the trailing frame early; tungstenite once it is complete");
            }
        }
    }
    None
}

/// Whether two endings agree: the same kind, and for failures the same close
/// code, except where both implementations found a different one of two
/// violations in the same frame (the RFC does not order the checks).
fn same_end(ours: &End, theirs: &End) -> bool {
    match (ours, theirs) {
        (End::Failed(a, why_ours), End::Failed(b, why_theirs)) => {
            if a == b {
                return true;
            }
            // tungstenite checks the announced length against its frame limit
            // as soon as the header is read, before anything else; wsmachine
            // checks the framing rules of the header first (§5.1 masking, §5.2
            // RSV bits and the length's top bit, §5.4 fragment order, §5.5
            // control frames), then the limit. A header breaking both fails
            // with 1002 here, 1009 there; both codes are right for it
            // (§7.4.1).
            let header_rule = [
                "UnmaskedFrame",
                "ReservedBits",
                "LengthTopBitSet",
                "FragmentedControlFrame",
                "ControlFrameTooLong",
                "UnexpectedContinuation",
                "ExpectedContinuation",
            ]
            .iter()
            .any(|rule| why_ours.starts_with(rule));
            if *a == 1002 && header_rule && why_theirs.starts_with("FrameTooLong") {
                return true;
            }
            // A close frame with a code that may not be sent (§7.4.2) and a
            // reason that is not UTF-8 (§5.5.1): wsmachine reads the code
            // first (1002), tungstenite the reason (1007).
            *a == 1002 && why_ours.starts_with("InvalidCloseCode") && *b == 1007
        }
        (a, b) => a == b,
    }
}

/// One frame of a structured input: mostly well-formed, so that long
/// valid sequences are reachable; `oddity` breaks a rule now and then.
#[derive(Arbitrary, Debug)]
pub struct FrameSpec {
    kind: Kind,
    fin: bool,
    key: [u8; 4],
    payload: Payload,
    /// 0: RSV1 set; 1: unmasked; 2: a reserved opcode; else a plain frame.
    oddity: u8,
}

#[derive(Arbitrary, Debug)]
enum Kind {
    Text,
    Binary,
    Continuation,
    Ping,
    Pong,
    /// A close frame with this code before the payload.
    Close(u16),
    /// A close frame with exactly the payload.
    CloseRaw,
}

#[derive(Arbitrary, Debug)]
enum Payload {
    Utf8(String),
    Bytes(Vec<u8>),
}

/// The client byte stream of a structured input: its frames, the last one
/// cut short by `cut` bytes.
pub fn build(u: &mut Unstructured<'_>) -> Vec<u8> {
    let frames: Vec<FrameSpec> = u.arbitrary().unwrap_or_default();
    let cut: u16 = u.arbitrary().unwrap_or(0);
    let mut stream = Vec::new();
    let mut last = 0;
    for f in frames {
        let mut payload = match f.payload {
            Payload::Utf8(s) => s.into_bytes(),
            Payload::Bytes(b) => b,
        };
        let opcode = match f.kind {
            Kind::Continuation => 0x0,
            Kind::Text => 0x1,
            Kind::Binary => 0x2,
            Kind::Close(code) => {
                payload.splice(0..0, code.to_be_bytes());
                payload.truncate(125);
                0x8
            }
            Kind::CloseRaw => 0x8,
            Kind::Ping => 0x9,
            Kind::Pong => 0xA,
        };
        let (opcode, rsv, mask) = match f.oddity {
            0 => (opcode, 4, Some(f.key)),
            1 => (opcode, 0, None),
            2 => (0x3 + f.key[0] % 5 + (opcode & 8), 0, Some(f.key)),
            _ => (opcode, 0, Some(f.key)),
        };
        last = stream.len();
        stream.extend(frame(opcode, f.fin, rsv, mask, &payload));
    }
    let keep = stream.len() - usize::from(cut).min(stream.len() - last);
    stream.truncate(keep);
    stream
}

/// Runs both and asserts that they agree (after normalization).
pub fn differential(data: &[u8]) {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let streaming = flags & 1 != 0;
    let built;
    let stream = if flags & 2 != 0 {
        built = build(&mut Unstructured::new(input));
        &built[..]
    } else {
        input
    };
    let ours = run_wsmachine(stream, streaming, &mut Unstructured::new(stream));
    // Different read sizes for tungstenite, from the other end of the input.
    let reversed: Vec<u8> = stream.iter().rev().copied().collect();
    let read_sizes: Vec<usize> = chunks(&mut Unstructured::new(&reversed), stream)
        .iter()
        .map(|c| c.len())
        .collect();
    let theirs = run_tungstenite(stream, read_sizes.clone());
    let verdict = if ours.items == theirs.items && same_end(&ours.end, &theirs.end) {
        Some("agree")
    } else {
        normalize(stream, &ours, &theirs, &read_sizes)
    };
    // For triage: `DIFFERENTIAL_VERBOSE=1 cargo test --test it differential -- --nocapture`.
    if std::env::var_os("DIFFERENTIAL_VERBOSE").is_some() {
        eprintln!(
            "{}\n  wsmachine:   {}\n  tungstenite: {}\n  -> {verdict:?}",
            hex(stream),
            summary(&ours),
            summary(&theirs)
        );
    }
    if verdict.is_some() {
        return;
    }
    panic!(
        "wsmachine and tungstenite disagree on {} bytes (streaming: {streaming}):\n  stream: {}\n  wsmachine:   {}\n  tungstenite: {}",
        stream.len(),
        hex(stream),
        summary(&ours),
        summary(&theirs),
    );
}

fn hex(bytes: &[u8]) -> String {
    let shown: String = bytes.iter().take(256).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > 256 {
        format!("{shown}...")
    } else {
        shown
    }
}

/// An outcome in a line: each item with its length and first bytes.
fn summary(o: &Outcome) -> String {
    let items: Vec<String> = o
        .items
        .iter()
        .map(|item| match item {
            Item::Text(b) => format!("Text[{}]({})", b.len(), hex(&b[..b.len().min(16)])),
            Item::Binary(b) => format!("Binary[{}]({})", b.len(), hex(&b[..b.len().min(16)])),
            Item::Ping(b) => format!("Ping({})", hex(b)),
            Item::Pong(b) => format!("Pong({})", hex(b)),
            Item::Close(c) => format!("Close({c:?})"),
        })
        .collect();
    format!("[{}] then {:?}", items.join(", "), o.end)
}

/// Cases the fuzzer cannot reach with small inputs: the limits themselves.
#[cfg(test)]
mod tests {
    use super::super::wire::frame;
    use super::*;

    const KEY: Option<[u8; 4]> = Some([0x0F, 0xF0, 0x55, 0xAA]);

    /// Runs the differential check in both modes; returns wsmachine's outcome.
    fn check(stream: &[u8]) -> Outcome {
        for flags in [0u8, 1] {
            differential(&[&[flags][..], stream].concat());
        }
        run_wsmachine(stream, false, &mut Unstructured::new(stream))
    }

    #[test]
    fn frame_limit() {
        let at_limit = frame(2, true, 0, KEY, &vec![7; MAX_FRAME]);
        assert_eq!(check(&at_limit).items, [Item::Binary(vec![7; MAX_FRAME])]);
        let over = frame(2, true, 0, KEY, &vec![7; MAX_FRAME + 1]);
        assert!(matches!(check(&over).end, End::Failed(1009, _)));
        // Refused from the header alone, by both.
        assert!(matches!(check(&over[..14]).end, End::Failed(1009, _)));
    }

    #[test]
    fn message_limit() {
        let piece = vec![b'a'; MAX_FRAME];
        let mut at_limit = frame(1, false, 0, KEY, &piece);
        for fin in [false, false, true] {
            at_limit.extend(frame(0, fin, 0, KEY, &piece));
        }
        assert_eq!(check(&at_limit).items, [Item::Text(vec![b'a'; MAX_MESSAGE])]);

        let mut over = frame(2, false, 0, KEY, &piece);
        for _ in 0..3 {
            over.extend(frame(0, false, 0, KEY, &piece));
        }
        over.extend(frame(0, true, 0, KEY, b"x"));
        // wsmachine fails at the fifth header, tungstenite once it is read.
        assert!(matches!(check(&over).end, End::Failed(1009, _)));
        // Without the fifth frame's payload tungstenite runs out of input:
        // the normalization completes the frame and checks it fails then.
        let header_only = &over[..over.len() - 1];
        assert!(matches!(check(header_only).end, End::Failed(1009, _)));
    }

    #[test]
    fn tail_reads_frames_independently() {
        let text = frame(1, true, 0, KEY, b"hello");
        assert!(tail(&text).completion.is_empty());
        // A lone first byte: a masked empty frame after it.
        assert_eq!(tail(&text[..1]).completion, [0x80, 0, 0, 0, 0]);
        // Half the key and no payload: the rest of the key (zeros), then
        // the payload, masked with the key so completed.
        let k = KEY.unwrap();
        let a = [b'A' ^ k[0], b'A' ^ k[1], b'A', b'A', b'A' ^ k[0]];
        assert_eq!(tail(&text[..4]).completion, [&[0, 0][..], &a[..]].concat());
        // The payload unmasks to 'A' at the right key offsets.
        let mut whole = [&text[..], &text[..8]].concat();
        whole.extend(tail(&whole).completion);
        let unmasked: Vec<u8> = whole[text.len() + 6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ k[i % 4])
            .collect();
        assert_eq!(unmasked, b"heAAA");
        // More than the frame limit announced: nothing to add.
        assert!(
            tail(&frame(2, true, 0, KEY, &vec![0; MAX_FRAME + 1])[..14])
                .completion
                .is_empty()
        );
        // The text of an unfinished message, across fragments and control frames.
        let stream = [
            frame(1, false, 0, KEY, b"ab"),
            frame(9, true, 0, KEY, b"ping"),
            frame(0, false, 0, KEY, b"cd"),
            frame(0, true, 0, KEY, b"ef")[..7].to_vec(),
        ]
        .concat();
        assert_eq!(tail(&stream).text.as_deref(), Some(&b"abcde"[..]));
        assert_eq!(tail(&stream[..stream.len() - 7]).text, None, "ends on a frame boundary");
        assert_eq!(tail(&frame(2, false, 0, KEY, b"ab")).text, None, "binary");
    }

    #[test]
    fn early_utf8_failure_needs_really_invalid_text() {
        let ours = Outcome {
            items: vec![],
            end: End::Failed(1007, "InvalidUtf8".into()),
        };
        let theirs = Outcome {
            items: vec![],
            end: End::OutOfInput,
        };
        let whole = frame(1, true, 0, KEY, b"ok \xe2\x82\xac and more");
        // Cut inside the euro sign: a prefix, not an error; filling the frame
        // with 'A' would make it one, so the normalization must not apply.
        assert_eq!(normalize(&whole[..11], &ours, &theirs, &[]), None);
        // Cut after a byte no continuation can follow: a real early failure.
        let bad = frame(1, true, 0, KEY, b"ok \xe2\x41 and more");
        assert!(normalize(&bad[..11], &ours, &theirs, &[]).is_some());
    }
}
