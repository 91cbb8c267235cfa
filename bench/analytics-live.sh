#!/usr/bin/env bash
# The analytics worker against the aim of issue 13 (docs/benchmarks.md, "The analytics worker: backlog and live"): keep
# up with 100,000 payments/s = 200,000 events/s (an ordinary payment is PaymentCreated + PaymentApproved), lag under
# 1 s. Runs tests/RamPay.Rewards.Tests/AnalyticsLiveFigures.cs ROUNDS times per variant, interleaved:
#   backlog: rampay-load kafka-sink writes BACKLOG_EVENTS contract events (a real journal, the real sink) to a private
#            mock broker's topic of PARTITIONS partitions (checked: none dropped); a new `rampay-worker analytics`
#            reads them all: events/s, CPU µs per event by thread.
#   live:    the test process produces at each rate of RATES (payments/s; twice as many events/s) for SECONDS while
#            another worker consumes; lag (produced − committed offsets, from the broker every 100 ms) p50/p99 in
#            events and seconds; the CPU cores the worker, the broker and the producer used; how many times the worker
#            fell so far behind that the mock (5 MiB per partition) had dropped events before it read them (a run that
#            skipped events has not kept up, whatever its lag).
# Prints one JSON line per run ({"run", "variant", "backlog": {...}, "live": [...]}), then the medians per variant.
#
# usage: bench/analytics-live.sh [ROUNDS]        (default 3)
# env:   SKIP_BUILD=1 (reuse the Release builds of tests/RamPay.Rewards.Tests and bench/RamPay.Load)
#        MODE=both|backlog|live (both)  PARTITIONS (32)  BACKLOG_EVENTS (1000000)  RATES (10000,25000,50000,75000,100000)
#        RATE_SECONDS (10)  BROKERS (1: brokers in the mock cluster, partition leaders spread over them)
#        LIVE_PARTITIONS (8: the live topic's partitions, templates from the backlog's first ones)  VARIANTS ('default:' ; 'NAME:VAR=V,VAR=V|NAME2:...' sets the workers' environment per variant,
#        e.g. 'server-gc:|workstation-gc:DOTNET_gcServer=0')
#        BASE_BIN=DIR (a copy of another tree's tests/RamPay.Rewards.Tests/bin/Release/net10.0 holding AnalyticsLiveFigures:
#        run as "base" interleaved with this tree's, "new"; NEW_BIN=DIR in place of this tree's)
#        BASE_WORKER_DIR=DIR (another build's src/RamPay.Worker/bin/Release/net10.0: this tree's figures run against that
#        worker as "base", interleaved with this tree's worker as "new"; for settings the older figures lack)
#        TIME_LAPSE (0: the live events keep their templates' times; N: their times move on N times as fast as the clock,
#        so the rollups grow as over hours of a stream: 60 with RATE_SECONDS=300 is five hours)
#        a variant's RAMPAY_ANALYTICS_BENCH_SEED_USERS=N: its live worker starts on rollups holding two hours of N users
#        paying every minute (a busy stream's steady state under the default retention), e.g.
#        VARIANTS='small:|seeded:RAMPAY_ANALYTICS_BENCH_SEED_USERS=10000
# Needs nothing running: each run starts its own broker (tools/kafka-mock) and workers on free ports.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-3}
out=$(mktemp -d -t rampay-analytics-live-XXXXXX)
# Trees as NAME=DLL; the name prefixes the variant's ("base/default") only when there are two.
trees=("=${NEW_BIN:-$root/tests/RamPay.Rewards.Tests/bin/Release/net10.0}/RamPay.Rewards.Tests.dll")
[[ -z "${BASE_BIN:-}" ]] || trees=("base/=$BASE_BIN/RamPay.Rewards.Tests.dll" "new/${trees[0]}")
# A tree may name the worker it runs: NAME=DLL@WORKER_DIR.
[[ -z "${BASE_WORKER_DIR:-}" ]] || trees=("base/=${trees[0]#*=}@$BASE_WORKER_DIR" "new/=${trees[0]#*=}")
if [[ "${SKIP_BUILD:-}" != 1 ]]; then
  (cd "$root" && dotnet build tests/RamPay.Rewards.Tests -c Release -v q -nologo >"$out/build.log" 2>&1 \
    && dotnet build bench/RamPay.Load -c Release -v q -nologo >>"$out/build.log" 2>&1) || { tail -30 "$out/build.log" >&2; exit 1; }
