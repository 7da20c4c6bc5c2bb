#!/usr/bin/env bash
# Schema-driven API testing: schemathesis (PyPI) generates requests from
# exsec's own OpenAPI document (GET /v1/openapi.json) and checks every
# answer: no 5xx, status codes, content types, headers and bodies as the
# document says, and no secret value in any answer (scripts/api-schema/
# hooks.py). It runs twice: with the admin token and with a tenant token,
# against a daemon seeded with a tenant, an app, secrets and a deploy so
# that the routes behind them answer more than 404 (the stateful phase
# follows the document's OpenAPI links from there).
#
# Usage: scripts/api-schema.sh [SECONDS_PER_TOKEN]   (default 60)
# Env:   EXSEC_BIN (default: a debug build made here), EXSEC_ST_VENV (where
#        the pinned schemathesis is installed; default under target/).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
schemathesis_version=4.32.5

target=${CARGO_TARGET_DIR:-$repo/target}
if [ -z "${EXSEC_BIN:-}" ]; then
  (cd "$repo" && cargo build --quiet --locked --bin exsec)
  EXSEC_BIN=$target/debug/exsec
fi
venv=${EXSEC_ST_VENV:-$target/schemathesis-$schemathesis_version}
if [ ! -x "$venv/bin/schemathesis" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$schemathesis_version"
fi

work=$(mktemp -d)
cleanup() {
  [ -n "${serve_pid:-}" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/config.toml" <<'TOML'
[server]
listen = "127.0.0.1:0"
[storage]
path = "exsec.redb"
cache_size = "16MiB"
[keys]
dir = "keys.d"
[auth]
admin_token_file = "admin.token"
[cluster]
target = "manifests"
[manifests]
dir = "manifests"
[deploy]
timeout = "5s"
[log]
format = "json"
TOML
"$EXSEC_BIN" keys generate --dir "$work/keys.d" >/dev/null
"$EXSEC_BIN" serve --config "$work/config.toml" 2> "$work/serve.log" &
serve_pid=$!
addr=
for _ in $(seq 1 300); do
  addr=$(sed -n 's/.*"exsec listening".*"addr":"\([^"]*\)".*/\1/p' "$work/serve.log" | head -1)
  [ -n "$addr" ] && curl -fsS "http://$addr/readyz" >/dev/null 2>&1 && break
  kill -0 "$serve_pid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$addr" ] || { echo "exsec did not start" >&2; cat "$work/serve.log" >&2; exit 1; }
base=http://$addr
admin=$(cat "$work/admin.token")

# Seed: what the generated requests can build on. Run again before each
# pass: the admin pass's stateful phase deletes what it finds (apps,
# tenants, tokens), and the tenant pass needs a live token of its own.
canary="exsec-canary-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export EXSEC_CANARY_VALUE=$canary
call() { curl -fsS -H "authorization: Bearer $admin" -H 'content-type: application/json' "$@"; }
# Each pass seeds its own tenant and app: the admin pass may leave the
# first ones in any state (an app re-registered elsewhere, a key taken by
# another provider, a pinned app), and the seeding must not depend on it.
seed() {
  local tenant=$1 app=$2
  call -X PUT "$base/v1/tenants/$tenant" >/dev/null
  call -X PUT "$base/v1/apps/$app" -d "{\"tenant_id\":\"$tenant\"}" >/dev/null
  call -X PUT "$base/v1/tenants/$tenant/external-secrets/openai/OPENAI_API_KEY" -d "{\"value\":\"$canary\"}" >/dev/null
  call -X PUT "$base/v1/apps/$app/external-secrets/openai/OPENAI_API_KEY" -d "{\"value\":\"$canary-app\"}" >/dev/null
  # A second version of each, so that history routes have one to restore.
  call -X PUT "$base/v1/tenants/$tenant/external-secrets/openai/OPENAI_API_KEY" -d "{\"value\":\"$canary-2\"}" >/dev/null
  call -X PUT "$base/v1/apps/$app/external-secrets/openai/OPENAI_API_KEY" -d "{\"value\":\"$canary-app-2\"}" >/dev/null
  # The hooks aim half the generated path parameters at these.
  export EXSEC_ST_TENANT=$tenant EXSEC_ST_APP=$app
  EXSEC_ST_DEPLOY=$(call -X POST "$base/v1/apps/$app/deploys" -d '{"image_ref":"nginx:1.27"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["deploy_id"])')
  export EXSEC_ST_DEPLOY
}

status=0
for who in admin tenant; do
  seed "acme-$who" "web-$who"
  # The tenant pass must not revoke its own token halfway through.
  exclude=()
  if [ "$who" = admin ]; then
    token=$admin
  else
    token=$(call -X POST "$base/v1/tenants/acme-$who/tokens" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
    exclude=(--exclude-path '/v1/tenants/{tenant_id}/tokens/{token_id}')
  fi
  echo "==> schemathesis as $who ($seconds s)"
  SCHEMATHESIS_HOOKS=hooks PYTHONPATH="$repo/scripts/api-schema" \
    "$venv/bin/schemathesis" run "$base/v1/openapi.json" \
    --header "Authorization: Bearer $token" "${exclude[@]}" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,no_secret_value_in_answers \
    --max-time "$seconds" --workers 1 --request-timeout 10 \
    --suppress-health-check all --no-color || status=1
done
if grep -q '"level":"ERROR"' "$work/serve.log"; then
  echo "==> errors the daemon logged:" >&2
  grep '"level":"ERROR"' "$work/serve.log" | head -20 >&2
fi
exit $status
