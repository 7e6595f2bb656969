//! An echo server on io_uring (Linux): one thread, the sans-IO
//! [`Connection`] driven by completions instead of readiness. Every text and
//! binary message is sent back. It is the end-to-end benchmark's question
//! "does a driver on io_uring pay?" (`scripts/e2e_bench.sh`, server
//! `wsmachine-uring`), put as an example: the crate has no io_uring driver.
//!
//! ```text
//! cargo run --release --example uring_echo [-- ADDR]    # default 127.0.0.1:9001
//! ```
//!
//! It prints `listening on ADDR` once it is ready. The ring is set up for
//! one thread (`SINGLE_ISSUER`, `DEFER_TASKRUN`: completion work runs when
//! the loop waits for it, not as interrupts; the default ring on kernels
//! before 6.1), which took its CPU per echo from 1.4-1.6x the epoll floor's
//! to about the floor's. Each connection always
//! has one receive in flight, into a buffer of its own (32 KiB) that the
//! machine copies from ([`Connection::receive`]); output is copied into a
//! send buffer of the connection's (the machine's output may move while a
//! send is in flight), one send in flight at a time. One `io_uring_enter`
//! per pass submits everything the last completions asked for and waits
//! for the next completion, or for the machines' nearest deadline (the
//! handshake and close timeouts). No `Config` is set: every limit is the
//! crate's default.

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("uring_echo: Linux only (io_uring)");
    std::process::exit(2);
}

#[cfg(target_os = "linux")]
fn main() -> std::io::Result<()> {
    linux::run()
}

#[cfg(target_os = "linux")]
mod linux {
    use io_uring::{IoUring, opcode, squeue, types};
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::{AsRawFd, FromRawFd};
    use std::time::{Duration, Instant};
    use wsmachine::{Accept, Config, Connection, Event, Message, ReadyState};

    /// The longest a pass waits when no deadline is nearer.
    const MAX_WAIT: Duration = Duration::from_secs(1);
    /// After a failed accept (out of descriptors, say), how long until the
    /// next one is queued: the connections keep being served meanwhile,
    /// rather than the loop spinning on failures.
    const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
    /// Bytes a connection's receive asks for.
    const RECV_SIZE: usize = 32 << 10;
    /// Submission queue entries (each connection has at most two in flight).
    const ENTRIES: u32 = 4096;

    /// What a completion was for: the low byte of its `user_data`, above it
    /// the connection's slot.
    const OP_ACCEPT: u64 = 0;
    const OP_RECV: u64 = 1;
    const OP_SEND: u64 = 2;

    struct Conn {
        tcp: TcpStream,
        conn: Connection,
        /// The receive's buffer: never touched while a receive is in flight.
        recv: Box<[u8]>,
        /// Output copied out of the machine; `sent..` is still to go. Never
        /// touched while a send is in flight.
        send: Vec<u8>,
        sent: usize,
        recv_in_flight: bool,
        send_in_flight: bool,
        /// The transport ended (end of stream or an error).
        eof: bool,
        /// Shut down by us, once CLOSED and it was our turn.
        shut_down: bool,
    }

    fn user_data(slot: usize, op: u64) -> u64 {
        ((slot as u64) << 8) | op
    }

    /// The machine's time: since the server started.
    fn machine_now(epoch: Instant) -> wsmachine::Instant {
        wsmachine::Instant::from_duration(epoch.elapsed())
    }

    /// Takes every event the machine has, echoing every message.
    fn serve(c: &mut Conn) {
        while let Some(event) = c.conn.poll_event() {
            let message = match event {
                Event::Request(request) => {
                    if let Err(e) = c.conn.accept(request, Accept::new()) {
                        eprintln!("uring_echo: accept: {}", e.error);
                    }
                    continue;
                }
                Event::Text(text) => Message::Text(text),
                Event::Binary(data) => Message::Binary(data),
                _ => continue,
            };
            if let Err(e) = c.conn.send(message) {
                eprintln!("uring_echo: send: {e}");
            }
        }
    }

