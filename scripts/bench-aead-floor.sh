#!/usr/bin/env bash
# Prints the AEAD floor of the shipped build beside a native one: criterion
# medians of the `core` bench (exsec seal/open, the bare XChaCha20-Poly1305
# "aead floor", the nonce draw, the 50-key resolve) from two builds:
#   shipped  the portable build as released: flags from .cargo/config.toml
#   native   RUSTFLAGS="-C target-cpu=native": the crates' AVX2 code compiled
#            in (RUSTFLAGS replaces the config's flags)
# With --default, a third build with the crates' default dispatch (RUSTFLAGS
# empty: no poly1305 cfg, the build before issue 6; exsec's build warns).
# Each build has its own target dir, native and default inside the shipped
# one ($CARGO_TARGET_DIR/aead-floor-*): a cold one takes as long as a
# release build.
# All builds come first, then the runs back to back, so they share the load.
# docs/performance.md explains the figures.
#
# Usage: scripts/bench-aead-floor.sh [--default] [criterion filter regex]
# Env:   CARGO_TARGET_DIR (the shipped build; default ./target)
set -euo pipefail
cd "$(dirname "$0")/.."

with_default=false
if [ "${1:-}" = "--default" ]; then
  with_default=true
  shift
fi
filter=${1:-}

shipped_dir=${CARGO_TARGET_DIR:-$PWD/target}
builds=(shipped native)
$with_default && builds+=(default)

target_dir() { case $1 in shipped) echo "$shipped_dir" ;; *) echo "$shipped_dir/aead-floor-$1" ;; esac; }

cargo_for() {
  # Runs cargo with the flags of build $1; the rest are cargo's arguments.
  local build=$1
  shift
  case $build in
    shipped) env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS CARGO_TARGET_DIR="$(target_dir shipped)" cargo "$@" ;;
    native) env -u CARGO_ENCODED_RUSTFLAGS RUSTFLAGS="-C target-cpu=native" CARGO_TARGET_DIR="$(target_dir native)" cargo "$@" ;;
    default) env -u CARGO_ENCODED_RUSTFLAGS RUSTFLAGS="" CARGO_TARGET_DIR="$(target_dir default)" cargo "$@" ;;
  esac
}

log=$(mktemp)
stamp=$(mktemp)
trap 'rm -f "$log" "$stamp"' EXIT
for build in "${builds[@]}"; do
  echo "==> building the bench: $build ($(target_dir "$build"))" >&2
  cargo_for "$build" bench --bench core --locked --no-run >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
  grep -A1 '^warning' "$log" >&2 || true
done

touch "$stamp"
for build in "${builds[@]}"; do
  echo "==> running: $build" >&2
  cargo_for "$build" bench --bench core --locked -- ${filter:+"$filter"} >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
done

echo "load average while measuring: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs))"
pairs=()
for build in "${builds[@]}"; do pairs+=("$build=$(target_dir "$build")"); done
python3 - "$stamp" "${pairs[@]}" <<'PY'
# Median of each benchmark run after $stamp, per build, side by side.
import json, os, sys

since = os.path.getmtime(sys.argv[1])
builds = [pair.split("=", 1) for pair in sys.argv[2:]]
medians = {}  # full_id -> {build: ns}
for build, target in builds:
    for root, _, files in os.walk(os.path.join(target, "criterion")):
        if not root.endswith(os.sep + "new") or "benchmark.json" not in files:
            continue
        if os.path.getmtime(os.path.join(root, "estimates.json")) < since:
            continue
        with open(os.path.join(root, "benchmark.json")) as f:
            full_id = json.load(f)["full_id"]
        with open(os.path.join(root, "estimates.json")) as f:
            median = json.load(f)["median"]["point_estimate"]
        medians.setdefault(full_id, {})[build] = median

names = [build for build, _ in builds]
print(f"{'median':<28}" + "".join(f"{n:>12}" for n in names) + f"{'shipped/native':>16}")
for full_id in sorted(medians, key=lambda i: (i.startswith("resolve"), i.startswith("aead"), i)):
    row = medians[full_id]
    cells = "".join(f"{row[n] / 1000:>10.2f}µs" if n in row else f"{'-':>12}" for n in names)
    ratio = row["shipped"] / row["native"] if "shipped" in row and "native" in row else float("nan")
    print(f"{full_id:<28}{cells}{ratio:>15.2f}x")
PY
