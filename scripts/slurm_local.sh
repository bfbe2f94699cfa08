#!/usr/bin/env bash
# A throwaway Slurm "cluster" on this machine, for trying the job scripts in jobs/:
#   scripts/slurm_local.sh start        one node: this host, all its cores
#   scripts/slurm_local.sh start N      N nodes (2..8): one slurmd inside each emulated node
#                                       of scripts/emulated_nodes.sh (network namespaces)
#   export SLURM_CONF=/tmp/nntrain-slurm/slurm.conf; sbatch jobs/nntrain.sbatch ...
#   scripts/slurm_local.sh stop         stops every daemon it started, by PID (munged too
#                                       when it started it), and removes the emulated nodes
# Installs slurm-wlm and munge if missing. Needs root. All state lives in $SLURM_DIR
# (default /tmp/nntrain-slurm); the controller listens on $SLURM_PORT (default 6817), the
# slurmd daemons on the next port. ../shared/PLATFORM.md has the recipe.
# $SLURM_DIR/slurm.conf is replaced (written aside, renamed) only when it is one this
# script wrote (its first line says so, or, written before it did, its text is exactly
# what the script wrote then for this $SLURM_DIR): any other there (SLURM_DIR=/etc/slurm,
# a real cluster's) makes start stop at once, exit 2, one line, nothing changed; nor does
# stop cancel jobs through it.
#
# With N nodes, the controller stays on this host and reaches the nodes through one more
# veth into the emulated switch (nnemu-ctl, 10.231.0.254), so sbatch and squeue work from
# here; munged is shared (its socket is a file, and files are shared by the namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${SLURM_DIR:-/tmp/nntrain-slurm}
conf=$dir/slurm.conf
port=${SLURM_PORT:-6817}
emu=scripts/emulated_nodes.sh
ctl_addr=10.231.0.254
conf_mark="# written by scripts/slurm_local.sh (a throwaway cluster): its start replaces this file"

# Whether $conf is absent or a regular file this script wrote: its first line the mark,
# or one written before the mark (until 2026-12-07): conf_text's text exactly, with the
# values it was given then read back from the file (controller, ports, task plugin, the
# node lines, each of the form the script wrote) and this $dir in every path.
conf_is_ours() {
    [ ! -e "$conf" ] && [ ! -L "$conf" ] && return 0
    [ -f "$conf" ] && [ ! -L "$conf" ] || return 1
    [ "$(head -n 1 "$conf" 2>/dev/null)" = "$conf_mark" ] && return 0
    local ctl p plugin nodes part line node_re='^NodeName=[^ ]+( NodeAddr=[0-9.]+)? CPUs=[0-9]+ State=UNKNOWN$'
    ctl=$(sed -n 's/^SlurmctldHost=//p' "$conf") p=$(sed -n 's/^SlurmctldPort=//p' "$conf")
    plugin=$(sed -n 's/^TaskPlugin=//p' "$conf")
    part=$(sed -n 's/^PartitionName=main Nodes=\([^ ]*\) Default=YES MaxTime=INFINITE State=UP$/\1/p' "$conf")
    # the lines between the log file and the partition, less the newline the text adds
    nodes=$(sed -n '/^SlurmdLogFile=/,/^PartitionName=/p' "$conf" | sed '1d;$d'; echo .) nodes=${nodes%.}
    nodes=${nodes%$'\n'}
    [[ "$p" =~ ^[0-9]{1,5}$ ]] && [[ "$plugin" =~ ^task/(none|affinity)$ ]] && [[ "$nodes" == NodeName=* ]] || return 1
    while IFS= read -r line; do # one node line each, or the empty line after several
        [ -z "$line" ] || [[ "$line" =~ $node_re ]] || return 1
    done <<<"$nodes"
    cmp -s "$conf" <(port=$p task_plugin=$plugin conf_text "$ctl" "$nodes" "$part")
}

install_missing() {
    local missing=() p
    for p in slurm-wlm slurmctld slurmd slurm-client munge; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    apt-get -o DPkg::Lock::Timeout=900 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
        --no-install-recommends "${missing[@]}"
}

# conf_text CONTROLLER NODE_LINES PARTITION_NODES: the slurm.conf less its mark (the
# whole of it until 2026-12-07: conf_is_ours recognises one written then by this text,
# so a change here keeps the old text for it; test_slurm_jobs holds a copy)
conf_text() {
    cat <<CONF
ClusterName=nntrain
SlurmctldHost=$1
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
AuthType=auth/munge
MpiDefault=pmix
ProctrackType=proctrack/linuxproc
TaskPlugin=$task_plugin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
SchedulerParameters=batch_sched_delay=0
# a job that asks for more than the cluster has is refused by sbatch, not left pending
EnforcePartLimits=ALL
ReturnToService=2
# emulated nodes are pinned to one core each but declare the machine's cores
SlurmdParameters=config_overrides
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
# per node: the nodes share this machine's /tmp, and PMIx's per-step directories collide
TmpFS=$dir/tmp/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd-%n.log
$2
PartitionName=main Nodes=$3 Default=YES MaxTime=INFINITE State=UP
CONF
}

# write_conf CONTROLLER NODE_LINES PARTITION_NODES: written aside, then renamed over
# $conf (start has made sure that one, if any, is this script's)
write_conf() {
    local tmp
    tmp=$(mktemp "$dir/.slurm.conf.XXXXXX")
    { echo "$conf_mark" && conf_text "$@"; } >"$tmp" || { rm -f "$tmp"; return 1; }
    chmod 644 "$tmp" && mv -f "$tmp" "$conf" || { rm -f "$tmp"; return 1; }
}

