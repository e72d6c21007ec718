#!/usr/bin/env bash
# Bring up a single-node SLURM cluster on localhost, with accounting, from Debian 12's packages:
# munged, MariaDB (a private instance), slurmdbd, slurmctld and slurmd. For the workflow's SLURM
# tests (tests/test_slurm.py) and for trying profiles/slurm on one machine; needs root.
#
#   bash scripts/slurm/up.sh      # install what is missing, start what is not running, wait
#   bash scripts/slurm/down.sh    # stop what up.sh started (and only that)
#
# Idempotent: a second call finds every daemon running and returns once the node is idle and
# sacct answers. The daemons run in the foreground of their own sessions, started directly (there
# is no systemd here); their pids are recorded under $STATE/pids for down.sh. A daemon that is
# already running and was not started by this script (a system munged, say) is used, not touched.
#
# Environment:
#   GROKPATH_SLURM_STATE    state, logs, pids and the database (default /var/lib/grokpath-slurm)
#   GROKPATH_SLURM_DB_PORT  TCP port of the private MariaDB on 127.0.0.1 (default 3307)
#   GROKPATH_SLURM_TIMEOUT  seconds to wait for each daemon (default 60)
#   GROKPATH_SLURM_FORCE=1  overwrite an /etc/slurm/slurm.conf that this script did not write
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
STATE=${GROKPATH_SLURM_STATE:-/var/lib/grokpath-slurm}
DB_PORT=${GROKPATH_SLURM_DB_PORT:-3307}
TIMEOUT=${GROKPATH_SLURM_TIMEOUT:-60}
CLUSTER=grokpath
PARTITION=debug
ACCOUNT=grokpath
DB_NAME=slurm_acct_db
DB_USER=slurm
CONF_DIR=/etc/slurm
MARKER="# Written by scripts/slurm/up.sh (grokpath)"
PACKAGES=(munge mariadb-server-core mariadb-client-core slurmctld slurmd slurmdbd slurm-client)

log() { printf 'slurm-up: %s\n' "$*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and starts system daemons)"
T0=$(date +%s%N)

# ---------------------------------------------------------------- packages
install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  # Keep package scripts from starting their own daemons (they would hold our ports, with pids
  # we do not know): a temporary policy-rc.d, unless the machine already has one.
  local policy=/usr/sbin/policy-rc.d own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  local rc=0
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
    >"$STATE/log/apt.log" 2>&1 || rc=$?
  if [ "$own_policy" -eq 1 ]; then
    rm -f "$policy"
    trap - EXIT
  fi
  if [ "$rc" -ne 0 ]; then
    tail -n 30 "$STATE/log/apt.log" >&2
    die "apt-get install failed (rc $rc)"
  fi
}

# ---------------------------------------------------------------- helpers
PIDS=$STATE/pids
mkdir -p "$STATE" "$STATE/log" "$PIDS"

# pid recorded for NAME and still that daemon (pid reuse is checked against the executable)
running_pid() {
  local name=$1 exe=$2 pid
  [ -s "$PIDS/$name.pid" ] || return 1
  pid=$(cat "$PIDS/$name.pid")
  [ -d "/proc/$pid" ] && [ "$(readlink -f "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "$exe")" ] || return 1
  echo "$pid"
}

# wait_for WHAT LOGFILE PID CHECK...: until CHECK succeeds; fails when PID (if not empty) exits
# or after $TIMEOUT seconds, showing the end of LOGFILE.
wait_for() {
  local what=$1 logfile=$2 pid=$3
  shift 3
  local deadline=$((SECONDS + TIMEOUT)) why=""
  until "$@" >/dev/null 2>&1; do
    if [ -n "$pid" ] && [ ! -d "/proc/$pid" ]; then
      why="$what exited"
    elif [ $SECONDS -ge $deadline ]; then
      why="timed out after ${TIMEOUT}s waiting for $what"
    fi
    if [ -n "$why" ]; then
      log "$why; last lines of $logfile:"
      tail -n 30 "$logfile" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
}

