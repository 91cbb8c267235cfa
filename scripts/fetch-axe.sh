#!/usr/bin/env bash
# Fetches axe-core (the accessibility rules engine the web app's end-to-end tests run in the browser) from npm into
# tests/RamPay.Web.Tests/axe/ (gitignored). Idempotent; needs npm (Debian's `npm` package) and the npm registry.
set -euo pipefail
cd "$(dirname "$0")/.."
AXE_VERSION=4.14.1
dest="tests/RamPay.Web.Tests/axe"
if [ -f "$dest/axe-$AXE_VERSION.min.js" ]; then exit 0; fi
command -v npm >/dev/null 2>&1 || { echo "fetch-axe: npm is missing (apt-get install npm)" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "axe-core@$AXE_VERSION" >/dev/null && tar -xzf "axe-core-$AXE_VERSION.tgz")
mkdir -p "$dest"
cp "$tmp/package/axe.min.js" "$dest/axe-$AXE_VERSION.min.js"
cp "$tmp/package/LICENSE" "$dest/LICENSE" 2>/dev/null || true
echo "fetch-axe: axe-core $AXE_VERSION in $dest"
