#!/usr/bin/env bash
# Every rank reads its own argv, environment, dataset and checkpoint. Where one rank is
# given something else (an MPMD launch, mpirun -x on some ranks, a node-local copy that
# differs, a relative path from another directory), the job ends at start with exit 2
# and one line naming what differs: it used to hang until the watchdog (5 minutes by
# default) with a line that blamed the gradient sum, crash, or exit 0 with another
# model's accuracy. Ranks that run different thread counts train (the thread tuning,
# whose timing is collective, is left out): they used to wait for each other for good.
# A same-shaped dataset is compared by its first and last samples. An error that rank
# 0 does not share names the rank and host that met it.
# Rank 1 is given its difference by a wrapper that reads OMPI_COMM_WORLD_RANK.
# Usage: test_ranks_agree.sh NNTRAIN NNEVAL MAKE_TEST_DATA MPIEXEC WORKDIR
set -u
nntrain=$1 nneval=$2 make_data=$3 mpiexec=$4 dir=$5/ranks_agree
rm -rf "$dir" && mkdir -p "$dir/a" "$dir/b" && "$make_data" "$dir/a" && "$make_data" "$dir/b" ||
    { echo "FAIL cannot make test data"; exit 1; }
cp "$dir/b/fewer.h5" "$dir/b/good.h5" # rank 1's good.h5, in b, has other sizes
# and in c the same shape, one pixel of its first training image changed
mkdir -p "$dir/c" && cp "$dir/a/good.h5" "$dir/c/good.h5" && /usr/bin/python3 -c 'import h5py, sys
with h5py.File(sys.argv[1], "r+") as f:
    first = f["train/images"][0]; first.flat[0] ^= 1; f["train/images"][0] = first' "$dir/c/good.h5" ||
    { echo "FAIL cannot make the same-shaped dataset"; exit 1; }
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; grep -v '^ *$' "$dir/err" | head -3 | sed 's/^/     /'; }
# on_rank1 VAR=VALUE CMD...: CMD with VAR=VALUE on rank 1 only (a directory for cd=DIR)
cat >"$dir/on_rank1" <<'EOF'
#!/usr/bin/env bash
setting=$1; shift
if [ "${OMPI_COMM_WORLD_RANK:-0}" = 1 ]; then
    case $setting in cd=*) cd "${setting#cd=}" || exit 99 ;; *) export "$setting" ;; esac
fi
exec "$@"
EOF
chmod +x "$dir/on_rank1"
# expect NAME CODE MESSAGE CMD...: CMD exits CODE (within the guard) and stderr has MESSAGE
expect() {
    local name=$1 code=$2 message=$3; shift 3
    (cd "$dir/a" && timeout -s KILL 120 "$@" >"$dir/out" 2>"$dir/err"); local rc=$?
    if [ "$rc" -eq "$code" ] && { [ -z "$message" ] || grep -qF -- "$message" "$dir/err"; }
    then ok "$name"; else fail "$name (exit $rc)"; fi
}
small=(--data good.h5 --layers 16,8,3 --batch-size 8 --epochs 1 --timeout 60)

expect "an MPMD launch with an option on one rank only: exit 2" 2 \
    "nntrain: the command line differs between ranks: rank 1's is not rank 0's; every rank must be given the same options" \
    "$mpiexec" -n 1 "$nntrain" "${small[@]}" : -n 1 "$nntrain" "${small[@]}" --layers 16,4,3
expect "nneval, the same" 2 "nneval: the command line differs between ranks" \
    "$mpiexec" -n 1 "$nneval" --checkpoint x.h5 : -n 1 "$nneval" --checkpoint x.h5 --split train
for knob in NN_NODE_PARAMS=shared NN_NODE_SUM=static; do
    expect "$knob on rank 1 only: exit 2" 2 \
        "nntrain: ${knob%%=*} differs between ranks: rank 1's is not rank 0's; give every rank the same (mpirun -x ${knob%%=*})" \
        "$mpiexec" -n 3 "$dir/on_rank1" "$knob" "$nntrain" "${small[@]}"
done
expect "a relative --data naming another file on rank 1: exit 2" 2 \
    "nntrain: good.h5 differs between ranks: rank 1's is not rank 0's; every rank must read the same file" \
    "$mpiexec" -n 2 "$dir/on_rank1" "cd=$dir/b" "$nntrain" "${small[@]}"
expect "a relative --data naming a same-shaped file with another first image on rank 1: exit 2" 2 \
    "nntrain: good.h5 differs between ranks: rank 1's is not rank 0's; every rank must read the same file: its first or last samples differ" \
    "$mpiexec" -n 2 "$dir/on_rank1" "cd=$dir/c" "$nntrain" "${small[@]}"
mkdir -p "$dir/empty"
expect "a relative --data missing on rank 1 only: exit 2, the rank and host named" 2 \
    "nntrain: rank 1 on $(hostname): good.h5: cannot read: No such file or directory" \
    "$mpiexec" -n 2 "$dir/on_rank1" "cd=$dir/empty" "$nntrain" "${small[@]}"
(cd "$dir/a" && "$nntrain" "${small[@]}" --checkpoint ck.h5 >/dev/null) &&
    (cd "$dir/b" && "$nntrain" --data "$dir/a/good.h5" --layers 16,8,3 --batch-size 8 --epochs 2 --checkpoint ck.h5 >/dev/null) ||
    fail "the two checkpoints could not be made"
expect "a relative --resume naming another checkpoint on rank 1: exit 2" 2 \
    "nntrain: ck.h5 differs between ranks: rank 1's is not rank 0's; every rank must read the same checkpoint" \
    "$mpiexec" -n 2 "$dir/on_rank1" "cd=$dir/b" "$nntrain" --resume ck.h5 --epochs 3 --timeout 60
expect "nneval, a relative --checkpoint naming another file on rank 1: exit 2" 2 \
    "nneval: ck.h5 differs between ranks: rank 1's is not rank 0's" \
    "$mpiexec" -n 2 "$dir/on_rank1" "cd=$dir/b" "$nneval" --checkpoint ck.h5 --data "$dir/a/good.h5" --timeout 60
expect "more threads on rank 1 (OMP_NUM_THREADS): the run completes" 0 "" \
    "$mpiexec" -n 2 --bind-to none "$dir/on_rank1" OMP_NUM_THREADS=2 "$nntrain" "${small[@]}" --epochs 3
grep -q '^done: 3 epochs' "$dir/out" && ok "more threads on rank 1: the run printed its result" ||
    fail "more threads on rank 1: no result line"

echo "test_ranks_agree: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
