//! A minimal blocking driver shared by the examples: it moves bytes between
//! a `TcpStream` and a `Connection` and passes time in. It holds no protocol
//! logic; every decision is the machine's.

#![allow(dead_code)]

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant as StdInstant};
use wsmachine::{Connection, Event, Instant};

pub struct Driver {
    pub conn: Connection,
    pub stream: TcpStream,
    buf: Vec<u8>,
    epoch: StdInstant,
    /// The transport ended (end of stream or an IO error).
    gone: bool,
}

impl Driver {
    pub fn new(conn: Connection, stream: TcpStream) -> Self {
        let _ = stream.set_nodelay(true);
        Driver {
            conn,
            stream,
            buf: vec![0; 64 * 1024],
            epoch: StdInstant::now(),
            gone: false,
        }
    }

    fn now(&self) -> Instant {
        Instant::from_duration(self.epoch.elapsed())
    }

    /// Writes everything the machine has queued.
    pub fn flush(&mut self) -> io::Result<()> {
        while !self.gone {
            let chunk = self.conn.pending_output();
            if chunk.is_empty() {
                break;
            }
            match self.stream.write(chunk) {
                Ok(0) => return Err(io::Error::new(ErrorKind::WriteZero, "the peer stopped reading")),
                Ok(n) => self.conn.consume_output(n),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The next event; `None` once the connection is over and the transport
    /// closed. Writes pending output first, so answers to the previous event
    /// go out before waiting for input.
    pub fn next_event(&mut self) -> Option<Event> {
        loop {
            match self.next_event_or_idle(None) {
                Some(Some(event)) => return Some(event),
                Some(None) => continue,
                None => return None,
            }
        }
    }

    /// Like [`Driver::next_event`], but gives up waiting for input after
    /// `max_wait` and returns `Some(None)` then.
    pub fn next_event_or_idle(&mut self, max_wait: Option<Duration>) -> Option<Option<Event>> {
        loop {
            if self.flush().is_err() {
                self.transport_gone();
            }
            if let Some(event) = self.conn.poll_event() {
                return Some(Some(event));
            }
            if self.conn.should_close_transport() || self.gone {
                let _ = self.stream.shutdown(Shutdown::Both);
                return None;
            }
            let now = self.now();
            self.conn.handle_timeout(now);
            if !self.conn.pending_output().is_empty() {
                continue;
            }
            if let Some(event) = self.conn.poll_event() {
                return Some(Some(event));
            }
            // Sleep in read until input arrives, the next deadline, or `max_wait`.
            let mut wait = match self.conn.poll_timeout() {
                Some(deadline) => deadline.since_epoch().saturating_sub(now.since_epoch()),
                None => Duration::from_secs(3600),
            };
            if let Some(max) = max_wait {
                wait = wait.min(max);
            }
            let _ = self.stream.set_read_timeout(Some(wait.max(Duration::from_millis(1))));
            match self.stream.read(&mut self.buf) {
                Ok(0) => self.transport_gone(),
                Ok(n) => self.conn.receive(&self.buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    if max_wait.is_some() {
                        return Some(None);
                    }
                }
                Err(_) => self.transport_gone(),
            }
        }
    }

    fn transport_gone(&mut self) {
        self.gone = true;
        self.conn.receive_eof();
    }
}
