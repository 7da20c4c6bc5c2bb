#!/usr/bin/env bash
# Runs the README's quick start exactly as written, in a scratch copy of the
# repository, so the documentation cannot rot. Blocks are taken from
# README.md between `<!-- quickstart:NAME -->` markers:
#   build  – run in the foreground
#   serve  – started in the background (the daemon), stopped at the end
#   use    – run in the foreground against the daemon; must succeed
# Usage: scripts/quickstart.sh [README.md]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
readme=${1:-$repo/README.md}

block() {
  # Prints the fenced code block that follows <!-- quickstart:$1 -->.
  awk -v name="$1" '
    $0 ~ "<!-- quickstart:" name " -->" { armed = 1; next }
    armed && /^```/ { if (inside) exit; inside = 1; next }
    inside { print }
  ' "$readme"
}

for name in build serve use; do
  [ -n "$(block "$name")" ] || { echo "quickstart: README has no '$name' block" >&2; exit 1; }
done

work=$(mktemp -d)
cleanup() {
  [ -n "${serve_pid:-}" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# A fresh clone of what is committed, sharing the build cache through a
# `target` link so that `./target/release/exsec` works as written.
git -C "$repo" ls-files -z | (cd "$repo" && xargs -0 tar cf -) | (cd "$work" && tar xf -)
shared_target=${CARGO_TARGET_DIR:-$repo/target}
mkdir -p "$shared_target"
ln -s "$shared_target" "$work/target"
unset CARGO_TARGET_DIR
cd "$work"

echo "==> quickstart: build"
bash -euo pipefail -c "$(block build)"

echo "==> quickstart: serve (background)"
bash -euo pipefail -c "$(block serve)" > serve.log 2>&1 &
serve_pid=$!
for _ in $(seq 1 100); do
  curl -fsS http://127.0.0.1:7780/readyz >/dev/null 2>&1 && break
  kill -0 "$serve_pid" 2>/dev/null || { cat serve.log >&2; exit 1; }
  sleep 0.1
done

echo "==> quickstart: use"
bash -euo pipefail -c "$(block use)" | tee use.log

# What a user would look at: the merged set with the app's value winning,
# and the audit event.
grep -q '"status":"injected"' use.log
grep -q 'external_secret.injected' use.log
grep -q "$(printf 'sk-app-override' | base64)" var/manifests/web.yaml
echo "==> quickstart: ok"
