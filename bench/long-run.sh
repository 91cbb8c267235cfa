#!/usr/bin/env bash
# The long load run of issue 10 (state larger than memory): N payments over TCP through the real server, with memory,
# disk, rate and refusals sampled over time, and snapshot/restart figures at chosen points (docs/benchmarks.md,
# "Long runs"; docs/storage.md, "Figures").
#
#   bench/long-run.sh [payments] [interval_s] [sinks]     default: 200000000 payments, a sample every 10 s, sinks off
#
#   payments    payments to send in all (rampay-load tcp --count, in one chunk per checkpoint)
#   interval_s  seconds between samples
#   sinks       off (default: no sinks, as bench/load.sh) | on (the PostgreSQL sink on RAMPAY_BENCH_POSTGRES, a database
#               of its own that is emptied, and the Kafka sink on RAMPAY_BENCH_KAFKA, e.g. the mock broker of
#               `scripts/services.sh start`; `source .services.env` gives its address as RAMPAY_TEST_KAFKA)
#
# The server runs as bench/load.sh runs it: rules version 3 (its default: the payments' and the keys' cold tiers),
# fsync on, journal retirement on (its default, every 60 s and after each periodic snapshot; no archive folder, so
# retired segments are deleted), periodic snapshots off the writer (default, every 10 M commands), fraud scoring off,
# HTTP rate limit off, cheap password hashing, its local event log on (default; EVENTS=off turns it off).
#
# Samples go to OUT/samples.csv (OUT default: bench/results/long-run-<date>): time, elapsed, phase, server pid,
# VmRSS/VmHWM, sizes of the data folder, journal, payment log, key tier, snapshots and event log, the free disk, the
# journal sequence, the payments' and keys' counters of /metrics, and the load average. Between chunks, at every
# CHECKPOINTS payment count: /metrics is saved, the snapshot pause (rampay_snapshot_pause_seconds, the writer's) and
# duration histograms are read, then the server is killed with SIGKILL and restarted (time from exec to
# "rampay-server: ready", and the journal tail it had to replay), then stopped with SIGTERM and restarted again (the
# clean stop's own time too): OUT/checkpoints.csv. Each chunk's rampay-load summary (refusals by code, self-check) goes
# to OUT/load-<n>.txt; OUT/summary.txt has the rate per tenth of the run and the first/last tenth ratio.
# bench/long-run-plot.py OUT/samples.csv OUT/long-run.svg draws the plot.
#
# Environment:
#   CHECKPOINTS     payment counts where the restart figures are taken (default "10000000 100000000"; "" = none; the
#                   end of the run is always one)
#   KEY_BUDGET      RamPay:Engine:IdempotencyKeyBudget (default 33554432: see docs/storage.md for the disk and index a
#                   budget costs; keys past it are forgotten early and counted, never silently)
#   CHUNK           payments per rampay-load run (default 20000000: the tool keeps every acknowledged payment for its
#                   self-check, ~32 bytes each, so one run of 200 M would need ~6 GB in the tool); each run signs up
#                   its own wallets, and the samples' rate skips the seconds between runs
#   MEM_BUDGET_MB   the resident-memory budget the summary checks VmRSS against (default 3072)
#   DATA_PARENT     where the data folder is made (default: TMPDIR or /tmp); KEEP_DATA=1 keeps it afterwards
#   EVENTS          on (default) | off: the server's local event log
#   SERVER_ARGS     more server options (e.g. --RamPay:Engine:SnapshotEveryCommands=2000000); DOTNET_GC* variables (e.g.
#                   DOTNET_GCConserveMemory=5) reach the server too and are written to OUT/run.txt
#   SERVER_DLL, LOAD_DLL  builds to run instead of this tree's Release builds (SKIP_BUILD=1: do not build)
#   LOAD_ARGS       more rampay-load options (default: --connections 4 --batch 100 --pipeline 8)
#
# The machine's load average is recorded with each sample: on a shared machine the rate follows the other load.
set -euo pipefail
cd "$(dirname "$0")/.."
payments=${1:-200000000}
interval=${2:-10}
sinks=${3:-off}
case "$sinks" in on|off) ;; *) echo "usage: bench/long-run.sh [payments] [interval_s] [on|off]" >&2; exit 2 ;; esac
checkpoints=${CHECKPOINTS-"10000000 100000000"}
key_budget=${KEY_BUDGET:-33554432}
mem_budget_mb=${MEM_BUDGET_MB:-3072}
chunk_max=${CHUNK:-20000000}
events=${EVENTS:-on}
out=${OUT:-bench/results/long-run-$(date -u +%Y%m%d-%H%M)}
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [ -z "${SKIP_BUILD:-}" ]; then
  dotnet build src/RamPay.Server -c Release --nologo -v quiet >/dev/null
  dotnet build bench/RamPay.Load -c Release --nologo -v quiet >/dev/null
