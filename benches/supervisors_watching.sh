#!/usr/bin/env bash
# Arrival -> offer p99 at 1,000 arrivals/s, 2,000 agents, with 0 and 100 supervisors
# watching; a fresh release server on a fresh store per run, N alternating.
# BINS="old:DIR new:DIR" compares builds (each server with the harness of its own build),
# alternating them within each run; the default is this checkout's release build.
set -u
cd "$(dirname "$0")/.."
TOKEN=bench-admin-token-0123456789abcdef
for run in ${RUNS:-1 2}; do
  for n in ${NS:-0 100}; do
    for bin in ${BINS:-main:./target/release}; do
      name=${bin%%:*}
      d=${bin#*:}
      dir=$(mktemp -d)
      port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
      SWITCHBOARD_SERVER__LISTEN=127.0.0.1:$port SWITCHBOARD_STORE__PATH=$dir/data SWITCHBOARD_API__ADMIN_TOKEN=$TOKEN env ${EXTRA:-} \
        RUST_LOG=warn "$d/switchboard" > /dev/null 2>&1 &
      pid=$!
      for _ in $(seq 1 100); do curl -fsS http://127.0.0.1:$port/readyz >/dev/null 2>&1 && break; sleep 0.1; done
      echo "== $name run $run supervisors $n (load $(cut -d' ' -f1 /proc/loadavg))"
      "$d/switchboard-load" --url http://127.0.0.1:$port --admin-token $TOKEN --quiet \
        --agents 2000 --rate 1000 --duration 10s --supervisors $n 2>&1 | grep -iE "offer|supervisors|p99|lifecycles|check" | head -12
      kill $pid; wait $pid 2>/dev/null; rm -rf "$dir"
    done
  done
done
