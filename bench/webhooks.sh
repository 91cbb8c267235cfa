#!/usr/bin/env bash
# Webhook delivery figures (issue 12: at least 10,000 deliveries/s to a local receiver with signing; p99 from payment
# acknowledgement to receipt under 1 s while the server takes 2,000 payments/s). docs/benchmarks.md, "Webhook delivery".
#
#   bench/webhooks.sh                       # all three parts, one run, machine load recorded before and after each
#   PARTS=kK bench/webhooks.sh              # the Kafka mode: rampay-worker webhooks on the worktree's Kafka mock broker
#   env: LAT_RATE (2000), LAT_SECONDS (30), TPUT_ENDPOINTS (10), TPUT_RATE (1500), TPUT_SECONDS (20), BASE_SECONDS (10),
#        SKIP_BUILD (1: use the server build there is), SERVER_ARGS (more --RamPay:... flags), PARTS (blt: which of
#        baseline, latency, throughput to run; k, K: latency and throughput with the webhooks delivered by a
#        rampay-worker webhooks process instead of the server), WORKER_ENV (more RAMPAY_WEBHOOKS__...=... for the worker),
#        SERVER_DLL, WORKER_DLL (the builds to run: another tree's, e.g. a baseline built in /tmp/wh-base2; default: this
#        tree's Release builds), PERF_SECONDS (record the server, or in the Kafka mode the worker, with `perf record -g`
#        for that many seconds, PERF_DELAY (15) seconds into each drive part, into PERF_OUT (/tmp/webhooks-PART.perf.data);
#        the process runs with DOTNET_PerfMapEnabled=1 and DOTNET_EnableWriteXorExecute=0 so its JIT-compiled frames
#        have names)
#
# The Kafka mode (k, K) needs scripts/services.sh start (it sources .services.env: RAMPAY_TEST_KAFKA, the worktree's mock
# broker, and RAMPAY_TEST_POSTGRES). Each part gets a topic of its own (auto-created, 4 partitions) and a PostgreSQL schema
# of its own (dropped after); the server publishes to the topic with Webhooks:InServer=false and the shared store; one
# rampay-worker webhooks process (group of one) consumes and delivers; node reads the worker's /metrics for the backlog.
#
# Builds rampay-server in Release and starts it for each part on a new temporary data folder (fsync on, fraud off, no
# rate limit, webhooks in the server on the embedded default: SQLite store, Webhooks:AllowPrivateNetworks=true for the
# loopback receiver), then bench/webhooks.mjs (node, no packages) holds both ends:
#   1. baseline: plain POSTs from node to its own receiver, 64 in flight: the receiver's ceiling on this machine;
#   2. latency: one endpoint, payments over HTTP at LAT_RATE/s for LAT_SECONDS: acknowledgement -> receipt p50/p90/p99;
#   3. throughput: TPUT_ENDPOINTS endpoints (one delivery per payment each) at TPUT_RATE payments/s: deliveries/s.
# Prints one JSON line per part. Kills only the server it started (by pid).
set -euo pipefail
cd "$(dirname "$0")/.."
server_dll=${SERVER_DLL:-src/RamPay.Server/bin/Release/net10.0/rampay-server.dll}
worker_dll=${WORKER_DLL:-src/RamPay.Worker/bin/Release/net10.0/rampay-worker.dll}
[ -n "${SKIP_BUILD:-}" ] || dotnet build src/RamPay.Server -c Release --nologo -v quiet >/dev/null
# Perf maps for JIT-compiled frames; W^X off, or perf cannot name the frames of the double-mapped code.
[ -n "${PERF_SECONDS:-}" ] && export DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0
if [[ ${PARTS:-blt} == *[kK]* ]]; then
  [ -n "${SKIP_BUILD:-}" ] || dotnet build src/RamPay.Worker -c Release --nologo -v quiet >/dev/null
  [ -f .services.env ] || { echo "error: the Kafka mode needs scripts/services.sh start (.services.env)" >&2; exit 2; }
  # shellcheck disable=SC1091
  source .services.env
