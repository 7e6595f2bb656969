//! wsmachine on a microcontroller.
//!
//! A `no_std` library (it needs `alloc`, nothing of `std`) whose
//! [`run_echo`] drives a client [`Connection`] and a server `Connection`
//! against each other through an in-memory transport ([`transport::Pipe`]:
//! fixed-size ring buffers, partial writes, small reads): the opening
//! handshake, an echo of text, binary and a fragmented text message, a ping
//! answered by a pong, and the closing handshake. It returns a [`Report`]
//! with the bytes moved, the events seen and, given a
//! [`heap::CountingHeap`], the heap each connection used, measured.
//!
//! The same code runs in the Cortex-M4F firmware (`firmware/`, target
//! `thumbv7em-none-eabihf`, under QEMU) and in `cargo test` on the host.
//!
//! The driver holds no protocol logic: it moves bytes between the machines
//! and the pipes, and answers events the way an application would.

#![no_std]
#![warn(missing_docs)]

pub mod heap;
pub mod transport;

use core::fmt;
use core::time::Duration;
use heap::{HeapProbe, HeapStats, Tag, TagStats};
use transport::Pipe;
use wsmachine::rng::ChaCha20Rng;
use wsmachine::{Accept, ClientRequest, CloseCode, Config, Connection, DataKind, Event, Instant, ReadyState};

/// Bytes each direction of the transport holds in flight (a small TCP
/// window, as in a microcontroller's network stack).
pub const PIPE_SIZE: usize = 1024;
/// Bytes read from the transport at a time (the read buffer on the stack).
pub const READ_CHUNK: usize = 256;
/// The binary message echoed: as large as [`config`] allows.
pub const BINARY_LEN: usize = 4096;
/// The fragmented text message echoed, in bytes.
pub const FRAGMENTED_LEN: usize = 3000;
/// The first text message.
pub const HELLO: &str = "hello from a Cortex-M4";
/// The ping payload.
pub const PING: &[u8] = b"tick";
/// The close reason the client sends.
pub const BYE: &str = "bye";

/// The limits used here, sized for a microcontroller: frames and messages
/// up to 4 KiB, a 1 KiB handshake head, at most 8 KiB of output waiting
/// (one largest message and its header plus control frames). Everything
/// else is [`Config::default`] (automatic pongs, whole messages, outgoing
/// text checked, 5 s close timeout).
pub fn config() -> Config {
    Config {
        max_frame_size: 4 << 10,
        max_message_size: 4 << 10,
        max_handshake_size: 1 << 10,
        max_output_buffer: 8 << 10,
        close_timeout: Duration::from_secs(5),
        ..Config::default()
    }
}

/// Events seen by one side, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct EventCounts {
    pub request: u32,
    pub open: u32,
    pub text: u32,
    pub binary: u32,
    pub ping: u32,
    pub pong: u32,
    pub closed: u32,
    /// `Error`, `HttpRequest`, `Fragment`: none expected.
    pub other: u32,
}

impl EventCounts {
    /// All events.
    pub fn total(&self) -> u32 {
        self.request + self.open + self.text + self.binary + self.ping + self.pong + self.closed + self.other
    }

    fn count(&mut self, event: &Event) {
        let n = match event {
            Event::Request(_) => &mut self.request,
            Event::Open { .. } => &mut self.open,
            Event::Text(_) => &mut self.text,
            Event::Binary(_) => &mut self.binary,
            Event::Ping(_) => &mut self.ping,
            Event::Pong(_) => &mut self.pong,
            Event::Closed(_) => &mut self.closed,
            _ => &mut self.other,
        };
        *n += 1;
    }
}

impl fmt::Display for EventCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (request {}, open {}, text {}, binary {}, ping {}, pong {}, closed {}, other {})",
            self.total(),
            self.request,
            self.open,
            self.text,
            self.binary,
            self.ping,
            self.pong,
            self.closed,
            self.other
        )
    }
}

/// Heap figures of one connection, in bytes requested from the allocator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectionHeap {
    /// The most this connection held at once, over the whole run.
    pub peak_bytes: usize,
    /// What it held once OPEN and idle (handshake done, nothing in flight).
    pub open_idle_bytes: usize,
    /// Allocations it made in all.
    pub allocations: usize,
    /// What was still allocated after the connection was dropped (a leak if not 0).
    pub after_drop_bytes: usize,
}

impl ConnectionHeap {
    fn from(stats: TagStats, open_idle: usize, after_drop: usize) -> Self {
        ConnectionHeap {
            peak_bytes: stats.peak_bytes,
            open_idle_bytes: open_idle,
            allocations: stats.allocations,
            after_drop_bytes: after_drop,
        }
    }
}

