#!/usr/bin/env bash
# The deployment files' checks, run by .ci/run after the test suite (docs/deploy.md, "What CI checks"):
#   1. deploy/prometheus: promtool check + promtool test rules (scripts/prometheus-test.sh)
#   2. compose.yaml and compose.local.yaml parsed and checked (deploy/tests/test_compose.py)
#   3. deploy/k8s rendered with kubectl kustomize (every overlay) and validated against the Kubernetes schemas and
#      RamPay's rules (deploy/k8s/validate, kubernetes-models from npm)
#   4. the container test: image, SIGTERM and restart, the platform under podman-compose (scripts/container-test.sh)
# Prints each part's time. Needs root (podman), promtool, python3-yaml, node/npm, kubectl (for kustomize).
set -euo pipefail
cd "$(dirname "$0")/.."
t=$SECONDS
step() { echo "deploy-test: $1 ($((SECONDS - t)) s)"; t=$SECONDS; }

bash scripts/prometheus-test.sh
step "prometheus rules checked and unit-tested"

python3 deploy/tests/test_compose.py
step "compose files checked"

command -v kubectl >/dev/null || { echo "deploy-test: kubectl is missing (it renders deploy/k8s with its built-in kustomize)" >&2; exit 1; }
if [ ! -d deploy/k8s/validate/node_modules ]; then (cd deploy/k8s/validate && npm ci --no-audit --no-fund >/dev/null); fi
rendered=$(mktemp -d)
trap 'rm -rf "$rendered"' EXIT
for overlay in deploy/k8s/overlays/*/; do
  kubectl kustomize "$overlay" >"$rendered/$(basename "$overlay").yaml"
done
node deploy/k8s/validate/validate.mjs README.md "$rendered"/*.yaml
# The validator must refuse what it exists to refuse: a misspelt field, a wrong type, two server replicas, a token-holding
# worker rolled over (two pods on one token) or whose token file is gone with the pod.
base="$rendered/production.yaml"
for breakage in 's/^  serviceName: /  servicename: /' 's/^  replicas: 1$/  replicas: "1"/' '/^kind: StatefulSet$/,/^---$/s/^  replicas: 1$/  replicas: 2/' \
                '0,/^    type: Recreate$/s//    type: RollingUpdate/' '/persistentVolumeClaim:$/{N;s/persistentVolumeClaim:\n *claimName: .*/emptyDir: {}/}'; do
  sed "$breakage" "$base" >"$rendered/broken.yaml.txt"
  cmp -s "$base" "$rendered/broken.yaml.txt" && { echo "deploy-test: '$breakage' changed nothing" >&2; exit 1; }
  if node deploy/k8s/validate/validate.mjs README.md "$rendered/broken.yaml.txt" >/dev/null 2>&1; then
    echo "deploy-test: the Kubernetes validator accepted a broken manifest ($breakage)" >&2; exit 1
  fi
done
step "kubernetes manifests rendered and validated"

bash scripts/container-test.sh
step "container test"
