#!/usr/bin/env bash
# Snapshot pause and restart time, the writer's snapshots against the snapshotter's, interleaved in one run
# (docs/benchmarks.md, "Snapshots off the writer"). Usage:
#   bash bench/snapshots.sh [COUNT] [REPEATS] [SNAPSHOTS_PER_RUN]
#   e.g. bash bench/snapshots.sh 1000000 3 5; bash bench/snapshots.sh 10000000 1 5
# For each repeat it runs `rampay simulate` (fsync on, 10,000 wallets) three ways on a fresh data folder, in turn:
#   none    no periodic snapshot (the baseline: the machine's own noise in the completion gaps)
#   writer  a periodic snapshot every COUNT/SNAPSHOTS_PER_RUN commands, taken on the writer thread (before)
#   off     the same interval, taken by the snapshotter's replica (after)
# with no stop snapshot (as after a crash), and then times the restart's work offline: `rampay replay` (the newest
# snapshot plus the journal after it; for "none", the whole journal: a restart with periodic snapshots off). It prints each run's lines; the medians are taken by hand (few repeats on a shared machine).
set -euo pipefail
count=${1:-1000000}
repeats=${2:-3}
per_run=${3:-5}
every=$((count / per_run))
root=$(cd "$(dirname "$0")/.." && pwd)
rampay="$root/src/RamPay.Cli/bin/Release/net10.0/rampay.dll"
[ -f "$rampay" ] || dotnet build "$root/src/RamPay.Cli" -c Release >/dev/null
work=${SNAPSHOT_BENCH_DIR:-$(mktemp -d /tmp/rampay-snapshots-XXXXXX)}
echo "# $(date -u +%FT%TZ) count=$count repeats=$repeats every=$every load=$(cut -d' ' -f1-3 /proc/loadavg) cores=$(nproc)"
for r in $(seq 1 "$repeats"); do
  for mode in none writer off; do
    data="$work/$mode-$r"
    rm -rf "$data"
    case $mode in
      none) flags=(--snapshot-every 0) ;;
      writer) flags=(--snapshot-every "$every") ;;
      off) flags=(--snapshot-every "$every" --snapshot-off-writer) ;;
    esac
    /usr/bin/time -f "peak_rss_kb $mode %M" dotnet "$rampay" simulate --data "$data" --count "$count" --wallets 10000 --no-stop-snapshot "${flags[@]}" \
      2> "$work/time.txt" | grep -E "^(commands_per_s|snapshots|longest_gap_ms|snapshot_stall_ms|last_sequence)" | sed "s/^/$mode r$r /"
    sed "s/^/$mode r$r /" "$work/time.txt" | grep peak_rss
    # The restart's work: with no periodic snapshot (none) the whole journal; otherwise the newest snapshot and the tail.
    start=$(date +%s%N)
    dotnet "$rampay" replay --data "$data" | grep -E "^(snapshot_sequence|records_replayed|replay_ms|payments)" | tr -s ' \n' ' ' | sed "s/^/$mode r$r restart /"
    echo " process_ms $(( ($(date +%s%N) - start) / 1000000 ))"
    rm -rf "$data"
  done
done
echo "# load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
