#!/usr/bin/env bash
# The rewards worker live (docs/benchmarks.md, "Rewards worker live at 10,000 eligible payments/s"): runs
# tests/RamPay.Rewards.Tests/RewardsLiveFigures.cs ROUNDS times. Each run starts its own Kafka mock broker
# (tools/kafka-mock), a Release server (fraud off, one 100 % cashback rule, Kafka sink, in-server rewards consumer off),
# one `rampay-worker rewards` and `rampay-load tcp --rate RATE` for a warm-up then DURATION seconds measured; it samples the
# reward lag every 0.5 s, measures CPU per payment of the three processes, waits for the backlog to drain, checks one
# reward per acknowledged payment and the rewards account's paid_out against the rewards' sum, and prints one JSON line
# of results. Then the median of each figure over the rounds.
#
# usage: bench/rewards-live.sh [ROUNDS]        (default 3)
# env:   RATE (10000 payments/s asked), DURATION (60 s measured), WARMUP (10), PARTITIONS (32), CONNECTIONS (4),
#        SKIP_BUILD=1 (reuse the Release builds of tests/RamPay.Rewards.Tests and bench/RamPay.Load),
#        OUT (folder for the logs and results.jsonl; default a new temporary folder), WORKER_ARGS (more worker flags),
#        BASELINE_WORKER_ARGS (e.g. "--round-events 32000": each round runs the worker with these first, then without)
# Needs nothing running. The mock broker keeps only the newest ~5 MB (librdkafka's mock: per partition) of each
# partition: a worker that falls behind by more than that loses events and the run fails its checks; more
# PARTITIONS make the window wider (docs/benchmarks.md).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-3}
out=${OUT:-$(mktemp -d -t rampay-rewards-live-XXXXXX)}
mkdir -p "$out"
dll=$root/tests/RamPay.Rewards.Tests/bin/Release/net10.0/RamPay.Rewards.Tests.dll
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  for p in tests/RamPay.Rewards.Tests bench/RamPay.Load; do
    (cd "$root" && dotnet build "$p" -c Release -v q -nologo >"$out/build.log" 2>&1) || { tail -30 "$out/build.log" >&2; exit 1; }
  done
fi
export RAMPAY_KAFKA_MOCK=${RAMPAY_KAFKA_MOCK:-$(bash "$root/tools/kafka-mock/build.sh")}
export RAMPAY_LOAD_DLL=$root/bench/RamPay.Load/bin/Release/net10.0/rampay-load.dll
export RAMPAY_REWARDS_LIVE=1 RAMPAY_LIVE_RATE=${RATE:-10000} RAMPAY_LIVE_SECONDS=${DURATION:-60} \
  RAMPAY_LIVE_WARMUP=${WARMUP:-10} RAMPAY_LIVE_PARTITIONS=${PARTITIONS:-32} RAMPAY_LIVE_CONNECTIONS=${CONNECTIONS:-4}
# BASELINE_WORKER_ARGS="--round-events 32000": each round runs that baseline first, then the worker as built (interleaved).
variants=(new)
[[ -n "${BASELINE_WORKER_ARGS:-}" ]] && variants=(baseline new)
for r in $(seq 1 "$rounds"); do
  for v in "${variants[@]}"; do
    echo "round $r, $v, load $(cut -d' ' -f1 /proc/loadavg)" >&2
    log=$out/run-$r-$v.log
    args=""; [[ $v == baseline ]] && args=$BASELINE_WORKER_ARGS
    if RAMPAY_LIVE_WORKER_ARGS="$args ${WORKER_ARGS:-}" dotnet test "$dll" --filter "FullyQualifiedName~RewardsLiveFigures" --logger "console;verbosity=detailed" >"$log" 2>&1; then
      line=$(grep -o 'RESULT {.*' "$log" | sed "s/^RESULT {/{\"variant\":\"$v\",\"round\":$r,/")
    else
      echo "run $r ($v) failed: $log" >&2
      grep -E 'Assert|Exception|checks:' "$log" | head -5 >&2 || true
      line="{\"variant\":\"$v\",\"round\":$r,\"checks\":\"failed\",\"log\":\"$log\"}"
    fi
    echo "$line" | tee -a "$out/results.jsonl"
  done
done
echo "results: $out/results.jsonl (logs beside it)" >&2
# The median of each numeric figure over the runs that passed (python3 is in the image; no jq needed).
python3 - "$out/results.jsonl" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
for v in dict.fromkeys(r["variant"] for r in runs):
    ok = [r for r in runs if r["variant"] == v and r.get("checks") == "passed"]
    print(f"{v}: {len(ok)} of {sum(r['variant'] == v for r in runs)} runs passed their checks")
    for k in (ok[0].keys() if ok else []):
        vals = [r[k] for r in ok if isinstance(r.get(k), (int, float)) and k != "round"]
        if vals: print(f"  {k:28} median {statistics.median(vals):>12}   runs {vals}")
EOF