impl fmt::Display for ConnectionHeap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "peak {} B, {} B once OPEN and idle, {} allocations, {} B left after drop",
            self.peak_bytes, self.open_idle_bytes, self.allocations, self.after_drop_bytes
        )
    }
}

/// The phases of the run, as [`HeapReport::phases`] lists them.
pub const PHASES: [&str; 5] = [
    "opening handshake",
    "echo text (22 B)",
    "echo binary (4096 B)",
    "echo text (3000 B, 3 fragments) + ping",
    "closing handshake",
];

/// Heap of both connections over one phase of the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhaseHeap {
    /// The most the client held during the phase.
    pub client_peak: usize,
    /// What the client held at its end (the last event handled and dropped).
    pub client_end: usize,
    /// The most the server held during the phase.
    pub server_peak: usize,
    /// What the server held at its end.
    pub server_end: usize,
    /// The whole heap's high-water mark during the phase.
    pub heap_high_water: usize,
}

/// Heap figures of a run, measured by a [`heap::CountingHeap`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapReport {
    /// The client connection's allocations.
    pub client: ConnectionHeap,
    /// The server connection's allocations.
    pub server: ConnectionHeap,
    /// Phase by phase, in the order of [`PHASES`].
    pub phases: [PhaseHeap; 5],
    /// The whole heap (both connections and the application): its size,
    /// high-water mark with the allocator's rounding, failures.
    pub heap: HeapStats,
}

/// What [`run_echo`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Bytes the client wrote to the transport (handshake included).
    pub client_to_server: usize,
    /// Bytes the server wrote to the transport (handshake included).
    pub server_to_client: usize,
    /// Of those, the client's upgrade request.
    pub handshake_request: usize,
    /// Of those, the server's 101 response.
    pub handshake_response: usize,
    /// Events the client saw.
    pub client_events: EventCounts,
    /// Events the server saw.
    pub server_events: EventCounts,
    /// Messages sent by the client and received back intact.
    pub echoed: u32,
    /// Pongs the client received for its pings.
    pub pongs: u32,
    /// The close code both sides ended with.
    pub close_code: u16,
    /// Both sides completed the closing handshake.
    pub clean: bool,
    /// Turns of the driving loop.
    pub turns: u32,
    /// `size_of::<Connection>()` on this target: the machine itself, which
    /// lives wherever the application puts it (here on the stack), not on the heap.
    pub connection_size: usize,
    /// Heap figures, when the run had a counting heap.
    pub heap: Option<HeapReport>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = config();
        writeln!(
            f,
            "config: frames <= {} B, messages <= {} B, handshake <= {} B, output queue <= {} B; \
             transport {PIPE_SIZE} B per direction, reads of {READ_CHUNK} B",
            c.max_frame_size, c.max_message_size, c.max_handshake_size, c.max_output_buffer
        )?;
        writeln!(
            f,
            "bytes: client->server {} (upgrade request {}), server->client {} (101 response {})",
            self.client_to_server, self.handshake_request, self.server_to_client, self.handshake_response
        )?;
        writeln!(f, "client events: {}", self.client_events)?;
        writeln!(f, "server events: {}", self.server_events)?;
        writeln!(
            f,
            "echoed {} messages (text {} B, binary {} B, text {} B in 3 fragments with a ping between), \
             {} pong, close {} {}",
            self.echoed,
            HELLO.len(),
            BINARY_LEN,
            FRAGMENTED_LEN,
            self.pongs,
            self.close_code,
            if self.clean { "clean on both sides" } else { "NOT clean" }
        )?;
        writeln!(
            f,
            "size_of::<Connection>() = {} B (the machine itself: stack or static, not heap); loop turns {}",
            self.connection_size, self.turns
        )?;
        match &self.heap {
            None => writeln!(f, "heap: not measured (no counting heap)"),
            Some(h) => {
                writeln!(f, "heap, client connection: {}", h.client)?;
                writeln!(f, "heap, server connection: {}", h.server)?;
                writeln!(
                    f,
                    "heap, whole: {} B array, high water {} B (both connections and the app, allocator rounding included), \
                     {} B in use at the end, {} failed allocations, {} untracked",
                    h.heap.size, h.heap.high_water, h.heap.used, h.heap.failed, h.heap.untracked
                )?;
                writeln!(
                    f,
                    "heap by phase (B): client peak / at end, server peak / at end, whole-heap high water"
                )?;
                for (name, p) in PHASES.iter().zip(&h.phases) {
                    writeln!(
                        f,
                        "  {name:<40} client {:>5} / {:>5}  server {:>5} / {:>5}  heap {:>5}",
                        p.client_peak, p.client_end, p.server_peak, p.server_end, p.heap_high_water
                    )?;
                }
                Ok(())
            }
        }
    }
}

