#!/usr/bin/env bash
# The sinks' figures, all in one run on this machine (docs/benchmarks.md, "The sinks"):
#   1. sink lag under load: a fresh server with the PostgreSQL sink (and the Kafka sink when RAMPAY_BENCH_KAFKA is
#      set) takes TCP payments at RATE a second for SECONDS; /metrics is sampled every 0.5 s for each sink's lag;
#      then the sinks catch up and `rampay db verify` checks the database against the journal;
#   2. the PostgreSQL sink's raw speed: `rampay db rebuild` of a `rampay simulate` journal (COMMANDS commands);
#   3. the baseline: `rampay-load pg-conventional` (one PostgreSQL transaction per payment, row locks) for 10 s.
#
#   RAMPAY_BENCH_POSTGRES='Host=127.0.0.1;Username=rampay;Password=rampay;Database=rampay_bench' bench/sinks.sh
#   env: RATE (100000), SECONDS_LOAD (20), COMMANDS (2000000), CONNECTIONS (16, the baseline's), RAMPAY_BENCH_KAFKA
#
# The database named by RAMPAY_BENCH_POSTGRES is emptied (its RamPay tables and the 'conventional' schema).
# Fraud scoring is off in the server, as in bench/load.sh: the load tool's random transfers between new wallets look
# like card testing to the default model, and its self-check expects every acknowledged payment to move money.
set -euo pipefail
cd "$(dirname "$0")/.."

pg=${RAMPAY_BENCH_POSTGRES:?set RAMPAY_BENCH_POSTGRES to an Npgsql connection string (the database is emptied)}
rate=${RATE:-100000}
seconds=${SECONDS_LOAD:-20}
commands=${COMMANDS:-2000000}
connections=${CONNECTIONS:-16}

dotnet build src/RamPay.Server -c Release --nologo -v quiet >/dev/null
dotnet build src/RamPay.Cli -c Release --nologo -v quiet >/dev/null
dotnet build bench/RamPay.Load -c Release --nologo -v quiet >/dev/null
server_dll=src/RamPay.Server/bin/Release/net10.0/rampay-server.dll
cli_dll=src/RamPay.Cli/bin/Release/net10.0/rampay.dll
load_dll=bench/RamPay.Load/bin/Release/net10.0/rampay-load.dll

work=$(mktemp -d -t rampay-sinks-XXXXXX)
log="$work/server.log"
server_pid=
sampler_pid=
cleanup() {
  [ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null || true
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== 1. sink lag while the server takes $rate TCP payments/s for $seconds s"
# An empty database (the server's sink applies the migrations; its checkpoint starts at 0).
dotnet "$cli_dll" db reset --postgres "$pg" --yes >/dev/null
kafka_args=()
if [ -n "${RAMPAY_BENCH_KAFKA:-}" ]; then kafka_args=(--RamPay:Kafka:BootstrapServers="$RAMPAY_BENCH_KAFKA" --RamPay:Kafka:Topic="rampay.bench.$RANDOM"); fi
dotnet "$server_dll" --data "$work/data" --http-port 0 --tcp-port 0 \
  --admin-email admin@rampay.test --admin-password "admin-$RANDOM$RANDOM" \
  --RamPay:RateLimit:RequestsPerSecond=0 --RamPay:Auth:PasswordHashIterations=1000 \
  --RamPay:Fraud:Enabled=false --RamPay:Postgres:Connection="$pg" "${kafka_args[@]}" >"$log" 2>&1 &
server_pid=$!
for _ in $(seq 1 600); do
  grep -q '^rampay-server: ready' "$log" && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; exit 2; }
  sleep 0.1
done
http_url=$(sed -n 's/^rampay-server: http listening on \(http:[^ ]*\).*/\1/p' "$log" | head -1)
tcp_addr=$(sed -n 's/^rampay-server: tcp listening on \([^ ]*\).*/\1/p' "$log" | head -1)

samples="$work/lag.txt"
load_log="$work/load.log"
dotnet "$load_dll" tcp --http "$http_url" --tcp "$tcp_addr" --connections 4 --users 1000 --batch 100 --pipeline 8 \
  --rate "$rate" --duration "$seconds" --warmup 2 --deposit 1000000000 --max-amount 100 --sample 100 >"$load_log" 2>&1 &
load_pid=$!
# Sample from the first second of load (after sign-ups and deposits), not during the set-up.
until grep -q 'payments/s' "$load_log" || ! kill -0 "$load_pid" 2>/dev/null; do sleep 0.2; done
( while true; do
    curl -s "${http_url%/}/metrics" | awk -v t="$(date +%s.%N)" '/^rampay_sink_lag_(seconds|records)\{/ { print t, $1, $2 }'
    sleep 0.5
  done ) >"$samples" &
sampler_pid=$!
wait "$load_pid" || true
tail -8 "$load_log"
# Let the sinks catch up (bounded), then stop sampling.
for _ in $(seq 1 1200); do
  lagging=$(curl -s "${http_url%/}/metrics" | awk '/^rampay_sink_lag_records\{/ && $2 > 0 { n++ } END { print n + 0 }')
  [ "$lagging" = 0 ] && break
  sleep 0.5
done
kill "$sampler_pid" 2>/dev/null || true; sampler_pid=
echo "lag while loaded (0.5 s samples, from the first sample to the end of the load and catch-up):"
for metric in $(awk '{ print $2 }' "$samples" | sort -u); do
  awk -v m="$metric" '$2 == m { print $3 }' "$samples" | sort -g |
    awk -v m="$metric" '{ v[NR] = $1 } END { p = int(NR * 0.9); if (p < 1) p = 1; if (NR) printf "  %-44s median %s  p90 %s  max %s  (n=%d)\n", m, v[int((NR + 1) / 2)], v[p], v[NR], NR }'
done
kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=
grep -E '^rampay-server: sink' "$log" || true
dotnet "$cli_dll" db verify --data "$work/data" --postgres "$pg" | tail -6

echo "== 2. the PostgreSQL sink alone: rampay db rebuild of a $commands-command journal"
dotnet "$cli_dll" simulate --data "$work/sim" --count "$commands" --wallets 10000 | grep -E '^(commands|last_sequence) '
dotnet "$cli_dll" db rebuild --data "$work/sim" --postgres "$pg"

echo "== 3. baseline: one PostgreSQL transaction per payment, row locks on both accounts ($connections connections)"
dotnet "$load_dll" pg-conventional --postgres "$pg" --connections "$connections" --duration 10 --warmup 2
