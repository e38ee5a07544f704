#!/usr/bin/env bash
# A real one-node SLURM cluster on 127.0.0.1 for CI and tests/test_slurm.py (Debian, as root).
#   .ci/slurm-cluster.sh up       install SLURM + munge (Debian packages) if missing, write a
#                                 one-node slurm.conf, start munged, slurmctld, slurmd; wait
#                                 until the node is idle. Running it again changes nothing.
#   .ci/slurm-cluster.sh down     stop the daemons this script started (by PID), nothing else
#   .ci/slurm-cluster.sh status   the node and the queue
# The node advertises what the shipped profile (workflow/profiles/slurm) asks for, so that
# profile schedules unchanged: one fake GPU (gres/gpu backed by /dev/null; torch finds no
# CUDA device and the code runs on the CPU), at least 8 CPUs and 64 GiB
# (SlurmdParameters=config_overrides lets a smaller machine claim that; nothing enforces
# the limits here). EnforcePartLimits=ALL makes a request beyond the node fail at once.
# No accounting database: Snakemake polls job states with squeue, and MinJobAge=3600 keeps
# finished jobs visible to it (and to `scontrol show job`) for an hour.
# Env: SEGPIPE_SLURM_PARTITION (debug), SEGPIPE_SLURM_CPUS (max(nproc, 8)),
#      SEGPIPE_SLURM_MEM_MB (max(90% of RAM, 65536)).
set -euo pipefail

PARTITION=${SEGPIPE_SLURM_PARTITION:-debug}
RUN=/run/segpipe-slurm                     # our pidfiles: we stop only what we started
CONF=/etc/slurm/slurm.conf
APT="apt-get -o DPkg::Lock::Timeout=300 -y -qq"
export DEBIAN_FRONTEND=noninteractive

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null &&
     command -v sbatch >/dev/null && command -v munged >/dev/null; then
    return
  fi
  $APT update
  $APT install --no-install-recommends slurmctld slurmd slurm-client munge
}

start_munge() {
  [ -s /etc/munge/munge.key ] || mungekey --create --force --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
  install -d -o munge -g munge -m 755 /run/munge
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
    cp /run/munge/munged.pid "$RUN/munged.pid"
  fi
}

write_config() {  # prints the config for this machine on stdout
  local host cpus mem real
  host=$(hostname -s)
  cpus=${SEGPIPE_SLURM_CPUS:-$(( $(nproc) > 8 ? $(nproc) : 8 ))}
  real=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  mem=${SEGPIPE_SLURM_MEM_MB:-$(( real * 9 / 10 > 65536 ? real * 9 / 10 : 65536 ))}
  cat <<EOF
# Written by .ci/slurm-cluster.sh: one test node on 127.0.0.1.
ClusterName=segpipe-ci
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmdParameters=config_overrides
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
EnforcePartLimits=ALL
MinJobAge=3600
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

wait_idle() {
  local state=""
  for _ in $(seq 60); do
    state=$(sinfo -h -o %T 2>/dev/null || true)
    [ "$state" = idle ] || [ "$state" = mixed ] || [ "$state" = allocated ] && return 0
    sleep 0.5
  done
  echo "slurm-cluster: node state is '$state', not idle" >&2
  scontrol show node >&2 || true
  tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
  return 1
}

up() {
  install_packages
  mkdir -p "$RUN" /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
  if ! alive "$RUN/slurmctld.pid" && scontrol ping >/dev/null 2>&1; then
    echo "slurm-cluster: a SLURM controller that this script did not start answers; leaving it alone" >&2
    exit 1
  fi
  start_munge
  local new
  new=$(write_config)
  if [ -f "$CONF" ] && [ "$new" = "$(cat "$CONF")" ] &&
     alive "$RUN/slurmctld.pid" && alive "$RUN/slurmd.pid"; then
    wait_idle
    sinfo -o "%P %N %c %m %G %T"
    return
  fi
  stop_daemons slurmd slurmctld                     # config changed: restart ours
  echo "NodeName=$(hostname -s) Name=gpu File=/dev/null" > /etc/slurm/gres.conf
  printf '%s\n' "$new" > "$CONF"
  /usr/sbin/slurmctld -c                            # both daemonize; -c: empty job state
  /usr/sbin/slurmd
  wait_idle
  srun -N1 -n1 true                                 # smoke test through slurmd
  sinfo -o "%P %N %c %m %G %T"
}

stop_daemons() {
  local daemon file pid
  for daemon in "$@"; do
    file="$RUN/$daemon.pid"
    if alive "$file"; then
      pid=$(cat "$file")
      kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
    rm -f "$file"
  done
}

case "${1:-}" in
  up) up ;;
  down) stop_daemons slurmd slurmctld munged ;;
  status) sinfo -o "%P %N %c %m %G %T" && squeue ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
