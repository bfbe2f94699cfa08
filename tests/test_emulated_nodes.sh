#!/usr/bin/env bash
# scripts/emulated_nodes.sh never kills another job's processes to make room: `up`
# while a process lives in a node is refused (exit 1, one line naming the PIDs) and
# the process lives on; `down` says what it kills; usage errors are one line, exit 2;
# `down` also clears what a node removed by hand left in /etc/netns, and works with the
# stop signals blocked (as scripts/scaling_study.py runs it, signals held), killing a
# process in a node that blocks them too.
# Skipped (exit 77) where network namespaces are not allowed.
# Usage: test_emulated_nodes.sh
set -u
emu=$(cd "$(dirname "$0")/.." && pwd)/scripts/emulated_nodes.sh
if ! ip netns add nnemu-probe 2>/dev/null; then echo "SKIP: network namespaces are not allowed here"; exit 77; fi
ip netns del nnemu-probe
# nodes already up belong to another job (a test running beside this one): leave them be
if ip netns list | grep -q '^nnemu-'; then echo "SKIP: emulated nodes are in use by another job"; exit 77; fi
sleeper=
work=$(mktemp -d) && cd "$work" || exit 1
trap '[ -n "$sleeper" ] && kill -KILL "$sleeper" 2>/dev/null; "$emu" down 2>/dev/null; rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

"$emu" up 1 >/dev/null || fail "up 1"
ip netns exec nnemu-h1 sleep 600 &
sleeper=$!
for _ in $(seq 100); do [ -n "$(ip netns pids nnemu-h1)" ] && break; sleep 0.1; done
"$emu" up 1 >out 2>err; rc=$?
[ "$rc" -eq 1 ] && grep -q "^emulated_nodes: the nodes are in use (PIDs nnemu-h1: $sleeper)" err && [ "$(wc -l <err)" -eq 1 ] ||
    fail "up over a live process: exit $rc: $(cat err)"
kill -0 "$sleeper" 2>/dev/null || fail "up killed the process living in the node"
"$emu" down 2>err
grep -q "^emulated_nodes: killing what still runs in the nodes (PIDs nnemu-h1: $sleeper)" err || fail "down did not say what it killed: $(cat err)"
wait "$sleeper" 2>/dev/null; sleeper=

# down with INT, TERM, HUP and USR1 blocked (inherited from a caller holding them, as
# scaling_study.py does so that a Ctrl-C waits for the nodes to go whole), a process in
# the node blocking them too: killed all the same (SIGKILL, which no mask holds), all removed
if env --block-signal=INT true 2>/dev/null; then
    blocked=(env "--block-signal=INT,TERM,HUP,USR1")
    "$emu" up 1 >/dev/null || fail "up 1"
    "${blocked[@]}" ip netns exec nnemu-h1 sleep 600 &
    sleeper=$!
    for _ in $(seq 100); do [ -n "$(ip netns pids nnemu-h1)" ] && break; sleep 0.1; done
    "${blocked[@]}" "$emu" down 2>/dev/null; rc=$?
    for _ in $(seq 50); do case $(ps -o stat= -p "$sleeper") in Z*|"") break ;; esac; sleep 0.1; done
    case $(ps -o stat= -p "$sleeper") in
        Z*|"") wait "$sleeper" 2>/dev/null; sleeper= ;;
        *) fail "down with the stop signals blocked left the node's process $sleeper running" ;;
    esac
    [ "$rc" -eq 0 ] && [ -z "$(ip netns list | grep '^nnemu-')" ] && [ ! -e /etc/netns/nnemu-h1 ] ||
        fail "down with the stop signals blocked: exit $rc, $(ip netns list | grep -c '^nnemu-') namespaces left"
else
    echo "(no env --block-signal, coreutils < 8.31: down with the stop signals blocked not checked)"
fi

for args in up "up 9" cut "cut x"; do
    # shellcheck disable=SC2086
    "$emu" $args >out 2>err; rc=$?
    [ "$rc" -eq 2 ] && [ "$(wc -l <err)" -eq 1 ] && grep -q "^emulated_nodes: " err || fail "$args: exit $rc: $(cat err)"
done

"$emu" up 2 >/dev/null && ip netns del nnemu-h2 && "$emu" down 2>/dev/null
[ ! -e /etc/netns/nnemu-h2 ] && [ ! -e /etc/netns/nnemu-h1 ] || fail "down left /etc/netns entries"
[ -z "$(ip netns list | grep '^nnemu-')" ] || fail "down left namespaces"

[ "$failures" -eq 0 ] && echo "all emulated-node checks passed"
[ "$failures" -eq 0 ]
