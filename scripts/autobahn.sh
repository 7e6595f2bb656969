#!/usr/bin/env bash
# Run the Autobahn Testsuite (wstest) against wsmachine's examples.
#
# Usage: scripts/autobahn.sh [all|server|client|axum]   (default: all)
#
#   server  wstest -m fuzzingclient  -> target/release/examples/echo_server
#   client  wstest -m fuzzingserver  <- target/release/examples/autobahn_client
#   axum    wstest -m fuzzingclient  -> target/release/examples/axum_echo (feature
#           axum; its /ws route, the HTTP/1.1 upgrade path; not part of "all")
#   (target/ is $CARGO_TARGET_DIR when that is set, for the reports too)
#
# Environment (all optional):
#   AUTOBAHN_CASES        case patterns, comma/space separated   (default "*")
#   AUTOBAHN_EXCLUDE      excluded patterns (default: none; every case 1-13 runs,
#                         including the permessage-deflate groups 12 and 13;
#                         AUTOBAHN_EXCLUDE='12.*,13.*' skips their 8-13 minutes per role)
#   AUTOBAHN_TIMEOUT      seconds bound for one role's wstest run (default 1800)
#   AUTOBAHN_SERVER_PORT  echo_server port   (default 9001)
#   AUTOBAHN_CLIENT_PORT  fuzzingserver port (default 9002)
#   AUTOBAHN_AGENT        agent name in the reports (default wsmachine)
#   AUTOBAHN_PYTHON2      python 2.7 interpreter (default /usr/bin/python2.7)
#   AUTOBAHN_DEBIAN_MIRROR  Debian mirror for bullseye (default: the machine's)
#
# Reports: target/autobahn/{server,client}/ (index.json, per-case json/html,
# spec.json, logs). Exit 0 only if every selected case of every role run is OK
# or INFORMATIONAL (missing cases count as FAILED). If installing wstest cannot
# reach its package source, prints "AUTOBAHN NOT RUN: <why>" and exits 0.
set -euo pipefail

