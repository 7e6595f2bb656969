#!/usr/bin/env bash
# The end-to-end echo benchmark (issue 14): the uWebSockets `load_test`
# method over loopback. Each echo server (examples/bench_echo_*.rs,
# tokio_echo --current-thread, poll_echo) runs pinned to one core
# (`taskset -c $E2E_SERVER_CPU`, default 0), the shared load client
# (examples/bench_load.rs: raw TCP, its own upgrade, pre-built masked frames,
# one binary message in flight per connection, every echo checked byte for
# byte) on another (`taskset -c $E2E_CLIENT_CPU`, default 1). Per run: the
# echoes per second over the measured window, and the server's CPU time per
# echo (utime + stime from /proc/<pid>/stat, delta over the window / echoes).
# Each cell of the grid is repeated E2E_REPS times, interleaved: repetition
# by repetition, every cell, every server in a rotated order (never all
# repetitions of one server in a row). Prints, per cell, medians with the
# spread (min–max) and the ratios to the best peer (tokio-tungstenite,
# fastwebsockets, tokio-websockets: highest msgs/s, lowest CPU/echo) and to
# the floor (a hand-written epoll echo server, examples/bench_echo_floor.rs),
# as a Markdown table.
#
# Usage: scripts/e2e_bench.sh                 # full run, about 15-20 minutes
#        E2E_SMOKE=1 scripts/e2e_bench.sh     # 1 repetition of 0.3 s + 1 s: about a minute
#
# Environment (defaults of the full run):
#   E2E_REPS=5            repetitions of each cell and server
#   E2E_WARMUP=1          seconds of load before the measured window
#   E2E_DURATION=5        seconds measured
#   E2E_GRID="100x20 10x1024 10x16384 200x16384 500x16384"   connections x payload bytes
#   E2E_SERVERS="floor wsmachine-tokio wsmachine-poll tokio-websockets fastwebsockets tokio-tungstenite"
#                         (also: wsmachine-uring, examples/uring_echo.rs, Linux io_uring; not in the default set)
#   E2E_BASE=             a directory of echo servers built at another commit (its
#                         target/release/examples): adds the servers base-tokio and
#                         base-poll (its tokio_echo and poll_echo), to measure a change
#                         against the code before it in the same run (E2E_SERVERS=
#                         "floor wsmachine-tokio base-tokio")
#   E2E_SYSCALLS=0        1: one more run per cell and server under `perf stat` for
#                         system calls per echo, counted in exactly the client's window
#                         (a separate pass: tracing costs CPU)
#   E2E_PROFILE=release   the cargo profile of the servers and the client (debug: a
#                         correctness smoke only, the figures mean nothing)
#   E2E_OUT=$CARGO_TARGET_DIR/e2e-bench   raw results (results.tsv) and the table (table.md)
#   E2E_SERVER_CPU=0 E2E_CLIENT_CPU=1
#
# Exit 1 if any run fails (a wrong echo, a closed connection, a stall, a
# server that does not start). Every server is stopped at the end (trap).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
if [[ "${E2E_SMOKE:-0}" == 1 ]]; then
  REPS="${E2E_REPS:-1}" WARMUP="${E2E_WARMUP:-0.3}" DURATION="${E2E_DURATION:-1}"
else
  REPS="${E2E_REPS:-5}" WARMUP="${E2E_WARMUP:-1}" DURATION="${E2E_DURATION:-5}"
fi
GRID="${E2E_GRID:-100x20 10x1024 10x16384 200x16384 500x16384}"
SERVERS="${E2E_SERVERS:-floor wsmachine-tokio wsmachine-poll tokio-websockets fastwebsockets tokio-tungstenite}"
SYSCALLS="${E2E_SYSCALLS:-0}"
PROFILE="${E2E_PROFILE:-release}"
OUT="${E2E_OUT:-$TARGET/e2e-bench}"
SERVER_CPU="${E2E_SERVER_CPU:-0}"
CLIENT_CPU="${E2E_CLIENT_CPU:-1}"

log() { echo "e2e-bench: $*" >&2; }
die() { echo "e2e-bench: FAILED: $*" >&2; exit 1; }

if [[ "$(nproc)" -lt 2 && -z "${E2E_CLIENT_CPU:-}" ]]; then
  log "one CPU only: the client shares CPU $SERVER_CPU with the server (figures mean little)"
  CLIENT_CPU="$SERVER_CPU"
