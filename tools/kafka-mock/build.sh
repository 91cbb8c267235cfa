#!/usr/bin/env bash
# Builds rampay-kafka-mock into tools/kafka-mock/build/ (gitignored) against Debian's librdkafka-dev.
# Rebuilds only when the source is newer than the binary. Prints the binary's path.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/build/rampay-kafka-mock"
if [ ! -x "$out" ] || [ "$here/rampay-kafka-mock.c" -nt "$out" ]; then
  mkdir -p "$here/build"
  gcc -std=c11 -D_DEFAULT_SOURCE -O2 -Wall -Wextra -Werror -o "$out.tmp" "$here/rampay-kafka-mock.c" -lrdkafka
  mv "$out.tmp" "$out"
fi
echo "$out"
