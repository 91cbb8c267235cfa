#!/usr/bin/env bash
# Runs a load test against a fresh server and stops it afterwards.
#
#   bench/load.sh tcp  [rampay-load options]   e.g. bench/load.sh tcp --connections 4 --batch 100 --pipeline 8 --duration 10
#   bench/load.sh http [rampay-load options]   e.g. bench/load.sh http --connections 16 --duration 10
#   bench/load.sh wrk  [wrk options]           default: -t2 -c16 -d10s --latency (cross-check of the HTTP figures)
#
# Builds the server and the tool in Release, starts rampay-server on a new temporary data folder with fsync on,
# HTTP rate limiting off, fraud scoring off (random payments between a few wallets at this rate are exactly what the
# model holds for review, and the tool's self-check expects every acknowledged payment to move money; scoring's cost
# in the writer is measured by bench/RamPay.Benchmarks '*Fraud*') and cheap password hashing (sign-up speed is not
# what is measured), on free ports, waits
# for "rampay-server: ready", runs the tool against it, stops the server and removes the folder. The exit status
# is the tool's (rampay-load: 0 PASS, 1 FAIL, 2 could not run). SERVER_ARGS adds server options, e.g.
# SERVER_ARGS='--RamPay:Tcp:MaxInFlightBatches=64' bench/load.sh tcp --pipeline 32.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-}
case "$mode" in
  tcp|http|wrk) shift ;;
  *) echo "usage: bench/load.sh tcp|http|wrk [options...]" >&2; exit 2 ;;
esac
if [ "$mode" = wrk ] && ! command -v wrk >/dev/null 2>&1; then
  echo "error: wrk is not installed (Debian: apt-get install -y wrk)" >&2
  exit 2
fi

# SKIP_BUILD=1: use the Release builds already there (a no-op build takes over a minute on a busy machine).
if [ -z "${SKIP_BUILD:-}" ]; then
  dotnet build src/RamPay.Server -c Release --nologo -v quiet >/dev/null
  dotnet build bench/RamPay.Load -c Release --nologo -v quiet >/dev/null
fi
server_dll=src/RamPay.Server/bin/Release/net10.0/rampay-server.dll
load_dll=bench/RamPay.Load/bin/Release/net10.0/rampay-load.dll

data=$(mktemp -d -t rampay-load-XXXXXX)
log="$data/server.log"
server_pid=
stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$data"
}
trap stop_server EXIT

# shellcheck disable=SC2086 # SERVER_ARGS is a list of words on purpose
dotnet "$server_dll" --data "$data/data" --http-port 0 --tcp-port 0 \
  --admin-email admin@rampay.test --admin-password "admin-$RANDOM$RANDOM" \
  --RamPay:Fsync=true --RamPay:RateLimit:RequestsPerSecond=0 --RamPay:Auth:PasswordHashIterations=1000 --RamPay:Fraud:Enabled=false \
  ${SERVER_ARGS:-} >"$log" 2>&1 &
server_pid=$!

for _ in $(seq 1 600); do
  grep -q '^rampay-server: ready' "$log" && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "error: the server exited during start-up:" >&2
    cat "$log" >&2
    exit 2
  fi
  sleep 0.1
done
if ! grep -q '^rampay-server: ready' "$log"; then
  echo "error: the server did not become ready within 60 s:" >&2
  cat "$log" >&2
  exit 2
fi
http_url=$(sed -n 's/^rampay-server: http listening on \(http:[^ ]*\).*/\1/p' "$log" | head -1)
tcp_addr=$(sed -n 's/^rampay-server: tcp listening on \([^ ]*\).*/\1/p' "$log" | head -1)
echo "server: $http_url, tcp $tcp_addr, data $data/data (fsync on)"

status=0
case "$mode" in
  tcp)  dotnet "$load_dll" tcp --http "$http_url" --tcp "$tcp_addr" "$@" || status=$? ;;
  http) dotnet "$load_dll" http --http "$http_url" "$@" || status=$? ;;
  wrk)
    # One wallet pays another 1 minor unit per request; payments.lua makes each Idempotency-Key unique.
    exports=$(dotnet "$load_dll" setup --http "$http_url" --users 2 --deposit 100000000) || exit 2
    eval "$exports"
    export RAMPAY_TOKEN RAMPAY_FROM RAMPAY_TO RAMPAY_CURRENCY RAMPAY_RUN
    if [ $# -eq 0 ]; then set -- -t2 -c16 -d10s --latency; fi
    # A fresh server's HTTP path needs about 5 s of load before the tiered JIT has compiled it: WRK_WARMUP=6 runs
    # wrk that long first (its own keys, output discarded).
    if [ "${WRK_WARMUP:-0}" -gt 0 ]; then
      RAMPAY_RUN="$RAMPAY_RUN-warmup" wrk -s bench/wrk/payments.lua -t2 -c64 -d"${WRK_WARMUP}s" "$http_url" >/dev/null || true
    fi
    wrk -s bench/wrk/payments.lua "$@" "$http_url" || status=$?
    # WRK_BASELINE=1: the same wrk options on GET /health/live (a constant body, no engine), in the same run.
    if [ "${WRK_BASELINE:-0}" = 1 ]; then
      echo "baseline: GET /health/live"
      wrk "$@" "$http_url/health/live" || status=$?
    fi
    ;;
esac
exit "$status"
