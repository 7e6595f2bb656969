#!/usr/bin/env bash
# examples/axum_echo over https in headless Chromium (Debian's), driven by
# playwright-core (scripts/browser/axum_echo_test.mjs).
#
# Usage: scripts/browser_axum.sh
#
# Builds axum_echo (features axum,rustls), makes a self-signed certificate
# with openssl, starts `axum_echo 127.0.0.1:<free port> --tls CERT KEY` (ALPN
# h2 and http/1.1, SETTINGS_ENABLE_CONNECT_PROTOCOL on HTTP/2), and has
# Chromium (trusting that certificate's key through
# --ignore-certificate-errors-spki-list) load the page, open wss://…/ws and get
# its messages echoed. It then REPORTS whether Chromium opened the WebSocket
# over HTTP/2 (the server counts WebSockets that came as an RFC 8441 extended
# CONNECT with `:protocol websocket`, GET /stats) and over which protocol the
# page came; the echo is required, the HTTP/2 use is reported (Chromium
# decides).
#
# Environment (all optional):
#   CARGO_TARGET_DIR      where cargo builds the example (default target/)
#   BROWSER_TEST_TIMEOUT  seconds bound for the browser run (default 120)
#   CHROMIUM              the browser (default /usr/bin/chromium, installed with apt-get when missing)
#
# Output: ci-output/axum-echo.png, ci-output/axum-echo-report.txt; the
# server's log in target/browser-test/axum-echo.log. If an install cannot
# reach its package source, prints "BROWSER TEST NOT RUN: <why>" and exits 0.
# Any failure of the test itself exits 1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$ROOT/target/browser-test"
OUT="$ROOT/ci-output"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
TEST_TIMEOUT="${BROWSER_TEST_TIMEOUT:-120}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
ECHO_BIN="$TARGET_DIR/debug/examples/axum_echo"
export DEBIAN_FRONTEND=noninteractive
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

log() { echo "browser-axum: $*"; }
die() { echo "browser-axum: ERROR: $*" >&2; exit 1; }
not_run() {
  echo
  echo "######################################################################"
  echo "BROWSER TEST NOT RUN: $*"
  echo "######################################################################"
  exit 0
}

PIDS=()
kill_pid() { # kill_pid PID: TERM a process we started, KILL it after 5 s, reap it
  local pid="$1" i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill_pid "$pid"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- installation (idempotent; the same steps as scripts/browser_test.sh) ---
APT_SOURCE_ERR='Failed to fetch|Unable to fetch|Could not resolve|Temporary failure resolving|Could not connect|Unable to connect|Connection failed|Connection timed out|Network is unreachable|No route to host|Release file|Hash Sum mismatch|404 +Not Found|Unable to locate package|has no installation candidate|Some index files failed'
NPM_SOURCE_ERR='ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|ERR_SOCKET_TIMEOUT|socket hang up|network connectivity|request to [^ ]+ failed|E50[0-9]|50[234] (Bad Gateway|Service Unavailable|Gateway Time)'
run_install() { # run_install KIND LOG CMD...
  local kind="$1" logf="$2" rc=0 pat
  shift 2
  timeout -k 10 900 "$@" >"$logf" 2>&1 </dev/null || rc=$?
  [[ $rc -eq 0 ]] && return 0
  tail -n 25 "$logf" >&2
  if [[ $kind == apt ]]; then pat="$APT_SOURCE_ERR"; else pat="$NPM_SOURCE_ERR"; fi
  [[ $rc -eq 124 ]] && not_run "'$*' timed out (package source unreachable?)"
  if grep -qE "$pat" "$logf"; then
    not_run "'$*' could not reach its package source: $(grep -m1 -E "$pat" "$logf" | cut -c1-200)"
  fi
  die "'$*' failed (exit $rc); log: $logf"
}
APT_UPDATED=""
apt_install() {
  if [[ -z "$APT_UPDATED" ]]; then
    run_install apt "$WORK/apt-update.log" apt-get update
    APT_UPDATED=1
  fi
  run_install apt "$WORK/apt-install.log" apt-get install -y -q "$@"
}

mkdir -p "$WORK" "$OUT"
rm -f "$OUT/axum-echo.png" "$OUT/axum-echo-report.txt" "$WORK/axum-echo.log"

if [[ ! -x "$CHROMIUM" ]]; then
  [[ "$CHROMIUM" == /usr/bin/chromium ]] || die "CHROMIUM=$CHROMIUM does not exist"
  log "installing Debian's chromium"
  apt_install chromium
fi
fc-list 2>/dev/null | grep -q . || apt_install fonts-dejavu-core
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  log "installing Node.js and npm from Debian"
  apt_install nodejs npm
fi
command -v openssl >/dev/null 2>&1 || apt_install openssl
cp "$ROOT/scripts/browser/package.json" "$ROOT/scripts/browser/axum_echo_test.mjs" "$WORK/"
want="$(node -p 'require(process.argv[1]).dependencies["playwright-core"]' "$WORK/package.json")"
have=""
if [[ -f "$WORK/node_modules/playwright-core/package.json" ]]; then
  have="$(node -p 'require(process.argv[1]).version' "$WORK/node_modules/playwright-core/package.json")"
fi
if [[ "$have" != "$want" ]]; then
  log "installing playwright-core@$want into $WORK"
  run_install npm "$WORK/npm-install.log" \
    npm install --prefix "$WORK" --no-package-lock --no-audit --no-fund --loglevel=error
fi
log "browser: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM"); node $(node --version); playwright-core $want"