# start_daemon NAME EXE CHECK LOGFILE CMD...: start CMD (the daemon in the foreground) in its own
# session unless the recorded one runs, or CHECK says a daemon not ours already serves; then wait
# until CHECK succeeds.
start_daemon() {
  local name=$1 exe=$2 check=$3 logfile=$4
  shift 4
  local pid=""
  if pid=$(running_pid "$name" "$exe"); then
    log "$name already running (pid $pid)"
  elif $check >/dev/null 2>&1; then
    log "$name: one not started by this script is running; using it"
    pid=""
  else
    rm -f "$PIDS/$name.pid"
    setsid "$@" </dev/null >>"$logfile" 2>&1 &
    pid=$!
    echo "$pid" >"$PIDS/$name.pid"
    log "started $name (pid $pid)"
  fi
  wait_for "$name" "$logfile" "$pid" $check
}

# ---------------------------------------------------------------- munge
munge_ok() { munge -n </dev/null | unmunge >/dev/null; }

setup_munge() {
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
  start_daemon munged /usr/sbin/munged munge_ok "$STATE/log/munged.out" \
    setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground
}

# ---------------------------------------------------------------- MariaDB (private instance)
DB_DIR=$STATE/mysql
DB_RUN=$STATE/mysql-run
DB_SOCK=$DB_RUN/mysqld.sock
db_ok() { mariadb --no-defaults --socket="$DB_SOCK" -uroot -e "SELECT 1"; }
sql() { mariadb --no-defaults --socket="$DB_SOCK" -uroot -e "$1"; }

