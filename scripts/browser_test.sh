#!/usr/bin/env bash
# End-to-end test of examples/chat in a real headless browser: Debian's
# Chromium driven by playwright-core (scripts/browser/chat_test.mjs).
#
# Usage: scripts/browser_test.sh
#
# Two tabs open the chat page and reach OPEN; a message typed in one appears
# in the other (as text, not markup); joins and leaves are announced; the
# server is stopped (both tabs show CLOSED) and started again (both reconnect
# on their own and chat again).
#
# Cross-site WebSocket hijacking (RFC 6455 §10.2): a page served from another
# origin (scripts/browser/foreign_origin.html on another loopback port) opens
# `new WebSocket("ws://127.0.0.1:<chat port>/chat")`; the chat must answer 403
# (the socket closes with 1006 without opening, the chat's log names the
# origin, the browser console shows the 403) and nobody joins. After the restart
# the chat allows that origin explicitly (an ORIGIN argument) and the same page
# opens: the refusal was the Origin check, not the page.
#
# Environment (all optional):
#   BROWSER_TEST_PORT     port for the chat server (default: a free one)
#   CARGO_TARGET_DIR      where cargo builds the chat example (default target/)
#   BROWSER_TEST_TIMEOUT  seconds bound for the browser run (default 180)
#   CHROMIUM              the browser (default /usr/bin/chromium, installed
#                         with apt-get when missing)
#
# Then the chat started with `--tls` (a self-signed certificate made here with
# openssl; that browser context ignores certificate errors): two pages load
# it over https, reach OPEN over wss:// and chat.
#
# Then many nodes, one chat: Debian's redis-server on a free loopback port and
# two chat nodes with `--redis`; pages F and H on node 1, G on node 2. The user
# lists agree, a message to everyone crosses the nodes, F clicks G in its user
# list and sends privately: G shows the line as private, H never gets it; G
# answers privately the same way.
#
# Output: ci-output/chat.png and ci-output/chat-b.png (the two tabs at the
# end), ci-output/chat-closed.png (a tab while the server is down),
# ci-output/chat-foreign-refused.png and chat-foreign-allowed.png (the page on
# another origin, refused, then allowed), ci-output/chat-tls.png (a page over
# https), ci-output/chat-cluster-{f,g,h}.png (the three pages of the cluster
# phase); chat-failure-{a..h}.png on a failure; logs in target/browser-test/.
# Installs what it needs (chromium, fonts, Node.js, redis-server when missing; playwright-core
# into target/browser-test/). If an install cannot reach its package source,
# prints "BROWSER TEST NOT RUN: <why>" and exits 0. Any failure of the test
# itself exits 1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$ROOT/target/browser-test"
OUT="$ROOT/ci-output"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
TEST_TIMEOUT="${BROWSER_TEST_TIMEOUT:-180}"
# cargo builds where CARGO_TARGET_DIR says (relative to the directory it runs in, $ROOT).
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
CHAT_BIN="$TARGET_DIR/debug/examples/chat"
export DEBIAN_FRONTEND=noninteractive
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

log() { echo "browser-test: $*"; }
die() { echo "browser-test: ERROR: $*" >&2; exit 1; }

not_run() {
  echo
  echo "######################################################################"
  echo "BROWSER TEST NOT RUN: $*"
  echo "######################################################################"
  exit 0
}

# --- process bookkeeping ----------------------------------------------------
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
REDIS_SERVER=""
cleanup() {
  local pid cmd
  for pid in "${PIDS[@]}"; do kill_pid "$pid"; done
  # Chat servers the Node script started (it normally stops them itself); check
  # each pid is still our binary before signalling it.
  if [[ -f "$WORK/server.pids" ]]; then
    while read -r pid; do
      [[ -n "$pid" ]] || continue
      cmd="$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null || true)"
      if [[ "$cmd" == "$CHAT_BIN "* || ( -n "$REDIS_SERVER" && "$cmd" == "$REDIS_SERVER "* ) ]]; then
        kill -KILL "$pid" 2>/dev/null || true
      fi
    done <"$WORK/server.pids"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- installation (idempotent) ---------------------------------------------
APT_SOURCE_ERR='Failed to fetch|Unable to fetch|Could not resolve|Temporary failure resolving|Could not connect|Unable to connect|Connection failed|Connection timed out|Network is unreachable|No route to host|Release file|Hash Sum mismatch|404 +Not Found|Unable to locate package|has no installation candidate|Some index files failed'
NPM_SOURCE_ERR='ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|ERR_SOCKET_TIMEOUT|socket hang up|network connectivity|request to [^ ]+ failed|E50[0-9]|50[234] (Bad Gateway|Service Unavailable|Gateway Time)'

# run_install KIND LOG CMD...: run an install step bounded in time; a failure
# that looks like an unreachable package source -> BROWSER TEST NOT RUN (exit
# 0), any other failure -> exit 1.
run_install() {
  local kind="$1" logf="$2" rc=0 pat
  shift 2
  timeout -k 10 900 "$@" >"$logf" 2>&1 </dev/null || rc=$?
  [[ $rc -eq 0 ]] && return 0
  tail -n 25 "$logf" >&2
  if [[ $kind == apt ]]; then pat="$APT_SOURCE_ERR"; else pat="$NPM_SOURCE_ERR"; fi
  if [[ $rc -eq 124 ]]; then
    not_run "'$*' timed out (package source unreachable?)"
  fi
  if grep -qE "$pat" "$logf"; then
    not_run "'$*' could not reach its package source: $(grep -m1 -E "$pat" "$logf" | cut -c1-200)"
  fi
  die "'$*' failed (exit $rc); log: $logf"
}

APT_UPDATED=""
apt_install() { # apt_install PKG...
  if [[ -z "$APT_UPDATED" ]]; then
    run_install apt "$WORK/apt-update.log" apt-get update
    APT_UPDATED=1
  fi
  run_install apt "$WORK/apt-install.log" apt-get install -y -q "$@"
}

install_chromium() {
  if [[ ! -x "$CHROMIUM" ]]; then
    [[ "$CHROMIUM" == /usr/bin/chromium ]] || die "CHROMIUM=$CHROMIUM does not exist"
    log "installing Debian's chromium"
    apt_install chromium
    [[ -x "$CHROMIUM" ]] || die "chromium installed but $CHROMIUM is missing"
  fi
  # Without any font the screenshot shows boxes instead of text.
  if ! fc-list 2>/dev/null | grep -q .; then
    log "installing a font"
    apt_install fonts-dejavu-core
  fi
  log "browser: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
}

install_node() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "installing Node.js and npm from Debian"
    apt_install nodejs npm
  fi
  log "node $(node --version), npm $(npm --version)"
}