fi

SERVER_PID=""
CLIENT_PID=""
cleanup() {
  for pid in $CLIENT_PID $SERVER_PID; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

if ! command -v taskset >/dev/null; then
  log "installing util-linux (taskset)"
  (apt-get update -q && apt-get install -y -q --no-install-recommends util-linux) >/dev/null 2>&1 \
    || die "taskset is missing and util-linux could not be installed"
fi
if [[ "$SYSCALLS" == 1 ]] && ! perf stat -e raw_syscalls:sys_enter -- true >/dev/null 2>&1; then
  die "E2E_SYSCALLS=1 needs perf with syscall tracepoints (apt-get install linux-perf; kernel.perf_event_paranoid <= 1 or root)"
fi

cd "$ROOT"
case "$PROFILE" in
  release) BIN="$TARGET/release/examples" PROFILE_FLAG=(--release) ;;
  dev | debug) BIN="$TARGET/debug/examples" PROFILE_FLAG=() ;;
  *) BIN="$TARGET/$PROFILE/examples" PROFILE_FLAG=(--profile "$PROFILE") ;;
esac

# name -> the server's command (its address comes after).
server_cmd() {
  case "$1" in
    floor) echo "$BIN/bench_echo_floor" ;;
    wsmachine-tokio) echo "$BIN/tokio_echo --current-thread" ;;
    wsmachine-poll) echo "$BIN/poll_echo" ;;
    wsmachine-uring) echo "$BIN/uring_echo" ;;
    base-tokio) echo "${E2E_BASE:?base-tokio needs E2E_BASE}/tokio_echo --current-thread" ;;
    base-poll) echo "${E2E_BASE:?base-poll needs E2E_BASE}/poll_echo" ;;
    tokio-websockets) echo "$BIN/bench_echo_tokio_websockets" ;;
    fastwebsockets) echo "$BIN/bench_echo_fastwebsockets" ;;
    tokio-tungstenite) echo "$BIN/bench_echo_tungstenite" ;;
    *) die "unknown server $1 (E2E_SERVERS)" ;;
  esac
}
EXAMPLES=(--example bench_load)
for s in $SERVERS; do
  case "$s" in
    floor) EXAMPLES+=(--example bench_echo_floor) ;;
    wsmachine-tokio) EXAMPLES+=(--example tokio_echo) ;;
    wsmachine-poll) EXAMPLES+=(--example poll_echo) ;;
    wsmachine-uring) EXAMPLES+=(--example uring_echo) ;;
    base-tokio | base-poll) [[ -x "$(server_cmd "$s" | cut -d' ' -f1)" ]] || die "$s: no server in E2E_BASE" ;;
    tokio-websockets) EXAMPLES+=(--example bench_echo_tokio_websockets) ;;
    fastwebsockets) EXAMPLES+=(--example bench_echo_fastwebsockets) ;;
    tokio-tungstenite) EXAMPLES+=(--example bench_echo_tungstenite) ;;
    *) die "unknown server $s (E2E_SERVERS)" ;;
  esac
done
log "building (${PROFILE}): ${EXAMPLES[*]}"
cargo build -q ${PROFILE_FLAG[@]+"${PROFILE_FLAG[@]}"} --features tokio "${EXAMPLES[@]}"

mkdir -p "$OUT"
RESULTS="$OUT/results.tsv"
: >"$RESULTS"
WORK="$(mktemp -d)"
trap 'cleanup; rm -rf "$WORK"' EXIT

# Starts server $1 pinned to SERVER_CPU on a free port; sets SERVER_PID, ADDR.
start_server() {
  local cmd
  cmd="$(server_cmd "$1")"
  # Truncated here, not by the background job's redirection (which may run
  # after the first look below and leave the last server's address there).
  : >"$WORK/server.out"
  # shellcheck disable=SC2086
  taskset -c "$SERVER_CPU" $cmd 127.0.0.1:0 >"$WORK/server.out" 2>"$WORK/server.err" &
  SERVER_PID=$!
  ADDR=""
  for _ in $(seq 1 100); do
    ADDR="$(sed -n 's/^listening on //p' "$WORK/server.out" | head -n 1)"
    [[ -n "$ADDR" ]] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.05
  done
  cat "$WORK/server.err" >&2
  die "server $1 did not start"
}

stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

# run_one SERVER CONNS SIZE REP: one measured run, a line in results.tsv.
run_one() {
  local server="$1" conns="$2" size="$3" rep="$4" line
  start_server "$server"
  if ! line="$(taskset -c "$CLIENT_CPU" "$BIN/bench_load" --addr "$ADDR" -c "$conns" -s "$size" \
    --warmup "$WARMUP" --duration "$DURATION" --server-pid "$SERVER_PID")"; then
    cat "$WORK/server.err" >&2
    die "$server ${conns}x${size}: the load client failed"
  fi
  stop_server
  printf '%s\t%s\t%s\t%s\t%s\n' "${conns}x${size}" "$server" "$rep" "run" "$line" >>"$RESULTS"
  log "rep $rep ${conns}x${size} $server: $line"
}

# run_syscalls SERVER CONNS SIZE: system calls per echo under perf stat.
EVENTS="raw_syscalls:sys_enter,syscalls:sys_enter_read,syscalls:sys_enter_recvfrom,syscalls:sys_enter_readv,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_poll,syscalls:sys_enter_ppoll,syscalls:sys_enter_epoll_ctl,syscalls:sys_enter_futex"
run_syscalls() {
  local server="$1" conns="$2" size="$3" line perf_pid
  start_server "$server"
  rm -f "$WORK/ctl" "$WORK/ack"
  mkfifo "$WORK/ctl" "$WORK/ack"
  # Events start disabled; the client enables them when its window opens and
  # disables them when it closes (perf stat --control), so the counts are of
  # exactly the echoes it reports.
  perf stat -D -1 --control "fifo:$WORK/ctl,$WORK/ack" -x, -o "$WORK/perf.csv" -e "$EVENTS" \
    -p "$SERVER_PID" >/dev/null 2>&1 &
  perf_pid=$!
  if ! line="$(taskset -c "$CLIENT_CPU" "$BIN/bench_load" --addr "$ADDR" -c "$conns" -s "$size" \
    --warmup "$WARMUP" --duration "$DURATION" --server-pid "$SERVER_PID" \
    --perf-control "$WORK/ctl,$WORK/ack")"; then
    kill "$perf_pid" 2>/dev/null || true
    die "$server ${conns}x${size}: the load client failed (syscall pass)"
  fi
  kill -INT "$perf_pid" 2>/dev/null || true
  wait "$perf_pid" 2>/dev/null || true
  stop_server
  while IFS=, read -r count _ event _; do
    [[ "$event" == *sys_enter* ]] || continue
    [[ "$count" =~ ^[0-9]+$ ]] || count=0
    line+=" ${event##*:}=$count"
  done <"$WORK/perf.csv"
  printf '%s\t%s\t%s\t%s\t%s\n' "${conns}x${size}" "$server" 0 "syscalls" "$line" >>"$RESULTS"
  log "syscalls ${conns}x${size} $server: $line"
}

read -r -a SERVER_LIST <<<"$SERVERS"
n="${#SERVER_LIST[@]}"
log "grid: $GRID; servers: $SERVERS; $REPS repetitions of ${WARMUP}s + ${DURATION}s; server on CPU $SERVER_CPU, client on CPU $CLIENT_CPU"
for ((rep = 1; rep <= REPS; rep++)); do
  c=0
  for cell in $GRID; do
    conns="${cell%x*}" size="${cell#*x}"
    # A different server first in every cell and repetition.
    for ((i = 0; i < n; i++)); do
      run_one "${SERVER_LIST[$(((i + rep + c) % n))]}" "$conns" "$size" "$rep"
    done
    c=$((c + 1))
  done
done
if [[ "$SYSCALLS" == 1 ]]; then
  for cell in $GRID; do
    for server in "${SERVER_LIST[@]}"; do
      run_syscalls "$server" "${cell%x*}" "${cell#*x}"
    done
  done
fi

