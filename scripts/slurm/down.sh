#!/usr/bin/env bash
# Stop the single-node SLURM cluster that scripts/slurm/up.sh started: only the daemons whose pids
# up.sh recorded (slurmd, slurmctld, slurmdbd, mariadbd, munged, in that order), each checked
# against its executable first so that a reused pid is never signalled. Packages, configuration,
# the accounting database and the controller's state stay: the next up.sh starts in seconds.
#
#   bash scripts/slurm/down.sh            # stop the daemons
#   bash scripts/slurm/down.sh --purge    # also delete the state (database, logs) under $STATE
set -euo pipefail

STATE=${GROKPATH_SLURM_STATE:-/var/lib/grokpath-slurm}
PIDS=$STATE/pids
log() { printf 'slurm-down: %s\n' "$*" >&2; }

stop() {
  local name=$1 exe=$2 file=$PIDS/$1.pid pid
  [ -s "$file" ] || return 0
  pid=$(cat "$file")
  if [ -d "/proc/$pid" ] && [ "$(readlink -f "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "$exe")" ]; then
    kill -TERM "$pid"
    for _ in $(seq 1 150); do
      [ -d "/proc/$pid" ] || break
      sleep 0.2
    done
    if [ -d "/proc/$pid" ]; then
      log "$name (pid $pid) did not stop in 30 s: sending KILL"
      kill -KILL "$pid" || true
    fi
    log "stopped $name (pid $pid)"
  else
    log "$name (pid $pid) is not running"
  fi
  rm -f "$file"
}

[ -d "$PIDS" ] || {
  log "nothing recorded under $PIDS: nothing to stop"
  exit 0
}
stop slurmd /usr/sbin/slurmd
stop slurmctld /usr/sbin/slurmctld
stop slurmdbd /usr/sbin/slurmdbd
stop mariadbd /usr/sbin/mariadbd
stop munged /usr/sbin/munged

if [ "${1:-}" = "--purge" ]; then
  rm -rf "$STATE"
  log "removed $STATE"
fi
