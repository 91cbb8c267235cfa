#!/bin/bash
# Interleaved old (/tmp/im-base) and new (/work/wt/indexmem) ColdStoreBench runs; one at a time.
# usage: run.sh <label> <rounds> <bench args...>
label=$1; rounds=$2; shift 2
for r in $(seq 1 $rounds); do
  for which in old new; do
    if [ $which = old ]; then root=/tmp/im-base; else root=/work/wt/indexmem; fi
    out=/tmp/im-bench/$label-$which-$r.log
    echo "== $which round $r $(date -u +%H:%M:%S) load $(cat /proc/loadavg)" > $out
    dotnet $root/bench/RamPay.ColdStoreBench/bin/Release/net10.0/RamPay.ColdStoreBench.dll "$@" --dir /tmp/im-bench/data-$which >> $out 2>&1
    echo "== end $(date -u +%H:%M:%S) load $(cat /proc/loadavg)" >> $out
    rm -rf /tmp/im-bench/data-$which
  done
done
