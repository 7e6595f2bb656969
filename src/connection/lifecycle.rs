//! The lifecycle: every change of the connection's state happens here, in
//! [`Connection::apply`], and nowhere else (h11's rule: everything that
//! affects the state machine lives in one file).
//!
//! | transition | from | to | also |
//! |---|---|---|---|
//! | [`Transition::Surfaced`] | CONNECTING, awaiting a request | CONNECTING, awaiting the application | the request is an event; the handshake timer stops |
//! | [`Transition::Opened`] | CONNECTING | OPEN | `Event::Open` (unless opened from outside); the handshake timer stops, keepalive and the idle timer start |
//! | [`Transition::Closing`] | OPEN | CLOSING | our close frame is queued; keepalive stops, the close timer starts |
//! | [`Transition::PeerClosed`] | OPEN, CLOSING | CLOSED | clean; a server closes the transport, a client waits for the server to (RFC 6455 §7.1.1) |
//! | [`Transition::Failed`] | any but CLOSED | CLOSED | `Event::Error`; the transport is to be closed |
//! | [`Transition::Rejected`] | CONNECTING | CLOSED | the non-101 answer is queued; the transport is to be closed |
//! | [`Transition::Drained`] | any but CLOSED | CLOSED (1006) | the transport ended and every byte before it was read |
//! | [`Transition::TransportEnded`] | any | unchanged | no more input will come |
//! | [`Transition::TransportDue`] | CLOSED | CLOSED | the client's wait for the server's end of stream is over |
//!
//! The state never moves backwards; a transition not in the table is a bug
//! (a debug assertion) and changes nothing.

use super::Connection;
use super::timers::TimerKind;
use crate::error::Failure;
use crate::event::{CloseInfo, Event};
use crate::types::{ReadyState, Role};
use crate::wire::close::CloseCode;
use alloc::boxed::Box;
use alloc::string::String;
use bytes::BytesMut;

/// Where the opening handshake stands.
#[derive(Debug)]
pub(crate) enum Stage {
    /// Client: request sent, waiting for the response head.
    AwaitResponse {
        offer: Box<super::opening::ClientOffer>,
        scanned: usize,
    },
    /// Server: waiting for the request head.
    AwaitRequest { scanned: usize },
    /// Server: an upgrade request is out as an event; waiting for
    /// accept/reject of the request with this `Sec-WebSocket-Key`.
    AwaitDecision { key: String },
    /// Server: a plain HTTP request is out as an event; waiting for respond.
    AwaitHttpAnswer,
    /// Done (or never needed).
    Done,
}

/// The lifecycle's fields, written only by [`Connection::apply`].
#[derive(Debug)]
pub(crate) struct Lifecycle {
    state: ReadyState,
    stage: Stage,
    /// Our close frame is queued: no frame may follow it (RFC 6455 §5.5.1).
    close_sent: bool,
    /// The transport should be closed once the output is written.
    close_transport: bool,
    /// The transport reached end of stream; no more input will come.
    eof: bool,
}

impl Lifecycle {
    pub(crate) fn new(state: ReadyState, stage: Stage) -> Self {
        Lifecycle {
            state,
            stage,
            close_sent: false,
            close_transport: false,
            eof: false,
        }
    }

    pub(crate) fn state(&self) -> ReadyState {
        self.state
    }

    pub(crate) fn stage(&self) -> &Stage {
        &self.stage
    }

    /// The stage, for the handshake step to note how far it scanned (the
    /// only change made outside [`Connection::apply`]: bookkeeping within a
    /// stage, never a change of stage).
    pub(crate) fn stage_mut(&mut self) -> &mut Stage {
        &mut self.stage
    }

    pub(crate) fn close_sent(&self) -> bool {
        self.close_sent
    }

    pub(crate) fn eof(&self) -> bool {
        self.eof
    }

    pub(crate) fn close_transport(&self) -> bool {
        self.close_transport
    }

    /// Frames are read: the handshake is done and the connection is OPEN
    /// or CLOSING.
    pub(crate) fn reads_frames(&self) -> bool {
        matches!(self.stage, Stage::Done) && matches!(self.state, ReadyState::Open | ReadyState::Closing)
    }
}

/// A change of the lifecycle (see the table in the module docs).
#[derive(Debug)]
pub(crate) enum Transition {
    /// Server: a request head was parsed and is out as an event; `to` is
    /// `AwaitDecision` or `AwaitHttpAnswer`.
    Surfaced(Stage),
    /// The handshake succeeded (or was done elsewhere).
    Opened,
    /// The application queued our close frame.
    Closing,
    /// The peer's close frame arrived and ours is queued (as the reply, or
    /// earlier).
    PeerClosed(CloseInfo),
    /// The connection failed: a protocol or handshake error, a close
    /// timeout. Our close frame (if the protocol allows one) is queued.
    Failed(Failure, CloseInfo),
    /// The server answered the request without upgrading.
    Rejected,
    /// The transport ended, and everything received before is processed.
    Drained,
    /// The transport reached end of stream (or broke).
    TransportEnded,
    /// Client after a clean close: the wait for the server's end of stream
    /// is over.
    TransportDue,
}

