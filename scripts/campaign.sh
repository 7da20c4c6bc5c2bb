# shellcheck shell=bash
# Sourced by the full-size campaign scripts (kill-cycles.sh,
# disk-faults.sh): parses `[--cycles N] [--seed N]`, builds the release
# daemon and runs one campaign test of the debug driver with those sizes.
#
#   run_campaign DEFAULT_CYCLES TEST_NAME "$@"

run_campaign() {
    local cycles=$1 test=$2 seed=""
    shift 2
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
    cargo nextest run --test integration --no-capture -E "test(=$test)"
}