/// Why a run failed.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong.
    pub what: &'static str,
    /// The machine's error, if one was involved.
    pub error: Option<MachineError>,
}

/// What the machine reported.
#[derive(Debug)]
pub enum MachineError {
    /// A call was refused.
    Call(wsmachine::Error),
    /// The connection failed (`Event::Error`).
    Failed(wsmachine::Failure),
    /// A decision on the request was refused.
    Decision(wsmachine::Error),
}

impl fmt::Display for MachineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MachineError::Call(e) | MachineError::Decision(e) => write!(f, "{e}"),
            MachineError::Failed(e) => write!(f, "{e}"),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            Some(e) => write!(f, "{}: {e}", self.what),
            None => f.write_str(self.what),
        }
    }
}

fn fail(what: &'static str) -> Failure {
    Failure { what, error: None }
}

fn check(what: &'static str, r: Result<(), wsmachine::Error>) -> Result<(), Failure> {
    r.map_err(|e| Failure {
        what,
        error: Some(MachineError::Call(e)),
    })
}

/// Charges heap use to a tag while `f` runs (no-op without a probe).
struct Tagger<'h>(Option<&'h dyn HeapProbe>);

impl Tagger<'_> {
    fn as_<R>(&self, tag: Tag, f: impl FnOnce() -> R) -> R {
        let prev = self.0.map(|p| p.set_tag(tag));
        let r = f();
        if let (Some(p), Some(prev)) = (self.0, prev) {
            p.set_tag(prev);
        }
        r
    }

    fn live(&self, tag: Tag) -> usize {
        self.0.map_or(0, |p| p.tag_stats(tag).live_bytes)
    }

    /// Ends a phase: its peaks and what is held now; then starts the next.
    fn end_phase(&self, phase: &mut PhaseHeap) {
        if let Some(p) = self.0 {
            let (c, s) = (p.tag_stats(Tag::Client), p.tag_stats(Tag::Server));
            *phase = PhaseHeap {
                client_peak: c.peak_bytes,
                client_end: c.live_bytes,
                server_peak: s.peak_bytes,
                server_end: s.live_bytes,
                heap_high_water: p.heap_stats().high_water,
            };
            p.reset_peaks();
        }
    }
}

/// The byte of the binary message at `i`.
fn binary_byte(i: usize) -> u8 {
    (i.wrapping_mul(31) + 7) as u8
}

/// Fills `buf` with text of multi-byte characters (so fragment boundaries
/// split characters) and returns it.
fn fragmented_text(buf: &mut [u8; FRAGMENTED_LEN]) -> &str {
    const PART: &[u8] = "µC → ✓ grüße ".as_bytes();
    let mut n = 0;
    while n + PART.len() <= buf.len() {
        buf[n..n + PART.len()].copy_from_slice(PART);
        n += PART.len();
    }
    buf[n..].fill(b'.');
    core::str::from_utf8(buf).unwrap_or("")
}

/// The first byte index at or after `at` that is inside a character.
fn inside_char(s: &str, at: usize) -> usize {
    (at..s.len()).find(|&i| !s.is_char_boundary(i)).unwrap_or(at)
}

/// Where the client's script stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    AwaitOpen,
    AwaitHello,
    AwaitBinary,
    AwaitFragmented,
    AwaitClose,
    Done,
}

/// Moves a connection's pending output into its pipe; returns the bytes moved.
fn flush<const N: usize>(conn: &mut Connection, pipe: &mut Pipe<N>) -> usize {
    let mut moved = 0;
    loop {
        let out = conn.pending_output();
        if out.is_empty() {
            return moved;
        }
        let n = pipe.write(out);
        if n == 0 {
            return moved;
        }
        conn.consume_output(n);
        moved += n;
    }
}

