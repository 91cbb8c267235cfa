#!/usr/bin/env bash
# Checks deploy/prometheus: the configuration and alert rules parse (promtool check), and every alert fires on the
# series of deploy/prometheus/tests that should fire it and on no other (promtool test rules). Run by .ci/run.
# Needs Debian's prometheus package (promtool), which scripts/services.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v promtool >/dev/null || { echo "prometheus-test: promtool is missing (apt-get install prometheus)" >&2; exit 1; }
promtool check config deploy/prometheus/prometheus.yml
promtool check rules deploy/prometheus/rules/*.yml
promtool test rules deploy/prometheus/tests/*.test.yml
echo "prometheus-test: rules checked and unit-tested"
