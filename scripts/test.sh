#!/usr/bin/env bash
# Runs every test project of RamPay.sln in Release and prints one closing line: "tests: N passed, N failed".
# First starts the real servers the integration tests use (PostgreSQL, Redis, the Kafka mock broker; installing
# their Debian packages on a fresh machine) and exports their addresses (RAMPAY_TEST_POSTGRES, RAMPAY_TEST_REDIS,
# RAMPAY_TEST_KAFKA) from .services.env. A test whose server is unreachable fails; none is skipped for it (only two
# figures report skipped: RewardsLiveFigures, which bench/rewards-live.sh runs with RAMPAY_REWARDS_LIVE=1, and
# AnalyticsGrowthFigures, run by hand with RAMPAY_ANALYTICS_GROWTH_USERS and _MINUTES: docs/benchmarks.md).
set -uo pipefail
cd "$(dirname "$0")/.."

if ! bash scripts/services.sh start; then
  echo "error: scripts/services.sh start failed; the integration tests need its servers" >&2
  echo "tests: 0 passed, 1 failed"
  exit 1
fi
# shellcheck source=/dev/null
source .services.env

# Artifacts CI keeps (RAMPAY_ARTIFACTS, default artifacts/): the web app's end-to-end tests save a screenshot of each
# page they check in artifacts/screenshots (docs/web.md). Emptied first, so what is there is this run's.
export RAMPAY_ARTIFACTS="${RAMPAY_ARTIFACTS:-$PWD/artifacts}"
rm -rf "$RAMPAY_ARTIFACTS/screenshots"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
dotnet test RamPay.sln -c Release --nologo "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

# dotnet test prints one summary line per test project, e.g.
#   Passed!  - Failed:     0, Passed:   120, Skipped:     0, Total:   120, Duration: 3 s - RamPay.Core.Tests.dll (net10.0)
passed=$(grep -oE 'Passed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
failed=$(grep -oE 'Failed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
projects=$(grep -cE '^(Passed|Failed)! ' "$log" || true)
echo "test projects run: $projects"
if [ "$passed" -eq 0 ] && [ "$status" -eq 0 ]; then
  echo "error: no test ran" >&2
  status=1
fi
echo "artifacts: $RAMPAY_ARTIFACTS/screenshots ($(find "$RAMPAY_ARTIFACTS/screenshots" -name '*.png' 2>/dev/null | wc -l) screenshots)"
echo "tests: $passed passed, $failed failed"
[ "$status" -eq 0 ] || exit "$status"

# Then the deployment files: Prometheus rules (promtool), compose files, Kubernetes manifests, and the container test
# that builds the images and runs them and the whole platform with Podman (docs/deploy.md). Only on a whole run (no
# arguments for dotnet test); RAMPAY_SKIP_DEPLOY_TEST=1 leaves it out. About 3 minutes for an unchanged tree, 5 after a
# change on an idle machine; the local base images take a few minutes once and are kept between runs.
if [ $# -eq 0 ] && [ "${RAMPAY_SKIP_DEPLOY_TEST:-0}" != 1 ]; then
  bash scripts/deploy-test.sh
fi
