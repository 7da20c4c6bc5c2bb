#!/usr/bin/env bash
# The kill-cycle campaign at full size (docs/reliability.md): a release
# build of exsec serve, SIGKILLed and restarted --cycles times under
# concurrent writes, deploys and rotations, checked after every cycle by
# the debug test driver (tests/integration/campaign/kill_cycles.rs).
#
#   scripts/kill-cycles.sh [--cycles N] [--seed N]
#
# Prints the seed; the same --seed replays the run's random choices.
set -euo pipefail
cd "$(dirname "$0")/.."

cycles=200
seed=""
while [ $# -gt 0 ]; do
    case "$1" in
        --cycles) cycles="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        *) echo "usage: $0 [--cycles N] [--seed N]" >&2; exit 2 ;;
    esac
done

cargo build --release --bin exsec
export EXSEC_TEST_BINARY="$PWD/target/release/exsec"
export EXSEC_CAMPAIGN_CYCLES="$cycles"
if [ -n "$seed" ]; then export EXSEC_CAMPAIGN_SEED="$seed"; fi
cargo nextest run --test integration --no-capture \
    -E 'test(=campaign::kill_cycles::kill_cycles_lose_nothing_acknowledged)'
