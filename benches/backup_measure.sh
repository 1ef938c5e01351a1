#!/usr/bin/env bash
# The streaming backup against the one it replaced (BENCHMARKS.md "Streaming backup"):
# for each binary, a copy of one large store, the server's RSS before and at its peak
# during a backup (sampled every 20 ms from /proc), the backup's time and size, then the
# load harness at a steady rate without and with backups taken back to back.
#
#   STORE=/work/bench/store1m BINS="old:/path/to/old/release new:./target/release" \
#     benches/backup_measure.sh
#
# STORE is built by benches/backup_store.rs; each entry of BINS is NAME:DIR, DIR holding
# that build's `switchboard` and `switchboard-load`. RATE (200), AGENTS (200) and
# DURATION (20s) set the load; OUT (see below) where backups go; EXTRA, environment
# variables for the server (e.g. SWITCHBOARD_STORE__CACHE_MB=64).
set -u
cd "$(dirname "$0")/.."
TOKEN=bench-admin-token-0123456789abcdef
STORE=${STORE:?set STORE}
WORK=${WORK:-/tmp/switchboard-backup-bench}
RATE=${RATE:-200}
AGENTS=${AGENTS:-200}
DURATION=${DURATION:-20s}
# Where the backups go: a file on the store's disk by default; /dev/null leaves out the
# disk's writeback, which competes with the store's fsyncs.
OUT=${OUT:-$WORK.backup}
# Who writes the file: curl (default; a plain client, the server's pace alone), or `cli`,
# `switchboard backup --to OUT` of the binary under test (its own writeback steps, and
# `--rate-mb $CLI_RATE_MB` when set).
WRITER=${WRITER:-curl}

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

backup_once() {
  local base peak r c rc t0 t1
  base=$(rss "$pid"); peak=$base
  t0=$(date +%s.%N)
  if [ "$WRITER" = cli ]; then
    "$bin/switchboard" backup --to "$OUT" --url "http://127.0.0.1:$port/api/v1/admin/backup" \
      --token "$TOKEN" ${CLI_RATE_MB:+--rate-mb $CLI_RATE_MB} 2>&1 | grep -oE '[0-9]+ bytes' | cut -d' ' -f1 > "$WORK.size" &
  else
    curl -fsS -X POST -H "Authorization: Bearer $TOKEN" -o "$OUT" -w '%{size_download}\n' \
      "http://127.0.0.1:$port/api/v1/admin/backup" > "$WORK.size" &
  fi
  c=$!
  while kill -0 "$c" 2>/dev/null; do
    r=$(rss "$pid"); [ "$r" -gt "$peak" ] && peak=$r
    sleep 0.02
  done
  wait "$c"; rc=$?
  t1=$(date +%s.%N)
  echo "backup: exit $rc, $(cat "$WORK.size") bytes in $(echo "$t1 - $t0" | bc) s;" \
    "server RSS $((base / 1024)) MiB -> peak $((peak / 1024)) MiB (+$(((peak - base) / 1024)) MiB)"
}

load() {
  "$bin/switchboard-load" --url "http://127.0.0.1:$port" --admin-token "$TOKEN" --quiet --cleanup \
    --id-prefix "$1" --agents "$AGENTS" --rate "$RATE" --duration "$DURATION" 2>&1 |
    grep -iE "arrival|accept|round trip|lifecycles/s|check|error" | head -12
}

for spec in ${BINS:?set BINS}; do
  name=${spec%%:*}; bin=${spec#*:}
  rm -rf "$WORK"; cp -a "$STORE" "$WORK"; sync
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  env SWITCHBOARD_SERVER__LISTEN=127.0.0.1:$port SWITCHBOARD_STORE__PATH=$WORK SWITCHBOARD_API__ADMIN_TOKEN=$TOKEN \
    RUST_LOG=warn ${EXTRA:-} "$bin/switchboard" > "$WORK.log" 2>&1 &
  pid=$!
  t0=$(date +%s.%N)
  for _ in $(seq 1 3000); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  echo "== $name ($bin): ready in $(echo "$(date +%s.%N) - $t0" | bc) s, RSS $(($(rss $pid) / 1024)) MiB, store $(du -sh "$WORK" | cut -f1), load average $(cut -d' ' -f1 /proc/loadavg)"
  echo "-- backup alone, first (cold sled cache) and second"
  backup_once
  backup_once
  echo "-- load without a backup"
  load "${name}a"
  echo "-- load with backups back to back from 3 s in"
  ( sleep 3; while [ ! -e "$WORK.stop" ]; do backup_once; done ) &
  loop=$!
  load "${name}b"
  touch "$WORK.stop"; wait "$loop"; rm -f "$WORK.stop"
  echo "-- load without a backup, again"
  load "${name}c"
  kill "$pid"; wait "$pid" 2>/dev/null
  rm -rf "$WORK" "$WORK.backup" "$WORK.size"
done
