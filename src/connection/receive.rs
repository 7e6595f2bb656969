//! The receive side of the connection: bytes in, events out. Input is
//! processed one event at a time in [`Connection::poll_event`]: the
//! handshake step while CONNECTING, the frame reader (`reader.rs`) after,
//! and what frames mean for the connection (pongs, the closing handshake,
//! failures) here.

use super::Connection;
use super::lifecycle::{Stage, Transition};
use super::reader::Item;
use crate::error::{Failure, ProtocolError};
use crate::event::{CloseInfo, Event};
use crate::types::ReadyState;
use crate::wire::close::{CloseCode, CloseFrame, fit_reason, parse_close};
use crate::wire::frame::OpCode;
use alloc::string::ToString;
use bytes::BytesMut;

impl Connection {
    /// Feeds bytes read from the transport, in any chunking. Never blocks,
    /// never panics. The bytes are processed by [`Connection::poll_event`]:
    /// call it until it returns `None` after every `receive`. Input after
    /// CLOSED or after [`Connection::receive_eof`] is ignored.
    ///
    /// ```
    /// use wsmachine::{Config, Connection, Event, Role};
    /// let mut conn = Connection::open_server(Config::default());
    /// // A masked text frame "Hi", in two reads.
    /// conn.receive(&[0x81, 0x82, 1, 2, 3, 4]);
    /// assert_eq!(conn.poll_event(), None);
    /// conn.receive(&[b'H' ^ 1, b'i' ^ 2]);
    /// assert!(matches!(conn.poll_event(), Some(Event::Text(t)) if &*t == "Hi"));
    /// ```
    pub fn receive(&mut self, data: &[u8]) {
        if self.life.state() == ReadyState::Closed || self.life.eof() {
            return;
        }
        match self.life.stage() {
            // Frames: payload is unmasked while it is copied in, into its
            // final place.
            Stage::Done => self.reader.receive(&mut self.inbuf, data, &self.config),
            // The answer to a plain HTTP request ends the connection: what
            // follows its head is never read, so it is not kept.
            Stage::AwaitHttpAnswer => return,
            Stage::AwaitDecision { .. } => {
                if self.early_data_overflows(data.len()) {
                    return;
                }
                self.inbuf.extend_from_slice(data);
            }
            _ => self.inbuf.extend_from_slice(data),
        }
        if !data.is_empty() {
            self.on_input_activity();
        }
    }

    /// The receive buffer itself, for drivers that read the transport
    /// straight into it (no intermediate copy): append bytes, never remove
    /// any, then call [`Connection::poll_event`]. Same effect as
    /// [`Connection::receive`] with those bytes, without the copy (and
    /// without the fused copy-and-unmask `receive` does).
    ///
    /// ```no_run
    /// # use std::io::Read;
    /// # fn f(conn: &mut wsmachine::Connection, tcp: &mut std::net::TcpStream) -> std::io::Result<()> {
    /// let buf = conn.receive_buf();
    /// let start = buf.len();
    /// buf.resize(start + 64 * 1024, 0);
    /// let n = tcp.read(&mut buf[start..])?;
    /// buf.truncate(start + n);
    /// # Ok(()) }
    /// ```
    ///
    /// (An async driver can hand it to `read_buf`, which appends without
    /// zeroing first.)
    pub fn receive_buf(&mut self) -> &mut BytesMut {
        self.handed_out = Some(self.received_len());
        self.reader.tail(&mut self.inbuf)
    }

    /// When a long frame's payload is being read and room for the rest of
    /// it is already reserved (its length passed the limits): the buffer it
    /// is read into, and how many bytes of the frame are still to come. A
    /// driver reads at most that many bytes straight into the buffer's
    /// spare capacity (append only, never remove), then calls
    /// [`Connection::poll_event`], which unmasks them in place while they
    /// are still in cache: the payload is copied once, from the transport
    /// to its final place. `None` otherwise: pass what is read to
    /// [`Connection::receive`].
    ///
    /// ```
    /// use wsmachine::{Config, Connection, Event};
    /// let mut conn = Connection::open_server(Config::default());
    /// // The start of a masked 64 KiB binary frame (key 0: the payload is as sent).
    /// let mut head = vec![0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    /// head.extend_from_slice(&[7; 1000]);
    /// conn.receive(&head);
    /// assert_eq!(conn.poll_event(), None);
    /// let (buf, want) = conn.payload_buf().expect("the rest is reserved");
    /// assert_eq!(want, 65536 - 1000);
    /// buf.extend_from_slice(&vec![7; want]); // a transport read, in a driver
    /// assert!(matches!(conn.poll_event(), Some(Event::Binary(b)) if b.len() == 65536));
    /// ```
    pub fn payload_buf(&mut self) -> Option<(&mut BytesMut, usize)> {
        if !self.life.reads_frames() || self.life.eof() {
            return None;
        }
        let before = self.received_len();
        let target = self.reader.payload_buf(&mut self.inbuf);
        if target.is_some() {
            self.handed_out = Some(before);
        }
        target
    }

    /// Bytes received and not yet read.
    fn received_len(&self) -> usize {
        self.inbuf.len() + self.reader.held_ahead()
    }

    /// Tells the machine the transport reached end of stream (or broke).
    ///
    /// Input received before it is still processed by
    /// [`Connection::poll_event`] (a last message, the peer's close frame);
    /// then, unless the connection closed cleanly, it ends CLOSED with 1006.
    /// Input after it is ignored.
    pub fn receive_eof(&mut self) {
        self.apply(Transition::TransportEnded);
    }

