#!/usr/bin/env bash
# The public API check: the crate's public API, as listed by `cargo public-api`,
# must equal the checked-in listings in api/ (see api/README.md).
#
#   scripts/public_api.sh          compare; exit 1 with a unified diff on any difference
#   scripts/public_api.sh --bless  rewrite the listings in api/ from the code
#
# Installs what it needs (runs on a fresh machine, CI=true, no stdin):
# - cargo-public-api at exactly $TOOL_VERSION, by `cargo install --locked`
#   when it is missing or of another version;
# - the toolchain $TOOLCHAIN (default `nightly`, the one rustup already has;
#   rustdoc JSON needs nightly), by `rustup toolchain install` only when it is
#   missing.
#
# Exit codes: 0 the listings match (or were blessed); 1 they differ, or the
# tool failed on the code; 2 bad usage; 3 the check could not be run (the tool
# or the nightly could not be installed: registry or network unreachable) --
# a loud `!!! PUBLIC API CHECK NOT RUN: ... !!!` line says why.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

# cargo-public-api 0.50.x-0.52.x read the rustdoc JSON of nightly-2025-08-02
# and later (its README's compatibility matrix).
TOOL_VERSION=0.52.0
TOOLCHAIN="${PUBLIC_API_TOOLCHAIN:-nightly}"
# One set of options for every listing, in both modes. Blanket impls
# (`impl<T> From<T> for T`, `Any`, `Borrow`, ... for every type) are omitted;
# auto-trait impls (Send, Sync, Unpin, UnwindSafe) and derived impls are kept:
# they are part of the API. See api/README.md.
OPTS=(--omit blanket-impls --color never)
# Lines dropped after listing: impls of the unstable, unnameable marker traits
# `Freeze` and `UnsafeUnpin`, which nightly rustdoc lists for every type and
# which no stable user can rely on.
DROP='^impl(<.*>)? !?core::marker::(Freeze|UnsafeUnpin) for '
# name|cargo feature arguments
SETS=(
  "default|"
  "tokio|--features tokio"
  "rustls|--features rustls-native-roots,tokio"
  "no_std|--no-default-features"
  "http2|--features http2,rustls"
  "axum|--features axum,rustls-native-roots"
)

bless=false
case "${1:-}" in
  "") ;;
  --bless) bless=true ;;
  *) echo "usage: $0 [--bless]" >&2; exit 2 ;;
esac
[ $# -le 1 ] || { echo "usage: $0 [--bless]" >&2; exit 2; }

not_run() {
  echo "!!! PUBLIC API CHECK NOT RUN: $* !!!"
  exit 3
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- the nightly toolchain (rustdoc JSON) ------------------------------------
if ! RUSTUP_AUTO_INSTALL=0 rustup run "$TOOLCHAIN" rustc --version >/dev/null 2>&1; then
  echo "toolchain $TOOLCHAIN missing; rustup toolchain install $TOOLCHAIN --profile minimal"
  if ! rustup toolchain install "$TOOLCHAIN" --profile minimal </dev/null >"$work/rustup.log" 2>&1; then
    sed '/^Stack backtrace/,$d' "$work/rustup.log" | tail -n 12
    not_run "'rustup toolchain install $TOOLCHAIN --profile minimal' failed on this machine"
  fi
fi

# --- the tool, at the pinned version -----------------------------------------
have=$(cargo public-api --version 2>/dev/null | sed -n 's/^cargo-public-api //p' || true)
if [ "$have" != "$TOOL_VERSION" ]; then
  echo "cargo-public-api ${have:-not installed}; installing $TOOL_VERSION (cargo install --locked, several minutes)"
  start=$SECONDS
  # A temporary target directory of cargo's own, not the project's.
  if ! env -u CARGO_TARGET_DIR cargo install --locked cargo-public-api --version "$TOOL_VERSION" \
    </dev/null >"$work/install.log" 2>&1; then
    tail -n 20 "$work/install.log"
    if grep -qiE 'failed to (download|query|get|fetch|update)|network|resolve host|could not connect|timed? ?out|spurious|unable to update registry|SSL|dns' "$work/install.log"; then
      not_run "'cargo install --locked cargo-public-api --version $TOOL_VERSION' could not reach the registry"
    fi
    echo "cargo install --locked cargo-public-api --version $TOOL_VERSION failed (see above)" >&2
    exit 1
  fi
  echo "installed cargo-public-api $TOOL_VERSION in $((SECONDS - start))s"
fi

# --- the listings --------------------------------------------------------------
rustc_version=$(rustup run "$TOOLCHAIN" rustc --version)
echo "cargo-public-api $TOOL_VERSION, rustdoc JSON from $TOOLCHAIN: $rustc_version"
# A target directory of its own: the nightly's artifacts do not displace the
# stable ones, and stay warm between runs.
target_dir="${CARGO_TARGET_DIR:-$PWD/target}/public-api"
for set in "${SETS[@]}"; do
  name=${set%%|*}
  # shellcheck disable=SC2206 # word splitting of the feature arguments is wanted
  features=(${set#*|})
  if ! cargo +"$TOOLCHAIN" public-api "${OPTS[@]}" "${features[@]}" --target-dir "$target_dir" \
    </dev/null >"$work/$name.raw" 2>"$work/$name.log"; then
    cat "$work/$name.log" >&2
    echo "cargo +$TOOLCHAIN public-api ${OPTS[*]} ${features[*]} failed (see above)" >&2
    echo "(a JSON parse error means $rustc_version writes a rustdoc JSON that" \
      "cargo-public-api $TOOL_VERSION does not read: see its README's compatibility matrix)" >&2
    exit 1
  fi
  { grep -Ev "$DROP" "$work/$name.raw" || true; } >"$work/$name.txt"
  [ -s "$work/$name.txt" ] || { echo "empty listing for $name (${features[*]:-default features})" >&2; exit 1; }
done
printf 'cargo-public-api %s\n%s\n' "$TOOL_VERSION" "$rustc_version" >"$work/toolchain.txt"

if $bless; then
  mkdir -p api
  for set in "${SETS[@]}"; do
    name=${set%%|*}
    cp "$work/$name.txt" "api/$name.txt"
    echo "wrote api/$name.txt ($(wc -l <"api/$name.txt") lines)"
  done
  cp "$work/toolchain.txt" api/toolchain.txt
  echo "wrote api/toolchain.txt"
  exit 0
fi

if [ -f api/toolchain.txt ] && ! cmp -s api/toolchain.txt "$work/toolchain.txt"; then
  echo "note: the listings were blessed with"
  sed 's/^/note:   /' api/toolchain.txt
  echo "note: this run used"
  sed 's/^/note:   /' "$work/toolchain.txt"
  echo "note: a nightly's rustdoc can render some items differently."
fi

failed=()
for set in "${SETS[@]}"; do
  name=${set%%|*}
  what=${set#*|}
  what=${what:-default features}
  if [ ! -f "api/$name.txt" ]; then
    echo "api/$name.txt is missing"
    failed+=("$name")
  elif diff -u --label "api/$name.txt (checked in)" --label "the code ($what)" \
    "api/$name.txt" "$work/$name.txt" >"$work/$name.diff"; then
    echo "api/$name.txt: matches ($(wc -l <"$work/$name.txt") lines)"
  else
    echo
    echo "api/$name.txt: the public API differs (- checked in, + the code, $what):"
    cat "$work/$name.diff"
    failed+=("$name")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo
  echo "PUBLIC API CHANGED: ${failed[*]}."
  echo "If the change is intended, run 'scripts/public_api.sh --bless' and commit api/ with it."
  exit 1
fi
echo "public API: all listings match"
