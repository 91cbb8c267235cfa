#!/usr/bin/env bash
# The fraud model comparison in docs/fraud.md (Evaluation): trains every kind on the default scenario, then evaluates
# them in ONE run (held-out PR-AUC, recall at 1 % FPR, and scoring time per payment measured interleaved, so that a
# loaded machine slows them alike). Usage: bench/fraud-models.sh [OUT_DIR]   (default /tmp/rampay-fraud-models)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-/tmp/rampay-fraud-models}"
mkdir -p "$out"
dotnet build "$root/src/RamPay.Cli" -c Release --nologo -v quiet >/dev/null
rampay() { dotnet "$root/src/RamPay.Cli/bin/Release/net10.0/rampay.dll" "$@"; }
rampay fraud generate --out "$out/scenario.csv" >/dev/null
rampay fraud train --data "$out/scenario.csv" --kind lightgbm --out "$out/lightgbm-100x16.rpfm" >/dev/null
rampay fraud train --data "$out/scenario.csv" --kind lightgbm --trees 60 --depth 4 --out "$out/lightgbm-60-depth4.rpfm" >/dev/null
rampay fraud train --data "$out/scenario.csv" --kind fasttree --out "$out/fasttree-100x16.rpfm" >/dev/null
rampay fraud train --data "$out/scenario.csv" --kind logistic --out "$out/logistic-lbfgs.rpfm" >/dev/null
rampay fraud train --data "$out/scenario.csv" --kind gbt --out "$out/ours-gbt-60-depth4.rpfm" >/dev/null
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
rampay fraud evaluate --data "$out/scenario.csv" --timing-rounds 7 \
  --model "$out/lightgbm-100x16.rpfm" --model "$out/lightgbm-60-depth4.rpfm" --model "$out/fasttree-100x16.rpfm" \
  --model "$out/logistic-lbfgs.rpfm" --model "$out/ours-gbt-60-depth4.rpfm"
