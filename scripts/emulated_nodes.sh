#!/usr/bin/env bash
# A small cluster of emulated nodes on this machine, for multi-node runs and tests:
# each node is a network namespace with its own hostname (UTS namespace) and address
# in 10.231.0.0/24 -- a subnet that exists only inside these namespaces -- joined by
# veth pairs to a bridge in a "switch" namespace. OpenMPI reaches the nodes through
# an agent that enters a namespace instead of ssh (plm_rsh_agent).
#
#   scripts/emulated_nodes.sh up N [RATE]   N nodes (1..8); RATE: tc tbf limit of each
#                                            node's link (10gbit, 1gbit, 100mbit; none);
#                                            refused (exit 1) while a process runs in a node
#   scripts/emulated_nodes.sh mpirun ARGS   mpirun on node 1 over all nodes (hostfile
#                                            with one slot per core of the machine per node)
#   scripts/emulated_nodes.sh cut K         take node K's link down for good
#   scripts/emulated_nodes.sh down          kill what runs in the nodes (naming the PIDs),
#                                            remove everything
#
# Needs root (namespaces). Each node's processes are pinned to one core (node k to core
# (k-1) mod cores) and mpirun binds nothing: OpenMPI would bind by the whole machine's
# topology and pile every node's rank onto core 0. ../shared/PLATFORM.md has the recipe.
set -euo pipefail
prefix=nnemu state=/run/nnemu subnet=10.231.0
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$0")/.."

node_count() { cat "$state/nodes" 2>/dev/null || echo 0; }

node_namespaces() { ip netns list 2>/dev/null | awk '{ print $1 }' | grep "^$prefix-" || true; }

# What still runs in the nodes, as "nnemu-h1: 123 456; ..." (empty: nothing).
live_processes() {
    local ns pids out=""
    for ns in $(node_namespaces); do
        pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
        [ -n "$pids" ] && out+="$ns: ${pids% }; "
    done
    printf '%s' "${out%; }"
}

# Kills what runs in the nodes (saying so) and removes every trace of them, also of
# a node someone removed by hand (its /etc/netns entry). SIGKILL only: no mask holds it,
# so a caller's blocked stop signals (scaling_study.py holds them so that a Ctrl-C waits
# for the teardown) are left blocked for what this runs, and keep it from being cut short.
down() {
    local ns live
    live=$(live_processes)
    [ -n "$live" ] && echo "emulated_nodes: killing what still runs in the nodes (PIDs $live)" >&2
    for ns in $(node_namespaces); do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf /etc/netns/"$prefix"-* "$state"
}

up() {
    local n=${1:-} rate=${2:-none} cores k live
    [[ "$n" =~ ^[1-8]$ ]] || { echo "emulated_nodes: up N: 1 to 8 nodes, not '$n'" >&2; exit 2; }
    [ "$(id -u)" -eq 0 ] || { echo "emulated_nodes: needs root (network namespaces)" >&2; exit 1; }
    # nodes in use belong to another job: never kill it to make room
    live=$(live_processes)
    [ -z "$live" ] || { echo "emulated_nodes: the nodes are in use (PIDs $live): end that job, or run 'down' to kill it" >&2; exit 1; }
    down
    trap 'down; exit 1' ERR # a half-built cluster is removed
    mkdir -p "$state"
    cores=$(nproc)
    ip netns add "$prefix-sw"
    ip -n "$prefix-sw" link add br0 type bridge
    ip -n "$prefix-sw" link set br0 up
    : >"$state/hostfile"
    for k in $(seq "$n"); do
        local ns=$prefix-h$k
        ip netns add "$ns"
        ip link add eth0 netns "$ns" type veth peer name "h$k" netns "$prefix-sw"
        ip -n "$prefix-sw" link set "h$k" master br0 up
        ip -n "$ns" addr add "$subnet.$k/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" link set lo up
        [ "$rate" = none ] || tc -n "$ns" qdisc add dev eth0 root tbf rate "$rate" burst 1mb latency 100ms
        echo "$ns slots=$cores" >>"$state/hostfile"
        echo "$(( (k - 1) % cores ))" >"$state/cpu-$ns"
    done
    for k in $(seq "$n"); do # ip netns exec bind-mounts /etc/netns/NS/hosts over /etc/hosts
        mkdir -p "/etc/netns/$prefix-h$k"
        { echo "127.0.0.1 localhost"; for j in $(seq "$n"); do echo "$subnet.$j $prefix-h$j"; done; } \
            >"/etc/netns/$prefix-h$k/hosts"
    done
    # the agent OpenMPI runs instead of ssh: "agent HOST COMMAND..." runs COMMAND as a
    # remote shell would, inside HOST's namespaces, pinned to HOST's core
    cat >"$state/agent" <<AGENT
#!/bin/sh
host=\$1; shift
exec ip netns exec "\$host" unshare --uts taskset -c "\$(cat $state/cpu-\$host)" sh -c "hostname \$host && \$*"
AGENT
    chmod +x "$state/agent"
    echo "$n" >"$state/nodes"
    trap - ERR
    echo "emulated_nodes: $n node(s) up ($prefix-h1..$prefix-h$n, $subnet.0/24, link rate $rate)"
}

run_mpirun() {
    local n
    n=$(node_count)
    [ "$n" -gt 0 ] || { echo "emulated_nodes: no nodes: run 'up N' first" >&2; exit 1; }
    source scripts/mpi_env.sh
    export OMPI_MCA_plm_rsh_agent=$state/agent OMPI_MCA_oob_tcp_if_include=$subnet.0/24 \
           OMPI_MCA_btl_tcp_if_include=$subnet.0/24 OMPI_MCA_btl=self,vader,tcp OMPI_MCA_mpi_yield_when_idle=1
    exec ip netns exec "$prefix-h1" unshare --uts taskset -c "$(cat "$state/cpu-$prefix-h1")" \
        sh -c 'hostname "$0" && hostfile=$1 && shift && exec mpirun --hostfile "$hostfile" --bind-to none "$@"' \
        "$prefix-h1" "$state/hostfile" "$@"
}

case "${1:-}" in
    up) shift; up "$@" ;;
    down) down ;;
    mpirun) shift; run_mpirun "$@" ;;
    cut) [[ "${2:-}" =~ ^[1-8]$ ]] || { echo "emulated_nodes: cut K: the node to cut, 1 to 8, not '${2:-}'" >&2; exit 2; }
         ip -n "$prefix-h$2" link set eth0 down ;;
    *) sed -n '2,19p' "$self" >&2; exit 2 ;;
esac
