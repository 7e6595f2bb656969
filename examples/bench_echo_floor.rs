//! The floor of the end-to-end echo benchmark (`scripts/e2e_bench.sh`): a
//! minimal hand-written WebSocket echo server, no library, to show what
//! the kernel alone costs on loopback. Not a WebSocket implementation: it
//! checks nothing (no UTF-8, no limits, no control frames, no close
//! handshake, any frame's opcode echoed), and is only fit for
//! `examples/bench_load.rs`. Linux only (epoll).
//!
//! ```text
//! cargo run --release --example bench_echo_floor [-- ADDR]    # default 127.0.0.1:9001
//! ```
//!
//! It prints `listening on ADDR` once it is ready. One thread,
//! level-triggered epoll; per readiness event one `read` into the
//! connection's buffer; until the upgrade is answered, the request's
//! `Sec-WebSocket-Key` is answered with a bare `101` (RFC 6455 §4.2.2); then
//! every complete frame of the buffer is unmasked in place (§5.3) and
//! echoed, the headers and the payloads of all of them in one `writev`.

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("bench_echo_floor: Linux only (epoll)");
    std::process::exit(2);
}

#[cfg(target_os = "linux")]
fn main() -> std::io::Result<()> {
    linux::run()
}

#[cfg(target_os = "linux")]
mod linux {
    use base64::Engine;
    use std::io::{ErrorKind, IoSlice, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    /// The listener's epoll token.
    const LISTENER: u64 = u64::MAX;

    struct Conn {
        tcp: TcpStream,
        /// Bytes read and not yet echoed (a partial frame at the front).
        buf: Vec<u8>,
        /// Output the socket did not take (rare: one message in flight).
        pending: Vec<u8>,
        upgraded: bool,
    }

    fn ctl(ep: i32, op: i32, fd: i32, events: u32, token: u64) -> std::io::Result<()> {
        let mut event = libc::epoll_event { events, u64: token };
        // SAFETY: `event` is a valid epoll_event; `ep` and `fd` are open descriptors.
        if unsafe { libc::epoll_ctl(ep, op, fd, &mut event) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// XORs `data` with `key` (RFC 6455 §5.3), eight bytes at a time.
    fn unmask(data: &mut [u8], key: [u8; 4]) {
        let key8 = u64::from_ne_bytes([key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]]);
        let mut chunks = data.chunks_exact_mut(8);
        for chunk in &mut chunks {
            let word = u64::from_ne_bytes((&*chunk).try_into().unwrap_or([0; 8])) ^ key8;
            chunk.copy_from_slice(&word.to_ne_bytes());
        }
        for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }

    /// Answers the upgrade once the request head is in `c.buf`.
    fn upgrade(c: &mut Conn) -> bool {
        let Some(end) = c.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            return true;
        };
        let head = String::from_utf8_lossy(&c.buf[..end]).into_owned();
        let key = head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim().to_string())
        });
        let Some(key) = key else { return false };
        let mut sha = sha1_smol::Sha1::new();
        sha.update(key.as_bytes());
        sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
        let accept = base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes());
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        c.buf.drain(..end + 4);
        c.upgraded = true;
        c.tcp.write_all(answer.as_bytes()).is_ok()
    }

    /// Frames echoed by one `writev` at most (more wait for the next batch).
    const BATCH: usize = 64;

    /// Unmasks and echoes every complete frame in `c.buf`, `BATCH` frames per
    /// `writev`; returns false when the connection is over.
    fn echo(ep: i32, token: u64, c: &mut Conn) -> bool {
        let mut at = 0;
        loop {
            // (header, header length, payload start, payload end) of each complete frame.
            let mut frames = [([0u8; 10], 0usize, 0usize, 0usize); BATCH];
            let mut count = 0;
            while count < BATCH {
                let b = &c.buf[at..];
                if b.len() < 2 {
                    break;
                }
                let (len, mut off) = match b[1] & 0x7f {
                    126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
                    127 if b.len() >= 10 => (u64::from_be_bytes(b[2..10].try_into().unwrap_or([0; 8])) as usize, 10),
                    126 | 127 => break,
                    n => (n as usize, 2),
                };
                let masked = b[1] & 0x80 != 0;
                let key_at = off;
                if masked {
                    off += 4;
                }
                if b.len() < off + len {
                    break;
                }
                let header = &mut frames[count].0;
                header[0] = b[0];
                let header_len = if len < 126 {
                    header[1] = len as u8;
                    2
                } else if len <= 0xffff {
                    header[1] = 126;
                    header[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                    4
                } else {
                    header[1] = 127;
                    header[2..10].copy_from_slice(&(len as u64).to_be_bytes());
                    10
                };
                if masked {
                    let key = [b[key_at], b[key_at + 1], b[key_at + 2], b[key_at + 3]];
                    unmask(&mut c.buf[at + off..at + off + len], key);
                }
                frames[count].1 = header_len;
                frames[count].2 = at + off;
                frames[count].3 = at + off + len;
                count += 1;
                at += off + len;
            }
            if count == 0 {
                break;
            }
            let mut slices = [IoSlice::new(&[]); 2 * BATCH];
            for (i, (header, header_len, start, end)) in frames[..count].iter().enumerate() {
                slices[2 * i] = IoSlice::new(&header[..*header_len]);
                slices[2 * i + 1] = IoSlice::new(&c.buf[*start..*end]);
            }
            let slices = &slices[..2 * count];
            let total: usize = slices.iter().map(|s| s.len()).sum();
            let written = if c.pending.is_empty() {
                match c.tcp.write_vectored(slices) {
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => 0,
                    Err(_) => return false,
                }
            } else {
                0
            };
            if written < total {
                // Keep the rest for EPOLLOUT.
                let was_empty = c.pending.is_empty();
                let mut skip = written;
                for s in slices {
                    if skip >= s.len() {
                        skip -= s.len();
                        continue;
                    }
                    c.pending.extend_from_slice(&s[skip..]);
                    skip = 0;
                }
                if was_empty {
                    let events = (libc::EPOLLIN | libc::EPOLLOUT) as u32;
                    if ctl(ep, libc::EPOLL_CTL_MOD, c.tcp.as_raw_fd(), events, token).is_err() {
                        return false;
                    }
                }
            }
            if count < BATCH {
                break;
            }
        }
        c.buf.drain(..at);
        true
    }

    /// One `read(2)` into the spare capacity of `buf`: the bytes count, 0 at
    /// the end of the stream.
    fn read_once(tcp: &TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        let spare = buf.spare_capacity_mut();
        // SAFETY: `spare` is writable memory of `spare.len()` bytes owned by `buf`.
        let got = unsafe { libc::read(tcp.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len()) };
        if got < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the kernel initialised the first `got` bytes of the spare capacity.
        unsafe { buf.set_len(buf.len() + got as usize) };
        Ok(got as usize)
    }

    fn flush_pending(ep: i32, token: u64, c: &mut Conn) -> bool {
        match c.tcp.write(&c.pending) {
            Ok(n) => {
                c.pending.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
        if c.pending.is_empty() {
            return ctl(ep, libc::EPOLL_CTL_MOD, c.tcp.as_raw_fd(), libc::EPOLLIN as u32, token).is_ok();
        }
        true
    }

    pub fn run() -> std::io::Result<()> {
        let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:9001".into());
        let listener = TcpListener::bind(&addr)?;
        listener.set_nonblocking(true)?;
        // SAFETY: epoll_create1 has no preconditions.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(std::io::Error::last_os_error());
        }
        ctl(
            ep,
            libc::EPOLL_CTL_ADD,
            listener.as_raw_fd(),
            libc::EPOLLIN as u32,
            LISTENER,
        )?;
        println!("listening on {}", listener.local_addr()?);
        std::io::stdout().flush()?;
        let mut conns: Vec<Option<Conn>> = Vec::new();
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
        loop {
            // SAFETY: `events` is a valid, writable array of `events.len()` entries.
            let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, -1) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in &events[..n as usize] {
                let (token, flags) = (event.u64, event.events);
                if token == LISTENER {
                    while let Ok((tcp, _)) = listener.accept() {
                        tcp.set_nonblocking(true)?;
                        tcp.set_nodelay(true)?;
                        let slot = conns.iter().position(Option::is_none).unwrap_or(conns.len());
                        ctl(
                            ep,
                            libc::EPOLL_CTL_ADD,
                            tcp.as_raw_fd(),
                            libc::EPOLLIN as u32,
                            slot as u64,
                        )?;
                        let conn = Conn {
                            tcp,
                            buf: Vec::with_capacity(64 * 1024),
                            pending: Vec::new(),
                            upgraded: false,
                        };
                        if slot == conns.len() {
                            conns.push(Some(conn));
                        } else {
                            conns[slot] = Some(conn);
                        }
                    }
                    continue;
                }
                let Some(c) = conns.get_mut(token as usize).and_then(Option::as_mut) else {
                    continue;
                };
                let mut alive = true;
                if flags & libc::EPOLLOUT as u32 != 0 {
                    alive = flush_pending(ep, token, c);
                }
                if alive && flags & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
                    alive = match read_once(&c.tcp, &mut c.buf) {
                        Ok(0) => false,
                        Ok(_) if c.upgraded => echo(ep, token, c),
                        Ok(_) => upgrade(c) && (!c.upgraded || echo(ep, token, c)),
                        Err(e) => matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted),
                    };
                }
                if !alive {
                    conns[token as usize] = None;
                }
            }
        }
    }
}
