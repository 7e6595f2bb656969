#!/usr/bin/env bash
# examples/chat as many nodes over one real Redis (`--redis URL`): Debian's
# redis-server on a free loopback port, two chat nodes, Python `websockets`
# clients on both (scripts/chat_cluster.py, which starts and stops the
# processes itself).
#
# Usage: scripts/chat_cluster_test.sh
#
# Checks: user lists agree across the nodes; a message to everyone reaches
# all; an addressed message reaches exactly its recipients on both nodes;
# malformed JSON and an unknown recipient get an error; a node killed with
# SIGKILL leaves the other node's lists within the bound the chat documents;
# Redis stopped (each node says so and serves its own users) and started again
# (the nodes rejoin, cross-node messages work again).
#
# Installs what it needs: redis-server (apt-get, when missing), python3-venv,
# websockets into a venv under the cargo target dir. If a package source is
# unreachable, prints "CHAT CLUSTER TEST NOT RUN: <why>" and exits 0 (the
# policy of scripts/interop_deflate.sh). Any failure of the test exits 1.
# Logs in $CARGO_TARGET_DIR/chat-cluster/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
[[ "$TARGET" == /* ]] || TARGET="$ROOT/$TARGET"
VENV="$TARGET/chat-venv"
WORK="$TARGET/chat-cluster"
PKG="websockets==${INTEROP_WEBSOCKETS_VERSION:-17.4}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 DEBIAN_FRONTEND=noninteractive
CHAT_BIN="$TARGET/debug/examples/chat"

log() { echo "chat-cluster: $*"; }
die() { echo "chat-cluster: FAILED: $*" >&2; exit 1; }
not_run() {
  echo
  echo "######################################################################"
  echo "CHAT CLUSTER TEST NOT RUN: $*"
  echo "######################################################################"
  exit 0
}

# Every process the Python helper started (it stops them itself; this is for
# an interrupted run): only those still running our binaries are signalled.
PY_PID=""
cleanup() {
  local pid cmd
  # The helper (under `timeout`, which passes the TERM on), if it still runs.
  if [[ -n "$PY_PID" ]]; then
    kill -TERM "$PY_PID" 2>/dev/null || true
    wait "$PY_PID" 2>/dev/null || true
  fi
  [[ -f "$WORK/pids" ]] || return 0
  while read -r pid; do
    [[ -n "$pid" ]] || continue
    cmd="$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null || true)"
    if [[ "$cmd" == "$CHAT_BIN "* || "$cmd" == "$REDIS_SERVER "* ]]; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done <"$WORK/pids"
}
REDIS_SERVER=""
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK"
rm -f "$WORK"/*.log "$WORK/pids"

APT_SOURCE_ERR='Failed to fetch|Unable to fetch|Could not resolve|Temporary failure resolving|Could not connect|Unable to connect|Connection failed|Connection timed out|Network is unreachable|No route to host|Release file|Hash Sum mismatch|404 +Not Found|Unable to locate package|has no installation candidate|Some index files failed'
apt_install() { # apt_install PKG...
  local rc=0
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || not_run "$* missing, and not root (no sudo) to apt-get install it"
    SUDO=(sudo -n)
  else
    SUDO=()
  fi
  { timeout -k 10 600 "${SUDO[@]}" apt-get update -q &&
    timeout -k 10 600 "${SUDO[@]}" apt-get install -y -q --no-install-recommends "$@"; } >"$WORK/apt.log" 2>&1 </dev/null || rc=$?
  [[ $rc -eq 0 ]] && return 0
  tail -n 15 "$WORK/apt.log" >&2
  if [[ $rc -eq 124 ]] || grep -qE "$APT_SOURCE_ERR" "$WORK/apt.log"; then
    not_run "apt-get install $* could not reach its package source"
  fi
  die "apt-get install $* failed (exit $rc); log: $WORK/apt.log"
}

if ! command -v redis-server >/dev/null 2>&1; then
  log "installing Debian's redis-server"
  apt_install redis-server
fi
REDIS_SERVER="$(command -v redis-server)" || die "redis-server installed but not on PATH"
log "$("$REDIS_SERVER" --version)"

PIP_SOURCE_ERR='NewConnectionError|Max retries exceeded|Temporary failure in name resolution|Name or service not known|Connection refused|Connection reset|ConnectTimeout|ReadTimeout|timed out|Network is unreachable|ProxyError|SSLError|No matching distribution found|Could not find a version that satisfies|HTTP error 5[0-9][0-9]|HTTPError: 5[0-9][0-9]'
if ! "$VENV/bin/python" -c 'import websockets' >/dev/null 2>&1; then
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    log "installing python3-venv"
    apt_install python3-venv
  fi
  rm -rf "$VENV"
  python3 -m venv "$VENV" || not_run "python3 -m venv failed"
  rc=0
  timeout -k 10 600 "$VENV/bin/python" -m pip install -q "$PKG" >"$WORK/pip.log" 2>&1 || rc=$?
  if [[ $rc -ne 0 ]]; then
    tail -n 20 "$WORK/pip.log" >&2
    if [[ $rc -eq 124 ]] || grep -qE "$PIP_SOURCE_ERR" "$WORK/pip.log"; then
      not_run "pip install $PKG could not reach PyPI"
    fi
    die "pip install $PKG failed (exit $rc)"
  fi
fi
log "$("$VENV/bin/python" -c 'import websockets; print("websockets", websockets.version.version)') in $VENV"

log "cargo build --example chat"
(cd "$ROOT" && timeout -k 10 1800 cargo build -q --example chat) || die "cargo build --example chat failed"
[[ -x "$CHAT_BIN" ]] || die "$CHAT_BIN was not built"

rc=0
timeout -k 10 240 "$VENV/bin/python" "$ROOT/scripts/chat_cluster.py" "$CHAT_BIN" "$REDIS_SERVER" "$WORK" </dev/null &
PY_PID=$!
wait "$PY_PID" || rc=$?
PY_PID=""
if [[ $rc -ne 0 ]]; then
  for f in "$WORK"/node-*.log "$WORK"/redis.log; do
    [[ -s "$f" ]] || continue
    echo "chat-cluster: last lines of $f:" >&2
    tail -n 15 "$f" >&2
  done
  die "scripts/chat_cluster.py exited $rc"
fi
log "PASSED (two chat nodes over redis-server: lists, routing, errors, a killed node, Redis restarted)"
