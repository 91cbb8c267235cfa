#!/usr/bin/env bash
# Fetches axe-core (the accessibility rules engine the web app's end-to-end tests run in the browser) from the npm
# registry into tests/RamPay.Web.Tests/axe/ (gitignored), checked against its SHA-256. Idempotent. Uses npm when it is
# installed, else the registry's tarball URL with curl (a fresh Debian machine has curl but not npm).
set -euo pipefail
cd "$(dirname "$0")/.."
AXE_VERSION=4.14.1
AXE_SHA256=e6b0ce02b84d892e2e33e403485e7f3d6c29e2be6df65daf44d89ba564139745   # axe-core-4.14.1.tgz
dest="tests/RamPay.Web.Tests/axe"
if [ -f "$dest/axe-$AXE_VERSION.min.js" ]; then exit 0; fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
tgz="$tmp/axe-core-$AXE_VERSION.tgz"
if command -v npm >/dev/null 2>&1; then
  (cd "$tmp" && npm pack --silent "axe-core@$AXE_VERSION" >/dev/null)
else
  curl -fsSL --retry 3 -o "$tgz" "https://registry.npmjs.org/axe-core/-/axe-core-$AXE_VERSION.tgz"
fi
echo "$AXE_SHA256  $tgz" | sha256sum -c --quiet - || { echo "fetch-axe: checksum mismatch for axe-core $AXE_VERSION" >&2; exit 1; }
tar -xzf "$tgz" -C "$tmp"
mkdir -p "$dest"
cp "$tmp/package/axe.min.js" "$dest/axe-$AXE_VERSION.min.js"
cp "$tmp/package/LICENSE" "$dest/LICENSE" 2>/dev/null || true
echo "fetch-axe: axe-core $AXE_VERSION in $dest"
