#!/usr/bin/env bash
# Checks everything under packaging/, offline:
#   1. builds the .deb with cargo-deb (reusing the release build) and
#      inspects it: files, owners, modes, conffiles, maintainer scripts;
#   2. runs `systemd-analyze verify` and `security --offline` on the unit
#      exactly as packaged (exposure must stay below 2.0);
#   3. installs the .deb into a scratch root with dpkg (--root, scripts run
#      chrootless with DPKG_ROOT), reinstalls, upgrades, removes and purges
#      it, checking users, directories, modes, and that key files and the
#      admin token stay byte-identical throughout;
#   4. validates the Kubernetes manifests strictly against the JSON schemas
#      shipped in the kubernetes-validate package (no network), and checks
#      that the Role grants exactly the verbs of SPEC §5;
#   5. if strace is present, runs the daemon and checks that every system
#      call it makes is allowed by the unit's SystemCallFilter.
#
# Needs: cargo-deb, dpkg, systemd-analyze (package `systemd`), python3, and
# kubernetes-validate (on PATH, or $KUBERNETES_VALIDATE, or the venv that
# .ci/run installs under $EXSEC_CI_CACHE). Run as root (dpkg --root chowns).
# Usage: packaging/check.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
cache=${EXSEC_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/exsec-ci}
started=$SECONDS

