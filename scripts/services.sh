#!/usr/bin/env bash
# The real servers RamPay's tests run against: PostgreSQL 15, Redis 7 and a Kafka-protocol broker (librdkafka's
# mock cluster, hosted by tools/kafka-mock). Idempotent: what already answers is left as it is.
#
#   bash scripts/services.sh start   install what is missing (Debian packages), start the servers, wait until each
#                                    answers, write .services.env (exported RAMPAY_TEST_* variables)
#   bash scripts/services.sh stop    stop what this script started from this work tree: its own Kafka mock broker and
#                                    exim4 always; PostgreSQL and Redis only if this work tree started them AND no
#                                    other checkout's .services.env points at them (shared servers stay up)
#   RAMPAY_SERVICES_DRY_RUN=1 bash scripts/services.sh stop   say what stop would stop, and stop nothing
#   bash scripts/services.sh env     print .services.env
#
# The variables it writes (and the tests read):
#   RAMPAY_TEST_POSTGRES  Npgsql connection string to database rampay_test, role rampay/rampay (may create databases)
#   RAMPAY_TEST_REDIS     host:port of Redis (127.0.0.1:6379)
#   RAMPAY_TEST_KAFKA     bootstrap servers of the mock broker (127.0.0.1:PORT), topic rampay.events (8 partitions)
#   RAMPAY_TEST_SMTP      host:port of this work tree's own exim4 (tools/exim: accepts any address, 550 for bounce*@)
#   RAMPAY_TEST_MAILDIR   the maildir it delivers into (new/ holds each message): the notification tests read it
#
# Needs root (apt-get, su postgres). Several work trees on one machine share PostgreSQL and Redis; each has its own
# mock broker. A lock file serialises concurrent starts (apt's lock and two Redis starts would otherwise race).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
state="$root/.services"            # pid files and what this work tree started (gitignored)
env_file="$root/.services.env"     # gitignored
lock_file="/tmp/rampay-services.lock"
# Every checkout that ran "start" notes its root here, so that "stop" can find the other users of the shared
# PostgreSQL and Redis even when they are separate clones rather than worktrees of this repository.
users_dir="${RAMPAY_SERVICES_USERS_DIR:-/tmp/rampay-services.users}"
dry_run="${RAMPAY_SERVICES_DRY_RUN:-0}"

PG_VERSION=15
PG_HOST=127.0.0.1
PG_PORT=5432
REDIS_HOST=127.0.0.1
REDIS_PORT=6379
KAFKA_TOPICS=("rampay.events:8" "rampay.selfcheck:1")   # selfcheck: this script's own produce/consume round trip
# librdkafka1, librdkafka-dev and gcc build and run tools/kafka-mock; kcat is this script's own broker check (kafka_ready,
# kafka_round_trip). RamPay's processes and tests do not use them: they run the librdkafka bundled with Confluent.Kafka.
PACKAGES=(postgresql redis-server librdkafka1 librdkafka-dev kcat gcc prometheus chromium exim4-daemon-light)
# prometheus: the metrics scrape test runs its own. exim4-daemon-light: the real SMTP server of the notification tests
# (tools/exim/exim.sh, one per work tree on a port of its own).
# chromium: the web app's end-to-end tests (tests/RamPay.Web.Tests, Playwright pointed at /usr/bin/chromium);
# (axe-core, the accessibility checker those tests run in the page, is fetched from npm by scripts/fetch-axe.sh)
WAIT_SECONDS=${RAMPAY_SERVICES_WAIT_SECONDS:-30}

say() { echo "services: $*"; }
die() { echo "services: error: $*" >&2; exit 1; }

# Runs "$@" until it succeeds, at most WAIT_SECONDS; dies with the message otherwise.
wait_for() {
  local what="$1"; shift
  local deadline=$((SECONDS + WAIT_SECONDS))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then die "$what did not answer within ${WAIT_SECONDS}s"; fi
    sleep 0.2
  done
}

as_postgres() { (cd / && su postgres -c "$1"); }

missing_packages() {
  local p missing=()
  for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then missing+=("$p"); fi
  done
  echo "${missing[@]:-}"
}

install_packages() {
  local missing
  missing="$(missing_packages)"
  [ -z "$missing" ] && return 0
  [ "$(id -u)" -eq 0 ] || die "packages missing ($missing) and not root: install them with apt-get"
  say "installing Debian packages (missing: $missing)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null || die "apt-get install failed"
}

pg_ready() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; }

