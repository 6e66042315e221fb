#!/usr/bin/env bash
# Start a throw-away one-node SLURM cluster on this machine (Debian 12, as root),
# for tests/test_slurm.py (STYLEDIFF_SLURM=1 pytest -m slurm).
#
#   bash ci/slurm/start.sh     # install (if missing), configure, start, wait for idle
#   bash ci/slurm/stop.sh      # stop the daemons again
#
# What it sets up:
#   * munge with a fresh key (auth between the slurm commands and the daemons)
#   * slurmctld + slurmd on this host, both as root (SlurmUser=root),
#     proctrack/linuxproc (no cgroup/systemd needed: works in containers),
#     select/cons_tres, NO accounting database (accounting_storage/none) -- so
#     `sacct` has nothing to ask; the Snakemake profile must make the
#     slurm executor plugin poll with squeue instead (see profiles/slurm).
#   * one fake GPU: GresTypes=gpu, node Gres=gpu:N, gres.conf with File=/dev/null,
#     so that `sbatch --gpus=1` / `--gres=gpu:1` is accepted and scheduled.
#
# Env knobs: SLURM_FAKE_GPUS (default 1), SLURM_PARTITION (default "debug"),
#            SLURM_CONF_DIR (default /etc/slurm), SLURM_RUN_DIR (default /var/lib/stylediff-slurm).
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  echo "ci/slurm/start.sh: must run as root" >&2
  exit 1
fi

FAKE_GPUS="${SLURM_FAKE_GPUS:-1}"
PARTITION="${SLURM_PARTITION:-debug}"
CONF_DIR="${SLURM_CONF_DIR:-/etc/slurm}"
RUN_DIR="${SLURM_RUN_DIR:-/var/lib/stylediff-slurm}"
LOG_DIR="$RUN_DIR/log"

# ---------------------------------------------------------------- install ----
need=()
command -v slurmctld >/dev/null 2>&1 || need+=(slurm-wlm)
command -v munged >/dev/null 2>&1 || need+=(munge)
if [ "${#need[@]}" -gt 0 ]; then
  echo "== installing ${need[*]} via apt"
  export DEBIAN_FRONTEND=noninteractive
  # Do not let the packages' maintainer scripts try to start services
  # (there is no init system in CI containers); we start them ourselves below.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1
  fi
  if ! apt-get install -y --no-install-recommends "${need[@]}" >/tmp/stylediff-slurm-apt.log 2>&1; then
    apt-get update >>/tmp/stylediff-slurm-apt.log 2>&1
    apt-get install -y --no-install-recommends "${need[@]}" >>/tmp/stylediff-slurm-apt.log 2>&1 || {
      tail -n 30 /tmp/stylediff-slurm-apt.log >&2; exit 1; }
  fi
  [ "$created_policy" = 1 ] && rm -f "$policy"
fi

# Stop anything left from an earlier run so that the new config is read.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/stop.sh" --quiet || true

# ------------------------------------------------------------------ munge ----
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  echo "== creating munge key"
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key
chmod 0711 /var/lib/munge /var/log/munge; chmod 0755 /run/munge
# munged refuses to run as root unless forced; use the munge user when it exists.
if id munge >/dev/null 2>&1; then
  chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
  su -s /bin/sh munge -c "munged" || runuser -u munge -- munged
else
  munged --force
fi
for _ in $(seq 50); do munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
munge -n </dev/null | unmunge >/dev/null || { echo "munged did not come up" >&2; exit 1; }

# ------------------------------------------------------------- slurm.conf ----
host="$(hostname -s)"
mkdir -p "$CONF_DIR" "$RUN_DIR/slurmctld" "$RUN_DIR/slurmd" "$LOG_DIR"
# Hardware as slurmd sees it; keep a little memory back for the OS.
cpus="$(nproc)"
mem_total_mb="$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)"
real_mem=$(( mem_total_mb * 9 / 10 ))

cat > "$CONF_DIR/slurm.conf" <<CONF
# Written by ci/slurm/start.sh -- single-node test cluster, no accounting DB.
ClusterName=stylediff-ci
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
# jobs that ask for no memory get 1 GB per CPU instead of the whole node
DefMemPerCPU=1024
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
StateSaveLocation=$RUN_DIR/slurmctld
SlurmdSpoolDir=$RUN_DIR/slurmd
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# Keep finished jobs visible to squeue/scontrol for an hour: without accounting
# that is the only job history, the profile polls with squeue (needs >= 3 x the
# first-poll delay) and tests/test_slurm.py checks every job with scontrol after
# workflows that run for several minutes.
MinJobAge=3600
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1
GresTypes=gpu
NodeName=$host CPUs=$cpus RealMemory=$real_mem Gres=gpu:$FAKE_GPUS State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF

# Fake GPUs: slurm needs a device file per GPU to track; /dev/null is fine
# for scheduling (no real device is bound: TaskPlugin=task/none, no cgroups).
{
  echo "# Written by ci/slurm/start.sh -- fake GPUs for scheduling tests"
  if [ "$FAKE_GPUS" -gt 0 ]; then
    echo "NodeName=$host Name=gpu Count=$FAKE_GPUS File=/dev/null"
  fi
} > "$CONF_DIR/gres.conf"
# No cgroup.conf: proctrack/linuxproc + task/none do not read it.

# ------------------------------------------------------------------ start ----
echo "== starting slurmctld and slurmd on $host ($cpus CPUs, ${real_mem} MB, $FAKE_GPUS fake GPU)"
slurmctld -c -f "$CONF_DIR/slurm.conf"
slurmd -f "$CONF_DIR/slurm.conf"

# -------------------------------------------------------------- wait idle ----
deadline=$(( $(date +%s) + ${SLURM_START_TIMEOUT:-60} ))
while :; do
  state="$(sinfo -h -N -n "$host" -o '%T' 2>/dev/null | head -n1 || true)"
  case "$state" in
    idle) break ;;
    down*|drain*|fail*) scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true ;;
  esac
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "SLURM node $host not idle after ${SLURM_START_TIMEOUT:-60}s (state: ${state:-none})" >&2
    tail -n 20 "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" >&2 || true
    exit 1
  fi
  sleep 1
done
sinfo -o '%P %a %D %T %N %c %m %G'
echo "== SLURM up (logs: $LOG_DIR)"