install_playwright() {
  cp "$ROOT/scripts/browser/package.json" "$ROOT/scripts/browser/chat_test.mjs" \
    "$ROOT/scripts/browser/foreign_origin.html" "$WORK/"
  local want have=""
  want="$(node -p 'require(process.argv[1]).dependencies["playwright-core"]' "$WORK/package.json")"
  if [[ -f "$WORK/node_modules/playwright-core/package.json" ]]; then
    have="$(node -p 'require(process.argv[1]).version' "$WORK/node_modules/playwright-core/package.json")"
  fi
  if [[ "$have" != "$want" ]]; then
    log "installing playwright-core@$want into $WORK"
    run_install npm "$WORK/npm-install.log" \
      npm install --prefix "$WORK" --no-package-lock --no-audit --no-fund --loglevel=error
  fi
  log "playwright-core $want"
}

free_port() {
  node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

# --- main --------------------------------------------------------------------
mkdir -p "$WORK" "$OUT"
rm -rf "$WORK"/profile-* "$WORK/chat-server.log" "$WORK/server.pids"
rm -f "$OUT"/chat.png "$OUT"/chat-b.png "$OUT"/chat-closed.png "$OUT"/chat-failure-*.png "$OUT"/chat-foreign-*.png "$OUT"/chat-tls.png "$OUT"/chat-cluster-*.png

install_chromium
install_node
install_playwright
# The cluster phase (chat nodes over Redis).
if ! command -v redis-server >/dev/null 2>&1; then
  log "installing Debian's redis-server"
  apt_install --no-install-recommends redis-server
fi
REDIS_SERVER="$(command -v redis-server)" || die "redis-server installed but not on PATH"
log "$("$REDIS_SERVER" --version)"

log "cargo build --features rustls --example chat"
(cd "$ROOT" && timeout -k 10 1800 cargo build --features rustls --example chat) \
  || die "cargo build --features rustls --example chat failed"
# A self-signed certificate for the chat over TLS (https page, wss:// socket).
command -v openssl >/dev/null 2>&1 || apt_install openssl
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
  -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -addext "basicConstraints=critical,CA:FALSE" \
  -keyout "$WORK/chat-tls.key" -out "$WORK/chat-tls.pem" 2>/dev/null || die "openssl could not make a certificate"
[[ -x "$CHAT_BIN" ]] || die "$CHAT_BIN was not built"

PORT="${BROWSER_TEST_PORT:-$(free_port)}"
log "running scripts/browser/chat_test.mjs (chat on 127.0.0.1:$PORT, bound ${TEST_TIMEOUT}s)"
rc=0
TLS_PORT="$(free_port)"
CLUSTER_PORTS="$(free_port),$(free_port),$(free_port)"
(cd "$WORK" && exec env CHAT_BIN="$CHAT_BIN" CHAT_PORT="$PORT" CHROMIUM="$CHROMIUM" OUT_DIR="$OUT" WORK_DIR="$WORK" \
  CHAT_TLS_CERT="$WORK/chat-tls.pem" CHAT_TLS_KEY="$WORK/chat-tls.key" CHAT_TLS_PORT="$TLS_PORT" \
  REDIS_SERVER="$REDIS_SERVER" CHAT_CLUSTER_PORTS="$CLUSTER_PORTS" \
  timeout -k 10 "$TEST_TIMEOUT" node "$WORK/chat_test.mjs" </dev/null) &
NODE_PID=$!
PIDS+=("$NODE_PID")
wait "$NODE_PID" || rc=$?

if [[ $rc -ne 0 ]]; then
  [[ $rc -eq 124 ]] && echo "browser-test: the browser run timed out after ${TEST_TIMEOUT}s" >&2
  if [[ -s "$WORK/chat-server.log" ]]; then
    echo "browser-test: last lines of the chat server's log:" >&2
    tail -n 20 "$WORK/chat-server.log" >&2
  fi
  echo "browser-test: FAILED (exit $rc); screenshots, if any: $OUT/chat-failure-*.png"
  exit 1
fi
[[ -s "$OUT/chat.png" ]] || die "the test passed but wrote no screenshot $OUT/chat.png"
echo "browser-test: PASSED; screenshots: $OUT/chat.png $OUT/chat-b.png $OUT/chat-closed.png $OUT/chat-foreign-refused.png $OUT/chat-foreign-allowed.png $OUT/chat-tls.png $OUT/chat-cluster-{f,g,h}.png"
