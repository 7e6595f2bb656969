//! Keepalive and the idle timeout, as deadlines (`timers.rs`): a ping when
//! nothing was received for `Config::ping_interval`, a failure with 1011
//! when no pong follows within `Config::ping_timeout`, and a closing
//! handshake (1001) after `Config::idle_timeout` without a message either
//! way. Python's `websockets` is the model.
//!
//! Liveness is any byte received: a peer in the middle of a long frame
//! cannot send its pong before the frame ends (RFC 6455 §5.4: control frames
//! go between frames), so bytes arriving push the pong's deadline too. Any
//! pong ends the wait, because a peer may answer only the most recent ping
//! (§5.5.3); the one that carries our payload also gives the round-trip
//! time.
//!
//! Bytes received do not show that the peer reads, though: one that sends
//! (pings, pongs, messages) and never reads would hold the connection and
//! its queued output for ever. So the output is watched too (the drain
//! watch): while output waits, a check every `ping_timeout` (keepalive on,
//! OPEN) or every `close_timeout` (CLOSED, our last frames waiting) fails
//! the connection when the transport took none of it since the check
//! before. A slow reader that takes some of it every period is not failed.

use super::Connection;
use super::lifecycle::Transition;
use super::timers::TimerKind;
use crate::error::Failure;
use crate::event::CloseInfo;
use crate::time::Instant;
use crate::types::ReadyState;
use crate::wire::close::CloseCode;
use crate::wire::frame::OpCode;
use core::time::Duration;

/// What keepalive keeps between its deadlines.
#[derive(Debug, Default)]
pub(crate) struct Keepalive {
    /// The payload of the keepalive ping waiting for its pong, and when it
    /// was sent.
    in_flight: Option<([u8; 8], Instant)>,
    /// Keepalive pings sent so far: the next one's payload.
    sent: u64,
    /// The round-trip time of the last keepalive ping answered.
    rtt: Option<Duration>,
}

/// The reason of the close frame when the keepalive pong does not come.
const PONG_TIMEOUT_REASON: &str = "keepalive ping timeout";

impl Connection {
    /// The round-trip time of the last keepalive ping
    /// ([`Config::ping_interval`](crate::Config::ping_interval)) that was
    /// answered: from the `handle_timeout` that sent it to the
    /// `poll_event` that read its pong, so as precise as the driver passes
    /// time in. `None` until one was answered.
    ///
    /// ```
    /// use std::time::Duration;
    /// use wsmachine::{Config, Connection, Event, Instant};
    /// let config = Config { ping_interval: Some(Duration::from_secs(20)), ..Config::default() };
    /// let mut conn = Connection::open_server(config);
    /// conn.handle_timeout(Instant::from_millis(0)); // the keepalive timer starts
    /// conn.handle_timeout(Instant::from_millis(20_000)); // nothing received: a ping
    /// let ping = conn.pending_output().to_vec();
    /// assert_eq!(ping[0], 0x89);
    /// conn.consume_output(ping.len());
    /// // The client's pong, masked (key 0), with the same payload, 35 ms later:
    /// let mut pong = vec![0x8a, 0x80 | ping[1], 0, 0, 0, 0];
    /// pong.extend_from_slice(&ping[2..]);
    /// conn.handle_timeout(Instant::from_millis(20_035));
    /// conn.receive(&pong);
    /// assert!(matches!(conn.poll_event(), Some(Event::Pong(_))));
    /// assert_eq!(conn.keepalive_rtt(), Some(Duration::from_millis(35)));
    /// ```
    pub fn keepalive_rtt(&self) -> Option<Duration> {
        self.keepalive.rtt
    }

    /// The connection opened: keepalive and the idle timer start.
    pub(crate) fn start_keepalive(&mut self) {
        self.timers.start_or_stop(TimerKind::Ping, self.config.ping_interval);
        self.timers.start_or_stop(TimerKind::Idle, self.config.idle_timeout);
    }

    /// Our close frame is out: keepalive and the idle timer stop (the close
    /// timeout takes over).
    pub(crate) fn stop_keepalive(&mut self) {
        self.timers.stop(TimerKind::Ping);
        self.timers.stop(TimerKind::Pong);
        self.timers.stop(TimerKind::Idle);
        self.keepalive.in_flight = None;
    }

    /// Bytes arrived: the peer is alive. The ping waits another interval,
    /// and a pong we wait for gets its full timeout from now.
    pub(crate) fn on_input_activity(&mut self) {
        if self.life.state() != ReadyState::Open {
            return;
        }
        self.timers.start_or_stop(TimerKind::Ping, self.config.ping_interval);
        if self.keepalive.in_flight.is_some() {
            self.timers.start_or_stop(TimerKind::Pong, self.config.ping_timeout);
        }
    }

