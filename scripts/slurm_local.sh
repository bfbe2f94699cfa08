#!/usr/bin/env bash
# A one-node Slurm "cluster" on this machine, for trying the job scripts in jobs/:
#   scripts/slurm_local.sh start    # installs slurm-wlm and munge if missing, starts the daemons
#   export SLURM_CONF=/tmp/nntrain-slurm/slurm.conf; sbatch jobs/nntrain.sbatch ...
#   scripts/slurm_local.sh stop
# Needs root. All state lives in $SLURM_DIR (default /tmp/nntrain-slurm).
set -euo pipefail
dir=${SLURM_DIR:-/tmp/nntrain-slurm}
conf=$dir/slurm.conf

start() {
    [ "$(id -u)" -eq 0 ] || { echo "slurm_local.sh: needs root" >&2; exit 1; }
    local missing=()
    for p in slurm-wlm slurmctld slurmd slurm-client munge; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        apt-get -o DPkg::Lock::Timeout=900 update -qq
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}"
    fi
    mkdir -p "$dir"/{state,spool,log}
    local host cpus
    host=$(hostname)
    cpus=$(nproc)
    cat >"$conf" <<CONF
ClusterName=nntrain
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
MpiDefault=pmix
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
SchedulerParameters=batch_sched_delay=0
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
    install -d -o munge -g munge /run/munge
    pgrep -x munged >/dev/null || { setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged -F >"$dir/log/munged.log" 2>&1 & }
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
    slurmctld -D -f "$conf" >"$dir/log/slurmctld.out" 2>&1 &
    echo $! >"$dir/slurmctld.bg"
    slurmd -D -f "$conf" >"$dir/log/slurmd.out" 2>&1 &
    echo $! >"$dir/slurmd.bg"
    for _ in $(seq 100); do
        [ "$(SLURM_CONF=$conf sinfo -h -o %T 2>/dev/null)" = idle ] && { echo "slurm up: export SLURM_CONF=$conf"; return 0; }
        sleep 0.2
    done
    echo "slurm_local.sh: the node did not come up; see $dir/log" >&2
    exit 1
}

stop() {
    for d in slurmd slurmctld; do
        [ -f "$dir/$d.bg" ] && kill "$(cat "$dir/$d.bg")" 2>/dev/null || true
        rm -f "$dir/$d.bg"
    done
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    *) echo "usage: slurm_local.sh start|stop" >&2; exit 2 ;;
esac
