#!/usr/bin/env bash
# Builds the local base images the container test needs, where no container registry is reachable (docs/deploy.md,
# "Podman here"); each is built only when missing or when its inputs changed (a content label), so later runs take
# seconds. Prints nothing but progress; exits non-zero when a build fails.
#
#   localhost/rampay-local/debian:bookworm   debootstrap --variant=minbase from the machine's Debian mirror
#   localhost/rampay-local/aspnet:10.0       stand-in for mcr.microsoft.com/dotnet/aspnet:10.0 (the machine's .NET runtime)
#   localhost/rampay-local/sdk:10.0          stand-in for mcr.microsoft.com/dotnet/sdk:10.0 (the machine's .NET SDK, the host's CA bundle)
#   localhost/rampay-local/postgres:15       stand-in for postgres:17 (Debian's PostgreSQL 15, same variables)
#   localhost/rampay-local/redis:7           stand-in for redis:7 (Debian's Redis)
#   localhost/rampay-local/kafka-mock:1      tools/kafka-mock in an image, standing in for apache/kafka
#   localhost/rampay-local/prometheus:2      stand-in for prom/prometheus (Debian's Prometheus)
#
# Needs root, podman, debootstrap (apt-get install podman runc debootstrap podman-compose).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$root/deploy/local/containers.conf}"
local_dir="$root/deploy/local"
prefix="localhost/rampay-local"

say() { echo "container-images: $*"; }
die() { echo "container-images: error: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (rootful podman, debootstrap)"
# A fresh machine has none of these: install them (Debian packages), under the lock scripts/services.sh also takes.
# Without recommends, podman's CNI networks have no name resolution: the dnsname plugin gives the compose services
# theirs (the platform test's server could not resolve "postgres" on a fresh machine without it).
packages=(podman runc debootstrap podman-compose buildah jq bc curl golang-github-containernetworking-plugin-dnsname)
missing=()
for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  exec 9>/tmp/rampay-services.lock
  flock -w 600 9 || die "another installation holds /tmp/rampay-services.lock"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
  flock -u 9
fi

# The label an image was built with, or nothing when it does not exist.
built_key() { podman image inspect --format '{{ index .Labels "rampay.inputs" }}' "$1" 2>/dev/null || true; }

mirror() {
  local m
  m="$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
  [ -n "$m" ] || m="$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
  echo "${m:-http://deb.debian.org/debian}"
}

build_base() {
  local image="$prefix/debian:bookworm" key rootfs
  key="debootstrap-minbase-bookworm-$(mirror)"
  [ "$(built_key "$image")" = "$key" ] && return 0
  say "building $image (debootstrap, about a minute)"
  rootfs="$(mktemp -d /tmp/rampay-rootfs.XXXXXX)"
  debootstrap --variant=minbase bookworm "$rootfs" "$(mirror)" >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log" >&2; rm -rf "$rootfs"; die "debootstrap failed"; }
  # The machine's apt sources (same mirror and suites, security updates included).
  cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/" 2>/dev/null && rm -f "$rootfs/etc/apt/sources.list" || true
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | podman import --change "LABEL rampay.inputs=$key" --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
  rm -rf "$rootfs" "$rootfs.log"
}

# build IMAGE CONTAINERFILE KEY [podman build options...]
build() {
  local image="$1" file="$2" key="$3"; shift 3
  [ "$(built_key "$image")" = "$key" ] && return 0
  say "building $image"
  podman build --format docker --pull=never --layers --label "rampay.inputs=$key" -t "$image" -f "$file" "$@" "$local_dir" \
    || die "building $image failed"
}

hash_of() { cat "$@" | sha256sum | cut -c1-16; }

dotnet_dir="$(dirname "$(readlink -f "$(command -v dotnet)")")"
dotnet_key="$(dotnet --version)-$(ls "$dotnet_dir/shared/Microsoft.AspNetCore.App" | tr '\n' ,)"

build_base
base_key="$(built_key "$prefix/debian:bookworm")"
build "$prefix/aspnet:10.0" "$local_dir/aspnet.Containerfile" "$(hash_of "$local_dir/aspnet.Containerfile")-$dotnet_key-$base_key" \
  --build-context "dotnet=$dotnet_dir"
build "$prefix/sdk:10.0" "$local_dir/sdk.Containerfile" \
  "$(hash_of "$local_dir/sdk.Containerfile" /etc/ssl/certs/ca-certificates.crt)-$(built_key "$prefix/aspnet:10.0" | cut -c1-40)" \
  --build-context "dotnet=$dotnet_dir" --build-context certs=/etc/ssl/certs
build "$prefix/postgres:15" "$local_dir/postgres.Containerfile" "$(hash_of "$local_dir/postgres.Containerfile" "$local_dir/postgres-entrypoint.sh")-$base_key"
build "$prefix/redis:7" "$local_dir/redis.Containerfile" "$(hash_of "$local_dir/redis.Containerfile")-$base_key"
mock="$(bash tools/kafka-mock/build.sh)"
build "$prefix/kafka-mock:1" "$local_dir/kafka-mock.Containerfile" "$(hash_of "$local_dir/kafka-mock.Containerfile" "$mock")-$base_key" \
  --build-context "mock=$(dirname "$mock")"
build "$prefix/prometheus:2" "$local_dir/prometheus.Containerfile" "$(hash_of "$local_dir/prometheus.Containerfile")-$base_key"
say "local images ready"