ROLE="${1:-all}"
case "$ROLE" in
  all | server | client | axum) ;;
  *) echo "usage: $0 [all|server|client|axum]" >&2; exit 2 ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Where cargo puts the examples (CARGO_TARGET_DIR, relative to the repo root, or target/).
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
[[ $TARGET_DIR == /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
OUT="$TARGET_DIR/autobahn"
AGENT="${AUTOBAHN_AGENT:-wsmachine}"
PY2="${AUTOBAHN_PYTHON2:-/usr/bin/python2.7}"
WSTEST="$HOME/.local/bin/wstest"
TESTSUITE_PKG="autobahntestsuite==25.10.1"
SERVER_PORT="${AUTOBAHN_SERVER_PORT:-9001}"
CLIENT_PORT="${AUTOBAHN_CLIENT_PORT:-9002}"
RUN_TIMEOUT="${AUTOBAHN_TIMEOUT:-1800}"
export AUTOBAHN_CASES="${AUTOBAHN_CASES-*}"
export AUTOBAHN_EXCLUDE="${AUTOBAHN_EXCLUDE-}"
export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1

log() { echo "autobahn: $*"; }
die() { echo "autobahn: ERROR: $*" >&2; exit 1; }

not_run() {
  echo
  echo "######################################################################"
  echo "AUTOBAHN NOT RUN: $*"
  echo "######################################################################"
  exit 0
}

# --- process bookkeeping ----------------------------------------------------
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  if [[ -n "${TMP_INSTALL:-}" ]]; then rm -rf "$TMP_INSTALL"; fi
  if [[ -n "${CREATED_APT_SOURCE:-}" ]]; then rm -f "$CREATED_APT_SOURCE"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_pid() { # stop_pid PID: TERM a process we started, reap it
  local pid="$1"
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # wait_port PORT PID: until PORT accepts; fails if PID exits or 30 s pass
  local port="$1" pid="$2" i
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || return 1
    if port_open "$port"; then return 0; fi
    sleep 0.1
  done
  return 1
}

# --- installation (idempotent) ---------------------------------------------
APT_SOURCE_ERR='Failed to fetch|Unable to fetch|Could not resolve|Temporary failure resolving|Could not connect|Unable to connect|Connection failed|Connection timed out|Network is unreachable|No route to host|Release file|Hash Sum mismatch|404 +Not Found|Unable to locate package|has no installation candidate|Some index files failed'
PIP_SOURCE_ERR='NewConnectionError|Max retries exceeded|Temporary failure in name resolution|Name or service not known|Connection refused|Connection reset|ConnectTimeout|ReadTimeout|timed out|Network is unreachable|ProxyError|SSLError|No matching distribution found|Could not find a version that satisfies|HTTP error 5[0-9][0-9]|HTTPError: 5[0-9][0-9]'

# run_install KIND LOG CMD...: run an install step bounded in time; a failure
# that looks like an unreachable package source -> AUTOBAHN NOT RUN (exit 0),
# any other failure -> exit 1.
run_install() {
  local kind="$1" logf="$2" rc=0 pat
  shift 2
  timeout -k 10 900 "$@" >"$logf" 2>&1 || rc=$?
  [[ $rc -eq 0 ]] && return 0
  tail -n 25 "$logf" >&2
  if [[ $kind == apt ]]; then pat="$APT_SOURCE_ERR"; else pat="$PIP_SOURCE_ERR"; fi
  if [[ $rc -eq 124 ]]; then
    not_run "'$*' timed out (package source unreachable?)"
  fi
  if grep -qE "$pat" "$logf"; then
    not_run "'$*' could not reach its package source: $(grep -m1 -E "$pat" "$logf" | cut -c1-200)"
  fi
  die "'$*' failed (exit $rc); log: $logf"
}

debian_mirror() {
  if [[ -n "${AUTOBAHN_DEBIAN_MIRROR:-}" ]]; then echo "$AUTOBAHN_DEBIAN_MIRROR"; return; fi
  local uri=""
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    # first URIs of a stanza that is not the security archive
    uri="$(awk 'BEGIN { RS = "" } !/debian-security|Suites:[^\n]*-security/ {
                 if (match($0, /URIs:[ \t]*[^ \t\n]+/)) {
                   s = substr($0, RSTART, RLENGTH); sub(/URIs:[ \t]*/, "", s); print s; exit } }' \
             /etc/apt/sources.list.d/debian.sources)"
  fi
  if [[ -z "$uri" && -f /etc/apt/sources.list ]]; then
    uri="$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
             /etc/apt/sources.list)"
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

install_python2() {
  [[ -x "$PY2" ]] && return 0
  [[ -n "${AUTOBAHN_PYTHON2:-}" ]] && die "AUTOBAHN_PYTHON2=$PY2 does not exist"
  log "installing python2.7 from Debian bullseye"
  if ! grep -rqsE '^[[:space:]]*Suites:.*\bbullseye\b|^[[:space:]]*deb[[:space:]].*[[:space:]]bullseye[[:space:]]' \
       /etc/apt/sources.list /etc/apt/sources.list.d/; then
    local mirror
    mirror="$(debian_mirror)"
    CREATED_APT_SOURCE=/etc/apt/sources.list.d/bullseye.sources
    cat >"$CREATED_APT_SOURCE" <<EOF
Types: deb
URIs: $mirror
Suites: bullseye
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    log "added $CREATED_APT_SOURCE ($mirror); removed again once python2.7 is installed"
  fi
  run_install apt "$TMP_INSTALL/apt-update.log" apt-get update
  if ! apt-cache madison python2.7 2>/dev/null | grep -q bullseye; then
    not_run "python2.7 is not available from Debian bullseye at $(debian_mirror)"
  fi
  run_install apt "$TMP_INSTALL/apt-install.log" \
    apt-get install -y -q -t bullseye --no-install-recommends python2.7 python2.7-dev
  [[ -x "$PY2" ]] || die "python2.7 installed but $PY2 is missing"
  if [[ -n "${CREATED_APT_SOURCE:-}" ]]; then
    rm -f "$CREATED_APT_SOURCE"   # keep later apt-get update runs independent of bullseye
    CREATED_APT_SOURCE=""
  fi
}

apt_install_bookworm() { # apt_install_bookworm PKG...
  run_install apt "$TMP_INSTALL/apt-update.log" apt-get update
  run_install apt "$TMP_INSTALL/apt-install.log" apt-get install -y -q --no-install-recommends "$@"
}

install_pip2() {
  "$PY2" -m pip --version >/dev/null 2>&1 && return 0
  log "installing pip for python2.7"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    apt_install_bookworm python3-pip
  fi
  run_install pip "$TMP_INSTALL/pip-download.log" \
    python3 -m pip download --no-deps --python-version 2.7 --only-binary=:all: \
      -d "$TMP_INSTALL/wheels" pip==20.3.4 setuptools==44.1.1 wheel==0.37.1
  "$PY2" "$TMP_INSTALL/wheels/pip-20.3.4-py2.py3-none-any.whl/pip" install --user --no-index \
      --no-warn-script-location --find-links "$TMP_INSTALL/wheels" pip setuptools wheel \
    >"$TMP_INSTALL/pip2-bootstrap.log" 2>&1 \
    || { cat "$TMP_INSTALL/pip2-bootstrap.log" >&2; die "bootstrapping pip for python2.7 failed"; }
}

install_wstest() {
  if [[ -x "$WSTEST" ]] && "$PY2" -c 'import autobahntestsuite.fuzzing' >/dev/null 2>&1; then
    return 0
  fi
  log "installing $TESTSUITE_PKG for python2.7"
  command -v gcc >/dev/null 2>&1 || apt_install_bookworm gcc libc6-dev
  run_install pip "$TMP_INSTALL/pip-wstest.log" \
    "$PY2" -m pip install --user --no-warn-script-location "$TESTSUITE_PKG"
  [[ -x "$WSTEST" ]] || die "$TESTSUITE_PKG installed but $WSTEST is missing"
}

ensure_wstest() {
  TMP_INSTALL="$(mktemp -d)"
  local t0=$SECONDS
  install_python2
  install_pip2
  install_wstest
  "$WSTEST" --help >/dev/null 2>&1 || die "$WSTEST --help does not run"
  rm -rf "$TMP_INSTALL"; TMP_INSTALL=""
  log "wstest ready ($WSTEST, $((SECONDS - t0)) s)"
}

# --- helpers for the runs ---------------------------------------------------
write_spec() { # write_spec ROLE FILE OUTDIR [PATH]: PATH (server role) is the URL's path
  python3 - "$1" "$2" "$3" "$AGENT" "$SERVER_PORT" "$CLIENT_PORT" "${4:-}" <<'EOF'
import json, os, re, sys
role, path, outdir, agent, sport, cport, urlpath = sys.argv[1:]
split = lambda s: [p for p in re.split(r"[,\s]+", s) if p]
spec = {"outdir": outdir,
        "cases": split(os.environ["AUTOBAHN_CASES"]),
        "exclude-cases": split(os.environ["AUTOBAHN_EXCLUDE"]),
        "exclude-agent-cases": {}}
if role == "server":
    spec["servers"] = [{"agent": agent, "url": "ws://127.0.0.1:%s%s" % (sport, urlpath)}]
else:
    spec["url"] = "ws://127.0.0.1:%s" % cport
with open(path, "w") as f:
    json.dump(spec, f, indent=2)
EOF
}

# wstest for fuzzingserver, with autobahn's listenWS bound to 127.0.0.1 only.
write_wstest_wrapper() { # write_wstest_wrapper FILE
  cat >"$1" <<'EOF'
# Runs wstest with every listenWS bound to 127.0.0.1 instead of all interfaces.
import sys
from autobahntestsuite import wstest, fuzzing  # wstest imports choosereactor first
import autobahn.twisted.websocket as _ws

_orig_listenWS = _ws.listenWS

def listenWS(factory, contextFactory=None, backlog=50, interface='127.0.0.1'):
    return _orig_listenWS(factory, contextFactory, backlog, interface or '127.0.0.1')

_ws.listenWS = listenWS
fuzzing.listenWS = listenWS  # fuzzing.py did `from autobahn.twisted.websocket import listenWS`
sys.argv[0] = 'wstest'
sys.exit(wstest.run())
EOF
}

fresh_dir() { # fresh_dir DIR (under $OUT only)
  [[ "$1" == "$OUT"/* ]] || die "refusing to clean $1"
  rm -rf "$1"
  mkdir -p "$1"
}

SUMMARIES=""
summarize() { # summarize ROLE DIR -> status of the summary
  local role="$1" dir="$2" rc=0 text
  text="$(python3 "$ROOT/scripts/autobahn_summary.py" --role "$role" --agent "$AGENT" \
            --python2 "$PY2" --index "$dir/index.json" --spec "$dir/spec.json" 2>&1)" || rc=$?
  log "$role role: $(tail -n 1 <<<"$text" | sed 's/^ *//')"
  SUMMARIES+="$text"$'\n'
  return $rc
}

# --- server role: wstest fuzzingclient -> echo_server (or axum_echo) --------
run_server() { # run_server [NAME [URLPATH]]: the example NAME (default echo_server), reports in $OUT/server or $OUT/NAME
  local name="${1:-echo_server}" urlpath="${2:-}" pid rc=0 fail=0
  local bin="$TARGET_DIR/release/examples/$name" dir="$OUT/server"
  [[ $name == echo_server ]] || dir="$OUT/$name"
  fresh_dir "$dir"
  write_spec server "$dir/spec.json" "$dir" "$urlpath" || return 1
  if port_open "$SERVER_PORT"; then
    echo "autobahn: port $SERVER_PORT is already in use" >&2; return 1
  fi
  log "server role: starting $name on 127.0.0.1:$SERVER_PORT"
  timeout -k 5 $((RUN_TIMEOUT + 60)) "$bin" "127.0.0.1:$SERVER_PORT" >"$dir/$name.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  if ! wait_port "$SERVER_PORT" "$pid"; then
    echo "autobahn: $name did not accept connections on $SERVER_PORT" >&2
    tail -n 20 "$dir/$name.log" >&2
    stop_pid "$pid"
    return 1
  fi
  log "server role: wstest -m fuzzingclient (cases: $AUTOBAHN_CASES; excluded: ${AUTOBAHN_EXCLUDE:-none}; bound ${RUN_TIMEOUT}s)"
  (cd "$dir" && timeout -k 10 "$RUN_TIMEOUT" "$WSTEST" -m fuzzingclient -s "$dir/spec.json") \
    >"$dir/wstest.log" 2>&1 || rc=$?
  if [[ $rc -ne 0 ]]; then
    fail=1
    if [[ $rc -eq 124 ]]; then
      echo "autobahn: server role: wstest timed out after ${RUN_TIMEOUT}s" >&2
    else
      echo "autobahn: server role: wstest exited with $rc" >&2
    fi
    tail -n 20 "$dir/wstest.log" >&2
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    fail=1
    rc=0; wait "$pid" 2>/dev/null || rc=$?
    echo "autobahn: server role: $name died during the run (exit $rc)" >&2
    tail -n 20 "$dir/$name.log" >&2
  else
    stop_pid "$pid"
  fi
  summarize server "$dir" || fail=1
  return $fail
}

# --- client role: autobahn_client -> wstest fuzzingserver --------------------
run_client() {
  local dir="$OUT/client" bin="$TARGET_DIR/release/examples/autobahn_client" pid rc=0 fail=0 i
  fresh_dir "$dir"
  write_spec client "$dir/spec.json" "$dir" || return 1
  write_wstest_wrapper "$dir/wstest_local.py" || return 1
  if port_open "$CLIENT_PORT"; then
    echo "autobahn: port $CLIENT_PORT is already in use" >&2; return 1
  fi
  log "client role: wstest -m fuzzingserver on 127.0.0.1:$CLIENT_PORT (cases: $AUTOBAHN_CASES; excluded: ${AUTOBAHN_EXCLUDE:-none})"
  (cd "$dir" && exec timeout -k 5 $((RUN_TIMEOUT + 60)) "$PY2" "$dir/wstest_local.py" \
      -m fuzzingserver -u 0 -s "$dir/spec.json") >"$dir/wstest.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  if ! wait_port "$CLIENT_PORT" "$pid"; then
    echo "autobahn: wstest fuzzingserver did not listen on $CLIENT_PORT" >&2
    tail -n 20 "$dir/wstest.log" >&2
    stop_pid "$pid"
    return 1
  fi
  log "client role: autobahn_client ws://127.0.0.1:$CLIENT_PORT $AGENT (bound ${RUN_TIMEOUT}s)"
  timeout -k 10 "$RUN_TIMEOUT" "$bin" "ws://127.0.0.1:$CLIENT_PORT" "$AGENT" \
    >"$dir/autobahn_client.log" 2>&1 </dev/null || rc=$?
  if [[ $rc -ne 0 ]]; then
    fail=1
    if [[ $rc -eq 124 ]]; then
      echo "autobahn: client role: autobahn_client timed out after ${RUN_TIMEOUT}s" >&2
    else
      echo "autobahn: client role: autobahn_client exited with $rc" >&2
    fi
    tail -n 20 "$dir/autobahn_client.log" >&2
  fi
  # /updateReports writes index.json before it closes; allow a little slack.
  for ((i = 0; i < 100; i++)); do
    [[ -f "$dir/index.json" ]] && break
    sleep 0.1
  done
  if ! kill -0 "$pid" 2>/dev/null; then
    fail=1
    echo "autobahn: client role: wstest fuzzingserver exited early" >&2
    tail -n 20 "$dir/wstest.log" >&2
  fi
  stop_pid "$pid"
  summarize client "$dir" || fail=1
  return $fail
}

# --- main --------------------------------------------------------------------
ensure_wstest

examples=()
[[ $ROLE == all || $ROLE == server ]] && examples+=(--example echo_server)
[[ $ROLE == all || $ROLE == client ]] && examples+=(--example autobahn_client)
[[ $ROLE == axum ]] && examples+=(--features axum --example axum_echo)
log "cargo build --release ${examples[*]}"
(cd "$ROOT" && cargo build --release "${examples[@]}") || die "cargo build failed"

mkdir -p "$OUT"
server_rc=0
client_rc=0
server_state="not run"
client_state="not run"
server_label=""
if [[ $ROLE == axum ]]; then
  server_label=" (axum_echo)"
  server_state=passed
  run_server axum_echo /ws || { server_rc=1; server_state=failed; }
fi
if [[ $ROLE == all || $ROLE == server ]]; then
  server_state=passed
  run_server || { server_rc=1; server_state=failed; }
fi
if [[ $ROLE == all || $ROLE == client ]]; then
  client_state=passed
  run_client || { client_rc=1; client_state=failed; }
fi

echo
echo "================ Autobahn summary ================"
printf '%s' "$SUMMARIES"
echo "reports: $OUT/{server,client,axum_echo}/index.json (per-case .json/.html next to it)"
if [[ $server_rc -ne 0 || $client_rc -ne 0 ]]; then
  echo "autobahn: FAILED (server role$server_label: $server_state, client role: $client_state)"
  exit 1
fi
echo "autobahn: PASSED, every selected case OK or INFORMATIONAL (server role$server_label: $server_state, client role: $client_state)"
