#!/usr/bin/env bash
# A one-node Slurm on this machine for the Slurm tests: munge and Slurm from Debian's packages,
# one node (this host, its CPUs as the resources, no GPUs), its config, state and logs in
# $INPAINT_SLURM_DIR (default /tmp/inpaint-slurm). Needs root. Recipe and pitfalls:
# docs/scaling.md#slurm-in-ci.
#
#   export SLURM_CONF=$(bash .ci/slurm-setup.sh | tail -1)   # start (idempotent); prints the conf
#   bash .ci/slurm-setup.sh stop                            # stop what it started, by PID
set -euo pipefail
DIR=${INPAINT_SLURM_DIR:-/tmp/inpaint-slurm}
CONF=$DIR/slurm.conf

stop() {  # only the daemons this script started: their PIDs are in $DIR/*.pid
  local name pid
  for name in slurmd slurmctld munged; do
    [ -f "$DIR/$name.pid" ] || continue
    pid=$(cat "$DIR/$name.pid")
    if kill "$pid" 2>/dev/null; then
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      echo "stopped $name ($pid)" >&2
    fi
    rm -f "$DIR/$name.pid"
  done
}

if [ "${1:-start}" = stop ]; then stop; exit 0; fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  echo "installing slurm-wlm and munge (Debian packages)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

mkdir -p "$DIR/state" "$DIR/spool" /run/munge /etc/munge
if [ ! -f /etc/munge/munge.key ]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
fi
chown munge:munge /etc/munge/munge.key /run/munge
chmod 400 /etc/munge/munge.key

HOST=$(hostname)
CPUS=$(nproc)
MEM_MIB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 8 / 10 ))
# task/none and proctrack/linuxproc with no cgroup.conf: 22.05 knows no disabled cgroup plugin
# and slurmd would exit. Accounting is off (sacct answers nothing): finished jobs are followed
# through squeue/scontrol while MinJobAge keeps them, and through jobcomp/filetxt after that.
cat > "$CONF.tmp" <<CONF
ClusterName=inpaint
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/jobcomp.txt
MinJobAge=3600
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MIB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
mv "$CONF.tmp" "$CONF"
export SLURM_CONF=$CONF

if ! munge -n >/dev/null 2>&1; then
  /usr/sbin/munged --force  # --force: accepts root-owned log folders
  cp /run/munge/munged.pid "$DIR/munged.pid"
fi
pgrep -F "$DIR/slurmctld.pid" >/dev/null 2>&1 || /usr/sbin/slurmctld -f "$CONF"
pgrep -F "$DIR/slurmd.pid" >/dev/null 2>&1 || /usr/sbin/slurmd -f "$CONF"
for _ in $(seq 120); do
  if sinfo -h -o %t 2>/dev/null | grep -qx idle; then echo "$CONF"; exit 0; fi
  sleep 0.5
done
echo "slurm did not come up: see $DIR/slurmctld.log and $DIR/slurmd.log" >&2
sinfo >&2 || true
exit 1
