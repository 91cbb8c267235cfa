#!/usr/bin/env bash
# podman, as podman-compose 1.0.3 should call it for a service with network_mode "container:NAME"
# (podman-compose --podman-path deploy/local/podman-netns.sh; scripts/container-test.sh). podman-compose adds
# "--net PROJECT_default --network-alias SERVICE" to every container, and podman refuses both beside
# "--network container:NAME" ("cannot set multiple networks"). For such a container this drops those two options and
# passes everything else to podman unchanged; every other call is podman itself.
set -euo pipefail
args=("$@")
shared=0
for ((i = 0; i < ${#args[@]} - 1; i++)); do
  if [ "${args[i]}" = "--network" ] && [[ "${args[i + 1]}" == container:* ]]; then shared=1; fi
done
if [ "$shared" -eq 0 ]; then exec podman "$@"; fi
out=()
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --net | --network-alias) i=$((i + 1)) ;;     # the option and its value
    *) out+=("${args[i]}") ;;
  esac
done
exec podman "${out[@]}"