fi
export RAMPAY_KAFKA_MOCK=${RAMPAY_KAFKA_MOCK:-$(bash "$root/tools/kafka-mock/build.sh")}
export RAMPAY_LOAD=${RAMPAY_LOAD:-$root/bench/RamPay.Load/bin/Release/net10.0/rampay-load.dll}
export RAMPAY_ANALYTICS_BENCH_MODE=${MODE:-both}
export RAMPAY_ANALYTICS_BENCH_PARTITIONS=${PARTITIONS:-32}
export RAMPAY_ANALYTICS_BENCH_BACKLOG_EVENTS=${BACKLOG_EVENTS:-1000000}
export RAMPAY_ANALYTICS_BENCH_RATES=${RATES:-10000,25000,50000,75000,100000}
export RAMPAY_ANALYTICS_BENCH_SECONDS=${RATE_SECONDS:-10}
export RAMPAY_ANALYTICS_BENCH_BROKERS=${BROKERS:-1}
export RAMPAY_ANALYTICS_BENCH_LIVE_PARTITIONS=${LIVE_PARTITIONS:-8}
export RAMPAY_ANALYTICS_BENCH_TIME_LAPSE=${TIME_LAPSE:-0}
IFS='|' read -r -a variants <<<"${VARIANTS:-default:}"
for r in $(seq 1 "$rounds"); do
  for t in "${trees[@]}"; do
  dll=${t#*=}; worker_dir=""
  [[ "$dll" != *@* ]] || { worker_dir=${dll#*@}; dll=${dll%@*}; }
  for v in "${variants[@]}"; do
    name=${t%%=*}${v%%:*}; envs=${v#*:}
    echo "round $r, $name ($envs), load $(cut -d' ' -f1 /proc/loadavg), $(date -u +%H:%M:%S) UTC" >&2
    log="$out/${name//\//-}-$r.log"
    RAMPAY_WORKER_DIR=$worker_dir RAMPAY_ANALYTICS_BENCH_VARIANT=$name RAMPAY_ANALYTICS_BENCH_WORKER_ENV=${envs//,/;} \
      dotnet test "$dll" --filter "FullyQualifiedName~AnalyticsLiveFigures" --logger "console;verbosity=detailed" >"$log" 2>&1 \
      || { echo "run failed: $log" >&2; tail -40 "$log" >&2; exit 1; }
    grep -o 'RESULT {.*' "$log" | sed 's/^RESULT //' \
      | python3 -c 'import json,sys; rs=[json.loads(l) for l in sys.stdin]; print(json.dumps({"run": int(sys.argv[1]), "variant": sys.argv[2], "backlog": next((x for x in rs if x["mode"] == "backlog"), None), "live": [x for x in rs if x["mode"] == "live"]}))' "$r" "$name" \
      | tee -a "$out/runs.jsonl"
  done
  done
done
echo "runs: $out/runs.jsonl (logs beside it)" >&2
python3 - "$out/runs.jsonl" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
def med(xs): return statistics.median(xs) if xs else None
for v in dict.fromkeys(r["variant"] for r in runs):
    rs = [r for r in runs if r["variant"] == v]
    b = [r["backlog"] for r in rs if r["backlog"]]
    if b:
        keys = ["events_per_s", "events_per_s_steady", "worker_cpu_us_per_event", "worker_cpu_us_per_event_without_jit", "broker_cpu_us_per_event", "load_start"]
        print(json.dumps({"variant": v, "mode": "backlog", "runs": len(b), "events": b[0]["events"], "partitions": b[0]["partitions"], **{"median_" + k: med([x[k] for x in b]) for k in keys}}))
    for rate in dict.fromkeys(x["payments_per_s"] for r in rs for x in r["live"]):
        xs = [x for r in rs for x in r["live"] if x["payments_per_s"] == rate]
        keys = ["events_per_s_produced", "lag_events_p50", "lag_events_p99", "lag_s_p50", "lag_s_p99", "cpu_cores_worker", "cpu_cores_broker", "cpu_cores_producer", "worker_cpu_us_per_event", "load_start"]
        keys += [k for k in ["lag_s_max", "worker_files_mb", "worker_rss_mb", "stream_minutes_at_end"] if all(k in x for x in xs)]
        print(json.dumps({"variant": v, "mode": "live", "payments_per_s": rate, "runs": len(xs), "kept_up": sum(x["kept_up"] for x in xs), "runs_with_skipped_events": sum(x.get("offset_resets_with_skipped_events", 0) > 0 for x in xs), **{"median_" + k: med([x[k] for x in xs]) for k in keys}}))
EOF
