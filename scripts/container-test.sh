#!/usr/bin/env bash
# The container test (run by .ci/run; docs/deploy.md): builds RamPay's image with Podman on local base images and
# proves it, then brings up compose.yaml with compose.local.yaml and proves the platform end to end.
#
#   1. scripts/container-images.sh: the local base, the aspnet/sdk stand-ins, PostgreSQL/Redis/Prometheus/Kafka-mock
#      images (cached between runs: built only when their inputs change).
#   2. podman build --format docker of the Dockerfile's server target (and the worker target once src/RamPay.Worker
#      exists), on the stand-ins. Prints the image size.
#   3. One container on a fresh volume: waits for /health/ready (prints start-to-ready), signs up two users, pays, stops
#      it with SIGTERM (exit 0, "stopped cleanly" within the grace period), starts a new container on the same volume,
#      finds the payment and the balances, and `podman healthcheck run` passes.
#   4. compose.yaml + compose.local.yaml under podman-compose (Grafana left out): a payment reaches PostgreSQL (its
#      row) and the Kafka topic (its PaymentApproved event), Prometheus scrapes the server and loaded the alert rules,
#      and the worker image consumes the topic (its built-in archive consumer, in the broker's namespace; and each of
#      compose.yaml's worker roles that the worker knows).
#
# Needs root, podman, runc, debootstrap, podman-compose, curl, jq. Everything it starts is named rampay-ct-<pid> and
# removed at the end (also on failure). Prints "container-test: passed" and the timings.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
export CONTAINERS_CONF="$root/deploy/local/containers.conf"
name="rampay-ct-$$"
grace=60
started=$SECONDS

say() { echo "container-test: $*"; }
die() { echo "container-test: FAILED: $*" >&2; exit 1; }
# scripts/container-images.sh (step 1) installs podman, podman-compose and jq on a fresh machine: the tools are checked
# after it (checked before it, a fresh CI machine failed here with nothing installed).

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc | xargs printf '%.1f'; }