start_postgres() {
  if ! pg_lsclusters -h 2>/dev/null | awk '{print $1, $2}' | grep -qx "$PG_VERSION main"; then
    say "creating PostgreSQL cluster $PG_VERSION main"
    pg_createcluster "$PG_VERSION" main >/dev/null
  fi
  if ! pg_ready; then
    say "starting PostgreSQL $PG_VERSION"
    pg_ctlcluster "$PG_VERSION" main start 9>&- || die "pg_ctlcluster $PG_VERSION main start failed (log: /var/log/postgresql/postgresql-$PG_VERSION-main.log)"
    touch "$state/postgres.started"
  fi
  wait_for "PostgreSQL on $PG_HOST:$PG_PORT" pg_ready
  # The login role and the test database (created once; the role's password and rights are re-asserted).
  if [ "$(as_postgres "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname = 'rampay'\"")" != "1" ]; then
    as_postgres "psql -q -c \"CREATE ROLE rampay LOGIN CREATEDB PASSWORD 'rampay'\""
  else
    as_postgres "psql -q -c \"ALTER ROLE rampay LOGIN CREATEDB PASSWORD 'rampay'\""
  fi
  if [ "$(as_postgres "psql -tAc \"SELECT 1 FROM pg_database WHERE datname = 'rampay_test'\"")" != "1" ]; then
    as_postgres "createdb -O rampay rampay_test"
  fi
  wait_for "PostgreSQL login as rampay to rampay_test" \
    env PGPASSWORD=rampay psql -h "$PG_HOST" -p "$PG_PORT" -U rampay -d rampay_test -tAc 'SELECT 1'
}

redis_ready() { [ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]; }

start_redis() {
  if ! redis_ready; then
    say "starting Redis on $REDIS_HOST:$REDIS_PORT"
    redis-server --port "$REDIS_PORT" --bind "$REDIS_HOST" --save '' --appendonly no --daemonize yes \
      --pidfile "$state/redis.pid" --logfile "$state/redis.log" 9>&- || die "redis-server failed to start (log: $state/redis.log)"
    touch "$state/redis.started"
  fi
  wait_for "Redis on $REDIS_HOST:$REDIS_PORT" redis_ready
}

