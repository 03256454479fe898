#!/bin/bash
# A one-node Slurm cluster on this machine, for tests/lua/test_batch_slurm.lua:
# munged, slurmctld and slurmd on localhost, all as root (SlurmUser=root, so the
# jobs of a root CI may run), no accounting, no cgroups (a CI container may have
# none).  Idempotent: daemons already running are left alone, and it returns
# once `sinfo` shows the node idle.  Needs the packages slurm-wlm and munge.
# Stop it with: scontrol shutdown; kill "$(cat /run/munge/munged.pid)"
set -euo pipefail
node=$(hostname -s)
# Leave slurmd some slack under the machine's memory, or it refuses the node.
mem=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
cpus=$(nproc)

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# munge: the key the packages made, or one made here.
install -d -o munge -g munge -m 0700 /etc/munge
install -d -o munge -g munge -m 0711 /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
fi
if ! alive /run/munge/munged.pid; then
  runuser -u munge -- /usr/sbin/munged
fi

install -d -m 0755 /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
conf=$(cat <<EOF
# Written by .ci/slurm-up.sh: a one-node test cluster.
ClusterName=spillover-ci
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
MinJobAge=300
NodeName=$node CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
)
if [ "$(cat /etc/slurm/slurm.conf 2>/dev/null)" != "$conf" ]; then
  printf '%s\n' "$conf" > /etc/slurm/slurm.conf
  changed=1
fi
if ! alive /run/slurmctld.pid; then
  /usr/sbin/slurmctld
elif [ -n "${changed:-}" ]; then
  scontrol reconfigure
fi
if ! alive /run/slurmd.pid; then
  /usr/sbin/slurmd
fi

# Wait for the node; a node left down or drained by an earlier run is resumed.
for _ in $(seq 60); do
  state=$(sinfo -h -n "$node" -o %T 2>/dev/null || true)
  case "$state" in
    idle|mixed|allocated) echo "slurm: node $node is $state"; exit 0 ;;
    down*|drain*) scontrol update NodeName="$node" State=RESUME 2>/dev/null || true ;;
  esac
  sleep 1
done
echo "slurm-up: node $node did not come up (state '${state:-none}'); see /var/log/slurm/" >&2
exit 1