/// How a connection ends without a (complete) closing handshake: 1006.
pub(crate) fn abnormal() -> CloseInfo {
    CloseInfo {
        code: CloseCode::ABNORMAL,
        reason: String::new(),
        was_clean: false,
    }
}

impl Connection {
    /// The one place the lifecycle changes.
    pub(crate) fn apply(&mut self, t: Transition) {
        let from = self.life.state;
        match t {
            Transition::Surfaced(stage) => {
                debug_assert!(matches!(self.life.stage, Stage::AwaitRequest { .. }));
                debug_assert!(matches!(stage, Stage::AwaitDecision { .. } | Stage::AwaitHttpAnswer));
                self.life.stage = stage;
                // The whole request is in: the handshake deadline is met.
                self.timers.stop(TimerKind::Handshake);
            }
            Transition::Opened => {
                if !self.allowed(from == ReadyState::Connecting) {
                    return;
                }
                self.life.stage = Stage::Done;
                self.life.state = ReadyState::Open;
                self.timers.stop(TimerKind::Handshake);
                self.start_keepalive();
            }
            Transition::Closing => {
                if !self.allowed(from == ReadyState::Open) {
                    return;
                }
                self.life.close_sent = true;
                self.life.state = ReadyState::Closing;
                self.stop_keepalive();
                self.timers.start(TimerKind::CloseReply, self.config.close_timeout);
            }
            Transition::PeerClosed(info) => {
                if !self.allowed(matches!(from, ReadyState::Open | ReadyState::Closing)) {
                    return;
                }
                self.life.close_sent = true;
                match self.role {
                    // §7.1.1: the server closes the TCP connection first.
                    Role::Server => self.life.close_transport = true,
                    Role::Client if !self.life.eof => {
                        self.timers.start(TimerKind::TransportClose, self.config.close_timeout);
                    }
                    Role::Client => {}
                }
                self.enter_closed(info, true);
            }
            Transition::Failed(failure, info) => {
                if !self.allowed(from != ReadyState::Closed) {
                    return;
                }
                self.life.close_sent = true;
                self.life.close_transport = true;
                self.events.push_back(Event::Error(failure));
                self.enter_closed(info, false);
            }
            Transition::Rejected => {
                if !self.allowed(from == ReadyState::Connecting) {
                    return;
                }
                self.life.close_transport = true;
                self.enter_closed(abnormal(), false);
            }
            Transition::Drained => {
                if from == ReadyState::Closed {
                    return;
                }
                self.enter_closed(abnormal(), false);
            }
            Transition::TransportEnded => {
                self.life.eof = true;
                self.life.close_transport = true;
                self.timers.stop(TimerKind::TransportClose);
            }
            Transition::TransportDue => {
                self.life.close_transport = true;
            }
        }
    }

    /// Checks that a transition is allowed from the current state.
    fn allowed(&self, ok: bool) -> bool {
        debug_assert!(ok, "transition not allowed from {:?}", self.life.state);
        ok
    }

    /// Moves to CLOSED and reports it: nothing more is read or sent, a
    /// pending decision is moot, every timer stops (but the client's wait
    /// for the server's end of stream, with `keep_transport_wait`).
    fn enter_closed(&mut self, info: CloseInfo, keep_transport_wait: bool) {
        self.life.state = ReadyState::Closed;
        self.life.stage = Stage::Done;
        self.sending = None;
        // Nothing is sent after CLOSED, not even a pong that was waiting.
        self.pending_pong = None;
        match keep_transport_wait {
            true => self.timers.stop_all_but(TimerKind::TransportClose),
            false => self.timers.stop_all(),
        }
        self.inbuf = BytesMut::new();
        self.reader.release_input();
        self.events.push_back(Event::Closed(info));
    }

    /// Fires the timers that are due at `now`.
    ///
    /// A timer that firing starts (the next keepalive ping, the pong's
    /// deadline) gets its deadline from this same `now`, so nothing is left
    /// due once this returns. Rounds are bounded: a zero duration fires once
    /// per call, not for ever.
    pub(crate) fn on_timers(&mut self, now: crate::Instant) {
        for _round in 0..4 {
            // Output waiting (perhaps queued by a timer that just fired, or
            // in a state just entered) is watched from this `now`.
            self.watch_drain();
            let mut fired = false;
            for kind in self.timers.advance(now) {
                fired = true;
                self.fire(kind);
            }
            if !fired {
                return;
            }
        }
    }

    fn fire(&mut self, kind: TimerKind) {
        match kind {
            TimerKind::CloseReply => {
                if self.life.state == ReadyState::Closing {
                    // Output still unwritten (our close frame, perhaps) will
                    // not be taken by a peer that did not answer: dropped, so
                    // the transport can be closed at once.
                    self.drop_output();
                    self.apply(Transition::Failed(Failure::CloseTimeout, abnormal()));
                }
            }
            TimerKind::TransportClose => self.apply(Transition::TransportDue),
            TimerKind::Handshake => self.handshake_timed_out(),
            TimerKind::Ping => self.keepalive_ping_due(),
            TimerKind::Pong => self.keepalive_timed_out(),
            TimerKind::Idle => self.idle_timed_out(),
            TimerKind::Drain => self.drain_due(),
        }
    }
}