fi
server_dll=${SERVER_DLL:-$PWD/src/RamPay.Server/bin/Release/net10.0/rampay-server.dll}
load_dll=${LOAD_DLL:-$PWD/bench/RamPay.Load/bin/Release/net10.0/rampay-load.dll}

data_root=$(mktemp -d -p "${DATA_PARENT:-${TMPDIR:-/tmp}}" rampay-long-XXXXXX)
data=$data_root/data
password="admin-$RANDOM$RANDOM"
server_pid=
ready_s=
sampler_pid=
starts=0

sink_args=()
if [ "$sinks" = on ]; then
  pg=${RAMPAY_BENCH_POSTGRES:?sinks on: set RAMPAY_BENCH_POSTGRES to an Npgsql connection string (a database of its own: it is filled)}
  kafka=${RAMPAY_BENCH_KAFKA:?sinks on: set RAMPAY_BENCH_KAFKA to a Kafka bootstrap address (e.g. the mock broker of scripts/services.sh)}
  sink_args=(--RamPay:Postgres:Connection="$pg" --RamPay:Kafka:BootstrapServers="$kafka" --RamPay:Kafka:Topic="rampay.longrun.$RANDOM$RANDOM")
fi
events_args=()
if [ "$events" = off ]; then events_args=(--RamPay:Events:Enabled=false); fi

cleanup() {
  if [ -n "$sampler_pid" ]; then kill "$sampler_pid" 2>/dev/null || true; wait "$sampler_pid" 2>/dev/null || true; fi
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ -z "${KEEP_DATA:-}" ]; then rm -rf "$data_root"; else echo "data kept: $data"; fi
}
trap cleanup EXIT

now() { date +%s.%N; }

# Starts the server (writes server.pid/http/tcp under OUT for the sampler); sets server_pid and ready_s (seconds from
# exec to "ready"). Not called in $(...): the server must stay this shell's child (wait, and the EXIT trap).
start_server() {
  starts=$((starts + 1))
  local log=$out/server-$starts.log t0
  t0=$(now)
  # shellcheck disable=SC2086 # SERVER_ARGS is a list of words on purpose
  dotnet "$server_dll" --data "$data" --http-port 0 --tcp-port 0 \
    --admin-email admin@rampay.test --admin-password "$password" \
    --RamPay:Fsync=true --RamPay:RateLimit:RequestsPerSecond=0 --RamPay:Auth:PasswordHashIterations=1000 --RamPay:Fraud:Enabled=false \
    --RamPay:Engine:IdempotencyKeyBudget="$key_budget" "${sink_args[@]}" "${events_args[@]}" ${SERVER_ARGS:-} >"$log" 2>&1 &
  server_pid=$!
  echo "$server_pid" >"$out/server.pid"
  while ! grep -q '^rampay-server: ready' "$log"; do
    if ! kill -0 "$server_pid" 2>/dev/null; then echo "error: the server exited during start-up:" >&2; tail -40 "$log" >&2; exit 2; fi
    sleep 0.05
  done
  local t1; t1=$(now)
  ready_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  sed -n 's/^rampay-server: http listening on \(http:[^ ]*\).*/\1/p' "$log" | head -1 >"$out/server.http"
  sed -n 's/^rampay-server: tcp listening on \([^ ]*\).*/\1/p' "$log" | head -1 >"$out/server.tcp"
}

metric() { # metric NAME [file]: the sum of a series' samples (all label sets)
  awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $NF; f = 1 } END { if (f) printf "%.0f", s; else printf "" }' "$2"
}

kb() { { du -sk "$1" 2>/dev/null || true; } | awk '{ s = $1 } END { print s + 0 }'; }

