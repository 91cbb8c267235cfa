#!/usr/bin/env bash
# Webhook delivery figures (issue 12: at least 10,000 deliveries/s to a local receiver with signing; p99 from payment
# acknowledgement to receipt under 1 s while the server takes 2,000 payments/s). docs/benchmarks.md, "Webhook delivery".
#
#   bench/webhooks.sh                       # all three parts, one run, machine load recorded before and after each
#   env: LAT_RATE (2000), LAT_SECONDS (30), TPUT_ENDPOINTS (10), TPUT_RATE (1500), TPUT_SECONDS (20), BASE_SECONDS (10),
#        SKIP_BUILD (1: use the server build there is), SERVER_ARGS (more --RamPay:... flags), PARTS (blt: which of
#        baseline, latency, throughput to run)
#
# Builds rampay-server in Release and starts it for each part on a new temporary data folder (fsync on, fraud off, no
# rate limit, webhooks in the server on the embedded default: SQLite store, Webhooks:AllowPrivateNetworks=true for the
# loopback receiver), then bench/webhooks.mjs (node, no packages) holds both ends:
#   1. baseline: plain POSTs from node to its own receiver, 64 in flight: the receiver's ceiling on this machine;
#   2. latency: one endpoint, payments over HTTP at LAT_RATE/s for LAT_SECONDS: acknowledgement -> receipt p50/p90/p99;
#   3. throughput: TPUT_ENDPOINTS endpoints (one delivery per payment each) at TPUT_RATE payments/s: deliveries/s.
# Prints one JSON line per part. Kills only the server it started (by pid).
set -euo pipefail
cd "$(dirname "$0")/.."
server_dll=src/RamPay.Server/bin/Release/net10.0/rampay-server.dll
[ -n "${SKIP_BUILD:-}" ] || dotnet build src/RamPay.Server -c Release --nologo -v quiet >/dev/null
command -v node >/dev/null || { echo "error: node is needed (bench/webhooks.mjs)" >&2; exit 2; }

work=$(mktemp -d -t rampay-webhooks-XXXXXX)
server_pid=
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=
}
trap 'stop_server; rm -rf "$work"' EXIT
admin_password="admin-$RANDOM$RANDOM"

start_server() { # -> $http_url
  rm -rf "$work/data"; : >"$work/server.log"
  # shellcheck disable=SC2086 # SERVER_ARGS is a list of words on purpose
  dotnet "$server_dll" --data "$work/data" --http-port 0 --tcp-port 0 \
    --admin-email admin@rampay.test --admin-password "$admin_password" \
    --RamPay:Fsync=true --RamPay:RateLimit:RequestsPerSecond=0 --RamPay:Auth:PasswordHashIterations=1000 --RamPay:Fraud:Enabled=false \
    --RamPay:Webhooks:AllowPrivateNetworks=true ${SERVER_ARGS:-} >"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 600); do
    grep -q '^rampay-server: ready' "$work/server.log" && break
    kill -0 "$server_pid" 2>/dev/null || { echo "error: the server exited during start-up:" >&2; cat "$work/server.log" >&2; exit 2; }
    sleep 0.1
  done
  grep -q '^rampay-server: ready' "$work/server.log" || { echo "error: the server was not ready within 60 s" >&2; exit 2; }
  http_url=$(sed -n 's/^rampay-server: http listening on \(http:[^ ]*\).*/\1/p' "$work/server.log" | head -1)
}
load() { cut -d' ' -f1-3 /proc/loadavg; }
# CPU seconds the server process has used (user + system, from /proc; 0 without a server).
server_cpu() {
  if [ -n "$server_pid" ] && [ -r "/proc/$server_pid/stat" ]; then
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$server_pid/stat"
  else echo 0; fi
}
run() { # label, node args...
  local label=$1; shift
  local before after cpu0 cpu1
  before=$(load); cpu0=$(server_cpu)
  out=$(node bench/webhooks.mjs --admin-email admin@rampay.test --admin-password "$admin_password" "$@")
  after=$(load); cpu1=$(server_cpu)
  # server_cpu_s: what the server spent during the part (sign-ups, payments and deliveries; node's own is in the result).
  echo "{\"part\":\"$label\",\"load_before\":\"$before\",\"load_after\":\"$after\",\"server_cpu_s\":$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.1f", b - a }'),\"result\":$out}"
}

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
parts=${PARTS:-blt}
echo "# server flags: ${SERVER_ARGS:-(defaults)}"
if [[ $parts == *b* ]]; then
  run baseline --api http://127.0.0.1:1/ --phase baseline --seconds "${BASE_SECONDS:-10}"
fi
if [[ $parts == *l* ]]; then
  start_server
  run latency --api "$http_url" --phase drive --endpoints 1 --rate "${LAT_RATE:-2000}" --seconds "${LAT_SECONDS:-30}"
  stop_server
fi
if [[ $parts == *t* ]]; then
  start_server
  run throughput --api "$http_url" --phase drive --endpoints "${TPUT_ENDPOINTS:-10}" --rate "${TPUT_RATE:-1500}" --seconds "${TPUT_SECONDS:-20}"
  stop_server
fi