fi
command -v node >/dev/null || { echo "error: node is needed (bench/webhooks.mjs)" >&2; exit 2; }

work=$(mktemp -d -t rampay-webhooks-XXXXXX)
server_pid=
worker_pid=
schema=
stop_server() {
  if [ -n "$worker_pid" ] && kill -0 "$worker_pid" 2>/dev/null; then
    kill -TERM "$worker_pid" 2>/dev/null || true
    wait "$worker_pid" 2>/dev/null || true
  fi
  worker_pid=
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=
  if [ -n "$schema" ]; then psql_test -q -c "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true; fi
  schema=
}
# psql on RAMPAY_TEST_POSTGRES (an Npgsql connection string: Host=...;Port=...;Username=...;Password=...;Database=...).
psql_test() {
  local kv host port user pass db
  IFS=';' read -ra kv <<<"$RAMPAY_TEST_POSTGRES"
  for p in "${kv[@]}"; do
    case "${p%%=*}" in Host) host=${p#*=} ;; Port) port=${p#*=} ;; Username) user=${p#*=} ;; Password) pass=${p#*=} ;; Database) db=${p#*=} ;; esac
  done
  PGPASSWORD=$pass psql -h "$host" -p "${port:-5432}" -U "$user" -d "$db" "$@"
}
trap 'stop_server; rm -rf "$work"' EXIT
admin_password="admin-$RANDOM$RANDOM"

