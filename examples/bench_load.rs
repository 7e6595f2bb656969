//! The load client of the end-to-end echo benchmark (`scripts/e2e_bench.sh`),
//! shared by every echo server (`examples/bench_echo_*.rs`, `tokio_echo`,
//! `poll_echo`): the uWebSockets `load_test` method that fastwebsockets and
//! tokio-websockets publish. Linux only (epoll, `/proc`).
//!
//! ```text
//! cargo build --release --example bench_load
//! target/release/examples/bench_load --addr 127.0.0.1:9001 -c 100 -s 20 --warmup 1 --duration 5 --server-pid PID
//! ```
//!
//! It opens `-c` connections, each with its own minimal HTTP/1.1 upgrade
//! (RFC 6455 §4.1; the answer must be `101` with the `Sec-WebSocket-Accept`
//! of the fixed key, §4.2.2), over raw TCP with `TCP_NODELAY`. Then each
//! connection keeps exactly one binary message in flight: a pre-built masked
//! frame of `-s` payload bytes (one frame, FIN set, the same bytes every
//! time, §5.2–§5.3), and the next one is written only when the whole echo
//! is back. Every echo is checked byte for byte against the unmasked frame
//! the server must send (opcode 2, FIN, no mask, the payload); a mismatch, a
//! closed connection or a stall (no echo for `--stall` seconds) ends the run
//! with exit code 1. One thread, level-triggered epoll, one `read` per
//! readiness event.
//!
//! After `--warmup` seconds it measures for `--duration` seconds and prints
//! one line of `key=value` pairs:
//!
//! - `echoes`, `secs`, `msgs_per_s`: echoes completed in the window;
//! - with `--server-pid`: `server_cpu_us_per_echo` (the server's utime +
//!   stime from `/proc/<pid>/stat`, summed over its threads, the delta over
//!   the window divided by the echoes), `server_user_us_per_echo`,
//!   `server_sys_us_per_echo`, `server_cpu_pct` (of one core);
//! - `client_cpu_pct`: this process's own CPU over the window (near 100 %
//!   would mean the client, not the server, sets the pace).
//!
//! With `--perf-control CTL,ACK` (the fifos of a `perf stat -D -1 --control
//! fifo:CTL,ACK` attached to the server) it sends `enable` when the window
//! opens and `disable` when it closes, each acknowledged, so perf counts
//! (the server's system calls, say) in exactly the measured window.

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("bench_load: Linux only (epoll, /proc)");
    std::process::exit(2);
}

