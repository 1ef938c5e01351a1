#!/usr/bin/env bash
# One tenant against twenty with the same total load (issue 23, BENCHMARKS.md "Tenants"):
# a fresh server, then either one load harness in tenant `default` (AGENTS agents, RATE
# arrivals/s), or TENANTS tenants created through the operator API, each driven by its
# own harness with AGENTS/TENANTS agents and RATE/TENANTS arrivals/s, all at once. Each
# harness prints its own figures; the script sums lifecycles/s and lists each p50/p99.
#
#   BIN=./target/release TENANTS=20 benches/tenants_measure.sh
#
# BIN holds `switchboard` and `switchboard-load`. AGENTS (2000), RATE (1000), DURATION
# (20s). TENANTS=1 runs the single-tenant baseline (in tenant `default`). HOT=1 makes the
# first tenant's harness send HOT_RATE (default 1500) arrivals/s while the others send
# QUIET_RATE (default 10) each: a hot tenant beside quiet ones. SAME_TENANT=1 runs the
# TENANTS harnesses all in tenant `default`: the same harness processes, one store.
# SEPARATE=1 (with HOT=1) is the floor of isolation on this machine: the hot harness
# drives a second server process of its own, the quiet ones tenant `default` of the
# first; the two servers share nothing but the machine's cores.
set -u
cd "$(dirname "$0")/.."
BIN=${BIN:?set BIN}
TENANTS=${TENANTS:-20}
AGENTS=${AGENTS:-2000}
RATE=${RATE:-1000}
DURATION=${DURATION:-20s}
HOT=${HOT:-0}
HOT_RATE=${HOT_RATE:-1500}
QUIET_RATE=${QUIET_RATE:-10}
ADMIN=bench-admin-token-0123456789abcdef
OPERATOR=bench-operator-token-9f8e7d6c5b4a39281706f5e4d3c2b1a0
WORK=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
SWITCHBOARD_SERVER__LISTEN=127.0.0.1:$port SWITCHBOARD_STORE__PATH=$WORK/data \
  SWITCHBOARD_API__ADMIN_TOKEN=$ADMIN SWITCHBOARD_API__OPERATOR_TOKEN=$OPERATOR \
  SWITCHBOARD_SERVER__MAX_TENANTS=$((TENANTS + 1)) RUST_LOG=warn "$BIN/switchboard" > "$WORK/server.log" 2>&1 &
pid=$!
pids=$pid
if [ "${SEPARATE:-0}" = 1 ]; then
  port2=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  SWITCHBOARD_SERVER__LISTEN=127.0.0.1:$port2 SWITCHBOARD_STORE__PATH=$WORK/data2 \
    SWITCHBOARD_API__ADMIN_TOKEN=$ADMIN RUST_LOG=warn "$BIN/switchboard" > "$WORK/server2.log" 2>&1 &
  pids="$pid $!"
  for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$port2/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
fi
trap 'kill $pids 2>/dev/null; wait $pids 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
base="http://127.0.0.1:$port"
tokens=()
if [ "${SAME_TENANT:-0}" = 1 ] || [ "${SEPARATE:-0}" = 1 ]; then
  # The control: as many harnesses as TENANTS, all in tenant `default` (one store).
  for _ in $(seq 1 "$TENANTS"); do tokens+=("$ADMIN"); done
elif [ "$TENANTS" -le 1 ]; then
  tokens=("$ADMIN")
else
  for i in $(seq 1 "$TENANTS"); do
    t=$(curl -fsS -X POST "$base/api/v1/tenants" -H "Authorization: Bearer $OPERATOR" \
      -H 'Content-Type: application/json' -d "{\"id\":\"t$i\",\"name\":\"Tenant $i\"}" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["admin_token"])')
    tokens+=("$t")
  done
fi
n=${#tokens[@]}
agents=$((AGENTS / n))
cpu0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
i=0
for t in "${tokens[@]}"; do
  i=$((i + 1))
  rate=$(python3 -c "print($RATE / $n)")
  if [ "$HOT" = 1 ]; then
    if [ $i = 1 ]; then rate=$HOT_RATE; else rate=$QUIET_RATE; fi
  fi
  url=$base
  if [ "${SEPARATE:-0}" = 1 ] && [ $i = 1 ]; then url="http://127.0.0.1:$port2"; fi
  "$BIN/switchboard-load" --url "$url" --admin-token "$t" --quiet --id-prefix "h$i-" \
    --agents "$agents" --rate "$rate" --duration "$DURATION" > "$WORK/load-$i.log" 2>&1 &
done
wait $(jobs -p | grep -vE "^(${pids// /|})$") 2>/dev/null
cpu1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
# The store's group commit over the whole run: flushes, commits per flush, time per flush.
curl -fsS -H "Authorization: Bearer $ADMIN" "$base/metrics" | python3 -c '
import sys
v = {}
for line in sys.stdin:
    for name in ("switchboard_store_commits_per_flush", "switchboard_store_flush_seconds"):
        for part in ("_sum", "_count"):
            if line.startswith(name + part + " "):
                v[name + part] = float(line.split()[1])
    if line.startswith("switchboard_store_flush_seconds_bucket{le=\"0.05\"} "):
        v["under_50ms"] = float(line.split()[1])
n = v.get("switchboard_store_flush_seconds_count", 0)
if n:
    print("store: %d flushes, %.1f commits per flush, %.2f ms per flush, %d over 50 ms" % (
        n, v["switchboard_store_commits_per_flush_sum"] / n, 1000 * v["switchboard_store_flush_seconds_sum"] / n,
        n - v.get("under_50ms", n)))
'
echo "== tenants $n, agents $agents each, hot $HOT, server CPU $(( (cpu1 - cpu0) / $(getconf CLK_TCK) )) s"
total=0
for i in $(seq 1 "$n"); do
  tp=$(grep -oE 'throughput: [0-9.]+' "$WORK/load-$i.log" | grep -oE '[0-9.]+')
  line=$(grep 'arrival → offer' "$WORK/load-$i.log" | awk '{print "p50", $(NF-4), "p99", $(NF-2)}')
  err=$(grep -E '^errors' "$WORK/load-$i.log")
  echo "tenant $i: $tp lifecycles/s, arrival → offer $line ms; $err"
  total=$(python3 -c "print(${total} + ${tp:-0})")
done
echo "total: $total lifecycles/s"