/// Runs the scenario: handshake, echo of three messages, ping/pong, close.
///
/// `seed` seeds the client's ChaCha20 generator (handshake nonce and masking
/// keys; on a device it comes from the hardware RNG). Give `probe` (the
/// global [`heap::CountingHeap`]) to measure the heap; the run must then be
/// the only thing allocating.
pub fn run_echo(seed: [u8; 32], probe: Option<&dyn HeapProbe>) -> Result<Report, Failure> {
    let t = Tagger(probe);
    if let Some(p) = probe {
        p.reset_peaks();
    }
    let (client_before, server_before) = (t.live(Tag::Client), t.live(Tag::Server));
    let mut phases = [PhaseHeap::default(); 5];

    let mut report = Report {
        connection_size: core::mem::size_of::<Connection>(),
        ..Report::default()
    };
    let mut text_buf = [0u8; FRAGMENTED_LEN];
    let long_text = fragmented_text(&mut text_buf);
    let mut binary = [0u8; BINARY_LEN];
    for (i, b) in binary.iter_mut().enumerate() {
        *b = binary_byte(i);
    }

    let mut client = t
        .as_(Tag::Client, || {
            let request = ClientRequest::new("device.local", 80, "/echo");
            Connection::client_with_rng(request, config(), ChaCha20Rng::from_seed(seed))
        })
        .map_err(|e| Failure {
            what: "client_with_rng",
            error: Some(MachineError::Call(e)),
        })?;
    let mut server = t.as_(Tag::Server, || Connection::server(config()));

    let mut c2s: Pipe<PIPE_SIZE> = Pipe::new();
    let mut s2c: Pipe<PIPE_SIZE> = Pipe::new();
    let mut chunk = [0u8; READ_CHUNK];
    let mut step = Step::AwaitOpen;
    let (mut client_eof, mut server_eof) = (false, false);
    let mut client_close: Option<(u16, bool)> = None;
    let mut server_close: Option<(u16, bool)> = None;

    loop {
        report.turns += 1;
        if report.turns > 100_000 {
            return Err(fail("no end after 100000 turns"));
        }
        let now = Instant::from_millis(u64::from(report.turns));
        let mut progress = 0usize;

        // ----- client -> transport
        progress += t.as_(Tag::Client, || flush(&mut client, &mut c2s));
        if t.as_(Tag::Client, || client.should_close_transport()) && !c2s.is_closed() {
            c2s.close();
            progress += 1;
        }

        // ----- server: read, answer events, write
        loop {
            let n = if server_eof { 0 } else { c2s.read(&mut chunk) };
            if n > 0 {
                t.as_(Tag::Server, || server.receive(&chunk[..n]));
                progress += n;
            } else if c2s.at_eof() && !server_eof {
                server_eof = true;
                t.as_(Tag::Server, || server.receive_eof());
                progress += 1;
            }
            while let Some(event) = t.as_(Tag::Server, || server.poll_event()) {
                progress += 1;
                report.server_events.count(&event);
                match event {
                    Event::Request(request) => {
                        t.as_(Tag::Server, || server.accept(request, Accept::new()))
                            .map_err(|e| Failure {
                                what: "accept",
                                error: Some(MachineError::Decision(e.error)),
                            })?
                    }
                    Event::Text(text) => check("server send text", t.as_(Tag::Server, || server.send(&*text)))?,
                    Event::Binary(data) => check("server send binary", t.as_(Tag::Server, || server.send(&data[..])))?,
                    Event::Closed(info) => server_close = Some((info.code.0, info.was_clean)),
                    Event::Error(e) => {
                        return Err(Failure {
                            what: "server error event",
                            error: Some(MachineError::Failed(e)),
                        });
                    }
                    Event::Open { .. } | Event::Ping(_) | Event::Pong(_) => {}
                    _ => return Err(fail("server: unexpected event")),
                }
                // Answers go out as they are made; the pipe may take only part.
                progress += t.as_(Tag::Server, || flush(&mut server, &mut s2c));
            }
            progress += t.as_(Tag::Server, || flush(&mut server, &mut s2c));
            if n == 0 {
                break;
            }
        }
        t.as_(Tag::Server, || server.handle_timeout(now));
        if t.as_(Tag::Server, || server.should_close_transport()) && !s2c.is_closed() {
            // RFC 6455 §7.1.1: the server closes the TCP connection first.
            s2c.close();
            progress += 1;
        }

        // ----- client: read, run the script
        loop {
            let n = if client_eof { 0 } else { s2c.read(&mut chunk) };
            if n > 0 {
                t.as_(Tag::Client, || client.receive(&chunk[..n]));
                progress += n;
            } else if s2c.at_eof() && !client_eof {
                client_eof = true;
                t.as_(Tag::Client, || client.receive_eof());
                progress += 1;
            }
            while let Some(event) = t.as_(Tag::Client, || client.poll_event()) {
                progress += 1;
                report.client_events.count(&event);
                match (step, event) {
                    (Step::AwaitOpen, Event::Open { protocol, response, .. }) => {
                        drop((protocol, response));
                        report.handshake_request = c2s.total_written();
                        report.handshake_response = s2c.total_written();
                        // Both machines are OPEN with nothing in flight.
                        t.end_phase(&mut phases[0]);
                        check("client send text", t.as_(Tag::Client, || client.send(HELLO)))?;
                        step = Step::AwaitHello;
                    }
                    (Step::AwaitHello, Event::Text(text)) => {
                        if text.as_str() != HELLO {
                            return Err(fail("text echo differs"));
                        }
                        report.echoed += 1;
                        drop(text);
                        t.end_phase(&mut phases[1]);
                        check("client send binary", t.as_(Tag::Client, || client.send(&binary[..])))?;
                        step = Step::AwaitBinary;
                    }
                    (Step::AwaitBinary, Event::Binary(data)) => {
                        if data[..] != binary[..] {
                            return Err(fail("binary echo differs"));
                        }
                        report.echoed += 1;
                        drop(data);
                        t.end_phase(&mut phases[2]);
                        // Three fragments, each boundary inside a character,
                        // and a ping between the first two (RFC 6455 §5.4).
                        let bytes = long_text.as_bytes();
                        let a = inside_char(long_text, FRAGMENTED_LEN / 3);
                        let b = inside_char(long_text, 2 * FRAGMENTED_LEN / 3);
                        t.as_(Tag::Client, || {
                            client.send_fragment(DataKind::Text, &bytes[..a], false)?;
                            client.ping(PING)?;
                            client.send_fragment(DataKind::Text, &bytes[a..b], false)?;
                            client.send_fragment(DataKind::Text, &bytes[b..], true)
                        })
                        .map_err(|e| Failure {
                            what: "client send_fragment/ping",
                            error: Some(MachineError::Call(e)),
                        })?;
                        step = Step::AwaitFragmented;
                    }
                    (Step::AwaitFragmented, Event::Pong(payload)) => {
                        if &payload[..] != PING {
                            return Err(fail("pong payload differs"));
                        }
                        report.pongs += 1;
                    }
                    (Step::AwaitFragmented, Event::Text(text)) => {
                        if text.as_str() != long_text {
                            return Err(fail("fragmented text echo differs"));
                        }
                        report.echoed += 1;
                        drop(text);
                        t.end_phase(&mut phases[3]);
                        check(
                            "client close",
                            t.as_(Tag::Client, || client.close(CloseCode::NORMAL, BYE)),
                        )?;
                        step = Step::AwaitClose;
                    }
                    (Step::AwaitClose, Event::Closed(info)) => {
                        client_close = Some((info.code.0, info.was_clean));
                        step = Step::Done;
                    }
                    (_, Event::Error(e)) => {
                        return Err(Failure {
                            what: "client error event",
                            error: Some(MachineError::Failed(e)),
                        });
                    }
                    _ => return Err(fail("client: event out of order")),
                }
                progress += t.as_(Tag::Client, || flush(&mut client, &mut c2s));
            }
            if n == 0 {
                break;
            }
        }
        t.as_(Tag::Client, || client.handle_timeout(now));

        let done = client.state() == ReadyState::Closed
            && server.state() == ReadyState::Closed
            && c2s.is_closed()
            && s2c.at_eof()
            && client_eof;
        if done {
            break;
        }
        if progress == 0 {
            return Err(fail("stalled: no bytes or events moved in a turn"));
        }
    }

    report.client_to_server = c2s.total_written();
    report.server_to_client = s2c.total_written();
    let (Some(cc), Some(sc)) = (client_close, server_close) else {
        return Err(fail("a side never reported Closed"));
    };
    if step != Step::Done || cc != sc {
        return Err(fail("sides disagree on how the connection closed"));
    }
    report.close_code = cc.0;
    report.clean = cc.1 && sc.1;

    t.end_phase(&mut phases[4]);
    drop(client);
    drop(server);
    if let Some(p) = probe {
        let whole_run = |tag: Tag, peak_of: fn(&PhaseHeap) -> usize, before: usize| {
            let stats = p.tag_stats(tag);
            TagStats {
                peak_bytes: phases.iter().map(peak_of).max().unwrap_or(0) - before,
                ..stats
            }
        };
        let client = whole_run(Tag::Client, |p| p.client_peak, client_before);
        let server = whole_run(Tag::Server, |p| p.server_peak, server_before);
        let mut heap = p.heap_stats();
        heap.high_water = phases.iter().map(|p| p.heap_high_water).max().unwrap_or(0);
        report.heap = Some(HeapReport {
            client: ConnectionHeap::from(
                client,
                phases[0].client_end - client_before,
                t.live(Tag::Client) - client_before,
            ),
            server: ConnectionHeap::from(
                server,
                phases[0].server_end - server_before,
                t.live(Tag::Server) - server_before,
            ),
            phases,
            heap,
        });
    }
    Ok(report)
}