#[cfg(target_os = "linux")]
fn main() {
    match linux::run() {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("bench_load: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io::{ErrorKind, Read, Write};
    use std::net::TcpStream;
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    const USAGE: &str = "usage: bench_load --addr HOST:PORT [-c CONNECTIONS] [-s PAYLOAD_BYTES] \
                         [--warmup SECS] [--duration SECS] [--stall SECS] [--server-pid PID] \
                         [--perf-control CTL_FIFO,ACK_FIFO]";

    /// The handshake key of RFC 6455 §1.3's example, and its accept value.
    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
    /// The masking key of every frame (RFC 6455 §5.3; fixed: the bytes on the
    /// wire are the same for every server).
    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    struct Options {
        addr: String,
        connections: usize,
        size: usize,
        warmup: Duration,
        duration: Duration,
        stall: Duration,
        server_pid: Option<u32>,
        perf_control: Option<(String, String)>,
    }

    fn secs(name: &str, value: &str) -> Result<Duration, String> {
        let s: f64 = value.parse().map_err(|_| format!("{name}: not a number: {value:?}"))?;
        Duration::try_from_secs_f64(s).map_err(|_| format!("{name}: not a duration: {value:?}"))
    }

    fn number<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, String> {
        value.parse().map_err(|_| format!("{name}: not a number: {value:?}"))
    }

    impl Options {
        fn parse() -> Result<Options, String> {
            let mut opts = Options {
                addr: String::new(),
                connections: 100,
                size: 20,
                warmup: Duration::from_secs(1),
                duration: Duration::from_secs(5),
                stall: Duration::from_secs(5),
                server_pid: None,
                perf_control: None,
            };
            let mut args = std::env::args().skip(1);
            while let Some(flag) = args.next() {
                if flag == "-h" || flag == "--help" {
                    return Err(USAGE.into());
                }
                let value = args.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
                match flag.as_str() {
                    "--addr" => opts.addr = value,
                    "-c" | "--connections" => opts.connections = number(&flag, &value)?,
                    "-s" | "--size" => opts.size = number(&flag, &value)?,
                    "--warmup" => opts.warmup = secs(&flag, &value)?,
                    "--duration" => opts.duration = secs(&flag, &value)?,
                    "--stall" => opts.stall = secs(&flag, &value)?,
                    "--server-pid" => opts.server_pid = Some(number(&flag, &value)?),
                    "--perf-control" => {
                        let (ctl, ack) = value.split_once(',').ok_or("--perf-control CTL_FIFO,ACK_FIFO")?;
                        opts.perf_control = Some((ctl.into(), ack.into()));
                    }
                    _ => return Err(format!("unknown option {flag}\n{USAGE}")),
                }
            }
            if opts.addr.is_empty() || opts.connections == 0 || opts.duration.is_zero() {
                return Err(format!(
                    "--addr, at least one connection and a non-zero duration are needed\n{USAGE}"
                ));
            }
            Ok(opts)
        }
    }

    /// A frame header (RFC 6455 §5.2): FIN + binary, the payload length, and
    /// the masking key when `mask` is given.
    fn frame(payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let len = payload.len();
        let bit = if mask.is_some() { 0x80 } else { 0 };
        let mut out = vec![0x82];
        if len < 126 {
            out.push(bit | len as u8);
        } else if len <= 0xffff {
            out.push(bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(bit | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        match mask {
            Some(key) => {
                out.extend_from_slice(&key);
                out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
            }
            None => out.extend_from_slice(payload),
        }
        out
    }

    /// Utime + stime of every thread of `pid`, and the two apart, in µs.
    fn cpu_us(pid: u32) -> Result<(f64, f64), String> {
        let stat =
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
        // The command name (field 2) is in parentheses and may hold spaces.
        let rest = &stat[stat.rfind(')').ok_or("/proc stat: no ')'")? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // Fields 14 and 15 (utime, stime), counted from 1; `rest` starts at field 3.
        let ticks = |i: usize| -> Result<f64, String> {
            fields
                .get(i - 3)
                .and_then(|f| f.parse::<f64>().ok())
                .ok_or_else(|| "/proc stat: short".to_string())
        };
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Ok((ticks(14)? * 1e6 / hz, ticks(15)? * 1e6 / hz))
    }

    /// This process's CPU time (user + system), in µs.
    fn self_cpu_us() -> f64 {
        // SAFETY: an all-zero rusage is valid, and getrusage writes it.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `usage` is a valid, writable rusage.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
        let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
        us(usage.ru_utime) + us(usage.ru_stime)
    }

    /// The control and acknowledgement fifos of a `perf stat --control`.
    struct Perf {
        ctl: std::fs::File,
        ack: std::fs::File,
    }

    impl Perf {
        fn open(ctl: &str, ack: &str) -> Result<Perf, String> {
            let ctl = std::fs::OpenOptions::new()
                .write(true)
                .open(ctl)
                .map_err(|e| format!("{ctl}: {e}"))?;
            let ack = std::fs::File::open(ack).map_err(|e| format!("{ack}: {e}"))?;
            Ok(Perf { ctl, ack })
        }

        /// Sends `command` (`enable`, `disable`) and waits for perf's `ack`.
        fn command(&mut self, command: &str) -> Result<(), String> {
            self.ctl
                .write_all(format!("{command}\n").as_bytes())
                .map_err(|e| format!("perf control: {e}"))?;
            // perf writes "ack\n" and a NUL (the C string with its terminator).
            let mut answer = Vec::new();
            let mut byte = [0u8; 1];
            while !answer.ends_with(b"\n") && answer.len() < 64 {
                self.ack.read_exact(&mut byte).map_err(|e| format!("perf ack: {e}"))?;
                if byte[0] != 0 {
                    answer.push(byte[0]);
                }
            }
            if answer != b"ack\n" {
                return Err(format!(
                    "perf answered {:?} to {command}",
                    String::from_utf8_lossy(&answer)
                ));
            }
            Ok(())
        }
    }

    /// Connects and upgrades one connection (blocking, with a timeout), then
    /// makes it non-blocking.
    fn connect(addr: &str) -> Result<TcpStream, String> {
        let mut tcp = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let request = format!(
            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        tcp.write_all(request.as_bytes())
            .map_err(|e| format!("upgrade request: {e}"))?;
        // Read byte by byte up to the blank line: no byte of the first
        // frame may be taken (none can come: nothing was sent yet).
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match tcp.read(&mut byte) {
                Ok(0) => return Err("the server closed during the upgrade".into()),
                Ok(_) => head.push(byte[0]),
                Err(e) => return Err(format!("upgrade response: {e}")),
            }
            if head.len() > 8192 {
                return Err("upgrade response over 8 KiB".into());
            }
        }
        let head = String::from_utf8_lossy(&head);
        let ok = head.starts_with("HTTP/1.1 101")
            && head.lines().any(|line| {
                line.split_once(':').is_some_and(|(name, value)| {
                    name.trim().eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == ACCEPT
                })
            });
        if !ok {
            return Err(format!("not a valid 101 answer (RFC 6455 §4.2.2):\n{head}"));
        }
        tcp.set_read_timeout(None).map_err(|e| e.to_string())?;
        tcp.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(tcp)
    }

    struct Conn {
        tcp: TcpStream,
        /// Bytes of the request frame written so far.
        sent: usize,
        /// Bytes of the expected echo received so far.
        received: usize,
        /// Whether EPOLLOUT is registered (a partial write waits).
        want_out: bool,
    }

    fn epoll_ctl(ep: i32, op: i32, fd: i32, events: u32, token: usize) -> Result<(), String> {
        let mut event = libc::epoll_event {
            events,
            u64: token as u64,
        };
        // SAFETY: `event` is a valid epoll_event; `ep` and `fd` are open descriptors.
        if unsafe { libc::epoll_ctl(ep, op, fd, &mut event) } != 0 {
            return Err(format!("epoll_ctl: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Writes what is left of `request` on `c`; registers for EPOLLOUT when
    /// the socket takes only part of it.
    fn send(ep: i32, token: usize, c: &mut Conn, request: &[u8]) -> Result<(), String> {
        while c.sent < request.len() {
            match c.tcp.write(&request[c.sent..]) {
                Ok(0) => return Err("write returned 0".into()),
                Ok(n) => c.sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if !c.want_out {
                        c.want_out = true;
                        let events = (libc::EPOLLIN | libc::EPOLLOUT) as u32;
                        epoll_ctl(ep, libc::EPOLL_CTL_MOD, c.tcp.as_raw_fd(), events, token)?;
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write: {e}")),
            }
        }
        if c.want_out {
            c.want_out = false;
            epoll_ctl(ep, libc::EPOLL_CTL_MOD, c.tcp.as_raw_fd(), libc::EPOLLIN as u32, token)?;
        }
        Ok(())
    }

    pub fn run() -> Result<String, String> {
        let opts = Options::parse()?;
        // A payload that is not all one byte, so a wrong unmask shows.
        let payload: Vec<u8> = (0..opts.size).map(|i| (i * 31 + 7) as u8).collect();
        let request = frame(&payload, Some(MASK));
        let expected = frame(&payload, None);

        let mut perf = match &opts.perf_control {
            Some((ctl, ack)) => Some(Perf::open(ctl, ack)?),
            None => None,
        };
        let mut conns = Vec::with_capacity(opts.connections);
        for _ in 0..opts.connections {
            conns.push(Conn {
                tcp: connect(&opts.addr)?,
                sent: 0,
                received: 0,
                want_out: false,
            });
        }
        // SAFETY: epoll_create1 has no preconditions.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(format!("epoll_create1: {}", std::io::Error::last_os_error()));
        }
        for (token, c) in conns.iter().enumerate() {
            epoll_ctl(ep, libc::EPOLL_CTL_ADD, c.tcp.as_raw_fd(), libc::EPOLLIN as u32, token)?;
        }
        for (token, c) in conns.iter_mut().enumerate() {
            send(ep, token, c, &request)?;
        }

        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
        let mut buf = vec![0u8; 256 * 1024];
        let mut echoes: u64 = 0;
        let start = Instant::now();
        let mut last_echo = start;
        let mut last_count = 0;
        let measure_from = start + opts.warmup;
        let measure_to = measure_from + opts.duration;
        // (instant, echoes, server (user, sys) µs, client µs) at the window's start.
        let mut window: Option<(Instant, u64, (f64, f64), f64)> = None;
        loop {
            // SAFETY: `events` is a valid, writable array of `events.len()` entries.
            let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, 10) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(format!("epoll_wait: {e}"));
            }
            for event in &events[..n as usize] {
                let token = event.u64 as usize;
                let c = &mut conns[token];
                let flags = event.events;
                if flags & libc::EPOLLOUT as u32 != 0 {
                    send(ep, token, c, &request)?;
                }
                if flags & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32 == 0 {
                    continue;
                }
                let want = expected.len() - c.received;
                let got = match c.tcp.read(&mut buf) {
                    Ok(0) => return Err(format!("connection {token}: the server closed it")),
                    Ok(got) => got,
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => continue,
                    Err(e) => return Err(format!("connection {token}: read: {e}")),
                };
                if got > want {
                    return Err(format!(
                        "connection {token}: {got} bytes read where {want} remained of the echo \
                         (one message in flight: the server sent more than the echo)"
                    ));
                }
                if buf[..got] != expected[c.received..c.received + got] {
                    return Err(format!("connection {token}: the echo differs from the frame expected"));
                }
                c.received += got;
                if c.received == expected.len() {
                    if c.sent != request.len() {
                        return Err(format!("connection {token}: echo complete before the request was sent"));
                    }
                    echoes += 1;
                    c.received = 0;
                    c.sent = 0;
                    send(ep, token, c, &request)?;
                }
            }
            let now = Instant::now();
            if echoes != last_count {
                last_count = echoes;
                last_echo = now;
            }
            if now.duration_since(last_echo) > opts.stall {
                return Err(format!("no echo for {:?} ({echoes} echoes so far)", opts.stall));
            }
            match window {
                None if now >= measure_from => {
                    if let Some(perf) = &mut perf {
                        perf.command("enable")?;
                    }
                    let now = Instant::now();
                    let server = match opts.server_pid {
                        Some(pid) => cpu_us(pid)?,
                        None => (0.0, 0.0),
                    };
                    window = Some((now, echoes, server, self_cpu_us()));
                }
                Some((t0, e0, (u0, s0), c0)) if now >= measure_to => {
                    let (u1, s1) = match opts.server_pid {
                        Some(pid) => cpu_us(pid)?,
                        None => (0.0, 0.0),
                    };
                    if let Some(perf) = &mut perf {
                        perf.command("disable")?;
                    }
                    let secs = now.duration_since(t0).as_secs_f64();
                    let count = echoes - e0;
                    if count == 0 {
                        return Err("no echo in the measured window".into());
                    }
                    let client_pct = (self_cpu_us() - c0) / (secs * 1e4);
                    let mut line = format!(
                        "echoes={count} secs={secs:.3} msgs_per_s={:.0} client_cpu_pct={client_pct:.1}",
                        count as f64 / secs
                    );
                    if opts.server_pid.is_some() {
                        let (user, sys) = ((u1 - u0) / count as f64, (s1 - s0) / count as f64);
                        let pct = (u1 - u0 + s1 - s0) / (secs * 1e4);
                        line += &format!(
                            " server_cpu_us_per_echo={:.3} server_user_us_per_echo={user:.3} \
                             server_sys_us_per_echo={sys:.3} server_cpu_pct={pct:.1}",
                            user + sys
                        );
                    }
                    return Ok(line);
                }
                _ => {}
            }
        }
    }
}
