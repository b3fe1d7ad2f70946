#!/usr/bin/env bash
# A one-node SLURM cluster on this machine (for the tests and for trying the SLURM commands):
#
#   experiments/slurm/local_cluster.sh start     # install (Debian slurm-wlm, munge) if needed, start, wait for the node
#   experiments/slurm/local_cluster.sh status    # sinfo
#   experiments/slurm/local_cluster.sh stop      # stop the daemons this script started
#   experiments/slurm/local_cluster.sh run CMD   # start, run CMD with SLURM_CONF set, stop (also on failure)
#
# Needs root (the daemons run as root).  Everything lives in $SLURM_LOCAL_DIR (default
# /tmp/seq2seq_jax_slurm): slurm.conf, state, spool, pid and log files.  The node offers every CPU of
# this machine (`nproc`) on 127.0.0.1 only, one partition `debug`; jobs run as root without cgroups
# (proctrack/linuxproc, task/none) and without accounting.  Commands find it through
# SLURM_CONF=$SLURM_LOCAL_DIR/slurm.conf (`start` prints the line to export).
# `start` is idempotent: a running cluster with the same configuration is left as it is.
set -euo pipefail

DIR=${SLURM_LOCAL_DIR:-/tmp/seq2seq_jax_slurm}
CONF=$DIR/slurm.conf
NODE=$(hostname -s)
export SLURM_CONF=$CONF

say() { echo "local_cluster: $*" >&2; }

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
    return
  fi
  local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq slurm-wlm munge >/dev/null
}

write_config() {
  local cpus memory
  cpus=$(nproc)
  memory=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) * 8 / 10 ))
  mkdir -p "$DIR/state" "$DIR/spool"
  cat > "$CONF.new" <<CONF
ClusterName=seq2seq_jax_local
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=${SLURM_LOCAL_CTLD_PORT:-6817}
SlurmdPort=${SLURM_LOCAL_SLURMD_PORT:-6818}
AuthType=auth/munge
# a requeued job may start again after this many seconds (SLURM's default: 120)
AuthInfo=cred_expire=${SLURM_LOCAL_CRED_EXPIRE:-20}
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
KillWait=30
MinJobAge=30
SlurmdTimeout=60
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
  if [ -f "$CONF" ] && cmp -s "$CONF" "$CONF.new"; then rm "$CONF.new"; else mv "$CONF.new" "$CONF"; fi
}

running() {  # running PIDFILE NAME: the file names a live process called NAME
  [ -f "$1" ] && [ "$(cat "/proc/$(cat "$1")/comm" 2>/dev/null)" = "$2" ]
}

start_munge() {
  if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then return; fi
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key
    else dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null; fi
  fi
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge
  chmod 755 /run/munge
  runuser -u munge -- munged || return 1
  echo started > "$DIR/munged.ours"
}

wait_for_idle() {
  local i state
  for i in $(seq 1 60); do
    state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null || true)
    case "$state" in
      idle|mixed|allocated) say "node $NODE is $state"; return 0 ;;
      drain*|down*) scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
    esac
    sleep 1
  done
  say "the node did not become idle in 60 s (sinfo: ${state:-no answer}); logs: $DIR/slurmctld.log $DIR/slurmd.log"
  tail -5 "$DIR/slurmctld.log" "$DIR/slurmd.log" >&2 || true
  return 1
}

start() {  # every step says why it fails and returns 1 (also where `start || ...` turns off set -e)
  if [ "$(id -u)" != 0 ]; then say "needs root (the daemons run as root)"; return 1; fi
  install_packages || { say "could not install slurm-wlm and munge"; return 1; }
  mkdir -p "$DIR" || return 1
  local before=""; [ -f "$CONF" ] && before=$(cat "$CONF")
  write_config || return 1
  if [ "$before" != "$(cat "$CONF")" ]; then stop_daemons; fi
  start_munge || { say "munged did not start"; return 1; }
  running "$DIR/slurmctld.pid" slurmctld || slurmctld -i || { say "slurmctld did not start: $(tail -3 "$DIR/slurmctld.log" 2>/dev/null)"; return 1; }
  running "$DIR/slurmd.pid" slurmd || slurmd || { say "slurmd did not start: $(tail -3 "$DIR/slurmd.log" 2>/dev/null)"; return 1; }
  wait_for_idle || return 1
  say "running; use it with: export SLURM_CONF=$CONF"
}

stop_daemons() {
  local name pid
  for name in slurmd slurmctld; do
    if running "$DIR/$name.pid" "$name"; then
      pid=$(cat "$DIR/$name.pid")
      kill "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  done
}

stop() {
  if running "$DIR/slurmctld.pid" slurmctld && [ -n "$(squeue -h -o %A 2>/dev/null)" ]; then
    scancel --full $(squeue -h -o %A | sort -u) 2>/dev/null || true  # this cluster's jobs are ours
    for _ in $(seq 1 40); do [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break; sleep 1; done
  fi
  stop_daemons
  if [ -f "$DIR/munged.ours" ]; then
    munged --stop >/dev/null 2>&1 || true
    rm -f "$DIR/munged.ours"
  fi
  say "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) sinfo ;;
  run)  # the command runs even when SLURM does not start: tests that need it skip, saying why
    shift
    trap stop EXIT
    start || say "SLURM did not start (see above); running the command anyway"
    "$@"
    ;;
  *) echo "usage: $0 start|stop|status|run CMD..." >&2; exit 2 ;;
esac