setup_db() {
  # mariadb-server-core creates no user (the full mariadb-server package's scripts would)
  id -u mysql >/dev/null 2>&1 ||
    useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin mysql
  if [ ! -d "$DB_DIR/mysql" ]; then
    log "initialising MariaDB in $DB_DIR"
    install -d -o mysql -g mysql -m 0750 "$DB_DIR"
    mariadb-install-db --no-defaults --user=mysql --datadir="$DB_DIR" \
      --auth-root-authentication-method=socket --skip-test-db >"$STATE/log/mariadb-install.log" 2>&1 ||
      {
        tail -n 30 "$STATE/log/mariadb-install.log" >&2
        die "mariadb-install-db failed"
      }
  fi
  install -d -o mysql -g mysql -m 0755 "$DB_RUN"
  start_daemon mariadbd /usr/sbin/mariadbd db_ok "$STATE/log/mariadbd.log" \
    /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$DB_DIR" --socket="$DB_SOCK" \
    --pid-file="$DB_RUN/mariadbd.pid" --bind-address=127.0.0.1 --port="$DB_PORT" \
    --innodb-buffer-pool-size=64M --innodb-lock-wait-timeout=900
  if [ ! -s "$STATE/db.password" ]; then
    (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$STATE/db.password")
  fi
  local pass
  pass=$(cat "$STATE/db.password")
  sql "CREATE DATABASE IF NOT EXISTS $DB_NAME;
       CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$pass';
       ALTER USER '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$pass';
       GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'127.0.0.1';"
}

# ---------------------------------------------------------------- SLURM configuration
write_conf() {
  local dst=$1 src=$2 mode=$3 node_line=$4
  if [ -e "$dst" ] && ! grep -qF "$MARKER" "$dst" && [ "${GROKPATH_SLURM_FORCE:-0}" != 1 ]; then
    die "$dst exists and was not written by this script; set GROKPATH_SLURM_FORCE=1 to replace it"
  fi
  local tmp
  tmp=$(mktemp "$dst.XXXXXX")
  sed -e "s|@STATE@|$STATE|g" -e "s|@CLUSTER@|$CLUSTER|g" -e "s|@PARTITION@|$PARTITION|g" \
    -e "s|@NODE_LINE@|$node_line|g" -e "s|@DBUSER@|$DB_USER|g" -e "s|@DBNAME@|$DB_NAME|g" \
    -e "s|@DBPASS@|$(cat "$STATE/db.password")|g" -e "s|@DBPORT@|$DB_PORT|g" "$src" >"$tmp"
  chmod "$mode" "$tmp"
  if cmp -s "$tmp" "$dst"; then
    rm -f "$tmp"
  else
    mv -f "$tmp" "$dst"
    CHANGED+=("$(basename "$dst")")
  fi
}

CHANGED=()
setup_conf() {
  mkdir -p "$CONF_DIR" "$STATE/slurmctld" "$STATE/slurmd"
  local node_line
  node_line=$(slurmd -C | head -n 1 | sed -e 's/^NodeName=[^ ]*/NodeName=localhost/')
  [[ $node_line == NodeName=localhost* ]] || die "unexpected 'slurmd -C' output: $node_line"
  write_conf "$CONF_DIR/slurm.conf" "$HERE/slurm.conf.in" 0644 "$node_line"
  write_conf "$CONF_DIR/slurmdbd.conf" "$HERE/slurmdbd.conf.in" 0600 "$node_line"
}

# ---------------------------------------------------------------- SLURM daemons
dbd_ok() { sacctmgr -n list cluster format=cluster; }
ctld_ok() { scontrol ping | grep -q 'is UP'; }
slurmd_ok() { scontrol show slurmd; }
node_state() { sinfo -h -n localhost -o %t 2>/dev/null; }
node_idle() { [[ "$(node_state)" =~ ^(idle|mix|alloc)$ ]]; }
sacct_ok() { sacct -n -X -S now-1minutes -o JobID; }

start_slurm() {
  # Daemons already running reread a configuration this call changed.
  if [[ " ${CHANGED[*]} " == *" slurmdbd.conf "* ]] && dbd_ok >/dev/null 2>&1; then
    log "slurmdbd.conf changed: sacctmgr reconfigure"
    sacctmgr -i reconfigure >/dev/null
  fi
  if [[ " ${CHANGED[*]} " == *" slurm.conf "* ]] && ctld_ok >/dev/null 2>&1; then
    log "slurm.conf changed: scontrol reconfigure"
    scontrol reconfigure
  fi
  start_daemon slurmdbd /usr/sbin/slurmdbd dbd_ok "$STATE/log/slurmdbd.log" /usr/sbin/slurmdbd -D
  # The cluster and an account in the accounting database (once).
  sacctmgr -n list cluster format=cluster | grep -qw "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER" >/dev/null
  sacctmgr -n list account format=account | grep -qw "$ACCOUNT" ||
    sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" Description="grokpath tests" Organization=grokpath >/dev/null
  # root (who the tests submit as) may charge it: sbatch -A grokpath, or slurm_account=grokpath
  sacctmgr -n list assoc user=root account="$ACCOUNT" format=user | grep -qw root ||
    sacctmgr -i add user root Account="$ACCOUNT" >/dev/null
  start_daemon slurmctld /usr/sbin/slurmctld ctld_ok "$STATE/log/slurmctld.log" /usr/sbin/slurmctld -D
  start_daemon slurmd /usr/sbin/slurmd slurmd_ok "$STATE/log/slurmd.log" /usr/sbin/slurmd -D -N localhost
  # A node left drained or down by an earlier run comes back.
  if [[ "$(node_state)" =~ ^(drain|drng|down|fail) ]]; then
    scontrol update NodeName=localhost State=RESUME || true
  fi
  wait_for "node localhost to be idle" "$STATE/log/slurmctld.log" "" node_idle
  wait_for "sacct" "$STATE/log/slurmdbd.log" "" sacct_ok
}

install_packages
setup_munge
setup_db
setup_conf
start_slurm
ms=$((($(date +%s%N) - T0) / 1000000))
log "up in $((ms / 1000)).$(printf '%03d' $((ms % 1000)))s: partition $(sinfo -h -o '%P, %D node, %t, %c CPUs, %m MB' | head -n 1)"
