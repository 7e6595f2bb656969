//! Load generator for the tokio echo server (`examples/tokio_echo.rs`): opens
//! N WebSocket connections on loopback (default 10,000), holds them all open
//! at once, sends one text message on each and waits for its echo, then
//! closes them. Reports the connections held at peak, the messages echoed,
//! failures by kind, connect and echo latency percentiles, and the server's
//! resident memory per connection from `/proc/<pid>/status` (VmRSS at peak
//! minus VmRSS before connecting, divided by the connections held).
//!
//! A benchmark, run by hand (Linux, for `/proc`):
//!
//! ```text
//! cargo build --release --features tokio --examples
//! target/release/examples/load --spawn target/release/examples/tokio_echo
//! ```
//!
//! Options:
//!
//! - `-n`, `--connections N`: how many connections (default 10000; or the
//!   `LOAD_CONNECTIONS` environment variable);
//! - `--url URL`: the server (default `ws://127.0.0.1:9001/`);
//! - `--spawn PATH`: start the server at `PATH` with the URL's `host:port`
//!   as its argument, wait for its `listening on` line, stop it at the end;
//! - `--server-arg ARG`: one more argument for the spawned server (repeat
//!   for more), for example `--server-arg --retain`;
//! - `--server-pid PID`: a server already running (for its memory);
//! - `--concurrency N`: connections being set up at a time (default 500);
//! - `--size BYTES`: the message size (default 32);
//! - `--timeout SECS`: per connection and phase (default 30);
//! - `--hold SECS`: keep every connection open this long at peak (default 0).
//!
//! The soft open-file limit is raised to the hard limit when N needs it (the
//! spawned server inherits it, and raises its own too); a hard limit below N
//! is reported and nothing runs.

use futures_util::{StreamExt, stream};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};
use wsmachine::tokio::{Error, MaybeTlsStream, WebSocketStream};
use wsmachine::{ClientRequest, CloseCode, Event, Message};

type Ws = WebSocketStream<MaybeTlsStream>;

/// Open files besides the connections (stdio, the runtime's epoll and eventfd, slack).
const SPARE_FILES: libc::rlim_t = 64;

const USAGE: &str = "usage: load [-n N] [--url ws://HOST:PORT/] [--spawn PATH [--server-arg ARG]... | --server-pid PID] \
                     [--concurrency N] [--size BYTES] [--timeout SECS] [--hold SECS]";

struct Options {
    connections: usize,
    url: String,
    spawn: Option<String>,
    server_args: Vec<String>,
    server_pid: Option<u32>,
    concurrency: usize,
    size: usize,
    timeout: Duration,
    hold: Duration,
}

impl Options {
    fn parse() -> Result<Options, String> {
        let mut opts = Options {
            connections: 10_000,
            url: "ws://127.0.0.1:9001/".into(),
            spawn: None,
            server_args: Vec::new(),
            server_pid: None,
            concurrency: 500,
            size: 32,
            timeout: Duration::from_secs(30),
            hold: Duration::ZERO,
        };
        if let Ok(n) = std::env::var("LOAD_CONNECTIONS") {
            opts.connections = number("LOAD_CONNECTIONS", &n)?;
        }
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag.to_string(), Some(value.to_string())),
                _ => (arg, None),
            };
            if flag == "-h" || flag == "--help" {
                return Err(String::new());
            }
            const FLAGS: [&str; 10] = [
                "-n",
                "--connections",
                "--url",
                "--spawn",
                "--server-arg",
                "--server-pid",
                "--concurrency",
                "--size",
                "--timeout",
                "--hold",
            ];
            if !FLAGS.contains(&flag.as_str()) {
                return Err(format!("unknown option {flag}"));
            }
            let value = match inline.or_else(|| args.next()) {
                Some(value) => value,
                None => return Err(format!("{flag} needs a value")),
            };
            match flag.as_str() {
                "-n" | "--connections" => opts.connections = number(&flag, &value)?,
                "--url" => opts.url = value,
                "--spawn" => opts.spawn = Some(value),
                "--server-arg" => opts.server_args.push(value),
                "--server-pid" => opts.server_pid = Some(number(&flag, &value)?),
                "--concurrency" => opts.concurrency = number(&flag, &value)?,
                "--size" => opts.size = number(&flag, &value)?,
                "--timeout" => opts.timeout = Duration::from_secs(number(&flag, &value)?),
                "--hold" => opts.hold = Duration::from_secs(number(&flag, &value)?),
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        if opts.connections == 0 || opts.concurrency == 0 {
            return Err("the connections and the concurrency must be at least 1".into());
        }
        if opts.spawn.is_some() && opts.server_pid.is_some() {
            return Err("--spawn and --server-pid exclude each other".into());
        }
        Ok(opts)
    }
}

