#!/usr/bin/env bash
# Server CPU time by thread under load, and per payment: the figure a shared machine bends least.
#
#   bench/cpu-by-thread.sh http|tcp [server options...] [-- rampay-load options...]
#   e.g. bench/cpu-by-thread.sh http --RamPay:Engine:RulesVersion=3 -- --connections 64 --duration 10 --warmup 30
#
# Runs bench/load.sh http|tcp (a Release server on a new temporary data folder, fsync on, HTTP rate limit off, fraud
# scoring off, cheap password hashing, free ports; the server options given here go in its SERVER_ARGS, after those, so
# they win; rampay-load with the options after "--"), and inside the load reads /proc/PID/task/*/stat
# twice (one read each) and the server's rampay_commands_applied_total (GET /metrics) at the same moments. Prints, for
# each thread alive at both reads, its CPU seconds (utime + stime) in the window and µs per command applied, then the
# same summed by thread name, then the whole process (its own /proc/PID/stat, which also counts threads that exited
# within the window), then the garbage collector's work in the window (collections by generation, pause time, bytes
# allocated per command; from the server's dotnet_gc_* metrics).
#
# The window: it opens SAMPLE_DELAY seconds after rampay-load starts (load.sh's "server:" line) (default: its --warmup + 1) and lasts SAMPLE_SECONDS (default: its --duration - 3, at least 1). Commands applied in the window
# are the tool's payments (the load sends nothing else once set up). LOAD_SH replaces bench/load.sh (e.g. a copy without
# its two builds, when the tree is built already and the machine is too busy for even a no-op build). Exit status: the load tool's (0 PASS, 1 FAIL,
# 2 could not run), or 2 when the window did not fit inside the load.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-}
case "$mode" in
  tcp|http) shift ;;
  *) echo "usage: bench/cpu-by-thread.sh http|tcp [server options...] [-- rampay-load options...]" >&2; exit 2 ;;
esac
server_args=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do server_args+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
load_args=("$@")

# The load's warm-up and duration (rampay-load's defaults: 1 and 10 s), for the default window.
warmup=1 duration=10
for ((i = 0; i < ${#load_args[@]}; i++)); do
  case "${load_args[$i]}" in
    --warmup) warmup=${load_args[$((i + 1))]} ;;
    --duration|-d) duration=${load_args[$((i + 1))]} ;;
  esac
done
# The window must close before the load ends (the server stops with it): it opens a second after the warm-up and
# closes three seconds before the measured part ends (the sign-ups before the warm-up take well under a second).
delay=${SAMPLE_DELAY:-$(awk -v w="$warmup" 'BEGIN { print w + 1 }')}
window=${SAMPLE_SECONDS:-$(awk -v d="$duration" 'BEGIN { s = d - 3; print (s < 1 ? 1 : s) }')}

# bench/load.sh starts the server and runs the tool; its "server:" line (printed just before the tool starts) names the
# server's URL and its new temporary data folder, by which the server's pid is found (that path is this run's alone).
out=$(mktemp -t rampay-cpu-XXXXXX)
load_pid=
cleanup() {
  if [ -n "$load_pid" ] && kill -0 "$load_pid" 2>/dev/null; then kill -TERM "$load_pid" 2>/dev/null || true; wait "$load_pid" 2>/dev/null || true; fi
  rm -f "$out" "$out".before "$out".after
}
trap cleanup EXIT
SERVER_ARGS="${server_args[*]}" "${LOAD_SH:-bench/load.sh}" "$mode" "${load_args[@]}" >"$out" 2>&1 &
load_pid=$!
# load.sh builds first (minutes on a crowded machine) and waits up to 60 s for the server: wait while it runs.
while ! grep -q '^server: ' "$out" && kill -0 "$load_pid" 2>/dev/null; do sleep 0.1; done
line=$(grep -m1 '^server: ' "$out" || true)
http_url=$(sed -n 's/^server: \(http:[^,]*\),.*/\1/p' <<<"$line")
data_dir=$(sed -n 's/^server: .*, data \([^ ]*\) .*/\1/p' <<<"$line")
server_pid=$(pgrep -f -- "--data $data_dir " | head -1 || true)
if [ -z "$http_url" ] || [ -z "$server_pid" ]; then echo "error: the server did not start:" >&2; cat "$out" >&2; exit 2; fi
echo "server: pid $server_pid, $http_url (started by bench/load.sh); window: ${window} s from ${delay} s after the load starts"

# One read of every thread's stat (a single cat, so the snapshot takes milliseconds even on a crowded machine), then
# the commands applied so far. Lines: "tid<TAB>name<TAB>ticks"; the last line "commands<TAB>N".
snapshot() {
  # A thread that ends between the glob and its read makes cat fail; with pipefail and set -e that ended the whole
  # script without a word (seen with the event log's consumers on): what was read is enough.
  { cat /proc/"$server_pid"/task/*/stat 2>/dev/null || true; } | awk '{
    s = $0; l = index(s, "("); r = length(s); while (r > 0 && substr(s, r, 1) != ")") r--;
    name = substr(s, l + 1, r - l - 1); split(substr(s, r + 2), f, " ");
    printf "%s\t%s\t%d\n", $1, name, f[12] + f[13] }'
  awk '{ s = $0; r = length(s); while (r > 0 && substr(s, r, 1) != ")") r--; split(substr(s, r + 2), f, " ");
    printf "process\t(all threads)\t%d\n", f[12] + f[13] }' /proc/"$server_pid"/stat
  # The commands applied, and the garbage collector's counters (collections by generation, pause, bytes allocated).
  { curl -fsS "$http_url/metrics" || true; } | awk '
    $1 ~ /^rampay_commands_applied_total/ { n += $2; seen = 1 }
    $1 ~ /^dotnet_gc_collections_total/ { g = $1; sub(/.*gc_heap_generation="/, "", g); sub(/".*/, "", g); gc[g] += $2 }
    $1 ~ /^dotnet_gc_pause_time_seconds_total/ { pause += $2 }
    $1 ~ /^dotnet_gc_heap_total_allocated_bytes_total/ { alloc += $2 }
    END { if (seen) printf "commands\t-\t%d\n", n; else print "commands\t-\t"  # /metrics did not answer
          printf "gc.gen0\t-\t%d\ngc.gen1\t-\t%d\ngc.gen2\t-\t%d\n", gc["gen0"], gc["gen1"], gc["gen2"]
          printf "gc.pause_s\t-\t%.6f\ngc.allocated_bytes\t-\t%.0f\n", pause, alloc }'
}