kafka_pid_alive() {
  local pid
  pid="$(cat "$state/kafka-mock.pid" 2>/dev/null)" || return 1
  [ -n "$pid" ] && { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -q rampay-kafka-mock
}

kafka_ready() { timeout 10 kcat -b "$1" -L -m 5 2>/dev/null | grep -q 'topic "rampay.events" with 8 partitions'; }

start_kafka() {
  local bin bootstrap
  if kafka_pid_alive && [ -s "$state/kafka-bootstrap" ] && kafka_ready "$(cat "$state/kafka-bootstrap")"; then
    return 0
  fi
  if kafka_pid_alive; then kill "$(cat "$state/kafka-mock.pid")" 2>/dev/null || true; fi
  bin="$(bash tools/kafka-mock/build.sh)" || die "building tools/kafka-mock failed"
  rm -f "$state/kafka-bootstrap"
  say "starting the Kafka mock broker"
  nohup setsid "$bin" --brokers 1 --bootstrap-file "$state/kafka-bootstrap" "${KAFKA_TOPICS[@]}" \
    >"$state/kafka-mock.log" 2>&1 </dev/null 9>&- &
  echo $! >"$state/kafka-mock.pid"
  wait_for "the Kafka mock broker (bootstrap file; log: $state/kafka-mock.log)" test -s "$state/kafka-bootstrap"
  bootstrap="$(cat "$state/kafka-bootstrap")"
  wait_for "the Kafka mock broker at $bootstrap" kafka_ready "$bootstrap"
  kafka_round_trip "$bootstrap"
}

# Produces one message to rampay.selfcheck and reads it back: the broker takes writes, not only metadata requests.
smtp_dir="$state/smtp"
smtp_ready() { [ -s "$state/smtp-port" ] && (exec 3<>"/dev/tcp/127.0.0.1/$(cat "$state/smtp-port")") 2>/dev/null; }

start_smtp() {
  if smtp_ready; then return 0; fi
  bash tools/exim/exim.sh stop "$smtp_dir"
  local port
  # A free high port of this work tree's own (others run their own exim on theirs).
  for _ in $(seq 50); do
    port=$((20000 + RANDOM % 40000))
    ss -ltn "sport = :$port" 2>/dev/null | grep -q LISTEN || break
  done
  say "starting exim4 on 127.0.0.1:$port (maildir $smtp_dir/maildir)"
  bash tools/exim/exim.sh start "$smtp_dir" "$port" 9>&- || die "exim4 failed to start (log: $smtp_dir/log)"
  echo "$port" >"$state/smtp-port"
}

kafka_round_trip() {
  local token got
  token="selfcheck-$$-$RANDOM"
  echo "$token" | timeout 10 kcat -b "$1" -P -t rampay.selfcheck -p 0 2>/dev/null || die "cannot produce to the Kafka mock broker at $1"
  got="$(timeout 10 kcat -b "$1" -C -t rampay.selfcheck -p 0 -o -1 -c 1 -e -q 2>/dev/null)" || true
  [ "$got" = "$token" ] || die "the Kafka mock broker at $1 did not return what was produced (got '$got')"
}

write_env() {
  local tmp="$env_file.tmp"
  cat >"$tmp" <<ENV
# Written by scripts/services.sh start; source it before dotnet test.
export RAMPAY_TEST_POSTGRES="Host=$PG_HOST;Port=$PG_PORT;Username=rampay;Password=rampay;Database=rampay_test"
export RAMPAY_TEST_REDIS="$REDIS_HOST:$REDIS_PORT"
export RAMPAY_TEST_KAFKA="$(cat "$state/kafka-bootstrap")"
export RAMPAY_TEST_SMTP="127.0.0.1:$(cat "$state/smtp-port")"
export RAMPAY_TEST_MAILDIR="$smtp_dir/maildir"
ENV
  mv "$tmp" "$env_file"
}

user_file() { echo "$users_dir/$(printf '%s' "$root" | md5sum | cut -c1-16)"; }

register_user() { mkdir -p "$users_dir" && printf '%s\n' "$root" >"$(user_file)"; }

# The roots of the other checkouts that may use the shared servers: this repository's worktrees, and every checkout
# that registered at start.
other_checkouts() {
  { git -C "$root" worktree list --porcelain 2>/dev/null | sed -n 's/^worktree //p'
    cat "$users_dir"/* 2>/dev/null || true; } | sort -u | grep -vxF "$root" || true
}

# Prints the first other checkout whose .services.env holds the line prefix $1 (a server it uses), and succeeds; or fails.
used_by_other() {
  local line=$1 other
  while IFS= read -r other; do
    [ -n "$other" ] && [ -f "$other/.services.env" ] || continue
    if grep -qF -- "$line" "$other/.services.env"; then echo "$other"; return 0; fi
  done < <(other_checkouts)
  return 1
}

# Runs "$@", or only says it under RAMPAY_SERVICES_DRY_RUN=1.
act() {
  if [ "$dry_run" = 1 ]; then say "dry run: would run: $*"; else "$@"; fi
}

start() {
  mkdir -p "$state"
  register_user
  # Servers started below get "9>&-" so that none of them keeps the lock open after this script ends.
  exec 9>"$lock_file"
  flock -w 600 9 || die "another services.sh start holds $lock_file"
  install_packages
  start_postgres
  start_redis
  start_kafka
  start_smtp
  write_env
  flock -u 9
  say "PostgreSQL, Redis, Kafka and SMTP answer; variables in .services.env"
}

stop() {
  local pid other
  # Stopping is serialised with starts: a checkout that starts now either sees the server stopped and starts its own,
  # or has written its .services.env before this looks.
  exec 9>"$lock_file"
  flock -w 600 9 || die "another services.sh start holds $lock_file"
  if kafka_pid_alive; then
    pid="$(cat "$state/kafka-mock.pid")"
    say "stopping this work tree's Kafka mock broker (pid $pid)"
    act kill -TERM "$pid" 2>/dev/null || true
    [ "$dry_run" = 1 ] || for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  act rm -f "$state/kafka-mock.pid" "$state/kafka-bootstrap"
  if [ -s "$smtp_dir/exim.pid" ]; then say "stopping this work tree's exim4"; act bash tools/exim/exim.sh stop "$smtp_dir"; fi
  act rm -f "$state/smtp-port"
  # Our own entries go first, so that the checks below see only the other checkouts.
  act rm -f "$env_file" "$(user_file)"
  # PostgreSQL and Redis are shared by every checkout on the machine: stopped only when this work tree started them
  # (its marker) and no other checkout's .services.env points at them. Otherwise the marker is handed on: it stays,
  # and the server with it.
  if [ -e "$state/redis.started" ]; then
    if other="$(used_by_other "export RAMPAY_TEST_REDIS=\"$REDIS_HOST:$REDIS_PORT\"")"; then
      say "leaving Redis on $REDIS_HOST:$REDIS_PORT up: $other uses it"
    elif ! redis_is_ours; then
      say "leaving Redis on $REDIS_HOST:$REDIS_PORT up: the one answering is not the one this work tree started"
      act rm -f "$state/redis.started"
    else
      say "stopping Redis (started by this work tree, used by no other checkout)"
      act redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
      act rm -f "$state/redis.started"
    fi
  fi
  if [ -e "$state/postgres.started" ]; then
    if other="$(used_by_other "export RAMPAY_TEST_POSTGRES=\"Host=$PG_HOST;Port=$PG_PORT;")"; then
      say "leaving PostgreSQL on $PG_HOST:$PG_PORT up: $other uses it"
    else
      say "stopping PostgreSQL (started by this work tree, used by no other checkout)"
      act pg_ctlcluster "$PG_VERSION" main stop || true
      act rm -f "$state/postgres.started"
    fi
  fi
  flock -u 9
}

# True when the Redis this work tree started (its pid file) is alive and is a redis-server.
redis_is_ours() {
  local pid
  pid="$(cat "$state/redis.pid" 2>/dev/null)" || return 1
  [ -n "$pid" ] && { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -q redis-server
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) [ -f "$env_file" ] || die "no .services.env: run 'bash scripts/services.sh start' first"; cat "$env_file" ;;
  *) echo "usage: bash scripts/services.sh start|stop|env" >&2; exit 2 ;;
esac
