#!/usr/bin/env bash
# The sinks' replica under rules 3 (issue 10, docs/benchmarks.md "Sinks' replica on the payment log"): server memory after N
# payments for two server builds (a baseline, e.g. main, and this branch), interleaved in one run on fresh data folders,
# both under rules version 3 (the default) with the local event log on (its default): so the sinks' follower runs.
#
#   bench/payments-rss-sinks.sh BASE_SERVER_DLL NEW_SERVER_DLL LOAD_DLL [payments] [rounds]
#
# Prints VmRSS and VmHWM of the server, the load tool's rate, and the sinks' follower position and replica residency when
# the build exports them (rampay_payments_replica_resident).
set -euo pipefail
base=$1 new=$2 load_dll=$3 payments=${4:-500000} rounds=${5:-1}

run() {
  local mode=$1 server_dll=$2
  local data; data=$(mktemp -d -t rampay-rss-sinks-XXXXXX)
  local log="$data/server.log"
  dotnet "$server_dll" --data "$data/data" --http-port 0 --tcp-port 0 \
    --admin-email admin@rampay.test --admin-password "admin-$RANDOM$RANDOM" \
    --RamPay:Fsync=true --RamPay:RateLimit:RequestsPerSecond=0 --RamPay:Auth:PasswordHashIterations=1000 --RamPay:Fraud:Enabled=false \
    --RamPay:Engine:ColdTier:HotPayments=65536 ${EXTRA_ARGS:-} >"$log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 900); do grep -q '^rampay-server: ready' "$log" && break; sleep 0.1; done
  local http tcp
  http=$(sed -n 's/^rampay-server: http listening on \(http:[^ ]*\).*/\1/p' "$log" | head -1)
  tcp=$(sed -n 's/^rampay-server: tcp listening on \([^ ]*\).*/\1/p' "$log" | head -1)
  local out; out=$(dotnet "$load_dll" tcp --http "$http" --tcp "$tcp" --count "$payments" --connections 4 --batch 100 --pipeline 8 --sample 100 2>&1 || true)
  sleep 10
  local rss hwm rate metrics
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
  rate=$(echo "$out" | grep -iE 'payments/s|per second|throughput' | head -1 | tr -s ' ')
  metrics=$(curl -s "$http/metrics" | grep -E '^rampay_(payments_replica_resident|payments_resident|sinks_follower_sequence)' | tr '\n' ' ' || true)
  echo "$mode payments=$payments rss_mb=$((rss / 1024)) peak_mb=$((hwm / 1024)) load=$(cut -d' ' -f1 /proc/loadavg) | $rate | $metrics"
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$data"
}

for _ in $(seq 1 "$rounds"); do
  run base "$base"
  run new "$new"
done
