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

    /// The keepalive pong did not come in time: the connection fails with
    /// 1011, as Python's `websockets` fails it.
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
