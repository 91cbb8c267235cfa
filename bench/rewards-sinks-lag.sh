#!/usr/bin/env bash
# Where a live reward lag sits (docs/benchmarks.md, "Rewards worker live at 10,000 eligible payments/s: met on the idle
# machine..."): a private mock broker (32 partitions), a Release server with its Kafka sink (fraud off, in-server rewards
# consumer off, a 100 % cashback rule), one `rampay-worker rewards`, and `rampay-load tcp --rate RATE` for DURATION s.
# Every 5 s it prints payments received, rewards issued, the journal's head and the Kafka sink's lag (records), the
# events the worker handled, and the CPU ticks (1/100 s) of broker, server and worker, so a reader sees which hop falls
# behind. Needs the Release builds of src/RamPay.Server, src/RamPay.Worker and bench/RamPay.Load, ports 18080, 17070
# and 18090 free, and curl and python3. Kills only what it started.
#   usage: bench/rewards-sinks-lag.sh          env: RATE (10000), DURATION (30), SERVER_ARGS (more --RamPay:... flags)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
d=$(mktemp -d -t rampay-sinks-lag-XXXXXX)
mock=$(bash "$root/tools/kafka-mock/build.sh")
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$d"' EXIT
"$mock" --bootstrap-file "$d/boot" rampay.lag:32 >"$d/mock.out" 2>&1 & pids+=($!); mock_pid=$!
for _ in $(seq 1 50); do [ -s "$d/boot" ] && break; sleep 0.1; done
b=$(cat "$d/boot")
# shellcheck disable=SC2086
dotnet "$root/src/RamPay.Server/bin/Release/net10.0/rampay-server.dll" --data "$d/data" --http-port 18080 --tcp-port 17070 \
  --admin-email a@x.test --admin-password adminpass123 --RamPay:Fraud:Enabled=false --RamPay:Kafka:BootstrapServers="$b" \
  --RamPay:Kafka:Topic=rampay.lag --RamPay:Rewards:InServerConsumer=false --RamPay:RateLimit:RequestsPerSecond=0 ${SERVER_ARGS:-} >"$d/server.log" 2>&1 &
pids+=($!); server_pid=$!
for _ in $(seq 1 60); do curl -sf localhost:18080/health/ready >/dev/null && break; sleep 1; done
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
t=$(curl -s -X POST localhost:18080/v1/auth/token -H 'content-type: application/json' -d '{"email":"a@x.test","password":"adminpass123"}' | json "['access_token']")
post() { curl -sf -X POST "localhost:18080$1" -H "authorization: Bearer $t" -H 'content-type: application/json' -H "Idempotency-Key: $2" -d "$3"; }
post /v1/admin/rewards/top_up t1 '{"amount":1000000000,"currency":"USD"}' >/dev/null
post /v1/admin/reward_rules r1 '{"name":"lag","percent_bps":10000,"currency":"USD"}' >/dev/null
st=$(post /v1/admin/service_tokens s1 '{"name":"lag"}' | json "['access_token']")
RAMPAY_SERVICE_TOKEN=$st dotnet "$root/src/RamPay.Worker/bin/Release/net10.0/rampay-worker.dll" rewards --kafka "$b" --group lag \
  --topic rampay.lag --server http://127.0.0.1:18080 --http-port 18090 >"$d/worker.log" 2>&1 & pids+=($!); worker_pid=$!
sleep 6
dotnet "$root/bench/RamPay.Load/bin/Release/net10.0/rampay-load.dll" tcp --http http://127.0.0.1:18080/ --tcp 127.0.0.1:17070 \
  --rate "${RATE:-10000}" --duration "${DURATION:-30}" --warmup 10 --connections 4 --sample 0 >"$d/load.out" 2>&1 & load_pid=$!
metric() { curl -s "$1/metrics" | awk -v m="$2" '$1 == m || index($1, m "{") == 1 {print $2; exit}'; }
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
while kill -0 "$load_pid" 2>/dev/null; do
  ready=$(curl -s localhost:18080/health/ready)
  echo "$(date +%T) payments=$(metric localhost:18080 rampay_tcp_commands_received_total) rewards=$(metric localhost:18080 rampay_rewards_issued_total)" \
    "journal=$(echo "$ready" | json "['journal_sequence']") kafka_lag_records=$(echo "$ready" | json "['sinks']['kafka']['lag_records']")" \
    "worker_events=$(metric localhost:18090 rampay_worker_events_total) ticks(broker,server,worker)=$(ticks $mock_pid),$(ticks $server_pid),$(ticks $worker_pid)" \
    "load=$(cut -d' ' -f1 /proc/loadavg)"
  sleep 5
done
sleep 5
echo "after: rewards=$(metric localhost:18080 rampay_rewards_issued_total)"