    /// The next event, if any.
    ///
    /// Received bytes are processed here, one event at a time, so that the
    /// application sees (and can answer) each message before the machine
    /// reads on: an answer to a message that arrived just before the peer's
    /// close frame still goes out before our close reply. Call it until it
    /// returns `None` after every [`Connection::receive`] and every call
    /// that may produce events ([`Connection::accept`],
    /// [`Connection::handle_timeout`]).
    ///
    /// ```
    /// use wsmachine::{Config, Connection, Event, Role};
    /// let mut conn = Connection::open_server(Config::default());
    /// conn.receive(&[0x89, 0x80, 0, 0, 0, 0]); // a masked, empty ping
    /// while let Some(event) = conn.poll_event() {
    ///     assert!(matches!(event, Event::Ping(_))); // answered already
    /// }
    /// assert_eq!(conn.pending_output(), [0x8a, 0x00]); // the pong
    /// ```
    #[must_use = "events carry messages and the end of the connection"]
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(event) = self.events.pop_front() {
            return Some(event);
        }
        if let Some(before) = self.handed_out.take() {
            if self.received_len() > before {
                // Bytes came through `receive_buf`.
                self.on_input_activity();
            }
        }
        // The hot path: a message of an open connection goes straight out.
        if self.life.reads_frames() {
            match self
                .reader
                .next(&mut self.inbuf, &self.config, self.extension.as_deref_mut())
            {
                Ok(Some(Item::Text(t))) => {
                    self.on_message_activity();
                    return Some(Event::Text(t));
                }
                Ok(Some(Item::Binary(b))) => {
                    self.on_message_activity();
                    return Some(Event::Binary(b));
                }
                Ok(Some(item)) => self.on_item(item),
                Ok(None) => {}
                Err(e) => self.fail(e),
            }
        }
        self.process();
        self.events.pop_front()
    }

    /// Runs the handshake or reads frames until an event is produced or more
    /// input is needed.
    pub(crate) fn process(&mut self) {
        if self.life.state() == ReadyState::Closed {
            // Input after CLOSED is ignored (also what was appended through `receive_buf`).
            self.inbuf.clear();
            self.reader.release_input();
            return;
        }
        match self.life.stage() {
            Stage::AwaitHttpAnswer => self.inbuf.clear(),
            // Bytes appended through `receive_buf` count as well.
            Stage::AwaitDecision { .. } if self.inbuf.len() > self.config.max_handshake_size => {
                let _ = self.early_data_overflows(0);
                return;
            }
            _ => {}
        }
        while self.events.is_empty() {
            if self.life.reads_frames() {
                self.read_frames();
                break;
            }
            if !self.handshake_step() {
                break;
            }
        }
        if self.events.is_empty() && self.life.eof() {
            // All input is processed and no more will come: the transport
            // ended without (the end of) a closing handshake.
            self.apply(Transition::Drained);
        }
        if self.inbuf.is_empty() && self.reader.idle() {
            // Everything received is read: give the buffer back, so an idle
            // connection holds none (it may also be the tail of a message
            // handed out without a copy, which would keep that alive).
            // The next input allocates what it needs.
            self.inbuf = BytesMut::new();
        }
        self.reader.trim();
    }

    fn read_frames(&mut self) {
        while self.events.is_empty() && self.life.reads_frames() {
            match self
                .reader
                .next(&mut self.inbuf, &self.config, self.extension.as_deref_mut())
            {
                Ok(None) => break,
                Ok(Some(item)) => self.on_item(item),
                Err(e) => self.fail(e),
            }
        }
    }

    fn on_item(&mut self, item: Item) {
        match item {
            Item::Text(t) => {
                self.on_message_activity();
                self.events.push_back(Event::Text(t));
            }
            Item::Binary(b) => {
                self.on_message_activity();
                self.events.push_back(Event::Binary(b));
            }
            Item::Fragment(f) => {
                self.on_message_activity();
                self.events.push_back(Event::Fragment(f));
            }
            Item::Ping(payload) => {
                // RFC 6455 §5.5.2: answer with a pong carrying the same payload,
                // unless our close frame is already out.
                if self.config.auto_pong && !self.life.close_sent() {
                    self.queue_auto_pong(payload.clone());
                }
                self.events.push_back(Event::Ping(payload));
            }
            Item::Pong(payload) => {
                self.on_pong(&payload);
                self.events.push_back(Event::Pong(payload));
            }
            Item::Close(payload) => match parse_close(&payload) {
                Err(e) => self.fail(e.into()),
                Ok(frame) => self.on_close_frame(frame),
            },
        }
    }

    /// RFC 6455 §5.5.1 / §7.1.5: the peer's close frame.
    fn on_close_frame(&mut self, frame: CloseFrame) {
        if !self.life.close_sent() {
            // Answer once, echoing the code (an empty close gets an empty close).
            let code = frame.code.map(|c| c.0.to_be_bytes());
            self.write_frame(OpCode::Close, true, code.as_ref().map_or(&[][..], |c| &c[..]));
        }
        self.apply(Transition::PeerClosed(CloseInfo {
            code: frame.code.unwrap_or(CloseCode::NO_STATUS),
            reason: frame.reason,
            was_clean: true,
        }));
    }

    /// RFC 6455 §7.1.7: Fail the WebSocket Connection, with the close code
    /// the error maps to (§7.4.1).
    fn fail(&mut self, error: ProtocolError) {
        let code = error.close_code();
        let description = error.to_string();
        let reason = fit_reason(&description);
        if !self.life.close_sent() {
            self.write_close(code, reason);
        }
        self.apply(Transition::Failed(
            Failure::Protocol(error),
            CloseInfo {
                code,
                reason: reason.into(),
                was_clean: false,
            },
        ));
    }
}
