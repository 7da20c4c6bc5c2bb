#!/usr/bin/env bash
# The disk-fault campaign at full size (docs/reliability.md): a release
# build of exsec serve with its store on a 16 MiB tmpfs, under concurrent
# writes, reads and deploys, while each cycle fills the tmpfs, remounts it
# read-only, or both (sometimes with a SIGKILL while full), checked by the
# debug test driver (tests/integration/campaign/disk_faults.rs).
#
#   scripts/disk-faults.sh [--cycles N] [--seed N]
#
# Needs root (it mounts a tmpfs). Prints the seed; the same --seed replays
# the run's random choices.
set -euo pipefail
cd "$(dirname "$0")/.."

cycles=100
seed=""
while [ $# -gt 0 ]; do
    case "$1" in
        --cycles) cycles="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        *) echo "usage: $0 [--cycles N] [--seed N]" >&2; exit 2 ;;
    esac
done
if [ "$(id -u)" != 0 ]; then
    echo "$0: needs root to mount a tmpfs" >&2
    exit 2
fi

cargo build --release --bin exsec
export EXSEC_TEST_BINARY="$PWD/target/release/exsec"
export EXSEC_CAMPAIGN_CYCLES="$cycles"
if [ -n "$seed" ]; then export EXSEC_CAMPAIGN_SEED="$seed"; fi
cargo nextest run --test integration --no-capture \
    -E 'test(=campaign::disk_faults::disk_faults_lose_nothing_acknowledged_and_heal_without_help)'