sample_loop() {
  set +e # a sample that fails (a file retired under du, a server restarting) must not end the sampling
  local t_start=$1 m=$out/.metrics
  echo "utc,elapsed_s,phase,pid,rss_mb,hwm_mb,data_mb,journal_mb,payments_cold_mb,keys_cold_mb,snapshots_mb,events_mb,disk_free_mb,journal_sequence,snapshot_sequence,payments_resident,payments_cold_loads,keys_evicted_early,keys_cold,load1,load5,sinks_follower_sequence,sinks_replica_keys,keys_held_for_sinks" >"$out/samples.csv"
  while true; do
    local pid rss=0 hwm=0 http phase seq="" snap="" res="" loads="" evicted="" keys="" sseq="" skeys="" held=""
    pid=$(cat "$out/server.pid" 2>/dev/null || echo 0)
    phase=$(cat "$out/phase" 2>/dev/null || echo start)
    if [ -r "/proc/$pid/status" ]; then
      rss=$(awk '/^VmRSS/ {print int($2 / 1024)}' "/proc/$pid/status" 2>/dev/null || echo 0)
      hwm=$(awk '/^VmHWM/ {print int($2 / 1024)}' "/proc/$pid/status" 2>/dev/null || echo 0)
    fi
    http=$(cat "$out/server.http" 2>/dev/null || true)
    if [ -n "$http" ] && curl -s -m 5 "$http/metrics" >"$m" 2>/dev/null; then
      seq=$(metric rampay_journal_sequence "$m"); snap=$(metric rampay_snapshot_last_sequence "$m")
      res=$(metric rampay_payments_resident "$m"); loads=$(metric rampay_payments_cold_loads_total "$m")
      evicted=$(metric rampay_idempotency_keys_evicted_early_total "$m"); keys=$(metric rampay_idempotency_cold_keys "$m")
      # The sinks' replica (sinks on): where it stands, its keys in memory, and keys on disk only for it (sinkkeys).
      sseq=$(metric rampay_sinks_follower_sequence "$m"); skeys=$(metric rampay_sinks_replica_keys "$m")
      held=$(metric rampay_idempotency_cold_keys_held_for_sinks "$m")
    fi
    local cold=$data/cold
    echo "$(date -u +%H:%M:%S),$(awk -v a="$t_start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'),$phase,$pid,$rss,$hwm,$(( $(kb "$data") / 1024 )),$(( $(kb "$data/journal") / 1024 )),$(( $(kb "$cold/payments") / 1024 )),$(( ($(kb "$cold") - $(kb "$cold/payments")) / 1024 )),$(( $(kb "$data/snapshots") / 1024 )),$(( $(kb "$data/events") / 1024 )),$(( $(df -k --output=avail "$data_root" | tail -1) / 1024 )),$seq,$snap,$res,$loads,$evicted,$keys,$(cut -d' ' -f1 /proc/loadavg),$(cut -d' ' -f2 /proc/loadavg),$sseq,$skeys,$held" >>"$out/samples.csv"
    sleep "$interval"
  done
}

hist_p99() { # hist_p99 NAME file: the upper bound of the bucket holding the 99th percentile, and the count
  awk -v n="$1" 'index($1, n "_bucket{") == 1 { match($1, /le="[^"]*"/); le = substr($1, RSTART + 4, RLENGTH - 5); les[++k] = le; c[k] = $NF }
    $1 == n "_count" || index($1, n "_count{") == 1 { total += $NF }
    END { if (total == 0) { printf "n=0"; exit } for (i = 1; i <= k; i++) if (c[i] >= 0.99 * total) { printf "p99<=%ss n=%d", les[i], total; exit } printf "n=%d", total }' "$2"
}

checkpoint() { # checkpoint PAYMENTS_SENT
  local at=$1 m=$out/metrics-at-$1.txt http seq snap pause dur kill_s term_stop_s term_s t0 t1
  http=$(cat "$out/server.http")
  echo checkpoint >"$out/phase"
  sleep "$interval" # one quiet sample, so that memory at rest is in the CSV
  # A server that already stopped (a FATAL fault) answers nothing: the checkpoint still restarts it, so the restart
  # figures at the fault are taken (run F of 2026-12-06 lost them when this line ended the script).
  curl -s -m 10 "$http/metrics" >"$m" || echo "checkpoint $at: the server did not answer /metrics (stopped?)"
  seq=$(metric rampay_journal_sequence "$m"); snap=$(metric rampay_snapshot_last_sequence "$m")
  pause=$(hist_p99 rampay_snapshot_pause_seconds "$m"); dur=$(hist_p99 rampay_snapshot_duration_seconds "$m")
  echo "restart-kill" >"$out/phase"
  kill -KILL "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true
  start_server; kill_s=$ready_s
  echo "restart-term" >"$out/phase"
  t0=$(now); kill -TERM "$server_pid"; wait "$server_pid" 2>/dev/null || true; t1=$(now)
  term_stop_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  start_server; term_s=$ready_s
  echo "$at,$seq,$snap,$((${seq:-0} - ${snap:-0})),$pause,$dur,$kill_s,$term_stop_s,$term_s,$(du -sk "$data" | cut -f1),$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' '/')" >>"$out/checkpoints.csv"
  echo "checkpoint $at payments: journal $seq, snapshot $snap, pause [$pause], snapshot duration [$dur], restart after SIGKILL ${kill_s}s, SIGTERM stop ${term_stop_s}s then restart ${term_s}s"
}