    /// Queues what `slot` needs next: a receive when none is in flight and
    /// the transport is open, a send of waiting output when none is in
    /// flight. Returns whether the connection is over (nothing in flight,
    /// and nothing more to do).
    fn submit(ring: &mut IoUring, slot: usize, c: &mut Conn) -> bool {
        let fd = types::Fd(c.tcp.as_raw_fd());
        if !c.send_in_flight {
            if c.sent == c.send.len() && c.conn.buffered_amount() > 0 {
                c.send.clear();
                c.sent = 0;
                for chunk in c.conn.output_chunks() {
                    c.send.extend_from_slice(chunk);
                }
                let n = c.send.len();
                c.conn.consume_output(n);
            }
            if c.sent < c.send.len() && !c.eof {
                let rest = &c.send[c.sent..];
                let entry = opcode::Send::new(fd, rest.as_ptr(), rest.len() as u32)
                    .build()
                    .user_data(user_data(slot, OP_SEND));
                push(ring, &entry);
                c.send_in_flight = true;
            }
        }
        let wants_input = !c.eof && c.conn.state() != ReadyState::Closed;
        if !c.recv_in_flight && wants_input {
            let entry = opcode::Recv::new(fd, c.recv.as_mut_ptr(), c.recv.len() as u32)
                .build()
                .user_data(user_data(slot, OP_RECV));
            push(ring, &entry);
            c.recv_in_flight = true;
        }
        let output_done = c.eof || (c.sent == c.send.len() && c.conn.buffered_amount() == 0);
        let our_turn = c.conn.state() == ReadyState::Closed && c.conn.should_close_transport();
        if our_turn && output_done && c.recv_in_flight && !c.shut_down {
            // RFC 6455 §7.1.1: the server closes the TCP connection first;
            // the receive in flight then completes with the end of stream.
            // SAFETY: the descriptor is open (owned by `c.tcp`).
            unsafe { libc::shutdown(c.tcp.as_raw_fd(), libc::SHUT_RDWR) };
            c.shut_down = true;
        }
        (c.eof || our_turn) && output_done && !c.send_in_flight && !c.recv_in_flight
    }

    /// Queues `entry`, submitting what is queued first if the queue is full.
    fn push(ring: &mut IoUring, entry: &squeue::Entry) {
        loop {
            // SAFETY: every buffer an entry points into (a connection's
            // `recv` or `send`) stays alive and untouched until its
            // completion is reaped (`*_in_flight`); connections are dropped
            // only with nothing in flight.
            if unsafe { ring.submission().push(entry) }.is_ok() {
                return;
            }
            if let Err(e) = ring.submit() {
                eprintln!("uring_echo: submit: {e}");
            }
        }
    }

    /// Queues what the connection in `slot` needs next, right after its
    /// completion is handled (so the message it just echoed is freed
    /// before the next connection's is allocated: handling a whole batch
    /// first kept hundreds alive at once, and the allocator returned and
    /// faulted their pages back in every pass), and frees the slot once
    /// the connection is over.
    fn settle(ring: &mut IoUring, conns: &mut [Option<Conn>], free: &mut Vec<usize>, slot: usize) {
        let Some(c) = conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if submit(ring, slot, c) {
            conns[slot] = None;
            free.push(slot);
        }
    }

