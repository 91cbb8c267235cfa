#!/usr/bin/env bash
# The rewards and analytics workers' cost on a Kafka backlog (docs/benchmarks.md, "Rewards and analytics workers: CPU
# per event"): runs tests/RamPay.Rewards.Tests/WorkerCostFigures.cs in this tree and, if BASE is given, in that commit
# too (extracted with git archive into a temporary folder, the same test file copied in), interleaved ROUNDS times, and
# prints the median of every figure per tree: rewards/s and analytics events/s, CPU µs per reward in the rewards worker
# and in the server (by thread group), CPU µs per event in the analytics worker.
#
# usage: bench/rewards.sh [BASE_COMMIT] [ROUNDS]      (env: RAMPAY_REWARDS_BENCH_PAYMENTS, default 20000)
#   e.g. bench/rewards.sh 494e59d 3
# Round 4's figures (docs/benchmarks.md, "Rewards and analytics workers, round 4"): base 1228f5c, sets of 10,000 and 20,000.
# Prebuilt test folders instead of building (each a copy of tests/RamPay.Rewards.Tests/bin/Release/net10.0 of a tree
# holding WorkerCostFigures.cs): BASE_BIN=/tmp/base-bin NEW_BIN=/tmp/new-bin bench/rewards.sh "" 3
# Needs nothing running: each run starts its own Kafka mock broker (tools/kafka-mock), server and workers on free ports.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
base=${1:-}
rounds=${2:-3}
out=$(mktemp -d -t rampay-rewards-bench-XXXXXX)
test_file=tests/RamPay.Rewards.Tests/WorkerCostFigures.cs
dll=tests/RamPay.Rewards.Tests/bin/Release/net10.0/RamPay.Rewards.Tests.dll
trees=("new:${NEW_BIN:+$NEW_BIN/RamPay.Rewards.Tests.dll}")
[[ -n "${NEW_BIN:-}" ]] || trees=("new:$root/$dll")
if [[ -n "${BASE_BIN:-}" ]]; then
  trees=("base:$BASE_BIN/RamPay.Rewards.Tests.dll" "${trees[@]}")
elif [[ -n "$base" ]]; then
  base_dir="$out/base"
  mkdir -p "$base_dir"
  git -C "$root" archive "$base" | tar -x -C "$base_dir"
  cp "$root/$test_file" "$base_dir/$test_file"
  (cd "$base_dir" && dotnet build tests/RamPay.Rewards.Tests -c Release -v q -nologo >"$out/build-base.log" 2>&1) || { tail -30 "$out/build-base.log" >&2; exit 1; }
  trees=("base:$base_dir/$dll" "${trees[@]}")
fi
if [[ -z "${NEW_BIN:-}" ]]; then
  (cd "$root" && dotnet build tests/RamPay.Rewards.Tests -c Release -v q -nologo >"$out/build-new.log" 2>&1) || { tail -30 "$out/build-new.log" >&2; exit 1; }
fi
export RAMPAY_KAFKA_MOCK=${RAMPAY_KAFKA_MOCK:-$(bash "$root/tools/kafka-mock/build.sh")}
for r in $(seq 1 "$rounds"); do
  for t in "${trees[@]}"; do
    name=${t%%:*}; test_dll=${t#*:}
    echo "round $r, $name, load $(cut -d' ' -f1 /proc/loadavg)" >&2
    dotnet test "$test_dll" --filter "FullyQualifiedName~WorkerCostFigures" --logger "console;verbosity=detailed" >"$out/$name-$r.log" 2>&1 \
      || { echo "run failed: $out/$name-$r.log" >&2; tail -40 "$out/$name-$r.log" >&2; exit 1; }
    grep -o 'FIGURE .*' "$out/$name-$r.log" | sed "s/^FIGURE /$name /" >>"$out/figures.txt"
  done
done
echo "raw figures: $out/figures.txt (logs beside it)"
# Median of each figure per tree, the trees side by side (plain POSIX awk: Debian's mawk has no asorti).
names=$(cut -d' ' -f1 "$out/figures.txt" | awk '!seen[$0]++')
printf '%-52s' "figure (median of $rounds)"; for t in $names; do printf ' %10s' "$t"; done; echo
for key in $(cut -d' ' -f2 "$out/figures.txt" | sort -u); do
  printf '%-52s' "$key"
  for t in $names; do
    awk -v t="$t" -v k="$key" '$1 == t && $2 == k { print $3 }' "$out/figures.txt" | sort -g \
      | awk '{ v[NR] = $1 } END { if (NR == 0) m = "-"; else if (NR % 2) m = v[(NR + 1) / 2]; else m = (v[NR / 2] + v[NR / 2 + 1]) / 2; printf " %10s", m }'
  done
  echo
done
