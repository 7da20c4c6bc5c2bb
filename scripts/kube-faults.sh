#!/usr/bin/env bash
# Deploys under Kubernetes faults at full size (docs/reliability.md): the
# API stand-in fails 20 % of requests (500, 503, 504, 429 + Retry-After,
# connections dropped before and after the apply, answers held back past
# the deploy budget) during --deploys deploys; every answer is checked
# against the cluster (tests/integration/campaign/kube_faults.rs).
#
#   scripts/kube-faults.sh [--deploys N] [--seed N]
set -euo pipefail
cd "$(dirname "$0")/.."

deploys=1000
seed=""
while [ $# -gt 0 ]; do
    case "$1" in
        --deploys) deploys="$2"; shift 2 ;;
        --seed) seed="$2"; shift 2 ;;
        *) echo "usage: $0 [--deploys N] [--seed N]" >&2; exit 2 ;;
    esac
done

export EXSEC_CAMPAIGN_DEPLOYS="$deploys"
if [ -n "$seed" ]; then export EXSEC_CAMPAIGN_SEED="$seed"; fi
cargo nextest run --test integration --no-capture \
    -E 'test(=campaign::kube_faults::deploys_under_kubernetes_faults_never_claim_a_false_success)'
