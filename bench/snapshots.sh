#!/usr/bin/env bash
# Snapshot pause and restart time, the writer's snapshots against the snapshotter's, interleaved in one run
# (docs/benchmarks.md, "Snapshots off the writer"). Usage:
#   bash bench/snapshots.sh [COUNT] [REPEATS] [SNAPSHOTS_PER_RUN]
#   e.g. bash bench/snapshots.sh 1000000 3 5; bash bench/snapshots.sh 10000000 1 5
# For each repeat it runs `rampay simulate` (fsync on, 10,000 wallets) three ways on a fresh data folder, in turn:
#   none    no periodic snapshot (the baseline: the machine's own noise in the completion gaps)
#   writer  a periodic snapshot every COUNT/SNAPSHOTS_PER_RUN commands, taken on the writer thread (before)
#   off     the same interval, taken by the snapshotter's replica (after)
#   writer-cold  as writer, with the cold key tier on (rules 2, --cold-tier: the server's default; the baseline of issue 10
#                item 6: before it the server's writer took every periodic snapshot itself)
#   off-cold     as off, with the cold key tier on (the snapshotter's replica follows the cold tier)
# (MODES="none writer off writer-cold off-cold" picks them; default: all five) with no stop snapshot (as after a crash),
# and then times the restart's work: without the cold tier offline, `rampay replay` (the newest snapshot plus the journal
# after it; for "none", the whole journal: a restart with periodic snapshots off); with it, the engine's own recovery
# (`rampay simulate --count 100` on the same data: its "recovered" line, snapshot load + tail + the cold tier opened),
# since a tool without the cold tier replays the whole journal. It prints each run's lines; the medians are taken by hand
# (few repeats on a shared machine).
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
modes=${MODES:-none writer off writer-cold off-cold}
for r in $(seq 1 "$repeats"); do
  for mode in $modes; do
    data="$work/$mode-$r"
    rm -rf "$data"
    case $mode in
      none) flags=(--snapshot-every 0) ;;
      writer) flags=(--snapshot-every "$every") ;;
      off) flags=(--snapshot-every "$every" --snapshot-off-writer) ;;
      writer-cold) flags=(--snapshot-every "$every" --cold-tier) ;;
      off-cold) flags=(--snapshot-every "$every" --snapshot-off-writer --cold-tier) ;;
      *) echo "unknown mode $mode" >&2; exit 2 ;;
    esac
    /usr/bin/time -f "peak_rss_kb $mode %M" dotnet "$rampay" simulate --data "$data" --count "$count" --wallets 10000 --no-stop-snapshot "${flags[@]}" \
      2> "$work/time.txt" | grep -E "^(commands_per_s|snapshots|longest_gap_ms|snapshot_stall_ms|last_sequence)" | sed "s/^/$mode r$r /"
    sed "s/^/$mode r$r /" "$work/time.txt" | grep peak_rss
    # The restart's work: with no periodic snapshot (none) the whole journal; otherwise the newest snapshot and the tail.
    start=$(date +%s%N)
    case $mode in
      *-cold)
        /usr/bin/time -f "peak_rss_kb $mode restart %M" dotnet "$rampay" simulate --data "$data" --count 100 --wallets 10000 --no-stop-snapshot --snapshot-every 0 --cold-tier \
          2> "$work/time.txt" | grep -E "^recovered" | sed "s/^/$mode r$r restart /" | tr -d '\n'
        echo " process_ms $(( ($(date +%s%N) - start) / 1000000 ))"
        sed "s/^/$mode r$r /" "$work/time.txt" | grep peak_rss ;;
      *)
        dotnet "$rampay" replay --data "$data" | grep -E "^(snapshot_sequence|records_replayed|replay_ms|payments)" | tr -s ' \n' ' ' | sed "s/^/$mode r$r restart /"
        echo " process_ms $(( ($(date +%s%N) - start) / 1000000 ))" ;;
    esac
    rm -rf "$data"
  done
done
echo "# load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