    /// A message went either way: the idle timer starts again.
    pub(crate) fn on_message_activity(&mut self) {
        if self.life.state() == ReadyState::Open && self.timers.is_running(TimerKind::Idle) {
            self.timers.start_or_stop(TimerKind::Idle, self.config.idle_timeout);
        }
    }

    /// A pong arrived: the keepalive ping in flight, if any, is answered.
    pub(crate) fn on_pong(&mut self, payload: &[u8]) {
        if let Some((sent, at)) = self.keepalive.in_flight.take() {
            if payload == sent {
                self.keepalive.rtt = Some(self.timers.now().since_epoch().saturating_sub(at.since_epoch()));
            }
            self.timers.stop(TimerKind::Pong);
        }
    }

    /// Nothing was received for `ping_interval`: a keepalive ping, unless
    /// one already waits for its pong.
    pub(crate) fn keepalive_ping_due(&mut self) {
        if self.life.state() != ReadyState::Open {
            return;
        }
        if self.keepalive.in_flight.is_none() {
            let payload = self.keepalive.sent.to_be_bytes();
            self.keepalive.sent = self.keepalive.sent.wrapping_add(1);
            // Always queued (8 bytes): when the output does not drain, the
            // missing pong is what says so.
            self.write_frame(OpCode::Ping, true, &payload);
            self.keepalive.in_flight = Some((payload, self.timers.now()));
            self.timers.start_or_stop(TimerKind::Pong, self.config.ping_timeout);
        }
        self.timers.start_or_stop(TimerKind::Ping, self.config.ping_interval);
    }

    /// How often the drain watch looks at waiting output in this state, if
    /// it runs: OPEN with keepalive on, every `ping_timeout`; CLOSED (the
    /// close reply or the failure's close frame waits), every
    /// `close_timeout`. CLOSING has its own deadline (the close timeout
    /// drops what is left), CONNECTING the handshake's.
    fn drain_period(&self) -> Option<Duration> {
        let period = match self.life.state() {
            ReadyState::Open => self.config.ping_interval.and(self.config.ping_timeout),
            ReadyState::Closed => Some(self.config.close_timeout),
            _ => None,
        };
        // A period too long to represent (`Duration::MAX`) is never.
        period.filter(|&p| self.timers.now().checked_add(p).is_some())
    }

    /// Output waits and nothing watches it yet.
    pub(crate) fn drain_unwatched(&self) -> bool {
        self.out.len() > 0 && !self.timers.is_running(TimerKind::Drain) && self.drain_period().is_some()
    }

    /// Starts the drain watch when output waits (from the time passed in
    /// next, which is when it was seen waiting).
    pub(crate) fn watch_drain(&mut self) {
        if let (true, Some(period)) = (self.drain_unwatched(), self.drain_period()) {
            self.output_taken = false;
            self.timers.start(TimerKind::Drain, period);
        }
    }

    /// The drain watch's period is over: with output still waiting and none
    /// of it taken all period, the peer is not reading. OPEN: the
    /// connection fails as the keepalive does (1011, output dropped).
    /// CLOSED: the output is dropped, so the transport can be closed.
    pub(crate) fn drain_due(&mut self) {
        let Some(period) = self.drain_period() else { return };
        if self.out.len() == 0 {
            // Watched again when output waits again.
            return;
        }
        if core::mem::take(&mut self.output_taken) {
            self.timers.start(TimerKind::Drain, period);
            return;
        }
        match self.life.state() {
            ReadyState::Open => self.keepalive_timed_out(),
            _ => self.drop_output(),
        }
    }

    /// The keepalive pong did not come in time, or the output did not
    /// drain: the connection fails with 1011, as Python's `websockets`
    /// fails it (the close frame queued when the output is empty, else the
    /// output dropped).
    pub(crate) fn keepalive_timed_out(&mut self) {
        if self.life.state() != ReadyState::Open {
            return;
        }
        let code = CloseCode::INTERNAL_ERROR;
        if self.out.len() == 0 {
            self.write_close(code, PONG_TIMEOUT_REASON);
        } else {
            // The transport has not taken what was queued: a peer that does
            // not read would take neither it nor a close frame behind it, so
            // it is dropped and the transport can be closed at once.
            self.drop_output();
        }
        self.apply(Transition::Failed(
            Failure::KeepaliveTimeout,
            CloseInfo {
                code,
                reason: PONG_TIMEOUT_REASON.into(),
                was_clean: false,
            },
        ));
    }

    /// No message either way for `idle_timeout`: the closing handshake,
    /// with 1001 (going away).
    pub(crate) fn idle_timed_out(&mut self) {
        if self.life.state() == ReadyState::Open {
            // The code and reason are valid, and a close is always queued.
            let _ = self.close(CloseCode::GOING_AWAY, "idle timeout");
        }
    }
}