sleep "$delay"
snapshot >"$out.before"
t0=$(date +%s.%N)
sleep "$window"
snapshot >"$out.after"
t1=$(date +%s.%N)
fit=1
kill -0 "$server_pid" 2>/dev/null || fit=0
grep -q '^[0-9]' "$out.after" || fit=0                       # no thread read: the server had gone
grep -q '^commands.-.[0-9]' "$out.after" || fit=0             # /metrics did not answer
status=0
wait "$load_pid" || status=$?
load_pid=
cat "$out"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$fit" = 0 ]; then echo "error: the load ended before the window closed: lower SAMPLE_DELAY/SAMPLE_SECONDS or raise --duration" >&2; exit 2; fi

awk -v hz="$(getconf CLK_TCK)" -v t0="$t0" -v t1="$t1" -F'\t' '
  NR == FNR { before[$1] = $3; next }
  $1 == "commands" { commands = $3 - before["commands"]; next }
  $1 ~ /^gc\./ { gcd[$1] = $3 - before[$1]; next }
  $1 == "process" { process = ($3 - before["process"]) / hz; next }
  ($1 in before) { cpu[$1] = ($3 - before[$1]) / hz; name[$1] = $2 }
  END {
    printf "window %.2f s, %d commands applied (%.0f/s)\n", t1 - t0, commands, commands / (t1 - t0);
    per = commands > 0 ? 1e6 / commands : 0;
    printf "%-8s %-20s %10s %12s\n", "tid", "thread", "cpu s", "us/command";
    n = 0; for (t in cpu) if (cpu[t] > 0) order[++n] = t;
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (cpu[order[j]] > cpu[order[i]]) { x = order[i]; order[i] = order[j]; order[j] = x }
    for (i = 1; i <= n; i++) { t = order[i]; printf "%-8s %-20s %10.2f %12.1f\n", t, name[t], cpu[t], cpu[t] * per; byname[name[t]] += cpu[t]; sum += cpu[t] }
    print "by thread name:";
    for (k in byname) printf "  %-26s %10.2f %12.1f\n", k, byname[k], byname[k] * per;
    printf "threads alive at both reads %8.2f %12.1f\n", sum, sum * per;
    printf "whole process               %8.2f %12.1f   (the difference: threads started or ended in the window)\n", process, process * per;
    w = t1 - t0;
    printf "gc in the window: gen0 %d, gen1 %d, gen2 %d collections (%.1f, %.1f, %.2f /s); pause %.1f ms/s; allocated %.0f bytes per command\n",
      gcd["gc.gen0"], gcd["gc.gen1"], gcd["gc.gen2"], gcd["gc.gen0"] / w, gcd["gc.gen1"] / w, gcd["gc.gen2"] / w, gcd["gc.pause_s"] * 1000 / w,
      (commands > 0 ? gcd["gc.allocated_bytes"] / commands : 0);
  }' "$out.before" "$out.after"
exit "$status"