step() { printf '\n--> packaging: %s\n' "$*"; }
fail() {
  printf 'packaging check FAILED: %s\n' "$*" >&2
  exit 1
}
checks=0
ok() {
  checks=$((checks + 1))
  printf '  ok  %s\n' "$*"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ---------------------------------------------------------------------------
step "build the .deb (cargo deb, reusing the release build)"
cargo deb --package exsec --locked --fast --output "$work/deb" >"$work/cargo-deb.log" 2>&1 ||
  {
    cat "$work/cargo-deb.log" >&2
    fail "cargo deb"
  }
deb=$(echo "$work"/deb/exsec_*.deb)
dbgsym=$(echo "$work"/deb/exsec-dbgsym_*.ddeb)
{ [ -f "$deb" ] && [ -f "$dbgsym" ]; } || fail "cargo deb made: $(ls "$work/deb")"
version=$(dpkg-deb --field "$deb" Version)
ok "built $(basename "$deb") ($(du -h "$deb" | cut -f1)) and $(basename "$dbgsym")"

step "inspect the .deb"
dpkg-deb --contents "$deb" | awk '{ print $1, $2, $6 }' >"$work/contents"
expect_entry() { # mode owner path
  grep -qxF -- "$1 $2 $3" "$work/contents" ||
    fail "package lacks '$1 $2 $3'; it has: $(grep -F " $3" "$work/contents" || echo nothing)"
  ok "$3 $1 $2"
}
expect_entry -rwxr-xr-x 0/0 ./usr/bin/exsec
expect_entry -rw-r--r-- 0/0 ./usr/lib/systemd/system/exsec.service
expect_entry -rw-r--r-- 0/0 ./usr/lib/sysusers.d/exsec.conf
expect_entry -rw-r--r-- 0/0 ./usr/lib/tmpfiles.d/exsec.conf
expect_entry -rw-r--r-- 0/0 ./etc/exsec/config.toml
expect_entry -rw-r--r-- 0/0 ./usr/share/doc/exsec/air-gapped.md
expect_entry -rw-r--r-- 0/0 ./usr/share/doc/exsec/config.example.toml
expect_entry -rw-r--r-- 0/0 ./usr/share/doc/exsec/kubernetes/10-rbac.yaml
if grep -E ' \./(etc/exsec/(keys\.d|admin\.token)|var/lib/exsec)' "$work/contents"; then
  fail "the package must not ship keys, the admin token or state (above)"
fi
ok "ships no key, token or state"
cmp -s <(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./etc/exsec/config.toml) packaging/debian/config.toml ||
  fail "/etc/exsec/config.toml differs from packaging/debian/config.toml"
cmp -s <(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/lib/systemd/system/exsec.service) \
  packaging/systemd/exsec.service || fail "packaged unit differs from packaging/systemd/exsec.service"
ok "config.toml and the unit are the files from packaging/"
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/exsec >"$work/exsec.bin"
if readelf --section-headers "$work/exsec.bin" | grep -qE '\.debug_(info|line)'; then
  fail "/usr/bin/exsec is not stripped (its symbols belong in the dbgsym package)"
fi
dpkg-deb --contents "$dbgsym" | grep -q '/usr/lib/debug/.build-id/.*\.debug$' ||
  fail "the dbgsym package holds no .debug file"
ok "binary stripped; debug symbols in $(basename "$dbgsym")"

dpkg-deb --info "$deb" >"$work/info"
for field in "Package: exsec" "Section: admin" "Architecture: $(dpkg --print-architecture)"; do
  grep -qF " $field" "$work/info" || fail "control lacks '$field'"
done
depends=$(dpkg-deb --field "$deb" Depends)
[[ $depends == *libc6* && $depends == *adduser* ]] || fail "Depends is '$depends'"
ok "control: exsec, admin, Depends: $depends"

dpkg-deb --control "$deb" "$work/control"
[ "$(cat "$work/control/conffiles")" = /etc/exsec/config.toml ] ||
  fail "conffiles is '$(cat "$work/control/conffiles")', expected /etc/exsec/config.toml"
ok "conffiles: /etc/exsec/config.toml"
for script in postinst prerm postrm; do
  [ -x "$work/control/$script" ] || fail "maintainer script $script missing or not executable"
  cmp -s "$work/control/$script" "packaging/debian/$script" ||
    fail "$script in the package differs from packaging/debian/$script"
  sh -n "$work/control/$script" || fail "$script: syntax error"
done
ok "maintainer scripts postinst, prerm, postrm (0755, from packaging/debian)"
if command -v shellcheck >/dev/null; then
  shellcheck -s sh packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm
  ok "shellcheck clean"
fi

# ---------------------------------------------------------------------------
step "systemd-analyze on the packaged unit"
# systemd-analyze resolves the unit, its ExecStart binary and the targets it
# is ordered against inside --root; a root made of the extracted package plus
# the host's target units works without a running systemd (PID 1 need not
# be systemd) and checks exactly what is shipped.
unit_root=$work/unit-root
dpkg-deb --extract "$deb" "$unit_root"
mkdir -p "$unit_root/bin"
cp "$(readlink -f /bin/kill)" "$unit_root/bin/kill" # ExecReload=/bin/kill
for unit in /usr/lib/systemd/system/*.target; do
  cp -P "$unit" "$unit_root/usr/lib/systemd/system/"
done
verify_out=$(systemd-analyze verify --man=no --root="$unit_root" exsec.service 2>&1) ||
  fail "systemd-analyze verify: $verify_out"
# Unknown keys and bad values are only warnings: any output is a failure.
[ -z "$verify_out" ] || fail "systemd-analyze verify: $verify_out"
ok "systemd-analyze verify: clean"
security_out=$(systemd-analyze security --offline=yes --root="$unit_root" --no-pager \
  --threshold=19 exsec.service 2>&1) || {
  printf '%s\n' "$security_out" >&2
  fail "systemd-analyze security: exposure 2.0 or more"
}
printf '%s\n' "$security_out" | grep -F '✗' || true
exposure=$(printf '%s\n' "$security_out" | sed -n 's/.*Overall exposure level for exsec.service: \([0-9.]*\).*/\1/p')
ok "systemd-analyze security --offline=yes: exposure $exposure (below 2.0)"

# ---------------------------------------------------------------------------
step "install into a scratch root (dpkg --root, chrootless maintainer scripts)"
root=$work/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/etc"
touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
printf 'root:x:0:0:root:/root:/bin/bash\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
dpkg_root() {
  # --force-depends: the scratch root has no libc6 or adduser installed.
  # --force-confold: keep a locally edited conffile without asking.
  EXSEC_START_ON_INSTALL=no dpkg --root="$root" --force-script-chrootless \
    --force-depends --force-confold --force-unsafe-io "$@" >>"$work/dpkg.log" 2>&1 ||
    {
      cat "$work/dpkg.log" >&2
      fail "dpkg $*"
    }
}
field() { awk -F: -v name="$2" '$1 == name { print $'"$3"' }' "$root/etc/$1"; }
expect_stat() { # path mode uid gid
  [ -e "$root$1" ] || fail "$1 missing in the scratch root"
  local actual
  actual=$(stat -c '%a %u %g' "$root$1")
  [ "$actual" = "$2 $3 $4" ] || fail "$1 is '$actual', expected '$2 $3 $4'"
}
key_files() { find "$root/etc/exsec/keys.d" -type f -name '*.key' | sort; }
fingerprint() { (cd "$root" && find etc/exsec/keys.d etc/exsec/admin.token etc/exsec/tls -type f -print0 | sort -z | xargs -0 sha256sum); }

dpkg_root -i "$deb"
uid=$(field passwd exsec 3)
gid=$(field group exsec 3)
{ [ -n "$uid" ] && [ -n "$gid" ]; } || fail "no exsec user or group in the scratch root"
[ "$uid" -lt 1000 ] || fail "exsec uid $uid is not a system uid"
[ "$(field passwd exsec 6)" = /var/lib/exsec ] || fail "exsec home is not /var/lib/exsec"
[[ "$(field passwd exsec 7)" == */nologin ]] || fail "exsec has a login shell"
ok "system user exsec ($uid:$gid), home /var/lib/exsec, no login shell"
expect_stat /etc/exsec 755 0 0
expect_stat /etc/exsec/config.toml 644 0 0
expect_stat /etc/exsec/keys.d 700 "$uid" "$gid"
expect_stat /var/lib/exsec 700 "$uid" "$gid"
expect_stat /etc/exsec/admin.token 600 "$uid" "$gid"
ok "/etc/exsec 0755 root, keys.d and /var/lib/exsec 0700 exsec, admin.token 0600 exsec"
[ "$(key_files | wc -l)" -eq 1 ] || fail "first install should generate exactly one key: $(key_files)"
first_key=$(key_files)
expect_stat "${first_key#"$root"}" 600 "$uid" "$gid"
"$root/usr/bin/exsec" --help >/dev/null
ok "first key $(basename "$first_key") generated, 0600 exsec"
expect_stat /etc/exsec/tls 755 "$uid" "$gid"
expect_stat /etc/exsec/tls/tls.crt 644 "$uid" "$gid"
expect_stat /etc/exsec/tls/tls.key 600 "$uid" "$gid"
grep -q 'BEGIN CERTIFICATE' "$root/etc/exsec/tls/tls.crt" || fail "tls.crt holds no certificate"
ok "self-signed TLS pair generated: tls.crt 0644, tls.key 0600, exsec (the packaged config serves it)"
[ -L "$root/etc/systemd/system/multi-user.target.wants/exsec.service" ] ||
  fail "exsec.service is not enabled (no multi-user.target.wants link)"
ok "exsec.service enabled"

# An operator's own key and a local config edit must survive everything.
printf '%s\n' "$(head -c 32 /dev/urandom | base64)" >"$root/etc/exsec/keys.d/prod.key"
chown "$uid:$gid" "$root/etc/exsec/keys.d/prod.key"
chmod 0600 "$root/etc/exsec/keys.d/prod.key"
printf '# edited by the operator\n' >>"$root/etc/exsec/config.toml"
before=$(fingerprint)

dpkg_root -i "$deb"
[ "$(fingerprint)" = "$before" ] || fail "reinstall changed keys or the admin token"
[ "$(key_files | wc -l)" -eq 2 ] || fail "reinstall added or removed keys: $(key_files)"
expect_stat /etc/exsec/keys.d 700 "$uid" "$gid"
grep -q 'edited by the operator' "$root/etc/exsec/config.toml" || fail "reinstall replaced the edited config"
{ [ "$(field passwd exsec 3)" = "$uid" ] && [ "$(grep -c '^exsec:' "$root/etc/passwd")" -eq 1 ]; } ||
  fail "reinstall changed the exsec user"
ok "reinstall: keys, admin token and TLS pair byte-identical, no new key, config edit kept"

cargo deb --package exsec --no-build --locked --fast --deb-version "${version%-*}-99" --output "$work/upgrade" \
  >>"$work/cargo-deb.log" 2>&1 || fail "cargo deb (upgrade package)"
dpkg_root -i "$work"/upgrade/exsec_*.deb
[ "$(fingerprint)" = "$before" ] || fail "upgrade changed keys or the admin token"
grep -q 'edited by the operator' "$root/etc/exsec/config.toml" || fail "upgrade replaced the edited config"
ok "upgrade to ${version%-*}-99: keys and admin token byte-identical, config edit kept"

dpkg_root -r exsec
[ ! -e "$root/usr/bin/exsec" ] || fail "remove left /usr/bin/exsec"
[ "$(fingerprint)" = "$before" ] || fail "remove touched keys or the admin token"
expect_stat /var/lib/exsec 700 "$uid" "$gid"
dpkg_root -P exsec
[ ! -e "$root/etc/exsec/config.toml" ] || fail "purge left /etc/exsec/config.toml"
[ "$(fingerprint)" = "$before" ] || fail "purge touched keys or the admin token"
expect_stat /var/lib/exsec 700 "$uid" "$gid"
ok "remove and purge: binary and config gone, keys, token and state kept"

dpkg_root -i "$deb"
{ [ "$(fingerprint)" = "$before" ] && [ "$(key_files | wc -l)" -eq 2 ]; } ||
  fail "install over kept keys generated a key or changed one"
ok "install after purge: existing keys kept, no new key"

# ---------------------------------------------------------------------------
step "Kubernetes manifests"
validate=${KUBERNETES_VALIDATE:-}
if [ -z "$validate" ]; then
  if command -v kubernetes-validate >/dev/null; then
    validate=$(command -v kubernetes-validate)
  else
    validate=$cache/kubernetes-validate/bin/kubernetes-validate
  fi
fi
[ -x "$validate" ] || fail "kubernetes-validate not found (.ci/run installs it into $cache)"
# The schemas ship inside the package; a network namespace without any
# interface proves the validation needs no network.
offline=()
if unshare -n true 2>/dev/null; then offline=(unshare -n); fi
# v1.33: the oldest version the k8s-openapi feature targets; and the newest
# the validator knows.
for kubernetes in 1.33.0 ""; do
  "${offline[@]}" "$validate" --strict --quiet ${kubernetes:+--kubernetes-version "$kubernetes"} \
    packaging/kubernetes/*.yaml || fail "kubernetes-validate ${kubernetes:-latest}"
done
ok "strict schema validation (1.33 and $("$validate" --version 2>&1 | tail -1)), ${offline[*]:-with network}"
"$(dirname "$validate")/python" - packaging/kubernetes/*.yaml <<'PY' || fail "manifest rules"
import sys, yaml
docs = [d for path in sys.argv[1:] for d in yaml.safe_load_all(open(path)) if d]
by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], []).append(d)
role, = by_kind["Role"]
assert role["metadata"]["namespace"] == "paas-apps", role["metadata"]
rules = sorted((tuple(r["apiGroups"]), tuple(r["resources"]), tuple(sorted(r["verbs"]))) for r in role["rules"])
verbs = tuple(sorted(["get", "list", "create", "patch", "delete"]))
assert rules == [(("",), ("secrets",), verbs), (("apps",), ("deployments",), verbs)], rules
assert "ClusterRole" not in by_kind and "ClusterRoleBinding" not in by_kind
binding, = by_kind["RoleBinding"]
assert binding["metadata"]["namespace"] == "paas-apps"
assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "exsec"}
assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "exsec", "namespace": "exsec-system"}]
sts, = by_kind["StatefulSet"]
assert sts["spec"]["replicas"] == 1
pod = sts["spec"]["template"]["spec"]
assert pod["serviceAccountName"] == "exsec"
assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["fsGroup"]
c, = pod["containers"]
sc = c["securityContext"]
assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"] == {"type": "RuntimeDefault"}
assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
    assert c[probe]["httpGet"]["scheme"] == "HTTPS", probe
mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
assert mounts["/var/lib/exsec"] == "data" and mounts["/etc/exsec/keys.d"] == "master-keys"
assert mounts["/etc/exsec/tls"] == "tls"
volumes = {v["name"]: v for v in pod["volumes"]}
assert volumes["tls"]["secret"]["secretName"] == "exsec-tls"
config = by_kind["ConfigMap"][0]["data"]["config.toml"]
assert 'tls_cert = "/etc/exsec/tls/tls.crt"' in config and 'tls_key = "/etc/exsec/tls/tls.key"' in config
for path in sys.argv[1:]:
    assert "allow_plaintext_remote = true" not in open(path).read(), path
assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
svc, = by_kind["Service"]
assert svc["spec"]["type"] == "ClusterIP"
assert {ns["metadata"]["name"] for ns in by_kind["Namespace"]} == {"exsec-system", "paas-apps"}
assert by_kind["NetworkPolicy"]
PY
ok "RBAC is exactly get,list,create,patch,delete on secrets and apps/deployments in paas-apps; pod hardening; HTTPS from the exsec-tls Secret, HTTPS probes, no plaintext"

# ---------------------------------------------------------------------------
step "system calls of the daemon against the unit's SystemCallFilter"
if command -v strace >/dev/null; then
  allowed=$work/allowed
  # The unit allows @system-service, then denies @privileged @resources.
  # `syscall-filter` lists a group's calls and nested groups (expanded here).
  expand() {
    local item
    for item in $(systemd-analyze syscall-filter --no-pager "$1" | awk 'NR > 1 && /^ +[@a-z_0-9-]+$/ { print $1 }'); do
      case $item in
        @*) expand "$item" ;;
        *) echo "$item" ;;
      esac
    done
  }
  comm -23 <(expand @system-service | sort -u) <({ expand @privileged; expand @resources; } | sort -u) >"$allowed"
  run_dir=$work/syscalls
  mkdir -p "$run_dir"
  exsec=$root/usr/bin/exsec
  "$exsec" keys generate --dir "$run_dir/keys.d" >/dev/null 2>&1
  "$exsec" tls generate --host 127.0.0.1 --out-dir "$run_dir/tls" >/dev/null 2>&1
  cat >"$run_dir/config.toml" <<'TOML'
[server]
listen = "127.0.0.1:0"
tls_cert = "tls/tls.crt"
tls_key = "tls/tls.key"
unix_socket = "run/exsec.sock"
[storage]
path = "exsec.redb"
[keys]
dir = "keys.d"
rescan_interval = "1s"
[auth]
admin_token_file = "admin.token"
[cluster]
target = "manifests"
[manifests]
dir = "manifests"
[log]
format = "json"
TOML
  strace -f -qq -o "$run_dir/trace" "$exsec" serve --config "$run_dir/config.toml" 2>"$run_dir/log" &
  tracer=$!
  # Each trace line starts with the pid; the first is the daemon's execve.
  for _ in $(seq 100); do
    grep -q '"exsec listening"' "$run_dir/log" 2>/dev/null && break
    sleep 0.1
  done
  addr=$(sed -n 's/.*"addr":"\([0-9.:]*\)".*/\1/p' "$run_dir/log" | head -1)
  [ -n "$addr" ] || {
    cat "$run_dir/log" >&2
    fail "daemon under strace did not start"
  }
  token=$(cat "$run_dir/admin.token")
  api() { curl -fsS -o /dev/null --cacert "$run_dir/tls/tls.crt" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@"; }
  api "https://$addr/healthz"
  api "https://$addr/readyz"
  api -X PUT "https://$addr/v1/tenants/acme"
  api -X PUT "https://$addr/v1/apps/web" -d '{"tenant_id": "acme"}'
  api -X PUT "https://$addr/v1/apps/web/external-secrets/openai/OPENAI_API_KEY" -d '{"value": "sk-test"}'
  api -X POST "https://$addr/v1/apps/web/deploys" -d '{"image_ref": "nginx:1.27"}'
  api "https://$addr/v1/keys"
  api --unix-socket "$run_dir/run/exsec.sock" "http://localhost/v1/tenants"
  # A renewed certificate (the watcher reloads it).
  mkdir -p "$run_dir/tls2"
  "$exsec" tls generate --host 127.0.0.1 --out-dir "$run_dir/tls2" >/dev/null 2>&1
  cp "$run_dir/tls2/tls.key" "$run_dir/tls/tls.key.new" && mv "$run_dir/tls/tls.key.new" "$run_dir/tls/tls.key"
  cp "$run_dir/tls2/tls.crt" "$run_dir/tls/tls.crt.new" && mv "$run_dir/tls/tls.crt.new" "$run_dir/tls/tls.crt"
  "$exsec" keys generate --dir "$run_dir/keys.d" >/dev/null 2>&1 # a rotation
  sleep 2
  daemon=$(awk 'NR == 1 { print $1 }' "$run_dir/trace")
  kill -HUP "$daemon"
  sleep 0.2
  kill -TERM "$daemon"
  wait "$tracer" || fail "daemon under strace exited with an error: $(tail -3 "$run_dir/log")"
  # Calls made before execve belong to strace's own child setup.
  awk '/execve\(/ { seen = 1 } seen' "$run_dir/trace" |
    sed -n 's/^[0-9]\+ \+\([a-z_0-9]\+\)(.*/\1/p' | sort -u >"$run_dir/used"
  denied=$(comm -23 "$run_dir/used" "$allowed")
  [ -z "$denied" ] || fail "the unit's SystemCallFilter would deny: $denied"
  ok "all $(wc -l <"$run_dir/used") system calls used (start, HTTPS and socket API, deploy, rotation, certificate reload, SIGHUP, SIGTERM) are allowed"
  families=$(sed -n 's/^[0-9]\+ \+socket(\(AF_[A-Z0-9]*\).*/\1/p' "$run_dir/trace" | sort -u | tr '\n' ' ' | sed 's/ $//')
  for family in $families; do
    case $family in
      AF_INET | AF_INET6 | AF_UNIX) ;;
      *) fail "RestrictAddressFamilies would refuse socket($family)" ;;
    esac
  done
  ok "socket families used: ${families:-none} (RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX)"
  if grep -E '^[0-9]+ +(mmap|mprotect|pkey_mprotect)\(.*PROT_WRITE\|PROT_EXEC' "$run_dir/trace"; then
    fail "MemoryDenyWriteExecute would refuse the writable and executable mappings above"
  fi
  ok "no writable and executable mapping (MemoryDenyWriteExecute)"
else
  echo "  skip: strace not installed (apt-get install strace)"
fi

printf '\npackaging checks took %ds\n' "$((SECONDS - started))"
printf 'packaging: %d passed, 0 failed\n' "$checks"
