#!/usr/bin/env bash
# The client example through a real proxy server: pproxy (PyPI), serving
# HTTP CONNECT and SOCKS5 with credentials on loopback, in front of the echo
# server in plain and TLS mode (a CA and certificate generated here with
# openssl). Checks ws:// and wss:// through each proxy, the proxy from the
# environment (curl's variables, no_proxy), a proxy that refuses (wrong
# credentials: its answer is named), and a refused handshake (the server's
# status line is printed). Everything is started here and stopped at the end.
#
# Usage: scripts/proxy_test.sh
#
# Exit 0 when every check passes. If pproxy cannot be installed because its
# source is unreachable, prints "PROXY TEST NOT RUN: <why>" and exits 0
# (the policy of scripts/autobahn.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
VENV="$TARGET/proxy-venv"
WORK="$(mktemp -d)"
PKG="pproxy==${PROXY_TEST_PPROXY_VERSION:-2.7.9}"
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
  echo "PROXY TEST NOT RUN: $*"
  echo "######################################################################"
  exit 0
}
die() { echo "proxy-test: FAILED: $*" >&2; exit 1; }
log() { echo "proxy-test: $*"; }

PIP_SOURCE_ERR='NewConnectionError|Max retries exceeded|Temporary failure in name resolution|Name or service not known|Connection refused|Connection reset|ConnectTimeout|ReadTimeout|timed out|Network is unreachable|ProxyError|SSLError|No matching distribution found|Could not find a version that satisfies|HTTP error 5[0-9][0-9]|HTTPError: 5[0-9][0-9]'

if ! "$VENV/bin/pproxy" --version >/dev/null 2>&1; then
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
command -v openssl >/dev/null || {
  (apt-get update -q && apt-get install -y -q --no-install-recommends openssl) >"$WORK/apt.log" 2>&1 \
    || die "openssl is missing and could not be installed"
}
log "$("$VENV/bin/pproxy" --version 2>&1 | head -n 1)"

cd "$ROOT"
log "building the examples"
cargo build -q --features rustls --example client --example echo_server
CLIENT="$TARGET/debug/examples/client"
ECHO="$TARGET/debug/examples/echo_server"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 100); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  die "nothing listens on port $1"
}

# A CA and a server certificate for localhost, signed by it.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=wsmachine test CA" \
  -keyout "$WORK/ca.key" -out "$WORK/ca.pem" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
  -keyout "$WORK/server.key" -out "$WORK/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n' >"$WORK/ext.cnf"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial \
  -days 2 -extfile "$WORK/ext.cnf" -out "$WORK/server.pem" 2>/dev/null

PLAIN="$(free_port)"
TLS="$(free_port)"
PROXY="$(free_port)"
"$ECHO" "127.0.0.1:$PLAIN" >"$WORK/echo.log" 2>&1 &
PIDS+=("$!")
"$ECHO" --tls "$WORK/server.pem" "$WORK/server.key" "127.0.0.1:$TLS" >"$WORK/echo-tls.log" 2>&1 &
PIDS+=("$!")
# --auth 0: pproxy otherwise trusts an address that authenticated once, for 30 days.
"$VENV/bin/pproxy" --auth 0 -l "http+socks5://127.0.0.1:$PROXY/#alice:s3cret" >"$WORK/pproxy.log" 2>&1 &
PIDS+=("$!")
wait_port "$PLAIN"
wait_port "$TLS"
wait_port "$PROXY"
log "echo server on $PLAIN (ws) and $TLS (wss), pproxy on $PROXY (HTTP CONNECT + SOCKS5, credentials)"

# One line through the client; its output must be the echo.
echo_through() {
  local what="$1"
  shift
  local out rc=0
  out="$(printf 'hello %s\n' "$what" | env -u http_proxy -u https_proxy -u all_proxy -u HTTPS_PROXY -u ALL_PROXY \
    "$@" 2>"$WORK/client.err")" || rc=$?
  if [[ $rc -ne 0 || "$out" != "hello $what" ]]; then
    cat "$WORK/client.err" >&2
    die "$what: exit $rc, output '$out'"
  fi
  log "ok   $what"
}

for scheme in http socks5; do
  echo_through "ws through $scheme" "$CLIENT" --proxy "$scheme://alice:s3cret@127.0.0.1:$PROXY" "ws://localhost:$PLAIN/"
  echo_through "wss through $scheme" "$CLIENT" --ca "$WORK/ca.pem" --proxy "$scheme://alice:s3cret@127.0.0.1:$PROXY" \
    "wss://localhost:$TLS/"
done
echo_through "wss direct" "$CLIENT" --ca "$WORK/ca.pem" "wss://localhost:$TLS/"

# The environment, curl's way: https_proxy for wss://, and no_proxy.
echo_through "wss through https_proxy" env "https_proxy=http://alice:s3cret@127.0.0.1:$PROXY" \
  "$CLIENT" --ca "$WORK/ca.pem" "wss://localhost:$TLS/"
DEAD="$(free_port)"
echo_through "no_proxy skips a dead proxy" env "http_proxy=http://127.0.0.1:$DEAD" "no_proxy=localhost" \
  "$CLIENT" "ws://localhost:$PLAIN/"
rc=0
printf 'x\n' | env "http_proxy=http://127.0.0.1:$DEAD" "$CLIENT" "ws://localhost:$PLAIN/" >/dev/null 2>&1 || rc=$?
[[ $rc -ne 0 ]] || die "http_proxy pointing at nothing still connected: the environment was not read"
log "ok   http_proxy is read (a dead proxy fails the connection)"
rc=0
printf 'x\n' | env "http_proxy=http://127.0.0.1:$DEAD" "$CLIENT" --no-proxy "ws://localhost:$PLAIN/" >/dev/null 2>&1 || rc=$?
[[ $rc -eq 0 ]] || die "--no-proxy still used the environment's proxy"
log "ok   --no-proxy ignores the environment"

# A proxy that refuses: wrong credentials; the error names its answer.
for scheme in http socks5; do
  case "$scheme" in
    http) expected="proxy: the proxy answered CONNECT with 40[37]" ;;
    # pproxy closes the connection on wrong SOCKS5 credentials instead of
    # answering RFC 1929 status 1; either is reported as what the proxy did.
    socks5) expected="proxy: (the SOCKS5 proxy refused the user name and password|the proxy closed the connection before the tunnel was open)" ;;
  esac
  rc=0
  printf 'x\n' | "$CLIENT" --proxy "$scheme://alice:wrong@127.0.0.1:$PROXY" "ws://localhost:$PLAIN/" \
    >/dev/null 2>"$WORK/refused.err" || rc=$?
  [[ $rc -ne 0 ]] || die "$scheme proxy with wrong credentials: the client succeeded"
  grep -qE "$expected" "$WORK/refused.err" || { cat "$WORK/refused.err" >&2; die "$scheme refusal not named"; }
  log "ok   $scheme proxy refusing: $(grep -E "$expected" "$WORK/refused.err")"
done

# A refused handshake: the server's status line and headers are printed.
rc=0
printf 'x\n' | "$CLIENT" --header "Origin: http://elsewhere.example" "ws://localhost:$PLAIN/" \
  >/dev/null 2>"$WORK/403.err" || rc=$?
[[ $rc -ne 0 ]] && grep -q "^HTTP/1.1 403 Forbidden" "$WORK/403.err" \
  || { cat "$WORK/403.err" >&2; die "a refused handshake did not print the status line"; }
log "ok   a refused handshake prints: $(grep '^HTTP/1.1' "$WORK/403.err")"

log "PASSED"
