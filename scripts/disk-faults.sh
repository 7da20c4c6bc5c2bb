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

if [ "$(id -u)" != 0 ]; then
    echo "$0: needs root to mount a tmpfs" >&2
    exit 2
fi
. scripts/campaign.sh
run_campaign 100 'campaign::disk_faults::disk_faults_lose_nothing_acknowledged_and_heal_without_help' "$@"