start_server() { # -> $http_url
  rm -rf "$work/data"; : >"$work/server.log"
  # shellcheck disable=SC2086 # SERVER_ARGS is a list of words on purpose
  dotnet "$server_dll" --data "$work/data" --http-port 0 --tcp-port 0 \
    --admin-email admin@rampay.test --admin-password "$admin_password" \
    --RamPay:Fsync=true --RamPay:RateLimit:RequestsPerSecond=0 --RamPay:Auth:PasswordHashIterations=1000 --RamPay:Fraud:Enabled=false \
    --RamPay:Webhooks:AllowPrivateNetworks=true ${SERVER_ARGS:-} >"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 600); do
    grep -q '^rampay-server: ready' "$work/server.log" && break
    kill -0 "$server_pid" 2>/dev/null || { echo "error: the server exited during start-up:" >&2; cat "$work/server.log" >&2; exit 2; }
    sleep 0.1
  done
  grep -q '^rampay-server: ready' "$work/server.log" || { echo "error: the server was not ready within 60 s" >&2; exit 2; }
  http_url=$(sed -n 's/^rampay-server: http listening on \(http:[^ ]*\).*/\1/p' "$work/server.log" | head -1)
}
# The Kafka mode: a topic and a schema of this part's own, the server publishing to the topic with the webhooks' store in
# PostgreSQL and no in-server delivery, and one rampay-worker webhooks process. -> $http_url, $metrics_url
start_kafka_mode() {
  local topic="rampay.bench.webhooks.$RANDOM$RANDOM" port
  schema="wh_bench_$RANDOM$RANDOM"
  # A metadata request for the topic auto-creates it (4 partitions) before the worker subscribes.
  timeout 10 kcat -b "$RAMPAY_TEST_KAFKA" -L -t "$topic" >/dev/null
  local saved=${SERVER_ARGS:-}
  SERVER_ARGS="$saved --RamPay:Kafka:BootstrapServers=$RAMPAY_TEST_KAFKA --RamPay:Kafka:Topic=$topic --RamPay:Webhooks:InServer=false --RamPay:Webhooks:SharedStore=$RAMPAY_TEST_POSTGRES --RamPay:Webhooks:SharedStoreSchema=$schema"
  start_server
  SERVER_ARGS=$saved
  port=$((20000 + RANDOM % 20000))
  : >"$work/worker.log"
  # shellcheck disable=SC2086 # WORKER_ENV is a list of NAME=VALUE words on purpose
  env RAMPAY_WEBHOOKS__SHAREDSTORE="$RAMPAY_TEST_POSTGRES" RAMPAY_WEBHOOKS__SHAREDSTORESCHEMA="$schema" RAMPAY_WEBHOOKS__ALLOWPRIVATENETWORKS=true ${WORKER_ENV:-} \
    dotnet "$worker_dll" webhooks --kafka "$RAMPAY_TEST_KAFKA" --group "bench-$schema" --topic "$topic" --http-port "$port" >"$work/worker.log" 2>&1 &
  worker_pid=$!
  metrics_url="http://127.0.0.1:$port/metrics"
  for _ in $(seq 1 900); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health/ready")" = 200 ] && break
    kill -0 "$worker_pid" 2>/dev/null || { echo "error: the worker exited during start-up:" >&2; cat "$work/worker.log" >&2; exit 2; }
    sleep 0.1
  done
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health/ready")" = 200 ] || { echo "error: the worker did not join its group within 90 s:" >&2; cat "$work/worker.log" >&2; exit 2; }
}
load() { cut -d' ' -f1-3 /proc/loadavg; }
# CPU seconds the server process has used (user + system, from /proc; 0 without a server).
server_cpu() {
  if [ -n "$server_pid" ] && [ -r "/proc/$server_pid/stat" ]; then
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$server_pid/stat"
  else echo 0; fi
}
run() { # label, node args...
  local label=$1; shift
  local before after cpu0 cpu1 perf_pid= target=${worker_pid:-$server_pid}
  before=$(load); cpu0=$(server_cpu)
  if [ -n "${PERF_SECONDS:-}" ] && [ -n "$target" ]; then
    (sleep "${PERF_DELAY:-15}" && exec perf record -q -g -p "$target" -o "${PERF_OUT:-/tmp/webhooks-$label.perf.data}" -- sleep "$PERF_SECONDS" >/dev/null 2>&1) &
    perf_pid=$!
  fi
  out=$(node bench/webhooks.mjs --admin-email admin@rampay.test --admin-password "$admin_password" "$@")
  [ -z "$perf_pid" ] || wait "$perf_pid" || true
  after=$(load); cpu1=$(server_cpu)
  # server_cpu_s: what the server spent during the part (sign-ups, payments and deliveries; node's own is in the result).
  echo "{\"part\":\"$label\",\"load_before\":\"$before\",\"load_after\":\"$after\",\"server_cpu_s\":$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.1f", b - a }'),\"result\":$out}"
}

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), server $server_dll"
parts=${PARTS:-blt}
echo "# server flags: ${SERVER_ARGS:-(defaults)}"
if [[ $parts == *b* ]]; then
  run baseline --api http://127.0.0.1:1/ --phase baseline --seconds "${BASE_SECONDS:-10}"
fi
if [[ $parts == *l* ]]; then
  start_server
  run latency --api "$http_url" --phase drive --endpoints 1 --rate "${LAT_RATE:-2000}" --seconds "${LAT_SECONDS:-30}"
  stop_server
fi
if [[ $parts == *t* ]]; then
  start_server
  run throughput --api "$http_url" --phase drive --endpoints "${TPUT_ENDPOINTS:-10}" --rate "${TPUT_RATE:-1500}" --seconds "${TPUT_SECONDS:-20}"
  stop_server
fi
if [[ $parts == *k* ]]; then
  start_kafka_mode
  run kafka-latency --api "$http_url" --metrics "$metrics_url" --phase drive --endpoints 1 --rate "${LAT_RATE:-2000}" --seconds "${LAT_SECONDS:-30}"
  stop_server
fi
if [[ $parts == *K* ]]; then
  start_kafka_mode
  run kafka-throughput --api "$http_url" --metrics "$metrics_url" --phase drive --endpoints "${TPUT_ENDPOINTS:-10}" --rate "${TPUT_RATE:-1500}" --seconds "${TPUT_SECONDS:-20}"
  stop_server
fi
