#!/usr/bin/env bash
# The sinks' figures, all in one run on this machine (docs/benchmarks.md, "The sinks"):
#   1. sink lag under load: a fresh server with the PostgreSQL sink (and the Kafka sink when RAMPAY_BENCH_KAFKA is
#      set) takes TCP payments at RATE a second for SECONDS_LOAD; /metrics is sampled every 0.5 s for each sink's lag
#      (a lag-over-time table every 5 s, then median, p90, p99 and max of the samples); then the sinks catch up and
#      `rampay db verify` checks the database against the journal;
#   2. the PostgreSQL sink's raw speed: `rampay db rebuild` of a `rampay simulate` journal (COMMANDS commands), with the
#      CPU the sink's process and its PostgreSQL backend spent per row (what saturates);
#   3. the Kafka sink's raw speed (with RAMPAY_BENCH_KAFKA): `rampay-load kafka-sink`, KAFKA_EVENTS events, with its
#      CPU per event;
#   4. the baseline design: `rampay-load pg-conventional` (one PostgreSQL transaction per payment, row locks) for 10 s.
# With BASELINE_TREE (a checkout of the code to compare with, e.g. `git archive <commit> | tar -x -C DIR`), parts 1-3
# run for the baseline first and then for this tree, back to back, so both are measured under the same machine load.
#
#   RAMPAY_BENCH_POSTGRES='Host=127.0.0.1;Username=rampay;Password=rampay;Database=rampay_bench' bench/sinks.sh
#   env: RATE (100000), SECONDS_LOAD (60), COMMANDS (1000000), KAFKA_EVENTS (2000000), CONNECTIONS (16, the
#        baseline design's), RAMPAY_BENCH_KAFKA, BASELINE_TREE, PARTS (1234: which parts to run), CATCHUP_SECONDS
#        (600: how long part 1 waits for the sinks to catch up after the load), SKIP_BUILD (1: use the builds there are)
#
# The database named by RAMPAY_BENCH_POSTGRES is emptied (its RamPay tables and the 'conventional' schema).
# Fraud scoring is off in the server, as in bench/load.sh: the load tool's random transfers between new wallets look
# like card testing to the default model, and its self-check expects every acknowledged payment to move money.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)

pg=${RAMPAY_BENCH_POSTGRES:?set RAMPAY_BENCH_POSTGRES to an Npgsql connection string (the database is emptied)}
rate=${RATE:-100000}
seconds=${SECONDS_LOAD:-60}
commands=${COMMANDS:-1000000}
kafka_events=${KAFKA_EVENTS:-2000000}
connections=${CONNECTIONS:-16}
parts=${PARTS:-1234}
catchup=${CATCHUP_SECONDS:-600}

trees=()
labels=()
if [ -n "${BASELINE_TREE:-}" ]; then trees+=("$BASELINE_TREE"); labels+=("baseline"); fi
trees+=("$here"); labels+=("this tree")

for tree in "${trees[@]}"; do
  [ -n "${SKIP_BUILD:-}" ] && break
  for project in src/RamPay.Server src/RamPay.Cli bench/RamPay.Load; do
    (cd "$tree" && dotnet build "$project" -c Release --nologo -v quiet >/dev/null)
  done
done
bin() { echo "$1/$2/bin/Release/net10.0/$3"; }

