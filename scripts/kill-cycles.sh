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

. scripts/campaign.sh
run_campaign 200 'campaign::kill_cycles::kill_cycles_lose_nothing_acknowledged' "$@"
