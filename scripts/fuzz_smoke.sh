#!/usr/bin/env bash
# Builds every fuzz target and runs each for FUZZ_SECONDS (default 30),
# starting from the checked-in corpus; fails on any finding.
# Needs a nightly toolchain; installs cargo-fuzz when missing.
#
# Usage: scripts/fuzz_smoke.sh [TARGET...]     (default: every target)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-30}"

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "!!! FUZZ SMOKE RUNS NOT RUN: no nightly toolchain (rustup toolchain install nightly) !!!"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
  echo "fuzz: $t for ${SECONDS_PER_TARGET}s"
  mkdir -p "$work/$t"
  # New inputs go to the scratch dir; the checked-in corpus is only read.
  if ! cargo +nightly fuzz run "$t" "$work/$t" "fuzz/corpus/$t" -- \
      -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -print_final_stats=1 >"$work/$t.log" 2>&1; then
    tail -n 60 "$work/$t.log"
    echo "fuzz: FINDING in $t (artifact under fuzz/artifacts/$t/)"
    exit 1
  fi
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|cov:" "$work/$t.log" | tail -n 3 || true
done
echo "fuzz: every target ran ${SECONDS_PER_TARGET}s without a finding"