fn number<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("{name}: not a number: {value:?}"))
}

/// Makes room for `needed` open files: raises the soft limit to the hard
/// limit if it is lower than `needed`. Returns the soft limit now in force.
fn raise_open_file_limit(needed: libc::rlim_t) -> Result<libc::rlim_t, String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable `rlimit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(format!("getrlimit: {}", std::io::Error::last_os_error()));
    }
    let (soft, hard) = (limit.rlim_cur, limit.rlim_max);
    if soft >= needed {
        return Ok(soft);
    }
    if hard < needed {
        return Err(format!(
            "the open-file hard limit is {hard} (ulimit -Hn), and {needed} are needed: raise it \
             (as root: `ulimit -Hn {needed}`, or `nofile` in /etc/security/limits.conf) or pass a smaller -n"
        ));
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a valid `rlimit` within the hard limit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(format!("setrlimit: {}", std::io::Error::last_os_error()));
    }
    Ok(hard)
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in KiB.
fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The soft open-file limit of a process, from `/proc/<pid>/limits`.
fn open_file_limit(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// How many sockets a process has open (its listener included), from `/proc/<pid>/fd`.
fn open_sockets(pid: u32) -> Option<usize> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    let sockets = dir
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count();
    Some(sockets)
}

/// The spawned server; stopped when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `path ADDR` and waits for its `listening on` line.
fn spawn_server(path: &str, addr: &str, args: &[String]) -> Result<Server, String> {
    let child = Command::new(path)
        .arg(addr)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("could not start {path}: {e} (build it: cargo build --release --features tokio --examples)")
        })?;
    let mut server = Server(child);
    let mut stdout = BufReader::new(server.0.stdout.take().expect("piped"));
    let mut line = String::new();
    let _ = stdout.read_line(&mut line);
    if !line.starts_with("listening on") {
        let status = server.0.wait().map(|s| s.to_string()).unwrap_or_default();
        return Err(format!("{path} did not start listening on {addr} ({status})"));
    }
    print!("server:  {path} (pid {}) {line}", server.0.id());
    // Pass on whatever else it prints, so it never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            println!("server: {line}");
        }
    });
    Ok(server)
}

/// Why a connection failed, and in which phase.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Failure {
    phase: &'static str,
    kind: String,
}

impl Failure {
    fn new(phase: &'static str, kind: impl Into<String>) -> Self {
        Failure {
            phase,
            kind: kind.into(),
        }
    }

    fn from_error(phase: &'static str, e: &Error) -> Self {
        let kind = match e {
            Error::Io(e) => format!("io: {:?}", e.kind()),
            Error::Failed(e) => format!("websocket: {e}"),
            Error::Refused(e) => format!("refused: {e}"),
            Error::NotUpgraded => "not upgraded".into(),
            Error::Closed => "closed".into(),
            other => format!("{other}"),
        };
        Failure::new(phase, kind)
    }
}

#[derive(Default)]
struct Failures(BTreeMap<Failure, usize>);

impl Failures {
    fn add(&mut self, failure: Failure) {
        *self.0.entry(failure).or_default() += 1;
    }

    fn in_phase(&self, phase: &str) -> usize {
        self.0.iter().filter(|(f, _)| f.phase == phase).map(|(_, n)| n).sum()
    }
}

async fn connect_one(url: String, timeout: Duration) -> Result<(Ws, Duration), Failure> {
    let start = Instant::now();
    match tokio::time::timeout(timeout, wsmachine::tokio::connect(&url)).await {
        Ok(Ok((ws, _response))) => Ok((ws, start.elapsed())),
        Ok(Err(e)) => Err(Failure::from_error("connect", &e)),
        Err(_) => Err(Failure::new("connect", "timeout")),
    }
}

async fn echo_one(mut ws: Ws, text: String, timeout: Duration) -> Result<(Ws, Duration), Failure> {
    let start = Instant::now();
    let exchange = async {
        ws.send(Message::Text(text.as_str().into()))
            .await
            .map_err(|e| Failure::from_error("send", &e))?;
        loop {
            match ws.next().await {
                Some(Ok(Event::Text(echo))) if echo == text.as_str() => return Ok(start.elapsed()),
                Some(Ok(Event::Text(_) | Event::Binary(_))) => return Err(Failure::new("echo", "wrong message")),
                Some(Ok(Event::Closed(_))) | None => {
                    return Err(Failure::new("echo", "closed by the server"));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(Failure::from_error("echo", &e)),
            }
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(latency)) => Ok((ws, latency)),
        Ok(Err(failure)) => Err(failure),
        Err(_) => Err(Failure::new("echo", "timeout")),
    }
}

async fn close_one(mut ws: Ws, timeout: Duration) -> Result<(), Failure> {
    let closing = async {
        ws.close(CloseCode::NORMAL, "").await?;
        while let Some(event) = ws.next().await {
            event?;
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, closing).await {
        Ok(result) => result.map_err(|e| Failure::from_error("close", &e)),
        Err(_) => Err(Failure::new("close", "timeout")),
    }
}

/// The text sent on connection `i`: `size` bytes, different on each connection.
fn message(i: usize, size: usize) -> String {
    let mut text = format!("{i:06} ");
    text.truncate(size);
    while text.len() < size {
        text.push((b'a' + (text.len() % 26) as u8) as char);
    }
    text
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn percentiles(mut latencies: Vec<Duration>) -> String {
    if latencies.is_empty() {
        return "-".into();
    }
    latencies.sort_unstable();
    let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    format!(
        "p50 {}, p90 {}, p99 {}, max {}",
        ms(at(0.5)),
        ms(at(0.9)),
        ms(at(0.99)),
        ms(at(1.0))
    )
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Runs the three phases; returns whether every connection connected, echoed and closed.
async fn run(opts: &Options, server_pid: Option<u32>) -> bool {
    let n = opts.connections;
    let pid = server_pid.map(|p| p.to_string());
    let server_rss = || pid.as_deref().and_then(|p| status_kib(p, "VmRSS"));
    let client_rss = || status_kib("self", "VmRSS");
    let mut failures = Failures::default();

    // Before connecting: the baseline.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let server_baseline = server_rss();
    let client_baseline = client_rss();

    // Connect, `concurrency` at a time; every connection stays open.
    let start = Instant::now();
    let url = opts.url.clone();
    let timeout = opts.timeout;
    let connected: Vec<_> = stream::iter(0..n)
        .map(|_| tokio::spawn(connect_one(url.clone(), timeout)))
        .buffer_unordered(opts.concurrency)
        .collect()
        .await;
    let connect_time = start.elapsed();
    let mut open = Vec::with_capacity(n);
    let mut connect_latencies = Vec::with_capacity(n);
    for result in connected {
        match result {
            Ok(Ok((ws, latency))) => {
                open.push(ws);
                connect_latencies.push(latency);
            }
            Ok(Err(failure)) => failures.add(failure),
            Err(_) => failures.add(Failure::new("connect", "task panicked")),
        }
    }
    let held_connected = open.len();
    let server_rss_connected = server_rss();
    println!(
        "connect: {held_connected}/{n} open in {:.2} s ({:.0}/s); latency {}",
        connect_time.as_secs_f64(),
        held_connected as f64 / connect_time.as_secs_f64(),
        percentiles(connect_latencies)
    );

    // One message on each, all at once, each waiting for its echo.
    let start = Instant::now();
    let echoes: Vec<_> = open
        .into_iter()
        .enumerate()
        .map(|(i, ws)| tokio::spawn(echo_one(ws, message(i, opts.size), timeout)))
        .collect();
    let mut open = Vec::with_capacity(n);
    let mut echo_latencies = Vec::with_capacity(n);
    for echo in echoes {
        match echo.await {
            Ok(Ok((ws, latency))) => {
                open.push(ws);
                echo_latencies.push(latency);
            }
            Ok(Err(failure)) => failures.add(failure),
            Err(_) => failures.add(Failure::new("echo", "task panicked")),
        }
    }
    let echo_time = start.elapsed();
    let echoed = open.len();
    println!(
        "echo:    {echoed}/{held_connected} echoed in {:.2} s; latency {}",
        echo_time.as_secs_f64(),
        percentiles(echo_latencies)
    );

    // The peak: every connection that echoed is still open.
    if !opts.hold.is_zero() {
        println!("holding {} connections for {} s", open.len(), opts.hold.as_secs());
        tokio::time::sleep(opts.hold).await;
    }
    let held = open.len();
    let server_rss_peak = server_rss();
    let server_hwm = pid.as_deref().and_then(|p| status_kib(p, "VmHWM"));
    let server_sockets = server_pid.and_then(open_sockets);
    let client_rss_peak = client_rss();
    println!(
        "held:    {held} connections open at peak{}",
        server_sockets.map_or(String::new(), |s| format!(
            " (the server has {s} sockets open, its listener included)"
        ))
    );

    // Close them all (the closing handshake), then report.
    let start = Instant::now();
    let closes: Vec<_> = open
        .into_iter()
        .map(|ws| tokio::spawn(close_one(ws, timeout)))
        .collect();
    let mut closed = 0;
    for close in closes {
        match close.await {
            Ok(Ok(())) => closed += 1,
            Ok(Err(failure)) => failures.add(failure),
            Err(_) => failures.add(Failure::new("close", "task panicked")),
        }
    }
    println!(
        "close:   {closed}/{held} closed cleanly in {:.2} s",
        start.elapsed().as_secs_f64()
    );

    if failures.0.is_empty() {
        println!("failures: none");
    } else {
        println!(
            "failures: {} connect, {} echo, {} close",
            failures.in_phase("connect"),
            failures.in_phase("send") + failures.in_phase("echo"),
            failures.in_phase("close")
        );
        for (failure, count) in &failures.0 {
            println!("  {count:>6}  {}: {}", failure.phase, failure.kind);
        }
    }

    match (server_baseline, server_rss_connected, server_rss_peak) {
        (Some(base), Some(connected), Some(peak)) => {
            println!(
                "server RSS: {} before connecting, {} with {held_connected} open, {} at peak ({held} open, each \
                 echoed once); VmHWM {}",
                mib(base),
                mib(connected),
                mib(peak),
                server_hwm.map_or("-".into(), mib)
            );
            if held_connected > 0 {
                println!(
                    "server RSS per connection, open and idle: {:.1} KiB  ((open - before) / {held_connected})",
                    connected.saturating_sub(base) as f64 / held_connected as f64
                );
            }
            if held > 0 {
                println!(
                    "server RSS per connection: {:.1} KiB  ((peak - before) / {held} connections held, each \
                     idle again after its echo)",
                    peak.saturating_sub(base) as f64 / held as f64
                );
            }
        }
        _ if server_pid.is_none() => println!("server RSS: not measured (pass --spawn PATH or --server-pid PID)"),
        _ => println!(
            "server RSS: could not read /proc/{}/status",
            pid.as_deref().unwrap_or("?")
        ),
    }
    if let (Some(base), Some(peak)) = (client_baseline, client_rss_peak) {
        println!(
            "client RSS: {} before connecting, {} at peak ({:.1} KiB per connection)",
            mib(base),
            mib(peak),
            peak.saturating_sub(base) as f64 / held.max(1) as f64
        );
    }
    closed == n
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

fn main() -> ExitCode {
    let opts = match Options::parse() {
        Ok(opts) => opts,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("load: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let request = match ClientRequest::from_url(&opts.url) {
        Ok(request) if !request.is_secure() => request,
        _ => {
            eprintln!("load: --url must be a ws:// URL: {}", opts.url);
            return ExitCode::from(2);
        }
    };
    let needed = opts.connections as libc::rlim_t + SPARE_FILES;
    let limit = match raise_open_file_limit(needed) {
        Ok(limit) => limit,
        Err(message) => {
            eprintln!("load: {} connections: {message}", opts.connections);
            return ExitCode::FAILURE;
        }
    };

    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "load:    {} connections to {}, {} connecting at a time, one {}-byte text message each",
        opts.connections, opts.url, opts.concurrency, opts.size
    );
    println!(
        "machine: {cpus} CPUs ({}), open-file limit {limit}",
        cpu_model().unwrap_or_else(|| "unknown CPU".into())
    );

    // The server: spawned here, or already running.
    let server = match &opts.spawn {
        Some(path) => {
            let addr = format!("{}:{}", request.host(), request.port());
            match spawn_server(path, &addr, &opts.server_args) {
                Ok(server) => Some(server),
                Err(message) => {
                    eprintln!("load: {message}");
                    return ExitCode::FAILURE;
                }
            }
        }
        None => None,
    };
    let server_pid = server.as_ref().map(|s| s.0.id()).or(opts.server_pid);
    if let Some(pid) = server_pid {
        match open_file_limit(pid) {
            Some(limit) if limit < opts.connections as u64 + 16 => {
                eprintln!(
                    "load: the server (pid {pid}) may open {limit} files, fewer than {} connections need: raise its \
                     limit (ulimit -n, within ulimit -Hn) or pass a smaller -n",
                    opts.connections
                );
                return ExitCode::FAILURE;
            }
            Some(limit) => println!("server:  pid {pid}, open-file limit {limit}"),
            None => println!("server:  pid {pid} (cannot read /proc/{pid}/limits)"),
        }
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("load: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ok = runtime.block_on(run(&opts, server_pid));
    drop(runtime);
    drop(server);
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
