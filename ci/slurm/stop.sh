#!/usr/bin/env bash
# Stop the one-node test cluster started by ci/slurm/start.sh (slurmd, slurmctld, munged).
# Kills only the daemons by the pid they recorded; leaves packages and config in place.
set -uo pipefail
quiet=0; [ "${1:-}" = "--quiet" ] && quiet=1
RUN_DIR="${SLURM_RUN_DIR:-/var/lib/stylediff-slurm}"
say() { [ "$quiet" = 1 ] || echo "$@"; }

stop_pidfile() {  # name pidfile
  local name=$1 pidfile=$2 pid
  [ -s "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    say "== stopping $name (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$pidfile"
}

# Cancel jobs still queued/running so slurmd does not leave job steps behind.
if command -v scancel >/dev/null 2>&1 && [ -s "$RUN_DIR/slurmctld.pid" ]; then
  timeout 10 scancel --user=root >/dev/null 2>&1 || true
fi
stop_pidfile slurmd "$RUN_DIR/slurmd.pid"
stop_pidfile slurmctld "$RUN_DIR/slurmctld.pid"
stop_pidfile munged /run/munge/munged.pid
exit 0
