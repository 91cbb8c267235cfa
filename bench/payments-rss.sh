#!/usr/bin/env bash
# Server memory after N payments, rules version 3 (the server's default: payments' cold tier) against rules version 2
# (every payment in memory), interleaved in one run on fresh data folders (issue 10, docs/benchmarks.md).
#
#   bench/payments-rss.sh [payments] [rounds]      default: 2000000 payments, 1 round (v3 then v2 per round)
#
# For each mode: starts rampay-server (fsync on, fraud off, cheap password hashing, the snapshotter on as by default, no
# sinks) on a new folder, runs `rampay-load tcp --count N`, waits 5 s (the snapshotter catches up, a quiet server's
# memory settles), then prints the server's VmRSS and VmHWM (peak) from /proc, the payments per second the tool measured,
# the cold tier's disk use and the payment-tier counters from /metrics when present, stops the server and removes the folder.
# EXTRA_ARGS adds server options to both modes.
set -euo pipefail
cd "$(dirname "$0")/.."
payments=${1:-2000000}
rounds=${2:-1}

dotnet build src/RamPay.Server -c Release --nologo -v quiet >/dev/null
dotnet build bench/RamPay.Load -c Release --nologo -v quiet >/dev/null
server_dll=src/RamPay.Server/bin/Release/net10.0/rampay-server.dll
load_dll=bench/RamPay.Load/bin/Release/net10.0/rampay-load.dll

run() {
  local mode=$1 rules=$2
  local data; data=$(mktemp -d -t rampay-rss-XXXXXX)
  local log="$data/server.log"
  # shellcheck disable=SC2086
  dotnet "$server_dll" --data "$data/data" --http-port 0 --tcp-port 0 \
    --admin-email admin@rampay.test --admin-password "admin-$RANDOM$RANDOM" \
    --RamPay:Fsync=true --RamPay:RateLimit:RequestsPerSecond=0 --RamPay:Auth:PasswordHashIterations=1000 --RamPay:Fraud:Enabled=false \
    --RamPay:Engine:RulesVersion="$rules" ${EXTRA_ARGS:-} >"$log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 600); do grep -q '^rampay-server: ready' "$log" && break; sleep 0.1; done
  local http tcp
  http=$(sed -n 's/^rampay-server: http listening on \(http:[^ ]*\).*/\1/p' "$log" | head -1)
  tcp=$(sed -n 's/^rampay-server: tcp listening on \([^ ]*\).*/\1/p' "$log" | head -1)
  local out; out=$(dotnet "$load_dll" tcp --http "$http" --tcp "$tcp" --count "$payments" --connections 4 --batch 100 --pipeline 8 --sample 100 2>&1 || true)
  sleep 5
  local rss hwm rate
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
  rate=$(echo "$out" | grep -iE 'payments/s|per second|throughput' | head -1 | tr -s ' ')
  local cold; cold=$(du -sk "$data/data/cold" 2>/dev/null | cut -f1 || echo 0)
  local journal; journal=$(du -sk "$data/data/journal" 2>/dev/null | cut -f1 || echo 0)
  echo "$mode rules=$rules payments=$payments rss_mb=$((rss / 1024)) peak_mb=$((hwm / 1024)) cold_mb=$((cold / 1024)) journal_mb=$((journal / 1024)) load=$(cut -d' ' -f1 /proc/loadavg) | $rate"
  echo "$out" | grep -E 'PASS|FAIL' | head -2 | sed "s/^/  $mode: /"
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$data"
}

for r in $(seq 1 "$rounds"); do
  run v3-default 3
  run v2 2
done
