#!/usr/bin/env bash
# A private exim4 SMTP server for the notification tests (tools/exim/rampay-exim.conf).
#   bash tools/exim/exim.sh start DIR PORT   start it on 127.0.0.1:PORT, mail into DIR/maildir/new; waits until it answers
#   bash tools/exim/exim.sh stop DIR         stop the one started on DIR (its pid file), and only that one
# Needs root (exim keeps root to deliver as Debian-exim) and Debian's exim4-daemon-light.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cmd="${1:-}"; dir="${2:-}"
[ -n "$dir" ] || { echo "usage: exim.sh start DIR PORT | stop DIR" >&2; exit 2; }
case "$cmd" in
  start)
    port="${3:?usage: exim.sh start DIR PORT}"
    mkdir -p "$dir/spool" "$dir/log" "$dir/maildir"
    chown Debian-exim:Debian-exim "$dir/maildir"
    chmod 755 "$dir"   # exim delivers as Debian-exim, which must reach DIR/maildir (a mktemp directory is 700)
    # -bd: exim forks its daemon and returns; the daemon writes DIR/exim.pid.
    /usr/sbin/exim4 -C "$here/rampay-exim.conf" -DSMTP_PORT="$port" -DMAIL_ROOT="$dir" -bd -q30m </dev/null 9>&-
    for _ in $(seq 100); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then exit 0; fi
      sleep 0.1
    done
    echo "exim.sh: exim did not answer on 127.0.0.1:$port (log: $dir/log/mainlog, $dir/log/paniclog)" >&2
    exit 1 ;;
  stop)
    if [ -s "$dir/exim.pid" ]; then
      pid="$(cat "$dir/exim.pid")"
      if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$dir"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      fi
      rm -f "$dir/exim.pid"
    fi ;;
  *) echo "usage: exim.sh start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