work=$(mktemp -d -t rampay-sinks-XXXXXX)
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
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# lag_run TREE LABEL: part 1 for the server of TREE.
lag_run() {
  local tree=$1 label=$2
  local server_dll cli_dll load_dll log data samples load_log
  server_dll=$(bin "$tree" src/RamPay.Server rampay-server.dll)
  cli_dll=$(bin "$here" src/RamPay.Cli rampay.dll)
  load_dll=$(bin "$here" bench/RamPay.Load rampay-load.dll)
  data="$work/data-$RANDOM"; log="$data.log"; samples="$data.lag"; load_log="$data.load"
  echo "== 1. [$label] sink lag while the server takes $rate TCP payments/s for $seconds s (load average $(loadavg))"
  dotnet "$cli_dll" db reset --postgres "$pg" --yes >/dev/null
  local kafka_args=()
  if [ -n "${RAMPAY_BENCH_KAFKA:-}" ]; then kafka_args=(--RamPay:Kafka:BootstrapServers="$RAMPAY_BENCH_KAFKA" --RamPay:Kafka:Topic="rampay.bench.$RANDOM$RANDOM"); fi
  dotnet "$server_dll" --data "$data" --http-port 0 --tcp-port 0 \
    --admin-email admin@rampay.test --admin-password "admin-$RANDOM$RANDOM" \
    --RamPay:RateLimit:RequestsPerSecond=0 --RamPay:Auth:PasswordHashIterations=1000 \
    --RamPay:Fraud:Enabled=false --RamPay:Postgres:Connection="$pg" "${kafka_args[@]}" >"$log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 600); do
    grep -q '^rampay-server: ready' "$log" && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; exit 2; }
    sleep 0.1
  done
  local http_url tcp_addr
  http_url=$(sed -n 's/^rampay-server: http listening on \(http:[^ ]*\).*/\1/p' "$log" | head -1)
  tcp_addr=$(sed -n 's/^rampay-server: tcp listening on \([^ ]*\).*/\1/p' "$log" | head -1)

  dotnet "$load_dll" tcp --http "$http_url" --tcp "$tcp_addr" --connections 4 --users 1000 --batch 100 --pipeline 8 \
    --rate "$rate" --duration "$seconds" --warmup 2 --deposit 1000000000 --max-amount 100 --sample 100 >"$load_log" 2>&1 &
  local load_pid=$!
  # Sample from the first second of load (after sign-ups and deposits), not during the set-up.
  until grep -q 'payments/s' "$load_log" || ! kill -0 "$load_pid" 2>/dev/null; do sleep 0.2; done
  local t0
  t0=$(date +%s.%N)
  ( while true; do
      curl -s -m 5 "${http_url%/}/metrics" | awk -v t="$(date +%s.%N)" -v t0="$t0" '/^rampay_sink_lag_(seconds|records)\{/ { print t - t0, $1, $2 }'
      sleep 0.5
    done ) >"$samples" &
  sampler_pid=$!
  wait "$load_pid" || true
  local load_end
  load_end=$(awk -v t="$(date +%s.%N)" -v t0="$t0" 'BEGIN { print t - t0 }')
  tail -8 "$load_log"
  echo "load average at the end of the load: $(loadavg)"
  # Let the sinks catch up (bounded: CATCHUP_SECONDS of wall time), then stop sampling.
  local catchup_end=$((SECONDS + catchup))
  while [ $SECONDS -lt $catchup_end ]; do
    lagging=$(curl -s -m 5 "${http_url%/}/metrics" | awk '/^rampay_sink_lag_records\{/ && $2 > 0 { n++ } END { print n + 0 }')
    [ "$lagging" = 0 ] && break
    sleep 0.5
  done
  kill "$sampler_pid" 2>/dev/null || true; wait "$sampler_pid" 2>/dev/null || true; sampler_pid=
  echo "lag over time (seconds of journaled time behind the head; the largest 0.5 s sample in each 5 s; load ended at ${load_end%.*} s):"
  awk '$2 ~ /^rampay_sink_lag_seconds/ { match($2, /sink="[^"]*"/); s = substr($2, RSTART + 6, RLENGTH - 7); b = int($1 / 5);
         if (!(s in seen)) { seen[s] = 1; names[++n] = s } if ($3 > m[s, b]) m[s, b] = $3; if (b > last) last = b }
       END { printf "  %8s", "t (s)"; for (i = 1; i <= n; i++) printf " %12s", names[i]; printf "\n";
             for (b = 0; b <= last; b++) { printf "  %3d-%-4d", b * 5, b * 5 + 5; for (i = 1; i <= n; i++) printf " %12.3f", m[names[i], b]; printf "\n" } }' "$samples"
  echo "lag while loaded (0.5 s samples during the load only):"
  for metric in $(awk '{ print $2 }' "$samples" | sort -u); do
    awk -v m="$metric" -v end="$load_end" '$2 == m && $1 <= end { print $3 }' "$samples" | sort -g |
      awk -v m="$metric" '{ v[NR] = $1 } END { p = int(NR * 0.9); q = int(NR * 0.99); if (p < 1) p = 1; if (q < 1) q = 1; if (NR) printf "  %-48s median %s  p90 %s  p99 %s  max %s  (n=%d)\n", m, v[int((NR + 1) / 2)], v[p], v[q], v[NR], NR }'
  done
  kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=
  grep -E '^rampay-server: sink|sink .* stopped at' "$log" || true
  dotnet "$cli_dll" db verify --data "$data" --postgres "$pg" | tail -6
  rm -rf "$data"
}

# rebuild_run TREE LABEL: part 2 with the CLI of TREE, on the one simulated journal.
rebuild_run() {
  local tree=$1 label=$2
  echo "== 2. [$label] the PostgreSQL sink alone: rampay db rebuild of a $commands-command journal (load average $(loadavg))"
  dotnet "$(bin "$tree" src/RamPay.Cli rampay.dll)" db rebuild --data "$work/sim" --postgres "$pg"
  echo "load average after: $(loadavg)"
}

# kafka_run TREE LABEL: part 3 with the load tool of TREE.
kafka_run() {
  local tree=$1 label=$2
  echo "== 3. [$label] the Kafka sink alone: rampay-load kafka-sink, $kafka_events events (load average $(loadavg))"
  dotnet "$(bin "$tree" bench/RamPay.Load rampay-load.dll)" kafka-sink --bootstrap "$RAMPAY_BENCH_KAFKA" --events "$kafka_events" | grep -E '^(sink|kafka-sink|check):'
}

if [[ $parts == *1* ]]; then
  for i in "${!trees[@]}"; do lag_run "${trees[$i]}" "${labels[$i]}"; done
fi
if [[ $parts == *2* ]]; then
  dotnet "$(bin "$here" src/RamPay.Cli rampay.dll)" simulate --data "$work/sim" --count "$commands" --wallets 10000 | grep -E '^(commands|last_sequence) '
  for i in "${!trees[@]}"; do rebuild_run "${trees[$i]}" "${labels[$i]}"; done
fi
if [[ $parts == *3* && -n "${RAMPAY_BENCH_KAFKA:-}" ]]; then
  for i in "${!trees[@]}"; do kafka_run "${trees[$i]}" "${labels[$i]}"; done
fi
if [[ $parts == *4* ]]; then
  echo "== 4. the conventional design: one PostgreSQL transaction per payment, row locks on both accounts ($connections connections)"
  dotnet "$(bin "$here" bench/RamPay.Load rampay-load.dll)" pg-conventional --postgres "$pg" --connections "$connections" --duration 10 --warmup 2
fi
