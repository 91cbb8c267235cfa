#!/usr/bin/env bash
# The version-4 model comparison in docs/fraud.md (Models trained on version 4's features): trains on the default
# scenario's rows as the fraud stage computes them (--rules 4), writes the shipped ML.NET model, then evaluates every model
# in ONE run on the version-4 held-out rows (PR-AUC, recall at 1 % FPR, scoring time interleaved).
# Usage: bench/fraud-models-v4.sh [OUT_DIR]   (default /tmp/rampay-fraud-models-v4)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-/tmp/rampay-fraud-models-v4}"
mkdir -p "$out"
dotnet build "$root/src/RamPay.Cli" -c Release --nologo -v quiet >/dev/null
rampay() { dotnet "$root/src/RamPay.Cli/bin/Release/net10.0/rampay.dll" "$@"; }
rampay fraud generate --out "$out/scenario.csv" >/dev/null
# The shipped file (src/RamPay.Fraud/Models/fasttree-v4.rpfm) is the second model, byte for byte (FastTree: the best here).
rampay fraud train --data "$out/scenario.csv" --rules 4 --kind lightgbm --version lightgbm-v4-s1 --out "$out/lightgbm-v4.rpfm" >/dev/null
rampay fraud train --data "$out/scenario.csv" --rules 4 --kind fasttree --version fasttree-v4-s1 --out "$out/fasttree-v4.rpfm"
rampay fraud train --data "$out/scenario.csv" --rules 4 --kind gbt --out "$out/ours-gbt-v4.rpfm" >/dev/null
cp "$root/src/RamPay.Fraud/Models/default.rpfm" "$out/shipped-default-gbt-v1-features.rpfm"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
rampay fraud evaluate --data "$out/scenario.csv" --rules 4 --timing-rounds 7 \
  --model "$out/lightgbm-v4.rpfm" --model "$out/fasttree-v4.rpfm" --model "$out/ours-gbt-v4.rpfm" \
  --model "$out/shipped-default-gbt-v1-features.rpfm"
echo "done: load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