# --- build, certificate, server ---------------------------------------------
log "cargo build --features axum,rustls --example axum_echo"
(cd "$ROOT" && timeout -k 10 1800 cargo build --features axum,rustls --example axum_echo) \
  || die "cargo build --features axum,rustls --example axum_echo failed"
[[ -x "$ECHO_BIN" ]] || die "$ECHO_BIN was not built"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
  -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -addext "basicConstraints=critical,CA:FALSE" \
  -keyout "$WORK/axum-tls.key" -out "$WORK/axum-tls.pem" 2>/dev/null || die "openssl could not make a certificate"
# The base64 SHA-256 of the certificate's SubjectPublicKeyInfo, as Chromium's
# --ignore-certificate-errors-spki-list wants it.
SPKI="$(openssl x509 -in "$WORK/axum-tls.pem" -pubkey -noout | openssl pkey -pubin -outform der \
  | openssl dgst -sha256 -binary | base64)"

PORT="$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });')"
log "starting axum_echo on https://127.0.0.1:$PORT/"
"$ECHO_BIN" "127.0.0.1:$PORT" --tls "$WORK/axum-tls.pem" "$WORK/axum-tls.key" >"$WORK/axum-echo.log" 2>&1 </dev/null &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
for ((i = 0; i < 100; i++)); do
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/axum-echo.log" >&2; die "axum_echo exited"; }
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done

rc=0
(cd "$WORK" && exec env ECHO_URL="https://127.0.0.1:$PORT/" CERT_SPKI="$SPKI" CHROMIUM="$CHROMIUM" OUT_DIR="$OUT" \
  timeout -k 10 "$TEST_TIMEOUT" node "$WORK/axum_echo_test.mjs" </dev/null) &
NODE_PID=$!
PIDS+=("$NODE_PID")
wait "$NODE_PID" || rc=$?
log "the server's log:"
sed 's/^/    /' "$WORK/axum-echo.log"
if [[ $rc -ne 0 ]]; then
  [[ $rc -eq 124 ]] && echo "browser-axum: the browser run timed out after ${TEST_TIMEOUT}s" >&2
  echo "browser-axum: FAILED (exit $rc)"
  exit 1
fi
[[ -s "$OUT/axum-echo-report.txt" ]] || die "the test passed but wrote no report"
echo "browser-axum: PASSED (echo over wss:// in Chromium); $(grep 'WebSocket over HTTP/2' "$OUT/axum-echo-report.txt")"
