#!/usr/bin/env bash
# Interop against Python `websockets`, both directions: permessage-deflate
# (RFC 7692, tests/it/deflate_interop.rs) and wss:// over Python's ssl module
# (tests/it/tls.rs, python_tls_*). Installs websockets from PyPI into a venv
# under target/ and runs those tests with it.
#
# Usage: scripts/interop_deflate.sh
#
# Exit 0 when the interop tests pass. If the venv or the package cannot be
# installed because its source is unreachable, prints
# "INTEROP NOT RUN: <why>" and exits 0 (same policy as scripts/autobahn.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/target/interop-venv"
PKG="websockets==${INTEROP_WEBSOCKETS_VERSION:-17.4}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

not_run() {
  echo
  echo "######################################################################"
  echo "INTEROP NOT RUN: $*"
  echo "######################################################################"
  exit 0
}

PIP_SOURCE_ERR='NewConnectionError|Max retries exceeded|Temporary failure in name resolution|Name or service not known|Connection refused|Connection reset|ConnectTimeout|ReadTimeout|timed out|Network is unreachable|ProxyError|SSLError|No matching distribution found|Could not find a version that satisfies|HTTP error 5[0-9][0-9]|HTTPError: 5[0-9][0-9]'

if ! "$VENV/bin/python" -c 'import websockets' >/dev/null 2>&1; then
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    echo "interop: installing python3-venv"
    (apt-get update -q && apt-get install -y -q --no-install-recommends python3-venv) >/tmp/interop-apt.log 2>&1 \
      || not_run "python3-venv could not be installed: $(tail -n 1 /tmp/interop-apt.log)"
  fi
  rm -rf "$VENV"
  python3 -m venv "$VENV" || not_run "python3 -m venv failed"
  log="$(mktemp)"
  rc=0
  timeout -k 10 600 "$VENV/bin/python" -m pip install -q "$PKG" >"$log" 2>&1 || rc=$?
  if [[ $rc -ne 0 ]]; then
    tail -n 20 "$log" >&2
    if [[ $rc -eq 124 ]] || grep -qE "$PIP_SOURCE_ERR" "$log"; then
      not_run "pip install $PKG could not reach PyPI"
    fi
    echo "interop: ERROR: pip install $PKG failed (exit $rc)" >&2
    exit 1
  fi
  rm -f "$log"
fi
echo "interop: $("$VENV/bin/python" -c 'import websockets; print("websockets", websockets.version.version)') in $VENV"

cd "$ROOT"
WSMACHINE_INTEROP_PYTHON="$VENV/bin/python" timeout -k 10 600 \
  cargo test --test it deflate_interop:: -- --include-ignored --nocapture --test-threads 1
# TLS (wss://) both ways with Python's ssl module: tests/it/tls.rs, python_tls_*.
WSMACHINE_INTEROP_PYTHON="$VENV/bin/python" timeout -k 10 600 \
  cargo test --features rustls --test it tls::python_tls -- --include-ignored --nocapture --test-threads 1
echo "interop: PASSED (Python websockets <-> wsmachine, permessage-deflate and TLS, both directions)"
