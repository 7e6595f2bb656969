#!/usr/bin/env bash
# The embedded check (issue 5): wsmachine `no_std` + `alloc` on a Cortex-M4F
# and on a Cortex-M0/M0+ (thumbv6m, no atomic compare-and-swap).
#
#   scripts/embedded.sh                 host test, firmware build + size, QEMU run if qemu-system-arm is there
#   scripts/embedded.sh --install-qemu  the same, installing Debian's qemu-system-arm first when missing
#
# 1. `cargo test` in embedded/: the no_std library's scenario (handshake, echo,
#    ping, close between two machines, measured heap) on the host. Always runs.
# 2. For thumbv7em-none-eabihf and thumbv6m-none-eabi: builds the firmware in
#    release (adding the target with rustup when missing) and prints its
#    section sizes and .text by crate (embedded/size.py). If a target cannot
#    be had, says so loudly and goes on.
# 3. Runs each firmware on QEMU's mps2-an386 (Cortex-M4) board with
#    semihosting, and checks that it reports `RESULT: OK` and exits 0.
#
# Fails on a failed test, build or firmware run; a missing target or QEMU
# is reported, not failed.
set -euo pipefail
cd "$(dirname "$0")/../embedded"
export CARGO_TERM_COLOR=never

# Cortex-M4F, and Cortex-M0/M0+ (no atomic compare-and-swap: wsmachine's
# `portable-atomic` feature).
TARGETS=(thumbv7em-none-eabihf thumbv6m-none-eabi)
ran=()
install_qemu=false
for arg in "$@"; do
  case "$arg" in
    --install-qemu) install_qemu=true ;;
    *) echo "usage: $0 [--install-qemu]" >&2; exit 2 ;;
  esac
done

step() { printf '\n--- embedded: %s ---\n' "$*"; }

step "host test (the no_std library on $(rustc -vV | sed -n 's/^host: //p'))"
cargo test

step "QEMU (qemu-system-arm)"
if ! command -v qemu-system-arm >/dev/null 2>&1 && $install_qemu; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends qemu-system-arm >/dev/null ||
      echo "(apt-get install qemu-system-arm failed)"
  else
    echo "(not root: cannot apt-get install qemu-system-arm)"
  fi
fi
have_qemu=false
if command -v qemu-system-arm >/dev/null 2>&1; then
  have_qemu=true
  qemu-system-arm --version | head -n 1
else
  echo "!!! qemu-system-arm is not installed (apt-get install qemu-system-arm, or pass --install-qemu):"
  echo "!!! the firmware is built and sized below but NOT RUN. !!!"
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
for TARGET in "${TARGETS[@]}"; do
  OUT=${CARGO_TARGET_DIR:-target}/$TARGET/release
  step "firmware for $TARGET (release)"
  if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
    if ! rustup target add "$TARGET" >/dev/null 2>&1; then
      echo
      echo "!!! EMBEDDED TARGET BUILD NOT RUN: 'rustup target add $TARGET' failed on this machine;"
      echo "!!! the same no_std code ran as the host test above. !!!"
      continue
    fi
  fi
  cargo build --release --target "$TARGET" -p wsmachine-embedded-firmware

  step "code size on $TARGET (firmware; baseline = the same firmware without wsmachine)"
  if command -v python3 >/dev/null 2>&1; then
    python3 size.py "$OUT/firmware" "$OUT/baseline"
  elif command -v llvm-size >/dev/null 2>&1; then
    llvm-size -A "$OUT/firmware" "$OUT/baseline"
  else
    echo "(no python3 or llvm-size: sizes not printed)"
  fi

  $have_qemu || continue
  # QEMU has no Cortex-M0 board with enough RAM: the thumbv6m image runs on
  # the same Cortex-M4 board (ARMv6-M code runs unchanged on ARMv7-M).
  step "$TARGET firmware on QEMU mps2-an386 (Cortex-M4), semihosting"
  status=0
  timeout 120 qemu-system-arm -M mps2-an386 -nographic -monitor none -serial none \
    -semihosting-config enable=on,target=native -kernel "$OUT/firmware" </dev/null | tee "$log" || status=$?
  if [ "$status" -ne 0 ] || ! grep -q '^RESULT: OK' "$log"; then
    echo "embedded: the $TARGET firmware failed on QEMU (exit status $status)" >&2
    exit 1
  fi
  ran+=("$TARGET")
done
echo
if [ ${#ran[@]} -gt 0 ]; then
  echo "embedded: firmware ran on QEMU: RESULT OK (${ran[*]})"
fi