compose_files=(-f compose.yaml -f compose.local.yaml)
compose() { podman-compose --podman-path "$root/deploy/local/podman-netns.sh" -p "$name" "${compose_files[@]}" "$@"; }
cleanup() {
  set +e
  podman rm -f -t 5 "$name-one" "$name-archive" >/dev/null 2>&1
  podman volume rm -f "$name-data" >/dev/null 2>&1
  if [ -n "${compose_up:-}" ]; then compose down -v -t 10 >/dev/null 2>&1; fi
  podman ps -aq --filter "label=io.podman.compose.project=$name" | xargs -r podman rm -f >/dev/null 2>&1
  podman rm -f -t 5 "$name-kafka" >/dev/null 2>&1   # the namespace's owner goes last
  podman volume ls -q --filter "label=io.podman.compose.project=$name" | xargs -r podman volume rm -f >/dev/null 2>&1
  podman volume ls -q | grep "^${name}_" | xargs -r podman volume rm -f >/dev/null 2>&1
  podman network rm -f "${name}_default" >/dev/null 2>&1
  rm -f "${created_secrets[@]:-/nonexistent}"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---- 1. local base images
bash scripts/container-images.sh
for tool in podman podman-compose curl jq; do command -v "$tool" >/dev/null || die "$tool is not installed"; done

# ---- 2. the images
build_image() {
  local target="$1" tag="$2" t0; t0=$(now)
  podman build --format docker --pull=never --layers \
    --build-arg SDK_IMAGE=localhost/rampay-local/sdk:10.0 --build-arg RUNTIME_IMAGE=localhost/rampay-local/aspnet:10.0 \
    --target "$target" -t "$tag" . >"/tmp/$name-build-$target.log" 2>&1 || { tail -40 "/tmp/$name-build-$target.log" >&2; die "podman build --target $target"; }
  rm -f "/tmp/$name-build-$target.log"
  say "built $tag in $(since "$t0") s, $(podman image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')"
}
build_image server localhost/rampay-server:latest
have_worker=0
if [ -f src/RamPay.Worker/RamPay.Worker.csproj ]; then build_image worker localhost/rampay-worker:latest; have_worker=1
else say "src/RamPay.Worker does not exist in this tree: no worker image, no worker checks"; fi
[ "$(podman image inspect --format '{{.Config.User}}' localhost/rampay-server:latest)" = "1654" ] || die "the image does not run as the non-root user 1654"
podman image inspect --format '{{json .Config.Healthcheck}}' localhost/rampay-server:latest | grep -q -- '--health-check' || die "the image has no HEALTHCHECK (built without --format docker?)"

# ---- helpers for the API (base URL in $api)
post() { curl -sS -o /tmp/$name-body -w '%{http_code}' -X POST "$api$1" -H 'Content-Type: application/json' ${3:+-H "Authorization: Bearer $3"} ${4:+-H "Idempotency-Key: $4"} -d "$2"; }
expect_post() { local code; code=$(post "$@"); [ "$code" = "$5" ] || die "POST $1 answered $code, expected $5: $(cat /tmp/$name-body)"; cat /tmp/$name-body; }
get() { curl -sS -f "$api$1" ${2:+-H "Authorization: Bearer $2"}; }
wait_ready() {
  local deadline=$((SECONDS + $1))
  until curl -sf "$api/health/ready" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "$api/health/ready did not answer 200 within $1 s"
    sleep 0.2
  done
}
sign_up() { # email -> "user_id wallet token"
  local user token
  user=$(expect_post /v1/users "{\"email\":\"$1\",\"password\":\"password-123\",\"name\":\"CT\",\"currency\":\"USD\"}" "" "" 201)
  token=$(expect_post /v1/auth/token "{\"email\":\"$1\",\"password\":\"password-123\"}" "" "" 200 | jq -r .access_token)
  echo "$(jq -r .user_id <<<"$user") $(jq -r .wallet_account_id <<<"$user") $token"
}
pay_once() { # sets alice_*, bob_*, payment_id
  read -r _ alice_wallet alice_token <<<"$(sign_up "alice-$RANDOM$RANDOM@example.com")"
  read -r _ bob_wallet bob_token <<<"$(sign_up "bob-$RANDOM$RANDOM@example.com")"
  expect_post "/v1/accounts/$alice_wallet/deposits" '{"amount":1000,"currency":"USD"}' "$alice_token" "dep-$RANDOM$RANDOM" 201 >/dev/null
  payment_id=$(expect_post /v1/payments "{\"from_account\":$alice_wallet,\"to_account\":$bob_wallet,\"amount\":250,\"currency\":\"USD\",\"capture\":true}" \
    "$alice_token" "pay-$RANDOM$RANDOM" 201 | jq -r .id)
  [ -n "$payment_id" ] && [ "$payment_id" != null ] || die "the payment has no id"
}

# ---- 3. one container, SIGTERM, a new container on the same volume
port=$(free_port)
api="http://127.0.0.1:$port"
podman volume create "$name-data" >/dev/null
# The second start runs as deploy/k8s does: root file system read-only, /tmp a tmpfs, no capabilities.
run_one() {
  podman run -d --name "$name-one" -p "127.0.0.1:$port:8080" -v "$name-data:/var/lib/rampay" "$@" \
    -e RAMPAY_ADMIN__PASSWORD=ct-admin-password localhost/rampay-server:latest >/dev/null 2>&1 || die "podman run $*"
}
t0=$(now); run_one; wait_ready 120; first_ready=$(since "$t0")
say "first start: ready after $first_ready s (an empty volume)"
pay_once
say "paid: payment $payment_id, account $alice_wallet -> $bob_wallet, 250"
t0=$(now); podman stop -t "$grace" "$name-one" >/dev/null; stop_s=$(since "$t0")
code=$(podman inspect --format '{{.State.ExitCode}}' "$name-one")
[ "$code" = 0 ] || die "SIGTERM: exit code $code, expected 0: $(podman logs --tail 20 "$name-one" 2>&1)"
podman logs "$name-one" 2>&1 | grep -q '"stopped cleanly"' || die "SIGTERM: no 'stopped cleanly' in the log"
awk -v s="$stop_s" -v g="$grace" 'BEGIN { exit !(s < g) }' || die "the stop took $stop_s s, not within the $grace s grace period"
say "SIGTERM: stopped cleanly (exit 0) in $stop_s s"
podman rm "$name-one" >/dev/null
t0=$(now); run_one --read-only --tmpfs /tmp --cap-drop ALL; wait_ready 120; second_ready=$(since "$t0")
say "second start on the same volume (read-only root file system, no capabilities): ready after $second_ready s"
payment=$(get "/v1/payments/$payment_id" "$alice_token") || die "GET /v1/payments/$payment_id after the restart"
[ "$(jq -r '.status + " " + (.amount|tostring)' <<<"$payment")" = "posted 250" ] || die "after the restart the payment is $payment"
[ "$(get "/v1/accounts/$bob_wallet" "$bob_token" | jq -r .posted)" = 250 ] || die "after the restart Bob's balance is not 250: $(get "/v1/accounts/$bob_wallet" "$bob_token")"
podman healthcheck run "$name-one" >/dev/null 2>&1 || die "podman healthcheck run failed"
say "restart: payment $payment_id found (posted, 250), Bob's balance 250, podman healthcheck run: healthy"
podman stop -t "$grace" "$name-one" >/dev/null
podman rm "$name-one" >/dev/null
podman volume rm "$name-data" >/dev/null

# ---- 4. the platform: compose.yaml + compose.local.yaml
created_secrets=()
for example in deploy/compose/secrets/*.env.example; do
  target="${example%.example}"
  [ -e "$target" ] && continue
  cp "$example" "$target"; created_secrets+=("$root/$target")
done
# Passwords for this run (only in the files this run created, which it deletes again).
pg_password="ct-pg-$RANDOM$RANDOM"; redis_password="ct-redis-$RANDOM$RANDOM"
for f in "${created_secrets[@]:-}"; do
  [ -n "$f" ] && sed -i "s/change-me-postgres/$pg_password/; s/change-me-redis/$redis_password/; s/change-me-admin-password/ct-admin-password/" "$f"
done
export RAMPAY_CT_NAME="$name" RAMPAY_HTTP_PORT=$(free_port) RAMPAY_TCP_PORT=$(free_port) RAMPAY_PROMETHEUS_PORT=$(free_port)
api="http://127.0.0.1:$RAMPAY_HTTP_PORT"
services=(postgres redis kafka kafka-init server prometheus)
# compose.yaml's worker roles that this tree's rampay-worker knows (its usage line lists them).
known_roles=""
if [ "$have_worker" = 1 ]; then
  known_roles=$(podman run --rm localhost/rampay-worker:latest 2>&1 | sed -n 's/^consumers: //p' | tr -d ',') || true
  for role in notifications analytics rewards webhooks; do
    if [ "$role" = rewards ] || [ "$role" = notifications ]; then
      # Each needs a service token made by an admin after the server's first start (docs/rewards.md,
      # docs/notifications.md; notifications also an SMTP server or SMS gateway); this test makes none.
      say "worker-$role needs a service token (RAMPAY_SERVICE_TOKEN): not started by this test"
    elif [[ " $known_roles " == *" $role "* ]]; then services+=("worker-$role"); else say "the worker has no '$role' consumer yet (it knows: $known_roles): worker-$role not started"; fi
  done
fi
t0=$(now)
compose_up=1
compose up -d --no-build "${services[@]}" >"/tmp/$name-compose.log" 2>&1 || { cat "/tmp/$name-compose.log" >&2; die "podman-compose up"; }
wait_ready 180
say "compose: ${services[*]} up, server ready after $(since "$t0") s"
pay_once
say "compose: paid, payment $payment_id"
deadline=$((SECONDS + 60))
until [ "$(podman exec "${name}_postgres_1" psql -U rampay -d rampay -tAc "SELECT status || ' ' || amount FROM payments WHERE id = $payment_id" 2>/dev/null)" = "posted 250" ]; do
  [ $SECONDS -lt $deadline ] || die "payment $payment_id did not reach PostgreSQL within 60 s: $(curl -s "$api/health/ready")"
  sleep 0.5
done
say "compose: payment $payment_id is in PostgreSQL (posted, 250)"
bootstrap=$(podman exec "$name-kafka" cat /run/kafka/bootstrap)
deadline=$((SECONDS + 60))
until podman exec "$name-kafka" kcat -b "$bootstrap" -C -t rampay.events -o beginning -e -q 2>/dev/null \
      | jq -s -e --argjson id "$payment_id" 'any(.[]; .type == "PaymentApproved" and .payment.id == $id and .payment.amount == 250)' >/dev/null 2>&1; do
  [ $SECONDS -lt $deadline ] || die "no PaymentApproved event of payment $payment_id on rampay.events within 60 s"
  sleep 0.5
done
say "compose: PaymentApproved of payment $payment_id is on the Kafka topic rampay.events"
prom="http://127.0.0.1:$RAMPAY_PROMETHEUS_PORT"
deadline=$((SECONDS + 60))
until [ "$(curl -s "$prom/api/v1/query" --data-urlencode 'query=up{job="rampay-server"}' | jq -r '.data.result[0].value[1]' 2>/dev/null)" = 1 ]; do
  [ $SECONDS -lt $deadline ] || die "Prometheus does not scrape the server (up{job=\"rampay-server\"} != 1 after 60 s)"
  sleep 1
done
rules=$(curl -s "$prom/api/v1/rules" | jq '[.data.groups[].rules[]] | length')
expected_rules=$(grep -c '^      - alert:' deploy/prometheus/rules/rampay-alerts.yml)
[ "$rules" = "$expected_rules" ] || die "Prometheus loaded $rules rules, deploy/prometheus/rules has $expected_rules"
say "compose: Prometheus scrapes the server and loaded all $rules alert rules"
worker_events() { # port -> rampay_worker_events_total (sum), or nothing
  podman exec "$name-kafka" curl -sf "http://127.0.0.1:$1/metrics" 2>/dev/null | awk '/^rampay_worker_events_total[{ ]/ {s += $NF; n++} END {if (n) print s}'
}
if [ "$have_worker" = 1 ]; then
  # The image's worker on the same topic, in the broker's namespace: the built-in "archive" consumer keeps every event as a
  # file; the payment's PaymentApproved must arrive there, and the worker must count it as handled (offsets committed).
  podman run -d --name "$name-archive" --network "container:$name-kafka" localhost/rampay-worker:latest \
    archive --kafka "$bootstrap" --group "$name-archive" --http-port 8090 --out /tmp/archive >/dev/null 2>&1 || die "podman run of the archive worker"
  deadline=$((SECONDS + 90))
  until podman exec "$name-archive" sh -c 'cat /tmp/archive/*.json 2>/dev/null' \
        | jq -s -e --argjson id "$payment_id" 'any(.[]; .type == "PaymentApproved" and .payment.id == $id)' >/dev/null 2>&1 \
        && [ "$(worker_events 8090)" -gt 0 ] 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || die "the worker image (archive consumer) did not consume payment $payment_id within 90 s: $(podman logs --tail 20 "$name-archive" 2>&1)"
    sleep 1
  done
  say "compose: the worker image consumed the topic (archive consumer: PaymentApproved of payment $payment_id on disk, $(worker_events 8090) events handled)"
  podman rm -f -t 10 "$name-archive" >/dev/null 2>&1
  for w in notifications:8081 analytics:8082 rewards:8083 webhooks:8084; do
    [[ " ${services[*]} " == *" worker-${w%%:*} "* ]] || continue
    deadline=$((SECONDS + 90))
    until [ "$(worker_events "${w#*:}")" -gt 0 ] 2>/dev/null; do
      [ $SECONDS -lt $deadline ] || die "worker-${w%%:*} handled no event within 90 s"
      sleep 1
    done
    say "compose: worker-${w%%:*} consumed the topic ($(worker_events "${w#*:}") events handled)"
  done
fi
compose down -v -t "$grace" >/dev/null 2>&1
say "passed in $((SECONDS - started)) s (image build included); start-to-ready $first_ready s (first), $second_ready s (restart); SIGTERM stop $stop_s s"