echo "payments_sent,journal_sequence,snapshot_sequence,tail_records,snapshot_pause,snapshot_duration,restart_after_kill_s,sigterm_stop_s,restart_after_term_s,data_kb,load" >"$out/checkpoints.csv"
{
  echo "bench/long-run.sh $payments $interval $sinks; CHECKPOINTS='$checkpoints' KEY_BUDGET=$key_budget EVENTS=$events SERVER_ARGS='${SERVER_ARGS:-}' LOAD_ARGS='${LOAD_ARGS:-}'"
  echo "runtime settings: $(env | grep -E '^DOTNET_GC' | tr '\n' ' ')"
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo ?), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(awk '/MemTotal/ {print int($2/1048576)}' /proc/meminfo) GiB RAM, data on $(df -h --output=source,avail "$data_root" | tail -1)"
} >"$out/run.txt"
cat "$out/run.txt"

echo start >"$out/phase"
start_server
echo "server ready in ${ready_s}s: $(cat "$out/server.http"), data $data"
t_start=$(now)
sample_loop "$t_start" &
sampler_pid=$!

sent=0 chunk=0 status=0
for point in $checkpoints $payments; do
  [ "$point" -gt "$sent" ] || continue
  [ "$point" -le "$payments" ] || continue
  while [ "$sent" -lt "$point" ]; do
    chunk=$((chunk + 1))
    n=$((point - sent)); if [ "$n" -gt "$chunk_max" ]; then n=$chunk_max; fi
    echo "load-$chunk" >"$out/phase"
    echo "$(date -u +%H:%M:%S) chunk $chunk: $n payments (to $((sent + n)))"
    # shellcheck disable=SC2086 # LOAD_ARGS is a list of words on purpose
    dotnet "$load_dll" tcp --http "$(cat "$out/server.http")" --tcp "$(cat "$out/server.tcp")" --count "$n" --warmup 0 \
      --deposit 1000000000 --sample 100 ${LOAD_ARGS:---connections 4 --batch 100 --pipeline 8} >"$out/load-$chunk.txt" 2>&1 || status=$?
    grep -E 'throughput|payments  |outcomes|PASS|FAIL|^error' "$out/load-$chunk.txt" | sed 's/^/  /' || true
    if [ "$status" -ne 0 ]; then
      # A failed run (a timeout, or a server not serving; a degraded one, keys forgotten early, still takes the load) stops
      # the whole run: later chunks would not run either. The last checkpoint is taken where the journal stands.
      echo "rampay-load failed (status $status): the run stops here; restart figures at journal $(tail -1 "$out/samples.csv" | cut -d, -f14)"
      checkpoint "stopped-$chunk"
      break 2
    fi
    sent=$((sent + n))
  done
  checkpoint "$sent"
done
echo done >"$out/phase"
sleep 1
kill "$sampler_pid" 2>/dev/null || true; wait "$sampler_pid" 2>/dev/null || true; sampler_pid=

# Rate per tenth of the payments sent: journal records per second between consecutive samples taken under load,
# put in the tenth where the pair's midpoint falls (the journal sequence counts the setup commands too: a few).
reached=$(awk -F, 'NR > 1 && $14 != "" { s = $14 } END { print s + 0 }' "$out/samples.csv")
if [ "$status" -ne 0 ] && [ "$reached" -gt 0 ]; then payments=$reached; fi # the tenths of what the run reached
awk -F, -v total="$payments" -v budget="$mem_budget_mb" '
  NR == 1 { next }
  { if ($5 > maxrss) maxrss = $5 }
  $3 ~ /^load-/ && $14 != "" {
    if (prev_phase == $3 && $14 > prev_seq) {
      mid = (prev_seq + $14) / 2; tenth = int(10 * mid / total); if (tenth > 9) tenth = 9
      d[tenth] += $14 - prev_seq; t[tenth] += $2 - prev_t; l[tenth] += $20 * ($2 - prev_t)
    }
    prev_phase = $3; prev_seq = $14; prev_t = $2
  }
  $3 !~ /^load-/ { prev_phase = "" }
  END {
    for (i = 0; i < 10; i++) if (t[i] > 0) printf "tenth %d: %.0f records/s over %.0f s (load average %.1f)\n", i + 1, d[i] / t[i], t[i], l[i] / t[i]
    if (t[0] > 0 && t[9] > 0) printf "last tenth / first tenth: %.2f\n", (d[9] / t[9]) / (d[0] / t[0])
    printf "peak VmRSS sampled: %d MB (budget %d MB): %s\n", maxrss, budget, maxrss <= budget ? "under" : "OVER"
  }' "$out/samples.csv" | tee "$out/summary.txt"
grep -h 'outcomes' "$out"/load-*.txt | sed 's/^ */outcomes: /' | tee -a "$out/summary.txt"
exit "$status"
