#!/usr/bin/env bash
# Runs every fuzz target (fuzz/, cargo fuzz on the nightly toolchain) for a
# bounded time each, seeded from fixtures/fuzz/<target>/ when that exists.
# A crash stops the run with the target's name and the reproducer's path
# under fuzz/artifacts/; turn it into a regression test named after it.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default 60, all)
# Needs a nightly toolchain (`rustup toolchain list`); installs cargo-fuzz
# once if it is missing. Builds into $EXSEC_FUZZ_TARGET (default
# target/fuzz, kept apart from stable builds: another compiler).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
shift || true

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz: no nightly toolchain (rustup toolchain list); cargo fuzz needs one — skipped" >&2
  exit 0
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

export CARGO_TARGET_DIR=${EXSEC_FUZZ_TARGET:-$repo/target/fuzz}
# cargo fuzz sets RUSTFLAGS, which replaces .cargo/config.toml's flags:
# keep poly1305's portable backend as every exsec build does.
export RUSTFLAGS="${RUSTFLAGS:-} --cfg poly1305_backend=\"soft\""
cd "$repo/fuzz"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)

cargo +nightly fuzz build --release
for target in "${targets[@]}"; do
  corpus=$CARGO_TARGET_DIR/corpus/$target
  mkdir -p "$corpus"
  seeds=$repo/fixtures/fuzz/$target
  if [ -d "$seeds" ]; then cp -n "$seeds"/* "$corpus"/; fi
  echo "==> fuzz $target (${seconds}s)"
  log=$CARGO_TARGET_DIR/$target.log
  if ! cargo +nightly fuzz run --release "$target" "$corpus" -- \
      -max_total_time="$seconds" -print_final_stats=1 > "$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "fuzz: $target found a crash (reproducer under fuzz/artifacts/$target/)" >&2
    exit 1
  fi
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)' "$log" | tr '\n' ' '
  echo
done
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, no crash"