python3 - "$RESULTS" "$REPS" "$WARMUP" "$DURATION" "$PROFILE" >"$OUT/table.md" <<'EOF'
import sys, statistics, collections, datetime, platform
path, reps, warmup, duration, profile = sys.argv[1:]
PEERS = ("tokio-websockets", "fastwebsockets", "tokio-tungstenite")
runs = collections.defaultdict(list)
sysc = {}
cells, servers = [], []
for row in open(path):
    cell, server, rep, kind, line = row.rstrip("\n").split("\t")
    kv = dict(p.split("=", 1) for p in line.split())
    if cell not in cells:
        cells.append(cell)
    if server not in servers:
        servers.append(server)
    if kind == "run":
        runs[cell, server].append(kv)
    else:
        sysc[cell, server] = kv

def med(cell, server, key):
    return statistics.median(float(r[key]) for r in runs[cell, server])

def spread(cell, server, key, fmt):
    vals = [float(r[key]) for r in runs[cell, server]]
    return f"{fmt(min(vals))}–{fmt(max(vals))}" if len(vals) > 1 else "—"

def ratio(a, b):
    return f"{a / b:.2f}×" if b else "—"

def kmsgs(v):
    return f"{v / 1000:.1f}k"

def us(v):
    return f"{v:.2f}"

print(f"End-to-end echo over loopback, {datetime.date.today()}, {platform.node()}: "
      f"{reps} interleaved repetitions of {warmup} s warm-up + {duration} s measured per cell "
      f"(profile {profile}); server pinned to one core, client on the other. "
      "Medians, spread min–max; CPU = the server's utime + stime per echo; "
      "best peer = the best of tokio-websockets, fastwebsockets, tokio-tungstenite "
      "(highest msgs/s, lowest CPU/echo); floor = the hand-written epoll server.")
print()
have_sys = bool(sysc)
head = "| conns × payload | server | msgs/s | spread | × best peer | × floor | CPU µs/echo | spread | × best peer | × floor | sys share |"
rule = "|---|---|---|---|---|---|---|---|---|---|---|"
if have_sys:
    head += " syscalls/echo |"
    rule += "---|"
print(head)
print(rule)
for cell in cells:
    present = [s for s in servers if runs[cell, s]]
    peers = [s for s in present if s in PEERS]
    best_rate = max((med(cell, s, "msgs_per_s") for s in peers), default=0)
    best_cpu = min((med(cell, s, "server_cpu_us_per_echo") for s in peers), default=0)
    floor_rate = med(cell, "floor", "msgs_per_s") if "floor" in present else 0
    floor_cpu = med(cell, "floor", "server_cpu_us_per_echo") if "floor" in present else 0
    c, p = cell.split("x")
    label = f"{c} × {p} B" if int(p) < 1024 else f"{c} × {int(p) // 1024} KiB"
    for s in present:
        rate = med(cell, s, "msgs_per_s")
        cpu = med(cell, s, "server_cpu_us_per_echo")
        sysshare = med(cell, s, "server_sys_us_per_echo") / cpu if cpu else 0
        row = (f"| {label} | {s} | {kmsgs(rate)} | {spread(cell, s, 'msgs_per_s', kmsgs)} | "
               f"{ratio(rate, best_rate)} | {ratio(rate, floor_rate)} | {us(cpu)} | "
               f"{spread(cell, s, 'server_cpu_us_per_echo', us)} | {ratio(cpu, best_cpu)} | "
               f"{ratio(cpu, floor_cpu)} | {sysshare:.0%} |")
        if have_sys:
            kv = sysc.get((cell, s))
            if kv:
                echoes = float(kv["echoes"])
                def per(name):
                    return float(kv.get(name, 0) or 0) / echoes
                reads = per("sys_enter_read") + per("sys_enter_recvfrom") + per("sys_enter_readv")
                writes = per("sys_enter_write") + per("sys_enter_writev") + per("sys_enter_sendto") + per("sys_enter_sendmsg")
                waits = per("sys_enter_epoll_wait") + per("sys_enter_epoll_pwait") + per("sys_enter_poll") + per("sys_enter_ppoll")
                row += f" {per('sys_enter'):.2f} (r {reads:.2f}, w {writes:.2f}, wait {waits:.2f}) |"
            else:
                row += " — |"
        print(row)
clients = [float(r["client_cpu_pct"]) for v in runs.values() for r in v]
print()
if clients:
    print(f"Load client CPU: median {statistics.median(clients):.0f} %, max {max(clients):.0f} % of its core "
          "(near 100 % would mean the client sets the pace).")
EOF
cat "$OUT/table.md"
log "raw results: $RESULTS; table: $OUT/table.md"
