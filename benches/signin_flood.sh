#!/usr/bin/env bash
# A flood of password sign-ins against a release server: 288 POST /api/v1/login at a
# concurrency of 96 (right passwords, so no failure limit stops them), and the server's
# resident memory and threads before, at the peak and after, with the answers by status.
#   BIN=./target/release/switchboard benches/signin_flood.sh
set -u
cd "$(dirname "$0")/.."
BIN=${BIN:-./target/release/switchboard}
TOKEN=bench-admin-token-0123456789abcdef
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
SWITCHBOARD_SERVER__LISTEN=127.0.0.1:$port SWITCHBOARD_STORE__PATH=$dir/data SWITCHBOARD_API__ADMIN_TOKEN=$TOKEN \
  RUST_LOG=error "$BIN" > /dev/null 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
  -d '{"id":"a1","name":"Ann","queues":["support"],"password":"flood-password-1"}' "http://127.0.0.1:$port/api/v1/agents"
rss() { awk '/VmRSS/ {print int($2/1024)}' "/proc/$pid/status"; }
threads() { awk '/Threads/ {print $2}' "/proc/$pid/status"; }
before=$(rss); tbefore=$(threads)
peak=$before; tpeak=$tbefore
( while kill -0 $pid 2>/dev/null; do echo "$(rss) $(threads)"; sleep 0.02; done ) > "$dir/samples" &
sampler=$!
start=$(date +%s.%N)
seq 1 288 | xargs -P 96 -I{} curl -s -o /dev/null -w '%{http_code}\n' -H 'content-type: application/json' \
  -d '{"id":"a1","password":"flood-password-1"}' "http://127.0.0.1:$port/api/v1/login" > "$dir/codes"
end=$(date +%s.%N)
sleep 1
kill $sampler 2>/dev/null; wait $sampler 2>/dev/null
peak=$(awk 'BEGIN {m=0} {if ($1>m) m=$1} END {print m}' "$dir/samples")
tpeak=$(awk 'BEGIN {m=0} {if ($2>m) m=$2} END {print m}' "$dir/samples")
echo "binary: $BIN"
echo "answers: $(sort "$dir/codes" | uniq -c | tr '\n' ' ')"
echo "RSS MB: before $before, peak $peak, after $(rss); threads: before $tbefore, peak $tpeak"
echo "wall: $(echo "$end - $start" | bc) s"
kill $pid; wait $pid 2>/dev/null; rm -rf "$dir"
