#!/usr/bin/env bash
# A cluster from outside (docs/CLUSTER.md): three NATS servers as one JetStream cluster on
# loopback ports (temporary directories), three `switchboard` nodes sharing tenant
# `default` through it, and three measurements, each on a cluster of its own:
#
# - takeover: a light steady write load (one curl at a time, POST /api/v1/conversations,
#   WRITE_PAUSE seconds apart) against the owner; KILLS times: find the owner, SIGKILL
#   it, time from the kill until another node answers GET /api/v1/queues 200 (each
#   survivor polled by a loop of its own), then start the killed node again on its store
#   directory, so that there are always three. Per kill: the takeover, the takeover less
#   the lease, when the new owner's log says it took the lease and how long its rebuild
#   took (snapshot covered, entries replayed); then every conversation acknowledged (201)
#   before the kill is read from the new owner (GET /api/v1/conversations/{id}, 200 with
#   the customer it was opened for): the count checked and lost. At the end every acknowledged one is read once more.
# - throughput: `switchboard-load --agents AGENTS --duration DURATION` against the owner of
#   a three-node cluster (replicas 3), then against a single node without [cluster] on a
#   fresh sled store, PAIRS times alternated.
# - rebuild: `switchboard-load --hold-open --agents HOLD_AGENTS --capacity HOLD_CAPACITY
#   --conversations HOLD` against the owner, then the owner SIGKILLed: the time until
#   another node answers, and from the new owner's log when it took the lease, the
#   rebuild (snapshot covered, entries replayed, took_ms), and its recovery phases and
#   open conversations from /metrics.
#
#   BIN=./target/release OUT=/tmp/cluster-bench benches/cluster_measure.sh
#
# BIN holds `switchboard` and `switchboard-load`; `nats-server` (2.9 or later) is taken
# from PATH or /usr/sbin (NATS=path overrides); curl, jq and python3 are used.
# PARTS ("takeover throughput rebuild") picks the measurements. LEASE_MS (1500), KILLS
# (20), SETTLE (3: seconds between a restarted node's /readyz and the next kill),
# WRITE_PAUSE (0.2), SNAPSHOT_EVERY (10000, the config's default); PAIRS (3), AGENTS (200),
# DURATION (10s); HOLD (100000), HOLD_AGENTS (1000), HOLD_CAPACITY (100), HOLD_WAIT (600:
# seconds the new owner may take). OUT (default: a new temporary directory, kept) gets
# the raw output: every node's and NATS server's log, each harness's output, the per-kill
# table, the acknowledged ids, and summary.txt (what this script prints). The load
# average (`/proc/loadavg`) is printed beside each figure.
set -u
cd "$(dirname "$0")/.." || exit 1
BIN=${BIN:?set BIN}
PARTS=${PARTS:-takeover throughput rebuild}
LEASE_MS=${LEASE_MS:-1500}
KILLS=${KILLS:-20}
SETTLE=${SETTLE:-3}
WRITE_PAUSE=${WRITE_PAUSE:-0.2}
SNAPSHOT_EVERY=${SNAPSHOT_EVERY:-10000}
PAIRS=${PAIRS:-3}
AGENTS=${AGENTS:-200}
DURATION=${DURATION:-10s}
HOLD=${HOLD:-100000}
HOLD_AGENTS=${HOLD_AGENTS:-1000}
HOLD_CAPACITY=${HOLD_CAPACITY:-100}
HOLD_WAIT=${HOLD_WAIT:-600}
STABLE=${STABLE:-30}
NATS=${NATS:-$(command -v nats-server || echo /usr/sbin/nats-server)}
ADMIN=bench-admin-token-0123456789abcdef
WORK=$(mktemp -d)
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
nats_pids=()
node_pids=()
node_ports=()
helpers=()
NATS_URLS=
trap 'kill -9 "${node_pids[@]}" "${helpers[@]}" 2>/dev/null; kill "${nats_pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
now_ms() { date +%s%3N; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
say() { echo "$*" | tee -a "$SUMMARY"; }
# The HTTP status of a GET with the admin's token ("000": no answer within $2 seconds).
status() { curl -s -o /dev/null -w '%{http_code}' --max-time "${2:-2}" -H "Authorization: Bearer $ADMIN" "$1"; }
node_url() { echo "http://127.0.0.1:${node_ports[$1]}"; }
# Nearest-rank p50, p99 and max of the numbers on standard input.
percentiles() {
  python3 -c '
import math, sys
v = sorted(float(x) for x in sys.stdin.read().split())
if not v:
    print("none"); sys.exit()
r = lambda p: v[max(0, math.ceil(p * len(v)) - 1)]
print("n %d, p50 %.0f, p99 %.0f, max %.0f, min %.0f ms" % (len(v), r(0.5), r(0.99), v[-1], v[0]))'
}

# Three NATS servers, one JetStream cluster, in $WORK/$1 (logs in $OUT/$1-nats-nI.log);
# returns once JetStream has a meta leader and three peers.
nats_up() {
  local dir=$WORK/$1 i j routes c=() r=() m=()
  mkdir -p "$dir"
  for i in 0 1 2; do c[i]=$(freeport); r[i]=$(freeport); m[i]=$(freeport); done
  NATS_URLS=
  for i in 0 1 2; do
    routes=
    for j in 0 1 2; do [ "$j" = "$i" ] || routes+="${routes:+, }nats://127.0.0.1:${r[j]}"; done
    cat > "$dir/n$i.conf" <<EOF
server_name: n$i
listen: 127.0.0.1:${c[i]}
http: 127.0.0.1:${m[i]}
jetstream { store_dir: "$dir/n$i" }
cluster { name: switchboard-bench
  listen: 127.0.0.1:${r[i]}
  routes: [$routes] }
EOF
    "$NATS" -c "$dir/n$i.conf" > "$OUT/$1-nats-n$i.log" 2>&1 &
    nats_pids[i]=$!
    NATS_URLS+="${NATS_URLS:+,}nats://127.0.0.1:${c[i]}"
  done
  for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:${m[0]}/jsz" 2>/dev/null |
      jq -e '(.meta_cluster.leader // "") != "" and (.meta_cluster.cluster_size // 0) >= 3' > /dev/null && return 0
    sleep 0.1
  done
  say "the NATS cluster $1 elected no JetStream meta leader within 30 s"
  return 1
}

# Node $1 of cluster $2 (store $WORK/$2/nodeI, port kept across restarts), appending to
# $OUT/$2-nodeI.log.
node_start() {
  local i=$1
  echo "=== node-$i started $(date -u +%FT%T.%3NZ)" >> "$OUT/$2-node$i.log"
  SWITCHBOARD_SERVER__LISTEN=127.0.0.1:${node_ports[i]} SWITCHBOARD_STORE__PATH=$WORK/$2/node$i \
    SWITCHBOARD_API__ADMIN_TOKEN=$ADMIN SWITCHBOARD_CLUSTER__NATS_URL=$NATS_URLS \
    SWITCHBOARD_CLUSTER__NODE_ID=node-$i SWITCHBOARD_CLUSTER__ADVERTISE_URL=http://127.0.0.1:${node_ports[i]} \
    SWITCHBOARD_CLUSTER__LEASE_MS=$LEASE_MS SWITCHBOARD_CLUSTER__REPLICAS=3 \
    SWITCHBOARD_CLUSTER__SNAPSHOT_EVERY=$SNAPSHOT_EVERY \
    RUST_LOG=warn,switchboard::cluster=info "$BIN/switchboard" >> "$OUT/$2-node$i.log" 2>&1 &
  node_pids[i]=$!
}

# The index of the node that routes the tenant now: its /metrics answers 200 (a standby
# answers everything but /livez, /readyz and GET /api/v1/cluster itself, with 503).
owner() {
  local i
  for i in 0 1 2; do
    [ "$(status "$(node_url "$i")/metrics" 2)" = 200 ] && { echo "$i"; return 0; }
  done
  return 1
}
wait_owner() {
  local until=$(( $(now_ms) + $1 * 1000 ))
  while [ "$(now_ms)" -lt "$until" ]; do owner && return 0; sleep 0.1; done
  return 1
}

cluster_up() {
  local i
  nats_up "$1" || return 1
  for i in 0 1 2; do node_ports[i]=$(freeport); node_start "$i" "$1"; done
  if ! wait_owner 60 > /dev/null; then
    say "cluster $1: no node routes the tenant 60 s after the start"
    return 1
  fi
}

cluster_down() {
  kill "${node_pids[@]}" 2>/dev/null
  wait "${node_pids[@]}" 2>/dev/null
  kill "${nats_pids[@]}" 2>/dev/null
  wait "${nats_pids[@]}" 2>/dev/null
  node_pids=()
  nats_pids=()
}

# Polls node $1's GET /api/v1/queues until 200, then appends "MS NODE" to $2.
poll() {
  local url
  url="$(node_url "$1")/api/v1/queues"
  until [ "$(status "$url" 5)" = 200 ]; do sleep 0.02; done
  echo "$(now_ms) $1" >> "$2"
}

# SIGKILLs node $1 of cluster $2 and waits up to $3 seconds for another node to answer
# GET /api/v1/queues 200. Sets KILLED_AT (ms), TAKEN_AT (ms, empty: none) and NEW_OWNER,
# and LOG_FROM[i], each node's log length before the kill.
kill_and_time() {
  local o=$1 i first=$WORK/first pollers=()
  rm -f "$first"
  for i in 0 1 2; do LOG_FROM[i]=$(wc -l < "$OUT/$2-node$i.log"); done
  KILLED_AT=$(now_ms)
  # (Within braces sent to /dev/null: bash's own "Killed" notice of the node.)
  {
    kill -9 "${node_pids[o]}"
    for i in 0 1 2; do
      [ "$i" = "$o" ] && continue
      poll "$i" "$first" &
      pollers+=($!)
    done
    wait "${node_pids[o]}"
  } 2>/dev/null
  helpers+=("${pollers[@]}")
  until [ -s "$first" ] || [ $(( $(now_ms) - KILLED_AT )) -gt $(( $3 * 1000 )) ]; do sleep 0.01; done
  kill "${pollers[@]}" 2>/dev/null
  wait "${pollers[@]}" 2>/dev/null
  TAKEN_AT=
  NEW_OWNER=
  if [ -s "$first" ]; then read -r TAKEN_AT NEW_OWNER < <(sort -n "$first" | head -1); fi
  # A build whose standbys forward requests to the owner answers 200 on every node: the
  # new owner is the node whose /metrics answers (a standby answers it 503 itself).
  if [ -n "$TAKEN_AT" ] && i=$(owner); then NEW_OWNER=$i; fi
}

# The cluster log lines of node $1 of cluster $2 since the kill, without colours.
since_kill() { tail -n +"$(( LOG_FROM[$1] + 1 ))" "$OUT/$2-node$1.log" | sed 's/\x1b\[[0-9;]*m//g'; }
# Milliseconds from the kill to the first log line matching $3 (node $1, cluster $2).
log_after_kill() {
  local t
  t=$(since_kill "$1" "$2" | grep -m1 -- "$3" | grep -oE '^[0-9T:.-]+Z')
  [ -n "$t" ] && echo $(( $(date -d "$t" +%s%3N) - KILLED_AT ))
}
# Field $3 (name=value) of the first log line of node $1 since the kill saying "tenant rebuilt".
last_term_ms() {
  local t
  t=$(since_kill "$1" "$2" | grep -- "$3" | tail -1 | grep -oE '^[0-9T:.-]+Z')
  [ -n "$t" ] && echo $(( $(date -d "$t" +%s%3N) - KILLED_AT ))
}
# Each probe of node $1's GET /api/v1/queues, every 100 ms, as "MS NODE STATUS" into $2
# (MS: when the answer came).
watch_node() {
  local url code
  url="$(node_url "$1")/api/v1/queues"
  while :; do
    code=$(status "$url" 2)
    # The time the answer came (a new owner answers what waited while it rebuilt).
    echo "$(now_ms) $1 $code" >> "$2"
    sleep 0.1
  done
}
# From the probes in $1: "MS NODE", the first 200 of the first node that then answered
# nothing but 200 for $2 seconds; nothing while no node has.
settled() {
  python3 - "$1" "$2" <<'PY'
import sys
hold = float(sys.argv[2]) * 1000
run = {}
for line in open(sys.argv[1]):
    try:
        ms, node, code = line.split()
        ms = int(ms)
    except ValueError:
        continue
    if code != "200":
        run.pop(node, None)
        continue
    run.setdefault(node, ms)
    if ms - run[node] >= hold:
        print(run[node], node)
        break
PY
}
rebuilt_field() { since_kill "$1" "$2" | grep -m1 'tenant rebuilt' | grep -oE "(^| )$3=[^ ]+" | cut -d= -f2; }

# The light write load: one conversation at a time through whichever node routes the
# tenant. Appends "MS ID CUSTOMER" per 201 to $1, "MS STATUS CUSTOMER" per anything else
# to $2; stops when $WORK/stop-writer exists.
writer() {
  local n=0 target="" answer code
  while [ ! -e "$WORK/stop-writer" ]; do
    if [ -z "$target" ]; then target=$(owner) || { sleep 0.1; continue; }; fi
    n=$((n + 1))
    answer=$(curl -s --max-time 2 -w '\n%{http_code}' -X POST -H "Authorization: Bearer $ADMIN" \
      -H 'Content-Type: application/json' \
      -d "{\"entry_point\":\"demo-page\",\"customer\":{\"id\":\"w-$n\",\"name\":\"Carol\"},\"text\":\"hello $n\"}" \
      "$(node_url "$target")/api/v1/conversations")
    code=${answer##*$'\n'}
    if [ "$code" = 201 ]; then
      echo "$(now_ms) $(printf '%s' "${answer%$'\n'*}" | jq -r .id) w-$n" >> "$1"
    else
      echo "$(now_ms) ${code:-000} w-$n" >> "$2"
      target=
    fi
    sleep "$WRITE_PAUSE"
  done
}

# Reads each conversation of file $1 ("ID CUSTOMER" a line) from the node that routes the
# tenant: it must answer 200 with that customer (ids are a counter: a new owner missing a
# conversation could give its id to a later one). Appends what is missing to $2. Sets
# CHECKED and LOST.
check_ids() {
  local id customer answer code have o="" tries
  CHECKED=0
  LOST=0
  while read -r id customer; do
    [ -n "$id" ] || continue
    for tries in 1 2 3 4 5; do
      [ -n "$o" ] || o=$(wait_owner 30) || { code=no-owner; break; }
      answer=$(curl -s --max-time 5 -w '\n%{http_code}' -H "Authorization: Bearer $ADMIN" \
        "$(node_url "$o")/api/v1/conversations/$id")
      code=${answer##*$'\n'}
      case $code in 200|404) break ;; esac
      # Not an answer about the conversation (the owner changed meanwhile): ask again.
      o=
      sleep 0.5
    done
    CHECKED=$((CHECKED + 1))
    have=
    [ "$code" = 200 ] && have=$(printf '%s' "${answer%$'\n'*}" | jq -r '.customer.id')
    if [ "$have" != "$customer" ]; then
      LOST=$((LOST + 1))
      echo "$(date -u +%FT%T.%3NZ) $id of $customer: $code (customer ${have:-none}) from node-${o:-?} after $tries tries" >> "$2"
    fi
  done < "$1"
}

takeover() {
  local name=takeover acked=$OUT/takeover-acked.txt refused=$OUT/takeover-refused.txt
  local table=$OUT/takeover-kills.txt lost=$OUT/takeover-lost.txt bad=$OUT/takeover-suspicious.txt
  local k o ld took over lease_ms rebuilt_ms held checked_lines=0 all_checked=0 all_lost=0 i
  say "== takeover: 3 NATS servers, 3 nodes, lease $LEASE_MS ms, snapshot every $SNAPSHOT_EVERY entries, $KILLS SIGKILLs of the owner"
  cluster_up $name || return 1
  : > "$acked"; : > "$refused"; : > "$lost"
  rm -f "$WORK/stop-writer"
  writer "$acked" "$refused" &
  local writer_pid=$!
  helpers+=("$writer_pid")
  echo "kill killed new takeover_ms minus_lease_ms lease_taken_ms rebuild_ms snapshot replayed position refused_in_gap checked lost load" > "$table"
  sleep "$SETTLE"
  for k in $(seq 1 "$KILLS"); do
    if ! o=$(wait_owner 60); then
      say "kill $k: SUSPICIOUS: no node routes the tenant"
      break
    fi
    ld=$(load)
    kill_and_time "$o" $name 60
    if [ -z "$TAKEN_AT" ]; then
      say "kill $k: SUSPICIOUS: no node took over within 60 s of node-$o's SIGKILL (load $ld)"
      { echo "=== kill $k: node-$o killed at $(date -u -d "@${KILLED_AT:0:-3}.${KILLED_AT: -3}" +%FT%T.%3NZ), no takeover"
        for i in 0 1 2; do [ "$i" = "$o" ] || { echo "--- node-$i"; since_kill "$i" $name; }; done; } >> "$bad"
      break
    fi
    took=$((TAKEN_AT - KILLED_AT))
    over=$((took - LEASE_MS))
    lease_ms=$(log_after_kill "$NEW_OWNER" $name 'lease taken')
    rebuilt_ms=$(rebuilt_field "$NEW_OWNER" $name took_ms)
    # The acknowledged before the kill and not read yet: read them from the new owner.
    held=$(awk -v t0="$KILLED_AT" '$1 < t0' "$acked" | wc -l)
    awk -v from="$checked_lines" -v to="$held" 'NR > from && NR <= to {print $2, $3}' "$acked" > "$WORK/ids"
    checked_lines=$held
    check_ids "$WORK/ids" "$lost"
    all_checked=$((all_checked + CHECKED))
    all_lost=$((all_lost + LOST))
    echo "$k node-$o node-$NEW_OWNER $took $over ${lease_ms:--} ${rebuilt_ms:--} $(rebuilt_field "$NEW_OWNER" $name snapshot) $(rebuilt_field "$NEW_OWNER" $name replayed) $(rebuilt_field "$NEW_OWNER" $name position) $(awk -v a="$KILLED_AT" -v b="$TAKEN_AT" '$1 >= a && $1 <= b + 100' "$refused" | wc -l) $CHECKED $LOST $ld" >> "$table"
    say "kill $k: node-$o killed, node-$NEW_OWNER answered after $took ms (lease + $over ms; lease taken at ${lease_ms:-?} ms, rebuild ${rebuilt_ms:-?} ms); acknowledged before it: $CHECKED read, $LOST lost (load $ld)"
    if [ "$over" -gt 5000 ] || [ "$LOST" -gt 0 ]; then
      say "kill $k: SUSPICIOUS (takeover beyond lease + 5 s, or a lost write): logs in $bad"
      { echo "=== kill $k: node-$o killed at $KILLED_AT ms, node-$NEW_OWNER answered at $TAKEN_AT ms"
        for i in 0 1 2; do [ "$i" = "$o" ] || { echo "--- node-$i"; since_kill "$i" $name; }; done; } >> "$bad"
    fi
    node_start "$o" $name
    for _ in $(seq 1 300); do [ "$(status "$(node_url "$o")/readyz" 2)" = 200 ] && break; sleep 0.1; done
    sleep "$SETTLE"
  done
  touch "$WORK/stop-writer"
  wait "$writer_pid"
  # Every acknowledged conversation, read once more from the last owner.
  awk '{print $2, $3}' "$acked" > "$WORK/ids"
  check_ids "$WORK/ids" "$lost"
  say "takeover less the lease: $(awk 'NR > 1 {print $5}' "$table" | percentiles)"
  say "takeover (kill to 200):  $(awk 'NR > 1 {print $4}' "$table" | percentiles)"
  say "lease taken after kill:  $(awk 'NR > 1 && $6 != "-" {print $6}' "$table" | percentiles)"
  say "rebuild (log took_ms):   $(awk 'NR > 1 && $7 != "-" {print $7}' "$table" | percentiles)"
  say "owners' terms: $(cat "$OUT/$name"-node?.log | grep -c ': routing the tenant'), leases lost: $(cat "$OUT/$name"-node?.log | grep -c 'lease lost') (the nodes' logs)"
  say "acknowledged writes: $(wc -l < "$acked") acknowledged, $(wc -l < "$refused") attempts not acknowledged (503 or no answer); after each kill $all_checked read, $all_lost lost; at the end all $CHECKED read again, $LOST lost (ids in $lost)"
  cluster_down
}

# The load harness's figures in $1 on one line.
harness_line() {
  local tp offer err checks
  tp=$(grep -oE 'throughput: [0-9.]+' "$1" | grep -oE '[0-9.]+')
  offer=$(grep 'arrival → offer' "$1" | awk '{print "p50 " $(NF-4) ", p99 " $(NF-2)}')
  err=$(grep -E '^errors' "$1")
  checks=$(grep -E '^checks' "$1" | cut -d'(' -f1)
  echo "${tp:-?} lifecycles/s, arrival → offer ${offer:-?} ms; $err; $checks"
}

throughput() {
  local name=throughput p o ld port dir pid f
  say "== throughput: switchboard-load --agents $AGENTS --duration $DURATION, the owner of 3 nodes (replicas 3) and a single node on sled, $PAIRS pairs"
  cluster_up $name || return 1
  for p in $(seq 1 "$PAIRS"); do
    o=$(wait_owner 60) || { say "pair $p: SUSPICIOUS: no node routes the tenant"; break; }
    ld=$(load)
    f=$OUT/throughput-cluster-$p.txt
    "$BIN/switchboard-load" --url "$(node_url "$o")" --admin-token $ADMIN --quiet --id-prefix "c$p-" \
      --agents "$AGENTS" --duration "$DURATION" > "$f" 2>&1
    say "pair $p cluster (node-$o): $(harness_line "$f") (load $ld, after $(load))"
    port=$(freeport)
    dir=$WORK/single-$p
    SWITCHBOARD_SERVER__LISTEN=127.0.0.1:$port SWITCHBOARD_STORE__PATH=$dir/data SWITCHBOARD_API__ADMIN_TOKEN=$ADMIN \
      RUST_LOG=warn "$BIN/switchboard" > "$OUT/throughput-single-$p.log" 2>&1 &
    pid=$!
    helpers+=("$pid")
    for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$port/readyz" > /dev/null 2>&1 && break; sleep 0.1; done
    ld=$(load)
    f=$OUT/throughput-single-$p.txt
    "$BIN/switchboard-load" --url "http://127.0.0.1:$port" --admin-token $ADMIN --quiet --id-prefix "s$p-" \
      --agents "$AGENTS" --duration "$DURATION" > "$f" 2>&1
    say "pair $p single:          $(harness_line "$f") (load $ld, after $(load))"
    kill "$pid"
    wait "$pid" 2>/dev/null
    rm -rf "$dir" "$dir-attachments"
  done
  cluster_down
}

rebuild() {
  local name=rebuild o ld took pos last i t
  say "== rebuild: switchboard-load --hold-open --agents $HOLD_AGENTS --capacity $HOLD_CAPACITY --conversations $HOLD against the owner, then SIGKILL"
  cluster_up $name || return 1
  o=$(wait_owner 60) || return 1
  ld=$(load)
  t=$(now_ms)
  "$BIN/switchboard-load" --url "$(node_url "$o")" --admin-token $ADMIN --quiet --id-prefix "hold-" \
    --hold-open --agents "$HOLD_AGENTS" --capacity "$HOLD_CAPACITY" --conversations "$HOLD" \
    --server-pid "${node_pids[o]}" --drain-timeout "${HOLD_WAIT}s" > "$OUT/rebuild-hold.json" 2> "$OUT/rebuild-hold.err"
  say "hold-open on node-$o: exit $?, $(( ($(now_ms) - t) / 1000 )) s; $(jq -c '{desktops_connected, conversations_opened, conversations_accepted, open_errors, open_s, server_rss_kib}' "$OUT/rebuild-hold.json" 2>/dev/null) (load $ld, after $(load))"
  # The log's end, once it has stopped moving (the hold-open's last commits and offers).
  last=
  for _ in $(seq 1 60); do
    pos=$(curl -s --max-time 5 -H "Authorization: Bearer $ADMIN" "$(node_url "$o")/api/v1/cluster" | jq -r '.tenants[0].log_position // empty')
    [ -n "$pos" ] && [ "$pos" = "$last" ] && break
    last=$pos
    sleep 2
  done
  say "owner node-$o: log position $pos, open conversations $(curl -s -H "Authorization: Bearer $ADMIN" "$(node_url "$o")/metrics" | grep -E '^switchboard_tenant_conversations_open' | awk '{print $2}' | paste -sd' '), snapshots written: $(sed 's/\x1b\[[0-9;]*m//g' "$OUT/$name-node$o.log" | grep -c 'snapshot written')"
  sed 's/\x1b\[[0-9;]*m//g' "$OUT/$name-node$o.log" | grep 'snapshot written' | tail -2 | tee -a "$SUMMARY"
  ld=$(load)
  # Each survivor probed every 100 ms from the kill on; the tenant is settled once one
  # node has answered nothing but 200 for STABLE seconds (a new owner that loses its lease
  # again steps down, and another node rebuilds the tenant once more).
  local probes=$OUT/rebuild-probes.txt watchers=() first settled_at
  : > "$probes"
  for i in 0 1 2; do LOG_FROM[i]=$(wc -l < "$OUT/$name-node$i.log"); done
  KILLED_AT=$(now_ms)
  {
    kill -9 "${node_pids[o]}"
    wait "${node_pids[o]}"
  } 2>/dev/null
  for i in 0 1 2; do
    [ "$i" = "$o" ] && continue
    watch_node "$i" "$probes" &
    watchers+=($!)
  done
  helpers+=("${watchers[@]}")
  settled_at=
  while [ $(( $(now_ms) - KILLED_AT )) -lt $(( HOLD_WAIT * 1000 )) ]; do
    settled_at=$(settled "$probes" "$STABLE")
    [ -n "$settled_at" ] && break
    sleep 1
  done
  kill "${watchers[@]}" 2>/dev/null
  wait "${watchers[@]}" 2>/dev/null
  first=$(grep -m1 ' 200$' "$probes")
  if [ -n "$first" ]; then
    say "node-$o killed (load $ld): the first 200 from node-$(cut -d' ' -f2 <<< "$first") after $(( ${first%% *} - KILLED_AT )) ms"
  else
    say "node-$o killed (load $ld): no 200 from any node"
  fi
  if [ -z "$settled_at" ]; then
    say "SUSPICIOUS: no node answered 200 for $STABLE s on end within $HOLD_WAIT s of the kill"
    NEW_OWNER=$(tail -1 "$probes" | cut -d' ' -f2)
  else
    NEW_OWNER=${settled_at#* }
    if i=$(owner); then NEW_OWNER=$i; fi
    took=$(( ${settled_at%% *} - KILLED_AT ))
    say "settled: node-$NEW_OWNER answered 200 from $took ms after the kill (lease + $((took - LEASE_MS)) ms) and for $STABLE s on end"
  fi
  say "  since the kill: $(for i in 0 1 2; do [ "$i" = "$o" ] || since_kill "$i" $name; done | grep -c ': routing the tenant') terms as owner, $(for i in 0 1 2; do [ "$i" = "$o" ] || since_kill "$i" $name; done | grep -c 'lease lost') leases lost"
  say "  node-$NEW_OWNER's last term: lease taken at $(last_term_ms "$NEW_OWNER" $name 'lease taken') ms, rebuilt at $(last_term_ms "$NEW_OWNER" $name 'tenant rebuilt') ms ($(since_kill "$NEW_OWNER" $name | grep 'tenant rebuilt' | tail -1 | grep -oE '(snapshot|replayed|position|took_ms)=[^ ]+' | paste -sd' ')), routing at $(last_term_ms "$NEW_OWNER" $name ': routing the tenant') ms"
  for i in 0 1 2; do
    [ "$i" = "$o" ] && continue
    echo "--- node-$i since the kill"
    since_kill "$i" $name | grep -E 'lease|rebuilt|routing the tenant|stepped down|WARN|ERROR'
  done | tee -a "$SUMMARY"
  curl -s -H "Authorization: Bearer $ADMIN" "$(node_url "$NEW_OWNER")/metrics" |
    grep -E '^switchboard_(tenant_conversations_open|recovery_phase_seconds)' | tee -a "$SUMMARY"
  cluster_down
}

say "cluster_measure $(date -u +%FT%TZ): $(nproc) CPUs, load $(load), BIN=$BIN, $("$NATS" --version 2>&1), switchboard $("$BIN/switchboard" --version 2>/dev/null)"
for part in $PARTS; do
  case $part in
    takeover | throughput | rebuild) "$part" ;;
    *) say "unknown part $part (takeover, throughput, rebuild)" ;;
  esac
done
say "raw output in $OUT"
