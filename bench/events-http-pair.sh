#!/usr/bin/env bash
# The event log's HTTP figure (issue 12): bench/load.sh http, interleaved, in two prebuilt trees: the old tree with the
# event log on, this change's tree with it on, and with RamPay:Events:Enabled=false; RUNS rounds.
#
#   bench/events-http-pair.sh OLD_TREE NEW_TREE RUNS [rampay-load http options]
#   e.g. bench/events-http-pair.sh /tmp/evlog-base /tmp/evlog-new 3 --connections 64 --duration 10 --warmup 30
#
# Each run prints its rate (acknowledged payments/s) and the CPU of the server's rampay-sink-events thread (the event
# log's writer, read from /proc/PID/task/*/stat every second) per payment in the steady state: the thread's CPU over
# seconds 20..38 after the server started, divided by the run's rate. On a shared machine that figure bends far less
# than the rate. Each tree's bench/load.sh builds its own tree first (quick when it is built already; SKIP_BUILD=1, passed
# on to load.sh, skips it when both trees are built and the machine is too busy for even a no-op build per run); LOAD_SH
# names another script in each tree instead.
set -euo pipefail
old=$1 new=$2 runs=$3
shift 3

# The pids under $1, recursively.
descendants() {
  local p
  for p in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    echo "$p"
    descendants "$p"
  done
}

sink_ticks() { # utime + stime of the server's rampay-sink-events thread (clock ticks), empty when not found
  local f
  for f in /proc/"$1"/task/*; do
    if [ "$(cat "$f/comm" 2>/dev/null)" = "rampay-sink-eve" ]; then
      awk '{print $14 + $15}' "$f/stat" 2>/dev/null
      return
    fi
  done
}

for i in $(seq 1 "$runs"); do
  for cfg in old:on new:on new:off; do
    tree=${cfg%%:*} events=${cfg##*:}
    dir=$old
    [ "$tree" = new ] && dir=$new
    args=
    [ "$events" = off ] && args=--RamPay:Events:Enabled=false
    out=$(mktemp)
    (cd "$dir" && SERVER_ARGS=$args exec bash "${LOAD_SH:-bench/load.sh}" http "$@") >"$out" 2>&1 &
    runner=$!
    server= t0= a= b=
    while kill -0 "$runner" 2>/dev/null; do
      if [ -z "$server" ]; then
        for p in $(descendants "$runner"); do
          if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q 'rampay-server.dll'; then server=$p; t0=$(date +%s); fi
        done
      elif [ "$events" = on ]; then
        now=$(date +%s)
        el=$((now - t0))
        ticks=$(sink_ticks "$server")
        if [ -n "$ticks" ]; then
          [ "$el" -ge 20 ] && [ -z "$a" ] && a="$now $ticks"
          [ "$el" -ge 38 ] && [ -z "$b" ] && b="$now $ticks"
        fi
      fi
      sleep 1
    done
    wait "$runner" || true
    rate=$(grep -oP 'throughput\s+\K[0-9,]+' "$out" | tr -d , || true)
    verdict=$(grep -E '^(PASS|FAIL)' "$out" | tail -1 || true)
    cpu=-
    if [ -n "$a" ] && [ -n "$b" ] && [ -n "$rate" ]; then
      read -r ta ca <<<"$a"
      read -r tb cb <<<"$b"
      cpu=$(awk -v ca="$ca" -v cb="$cb" -v ta="$ta" -v tb="$tb" -v r="$rate" 'BEGIN { printf "%.1f", (cb - ca) * 10000.0 / (tb - ta) / r }')
    fi
    echo "run $i $tree events-$events: ${rate:-?} payments/s, sink-events CPU ${cpu} µs/payment, $verdict (load $(cut -d' ' -f1 /proc/loadavg))"
    [ -z "$rate" ] && tail -20 "$out"
    rm -f "$out"
  done
done