    fn accept_entry(listener: &TcpListener) -> squeue::Entry {
        opcode::Accept::new(
            types::Fd(listener.as_raw_fd()),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
        .build()
        .user_data(user_data(0, OP_ACCEPT))
    }

    pub fn run() -> std::io::Result<()> {
        let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9001".to_string());
        let listener = TcpListener::bind(&addr)?;
        // One thread submits and reaps (SINGLE_ISSUER), and completions'
        // work runs when it waits for them rather than interrupting it
        // (DEFER_TASKRUN, Linux 6.1+); an older kernel gets the default ring.
        let mut ring = match IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(ENTRIES)
        {
            Ok(ring) => ring,
            Err(_) => IoUring::new(ENTRIES)?,
        };
        println!("listening on {}", listener.local_addr()?);
        std::io::stdout().flush()?;
        let epoch = Instant::now();
        let mut conns: Vec<Option<Conn>> = Vec::new();
        let mut free: Vec<usize> = Vec::new();
        push(&mut ring, &accept_entry(&listener));
        // When the accept is to be queued again after a failure.
        let mut accept_again: Option<Instant> = None;
        loop {
            // Wait for a completion, or for the nearest deadline.
            let now = machine_now(epoch);
            let mut wait = MAX_WAIT;
            if let Some(at) = accept_again {
                wait = wait.min(at.saturating_duration_since(Instant::now()));
            }
            for c in conns.iter().flatten() {
                if let Some(deadline) = c.conn.poll_timeout() {
                    wait = wait.min(deadline.since_epoch().saturating_sub(now.since_epoch()));
                }
            }
            let ts = types::Timespec::from(wait);
            let args = types::SubmitArgs::new().timespec(&ts);
            match ring.submitter().submit_with_args(1, &args) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)
                    ) => {}
                Err(e) => return Err(e),
            }
            let now = machine_now(epoch);
            let completions: Vec<(u64, i32)> = ring.completion().map(|cqe| (cqe.user_data(), cqe.result())).collect();
            for (data, result) in completions {
                let slot = (data >> 8) as usize;
                match data & 0xff {
                    OP_ACCEPT => {
                        if result >= 0 {
                            // SAFETY: a successful accept returns a new descriptor we own.
                            let tcp = unsafe { TcpStream::from_raw_fd(result) };
                            let _ = tcp.set_nodelay(true);
                            let mut c = Conn {
                                tcp,
                                conn: Connection::server(Config::default()),
                                recv: vec![0; RECV_SIZE].into_boxed_slice(),
                                send: Vec::new(),
                                sent: 0,
                                recv_in_flight: false,
                                send_in_flight: false,
                                eof: false,
                                shut_down: false,
                            };
                            // The machine's clock starts now (its handshake timeout).
                            c.conn.handle_timeout(now);
                            let slot = match free.pop() {
                                Some(slot) => {
                                    conns[slot] = Some(c);
                                    slot
                                }
                                None => {
                                    conns.push(Some(c));
                                    conns.len() - 1
                                }
                            };
                            settle(&mut ring, &mut conns, &mut free, slot);
                            push(&mut ring, &accept_entry(&listener));
                        } else {
                            eprintln!("uring_echo: accept: {}", std::io::Error::from_raw_os_error(-result));
                            accept_again = Some(Instant::now() + ACCEPT_BACKOFF);
                        }
                    }
                    OP_RECV => {
                        let Some(c) = conns.get_mut(slot).and_then(Option::as_mut) else {
                            continue;
                        };
                        c.recv_in_flight = false;
                        c.conn.handle_timeout(now);
                        if result > 0 {
                            c.conn.receive(&c.recv[..result as usize]);
                        } else if result != -libc::EINTR && result != -libc::EAGAIN {
                            c.eof = true;
                            c.conn.receive_eof();
                        }
                        serve(c);
                        settle(&mut ring, &mut conns, &mut free, slot);
                    }
                    _ => {
                        let Some(c) = conns.get_mut(slot).and_then(Option::as_mut) else {
                            continue;
                        };
                        c.send_in_flight = false;
                        if result >= 0 {
                            c.sent += result as usize;
                        } else if result != -libc::EINTR && result != -libc::EAGAIN {
                            c.eof = true;
                            c.conn.receive_eof();
                            serve(c);
                        }
                        settle(&mut ring, &mut conns, &mut free, slot);
                    }
                }
            }
            if accept_again.is_some_and(|at| at <= Instant::now()) {
                accept_again = None;
                push(&mut ring, &accept_entry(&listener));
            }
            // Deadlines that are due.
            for slot in 0..conns.len() {
                let Some(c) = conns[slot].as_mut() else { continue };
                if c.conn.poll_timeout().is_some_and(|d| d <= now) {
                    c.conn.handle_timeout(now);
                    serve(c);
                    settle(&mut ring, &mut conns, &mut free, slot);
                }
            }
        }
    }
}
