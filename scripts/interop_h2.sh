#!/usr/bin/env bash
# WebSocket over HTTP/2 (RFC 8441) against an independent implementation:
# Python's sans-IO `h2` library (PyPI `h2`, installed into a venv under the
# target dir) speaking h2c with prior knowledge, SETTINGS_ENABLE_CONNECT_PROTOCOL
# and extended CONNECT, with WebSocket frames built by hand
# (scripts/interop_h2.py).
#
#  1. examples/client.rs --http2 against the Python server: text lines,
#     a binary message the server sends, the close; the client must say it
#     used HTTP/2 and exit 0, the server must see every stream close cleanly.
#  2. tests/it/http2_client.rs python_*: the library client against the
#     Python server (two WebSockets on one connection, 1 MiB through the
#     windows), and the reverse, the Python client against an HTTP/2 server
#     running the machine over `wsmachine::http2::Http2Stream`.
#
# Usage: scripts/interop_h2.sh
#
# Exit 0 when both pass. If the venv or the package cannot be installed
# because its source is unreachable, prints "INTEROP H2 NOT RUN: <why>" and
# exits 0 (same policy as scripts/interop_deflate.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
VENV="$TARGET/interop-h2-venv"
WORK="$(mktemp -d)"
PKG="h2==${INTEROP_H2_VERSION:-4.4.1}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

not_run() {
  echo
  echo "######################################################################"
  echo "INTEROP H2 NOT RUN: $*"
  echo "######################################################################"
  exit 0
}
die() { echo "interop-h2: FAILED: $*" >&2; exit 1; }
log() { echo "interop-h2: $*"; }

PIP_SOURCE_ERR='NewConnectionError|Max retries exceeded|Temporary failure in name resolution|Name or service not known|Connection refused|Connection reset|ConnectTimeout|ReadTimeout|timed out|Network is unreachable|ProxyError|SSLError|No matching distribution found|Could not find a version that satisfies|HTTP error 5[0-9][0-9]|HTTPError: 5[0-9][0-9]'

if ! "$VENV/bin/python" -c 'import h2.settings; h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL' >/dev/null 2>&1; then
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    log "installing python3-venv"
    (apt-get update -q && apt-get install -y -q --no-install-recommends python3-venv) >"$WORK/apt.log" 2>&1 \
      || not_run "python3-venv could not be installed: $(tail -n 1 "$WORK/apt.log")"
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
PY="$VENV/bin/python"
log "$("$PY" -c 'import h2; print("python h2", h2.__version__)') in $VENV"

cd "$ROOT"
log "building examples/client.rs with --features http2"
cargo build -q --features http2 --example client
CLIENT="$TARGET/debug/examples/client"

# 1. The CLI client against the Python server.
"$PY" scripts/interop_h2.py server >"$WORK/port" 2>"$WORK/server.err" &
SERVER=$!
PIDS+=("$SERVER")
for _ in $(seq 1 100); do
  [[ -s "$WORK/port" ]] && break
  sleep 0.1
done
PORT="$(head -n 1 "$WORK/port")"
[[ "$PORT" =~ ^[0-9]+$ ]] || die "the Python server did not start: $(cat "$WORK/server.err")"
printf 'hello over h2\nbinary please\nUnicode: é€😀\n' \
  | timeout 30 "$CLIENT" --http2 --no-proxy --protocol chat "ws://127.0.0.1:$PORT/cli" \
      >"$WORK/client.out" 2>"$WORK/client.err" \
  || die "the client failed: $(cat "$WORK/client.err")"
server_rc=0
timeout 30 tail --pid="$SERVER" -f /dev/null || true
wait "$SERVER" || server_rc=$?
cat "$WORK/server.err"
[[ $server_rc -eq 0 ]] || die "the Python server failed (exit $server_rc)"
grep -qx 'client: connected over HTTP/2 (RFC 8441)' "$WORK/client.err" \
  || die "the client did not use HTTP/2: $(cat "$WORK/client.err")"
expected=$'hello over h2\n<5 bytes of binary>\nUnicode: é€😀'
[[ "$(cat "$WORK/client.out")" == "$expected" ]] \
  || die "the client printed $(cat "$WORK/client.out"), expected $expected"
log "examples/client.rs --http2 <-> Python h2 server: OK ($(head -n 1 "$WORK/client.err"))"

# 2. The library, both directions.
WSMACHINE_INTEROP_H2_PYTHON="$PY" timeout -k 10 600 \
  cargo test --features http2 --test it http2_client::python_ -- --include-ignored --nocapture --test-threads 1
log "PASSED (Python h2 <-> wsmachine over HTTP/2, RFC 8441, both directions)"
