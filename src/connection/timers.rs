//! The connection's deadlines, several at once, as data: which timers run
//! and when each is due. The machine never reads a clock: a timer that a
//! call starts is due at once ([`Timers::next`] reports the latest time the
//! caller passed in), and the next `handle_timeout(now)` gives it its
//! deadline, `now` + its duration. So a loop that sleeps until
//! `poll_timeout()` and then calls `handle_timeout(now)` runs every timer
//! without knowing which calls start one.
//!
//! What each timer does when it fires is the lifecycle's business
//! (`lifecycle.rs`); this file only keeps time. No arithmetic here can
//! overflow: a duration whose deadline is not representable (a
//! `Duration::MAX` timeout) means "never".

use crate::time::Instant;
use core::time::Duration;

/// The deadlines a connection keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimerKind {
    /// CLOSING: waiting for the peer's close frame (`Config::close_timeout`).
    CloseReply = 0,
    /// Client, CLOSED cleanly: waiting for the server to close the
    /// transport first (RFC 6455 §7.1.1), up to `Config::close_timeout`.
    TransportClose = 1,
    /// CONNECTING: the whole request head (server) or response head
    /// (client) must arrive within `Config::handshake_timeout`.
    Handshake = 2,
    /// OPEN: nothing received for `Config::ping_interval`: send a keepalive ping.
    Ping = 3,
    /// OPEN: the keepalive ping's pong is due within `Config::ping_timeout`.
    Pong = 4,
    /// OPEN: no message either way for `Config::idle_timeout`.
    Idle = 5,
    /// Watches queued output for progress (`keepalive.rs`).
    Drain = 6,
}

const KINDS: [TimerKind; 7] = [
    TimerKind::CloseReply,
    TimerKind::TransportClose,
    TimerKind::Handshake,
    TimerKind::Ping,
    TimerKind::Pong,
    TimerKind::Idle,
    TimerKind::Drain,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Off,
    /// Started by a call; its deadline is set at the next time input.
    Start(Duration),
    At(Instant),
}

/// Every timer of one connection.
#[derive(Clone, Debug)]
pub(crate) struct Timers {
    slots: [Slot; KINDS.len()],
    /// The latest time the caller passed in.
    now: Instant,
}

impl Timers {
    pub(crate) fn new() -> Self {
        Timers {
            slots: [Slot::Off; KINDS.len()],
            now: Instant::default(),
        }
    }

    /// Starts (or restarts) `kind` to fire `after` from the next time input.
    pub(crate) fn start(&mut self, kind: TimerKind, after: Duration) {
        self.slots[kind as usize] = Slot::Start(after);
    }

    /// Starts (or restarts) `kind` when `after` is set, stops it otherwise.
    pub(crate) fn start_or_stop(&mut self, kind: TimerKind, after: Option<Duration>) {
        match after {
            Some(after) => self.start(kind, after),
            None => self.stop(kind),
        }
    }

    /// Whether `kind` runs.
    pub(crate) fn is_running(&self, kind: TimerKind) -> bool {
        self.slots[kind as usize] != Slot::Off
    }

    /// The latest time passed in.
    pub(crate) fn now(&self) -> Instant {
        self.now
    }

    /// Stops `kind`.
    pub(crate) fn stop(&mut self, kind: TimerKind) {
        self.slots[kind as usize] = Slot::Off;
    }

    /// Stops every timer.
    pub(crate) fn stop_all(&mut self) {
        self.slots = [Slot::Off; KINDS.len()];
    }

    /// Stops every timer but `keep`.
    pub(crate) fn stop_all_but(&mut self, keep: TimerKind) {
        for kind in KINDS {
            if kind != keep {
                self.stop(kind);
            }
        }
    }

    /// The earliest deadline: a timer just started is due at once.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|slot| match *slot {
                Slot::Off => None,
                Slot::Start(_) => Some(self.now),
                Slot::At(at) => Some(at),
            })
            .min()
    }

    /// The time is `now` (never earlier than a time passed in before):
    /// started timers get their deadlines, and the timers due stop and are
    /// returned, earliest kind first.
    pub(crate) fn advance(&mut self, now: Instant) -> impl Iterator<Item = TimerKind> + use<> {
        self.now = self.now.max(now);
        let now = self.now;
        let mut due = [None; KINDS.len()];
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if let Slot::Start(after) = *slot {
                *slot = match now.checked_add(after) {
                    Some(at) => Slot::At(at),
                    // Not representable: never.
                    None => Slot::Off,
                };
            }
            if let Slot::At(at) = *slot {
                if at <= now {
                    *slot = Slot::Off;
                    due[i] = Some(KINDS[i]);
                }
            }
        }
        due.into_iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn a_started_timer_is_due_at_once_then_at_its_deadline() {
        let mut t = Timers::new();
        assert_eq!(t.next(), None);
        assert_eq!(t.advance(Instant::from_millis(100)).count(), 0);
        t.start(TimerKind::CloseReply, Duration::from_millis(50));
        // Reported at the latest known time, so the caller passes time in now.
        assert_eq!(t.next(), Some(Instant::from_millis(100)));
        assert_eq!(t.advance(Instant::from_millis(110)).count(), 0);
        assert_eq!(t.next(), Some(Instant::from_millis(160)));
        assert_eq!(t.advance(Instant::from_millis(159)).count(), 0);
        let due: [Option<TimerKind>; 1] = {
            let mut it = t.advance(Instant::from_millis(160));
            [it.next()]
        };
        assert_eq!(due, [Some(TimerKind::CloseReply)]);
        assert_eq!(t.next(), None);
    }

    #[test]
    fn several_deadlines_earliest_first() {
        let mut t = Timers::new();
        t.start(TimerKind::TransportClose, Duration::from_secs(2));
        t.start(TimerKind::CloseReply, Duration::from_secs(1));
        let _ = t.advance(Instant::from_millis(0)).count();
        assert_eq!(t.next(), Some(Instant::from_millis(1000)));
        let fired: Vec<TimerKind> = t.advance(Instant::from_millis(5000)).collect();
        assert_eq!(fired, [TimerKind::CloseReply, TimerKind::TransportClose]);
    }

    #[test]
    fn duration_max_means_never_and_time_does_not_go_back() {
        let mut t = Timers::new();
        let _ = t.advance(Instant::from_millis(1000)).count();
        t.start(TimerKind::CloseReply, Duration::MAX);
        assert_eq!(t.advance(Instant::from_duration(Duration::MAX)).count(), 0);
        assert_eq!(t.next(), None);
        let mut t = Timers::new();
        let _ = t.advance(Instant::from_millis(1000)).count();
        t.start(TimerKind::CloseReply, Duration::from_millis(10));
        // An earlier time than one passed in before counts as the later one.
        let _ = t.advance(Instant::from_millis(5)).count();
        assert_eq!(t.next(), Some(Instant::from_millis(1010)));
    }
}