start_munge() {
    install -d -o munge -g munge /run/munge
    if ! pgrep -x munged >/dev/null; then # ours: stopped by PID in stop()
        setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged -F >"$dir/log/munged.log" 2>&1 &
        echo $! >"$dir/munged.bg"
    fi
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0; sleep 0.2; done
    echo "slurm_local.sh: munged did not answer; see $dir/log/munged.log" >&2
    return 1
}

# start_slurmd NODE: on this host (NODE = hostname) or inside emulated node NODE
start_slurmd() {
    local node=$1 run=()
    if [ "$node" != "$(hostname)" ]; then
        # nsenter, not "ip netns exec": that remounts /sys, hiding the cgroup mounts
        # slurmd needs; a private mount namespace still gets the node's /etc/hosts
        run=(nsenter --net="/run/netns/$node" unshare --uts --mount --propagation private
             taskset -c "$(cat "/run/nnemu/cpu-$node")"
             sh -c 'hostname "$0" && mount --bind "/etc/netns/$0/hosts" /etc/hosts && exec "$@"' "$node")
    fi
    mkdir -p "$dir/spool/$node" "$dir/tmp/$node"
    "${run[@]}" slurmd -D -N "$node" -f "$conf" >"$dir/log/slurmd-$node.out" 2>&1 &
    echo $! >"$dir/slurmd-$node.bg"
}

start() {
    local nodes=${1:-1} host cpus node_lines="" k
    [[ "$nodes" =~ ^[1-8]$ ]] || { echo "slurm_local.sh: 1 to 8 nodes, not '$nodes'" >&2; exit 2; }
    [ "$(id -u)" -eq 0 ] || { echo "slurm_local.sh: needs root" >&2; exit 1; }
    ls "$dir"/*.bg >/dev/null 2>&1 && { echo "slurm_local.sh: already started in $dir; stop it first" >&2; exit 1; }
    conf_is_ours || {
        echo "slurm_local.sh: $conf is not a slurm.conf this script wrote: not replacing it; if it is a throwaway cluster's you no longer need, remove it (rm $(printf %q "$conf")), else set SLURM_DIR to a directory of its own" >&2
        exit 2
    }
    install_missing
    mkdir -p "$dir"/{state,spool,log}
    # A half-started cluster is stopped: on any exit until it is up (an ERR trap would
    # miss a failure inside start_munge or start_slurmd: functions do not inherit it).
    trap stop EXIT
    host=$(hostname) cpus=$(nproc)
    # One node: Slurm binds each task to its cores (task/affinity), as on a cluster.
    # Emulated nodes are each pinned to one core already (taskset), which binding by
    # the whole machine's CPU numbers would undo.
    if [ "$nodes" -eq 1 ]; then
        task_plugin=task/affinity
        # the address beside the name: where the host name does not resolve (a bare
        # chroot, some containers) every client call would spend seconds in DNS retries
        write_conf "$host(127.0.0.1)" "NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN" "$host"
    else
        task_plugin=task/none
        "$emu" up "$nodes" >/dev/null
        ip link add nnemu-ctl type veth peer name ctl netns nnemu-sw
        ip -n nnemu-sw link set ctl master br0 up
        ip addr add "$ctl_addr/24" dev nnemu-ctl
        ip link set nnemu-ctl up
        for k in $(seq "$nodes"); do
            node_lines+="NodeName=nnemu-h$k NodeAddr=10.231.0.$k CPUs=$cpus State=UNKNOWN"$'\n'
        done
        write_conf "$host($ctl_addr)" "$node_lines" "nnemu-h[1-$nodes]"
    fi
    echo "$nodes" >"$dir/nodes"
    start_munge
    slurmctld -D -f "$conf" >"$dir/log/slurmctld.out" 2>&1 &
    echo $! >"$dir/slurmctld.bg"
    if [ "$nodes" -eq 1 ]; then start_slurmd "$host"; else
        for k in $(seq "$nodes"); do start_slurmd "nnemu-h$k"; done
    fi
    for _ in $(seq 150); do
        [ "$(SLURM_CONF=$conf sinfo -h -o '%T %D' 2>/dev/null)" = "idle $nodes" ] && {
            trap - EXIT
            echo "slurm up ($nodes node(s)): export SLURM_CONF=$conf"
            return 0
        }
        sleep 0.2
    done
    echo "slurm_local.sh: the node(s) did not come up; see $dir/log" >&2
    exit 1 # the EXIT trap stops it
}

stop() {
    local f pid
    # jobs first: a slurmstepd outlives its slurmd
    if [ -f "$dir/slurmctld.bg" ] && kill -0 "$(cat "$dir/slurmctld.bg")" 2>/dev/null && conf_is_ours; then
        SLURM_CONF=$conf scancel --full --quiet --user=root 2>/dev/null || true
        for _ in $(seq 100); do
            [ -z "$(SLURM_CONF=$conf squeue -h -o %i 2>/dev/null)" ] && break
            sleep 0.1
        done
    fi
    # then slurmd (it ends its jobs' steps), then the controller, then munged
    for f in "$dir"/slurmd-*.bg "$dir/slurmctld.bg" "$dir/munged.bg"; do
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$f"
    done
    if [ "$(cat "$dir/nodes" 2>/dev/null || echo 1)" -gt 1 ]; then
        ip link del nnemu-ctl 2>/dev/null || true
        "$emu" down
    fi
    rm -f "$dir/nodes"
}

case ${1:-} in
    start) start "${2:-1}" ;;
    stop) stop ;;
    *) sed -n '2,15p' "$0" >&2; exit 2 ;;
esac
