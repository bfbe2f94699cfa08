#!/bin/bash
# --deterministic (issue 21): the same model, bit for bit, for any rank count,
# --threads, --allreduce mode and --compress; with dropout, max-norm and
# --accumulate; and a run stopped at one rank count and resumed at another ends
# exactly where an uninterrupted run does. Each comparison is h5diff without a
# tolerance over every array of /model, /optimizer (weights, biases, momentum) and
# /progress (the shuffle state and the epoch's loss sum so far, one row in this mode)
# and their attributes, plus the metrics' losses and accuracies to the last digit.
# Dense networks take the product over the global batch (global_product.h), through
# a node's shared memory and, with NN_EXACT_SUM=mpi, between nodes (every rank its
# own); convolutional ones the fixed-point sum (exact_sum.h), both of its paths too.
# Usage: test_deterministic.sh NNTRAIN MAKE_TEST_DATA MPIEXEC MNIST WORKDIR
set -u
nntrain=$1 make_data=$2 mpiexec=$3 mnist=$4 dir=$5/deterministic
rm -rf "$dir" && mkdir -p "$dir" && "$make_data" "$dir" >/dev/null || exit 1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
trap 'umount "$dir/smallshm" 2>/dev/null' EXIT # the small /dev/shm case's tmpfs, if a failure left it

# 64 samples of 16 values, 3 classes; batch 16 = 8 virtual shards of 2 samples
base=(--data "$dir/good.h5" --layers 16,12,8,3 --batch-size 16 --epochs 3 --lr 0.3 --thread-tuning off --timeout 120)

# run NAME NP [options]: trains into NAME.h5 and NAME.jsonl; 0 or the exit code
run() {
    local name=$1 np=$2
    shift 2
    rm -f "$dir/$name.h5" "$dir/$name.jsonl"
    timeout 300 "$mpiexec" -n "$np" "$nntrain" "${base[@]}" --checkpoint "$dir/$name.h5" --metrics "$dir/$name.jsonl" \
        "$@" >"$dir/$name.out" 2>&1
}

# The metrics' losses and accuracies (printed with 17 digits) of a run.
scores() { grep -o '"\(train_loss\|test_loss\|test_accuracy\|validation_loss\|validation_accuracy\)": [^,]*' "$dir/$1.jsonl"; }

# same A B WHAT: every array and attribute of /model, /optimizer and /progress identical, and the scores
same() {
    local a=$dir/$1.h5 b=$dir/$2.h5
    if ! h5diff "$a" "$b" /model /model >"$dir/diff" 2>&1 || ! h5diff "$a" "$b" /optimizer /optimizer >>"$dir/diff" 2>&1 ||
        ! h5diff "$a" "$b" /progress /progress >>"$dir/diff" 2>&1; then
        fail "$3: checkpoints $1 and $2 differ: $(head -c 300 "$dir/diff")"
    elif [ "$(scores "$1")" != "$(scores "$2")" ]; then
        fail "$3: the metrics of $1 and $2 differ"
    elif [ -z "$(scores "$1")" ]; then
        fail "$3: no metrics"
    else
        echo "ok: $3"
    fi
}

# 1 rank, 1 thread: the reference
run ref 1 --deterministic --threads 1 || fail "reference run: exit $? ($(tail -1 "$dir/ref.out"))"
grep -q "deterministic: 8 virtual shards" "$dir/ref.out" || fail "the header does not name the mode: $(head -1 "$dir/ref.out")"

# the comparison can see a difference: without --deterministic, 1 and 2 ranks differ
run plain1 1 --threads 1 && run plain2 2 --threads 1 || fail "plain runs: exit $?"
h5diff -q "$dir/plain1.h5" "$dir/plain2.h5" /model /model >/dev/null 2>&1 &&
    fail "without --deterministic 1 and 2 ranks gave the same model: the test could not tell"

for np in 2 3 4 5 8; do
    run "np$np" "$np" --deterministic --threads 1 || fail "-np $np: exit $? ($(tail -1 "$dir/np$np.out"))"
    same ref "np$np" "-np $np (shm) = -np 1"
done
grep -q "one product over the global batch (in shared memory, 1 node, one copy of the weights)" "$dir/np4.out" ||
    fail "-np 4 on one node did not share the product and the weights in memory: $(head -1 "$dir/np4.out")"
grep -q "one product over the global batch (in shared memory, 1 node)$" "$dir/np2.out" ||
    fail "-np 2 did not keep a copy of the weights a rank: $(head -1 "$dir/np2.out")"
# the other choice of copies at 2 and 4 ranks (the same bits: the SGD step goes element by element)
NN_NODE_PARAMS=shared run shared2 2 --deterministic || fail "NN_NODE_PARAMS=shared: exit $?"
same ref shared2 "-np 2, one copy of the weights = -np 1"
NN_NODE_PARAMS=private run private4 4 --deterministic --max-norm 1 || fail "NN_NODE_PARAMS=private: exit $?"
run maxnorm1 1 --deterministic --max-norm 1 || fail "--max-norm 1 at -np 1: exit $?"
same maxnorm1 private4 "--max-norm 1, -np 4 with a copy of the weights a rank = -np 1"
NN_EXACT_SUM=mpi run sumoverm4 4 --deterministic || fail "NN_EXACT_SUM=mpi: exit $?"
same ref sumoverm4 "-np 4, every rank its own node (the factors broadcast between nodes) = -np 1"
grep -q "one product over the global batch (4 nodes)" "$dir/sumoverm4.out" ||
    fail "NN_EXACT_SUM=mpi did not make 4 nodes: $(head -1 "$dir/sumoverm4.out")"
run mpi3 3 --deterministic --allreduce mpi --threads 2 || fail "mpi: exit $?"
same ref mpi3 "-np 3 --allreduce mpi --threads 2 = -np 1"
run overlap4 4 --deterministic --allreduce overlap || fail "overlap: exit $?"
same ref overlap4 "-np 4 --allreduce overlap = -np 1"
run bf16 2 --deterministic --compress bf16 --threads 2 || fail "bf16: exit $?"
same ref bf16 "-np 2 --compress bf16 = -np 1 (the exact sum is never compressed)"

# dropout, max-norm, accumulation (2 micro-steps of 16: 2 steps an epoch), explicit V
reg=(--deterministic --virtual-shards 4 --dropout 0.2 --input-dropout 0.1 --max-norm 1.5 --accumulate 2)
run reg1 1 "${reg[@]}" --threads 2 || fail "regularised -np 1: exit $?"
for np in 3 4; do
    run "reg$np" "$np" "${reg[@]}" || fail "regularised -np $np: exit $?"
    same reg1 "reg$np" "dropout, max-norm, --accumulate 2, 4 virtual shards: -np $np = -np 1"
done

# mse loss, tanh, --validation (its loss summed per sample too), warm-up, momentum ramp
other=(--deterministic --loss mse --activation tanh --validation 16 --warmup-epochs 1 --momentum-end 0.95
       --momentum-ramp-epochs 2)
run other1 1 "${other[@]}" && run other3 3 "${other[@]}" || fail "mse/validation runs: exit $?"
grep -q '"validation_loss"' "$dir/other1.jsonl" || fail "no validation loss in the metrics"
same other1 other3 "mse, tanh, --validation, warm-up, momentum ramp: -np 3 = -np 1"

# a convolutional network (good.h5's samples are 1x4x4 images): conv, pool, dense
cnn=(--deterministic --layers conv3x3x4p1,pool2,8,3 --activation relu --dropout 0.2 --shift 1)
run cnn1 1 "${cnn[@]}" --threads 1 && run cnn3 3 "${cnn[@]}" --threads 2 || fail "conv runs: exit $?"
same cnn1 cnn3 "a conv network (conv, pool, dense), dropout, --shift 1: -np 3 --threads 2 = -np 1"
grep -q "exact int64 sum in shared memory (1 node)" "$dir/cnn3.out" ||
    fail "the conv network at -np 3 did not take the fixed-point sum in shared memory: $(head -1 "$dir/cnn3.out")"
NN_EXACT_SUM=mpi run cnnmpi 4 "${cnn[@]}" || fail "conv run, NN_EXACT_SUM=mpi: exit $?"
same cnn1 cnnmpi "a conv network, the fixed-point sum over MPI (the path between nodes): -np 4 = -np 1"
grep -q "exact int64 sum over MPI" "$dir/cnnmpi.out" || fail "NN_EXACT_SUM=mpi did not sum over MPI"
# --shift is wired in: it changes the model, the header says it, the checkpoint keeps it
run cnn0 1 "${cnn[@]:0:7}" --threads 1 || fail "conv run without --shift: exit $?"
h5diff -q "$dir/cnn1.h5" "$dir/cnn0.h5" /model /model >/dev/null 2>&1 && fail "--shift 1 gave the same model as no shift"
grep -q "shift 1 px" "$dir/cnn1.out" || fail "the header does not show --shift: $(head -1 "$dir/cnn1.out")"
h5dump -a /options/shift "$dir/cnn1.h5" 2>/dev/null | grep -q "(0): 1" || fail "the checkpoint does not record shift 1"
# a conv network driven out of the exact sum's range: exit 1, and the line says so
# (it said "the loss or a weight is not finite" of finite values beyond the range)
run cnnhot 1 "${cnn[@]:0:7}" --lr 100 --momentum 0 --epochs 20
rc=$?
[ "$rc" -eq 1 ] && grep -q "training diverged: a loss or gradient is not finite or beyond --deterministic's exact range" "$dir/cnnhot.out" ||
    fail "a conv network at --lr 100: exit $rc, $(grep diverged "$dir/cnnhot.out")"

# stopped at -np 2 after global step 5 (epoch 2, step 1 of 4), resumed at -np 4 and 3
NNTRAIN_STOP_AT_STEP=5 run stop2 2 --deterministic
[ $? -eq 75 ] || fail "the stopped run did not exit 75 ($(tail -1 "$dir/stop2.out"))"
cp "$dir/stop2.h5" "$dir/stop2b.h5"
cp "$dir/stop2.jsonl" "$dir/stop2b.jsonl"
# mid-epoch, /progress holds a loss sum so far: the same at -np 1 and -np 2
NNTRAIN_STOP_AT_STEP=5 run stop1 1 --deterministic
[ $? -eq 75 ] || fail "the stopped -np 1 run did not exit 75 ($(tail -1 "$dir/stop1.out"))"
if ! h5diff "$dir/stop1.h5" "$dir/stop2.h5" /progress /progress >"$dir/diff" 2>&1; then
    fail "stopped at step 5, -np 1 and -np 2 record different progress: $(head -c 300 "$dir/diff")"
elif ! h5dump -d /progress/loss_partial "$dir/stop2.h5" | grep -q "(0): [1-9]"; then
    fail "the stopped checkpoint's /progress/loss_partial is not one positive row: $(h5dump -d /progress/loss_partial "$dir/stop2.h5" | grep "(0)")"
else
    echo "ok: stopped mid-epoch, /progress of -np 1 = -np 2 (one row, the loss so far)"
fi
timeout 300 "$mpiexec" -n 4 "$nntrain" "${base[@]}" --resume "$dir/stop2.h5" --checkpoint "$dir/stop2.h5" \
    --metrics "$dir/stop2.jsonl" >"$dir/resume4.out" 2>&1 || fail "resume at -np 4: exit $? ($(tail -1 "$dir/resume4.out"))"
same ref stop2 "-np 2, stopped at step 5, resumed at -np 4 = -np 1 throughout"
timeout 300 "$mpiexec" -n 3 "$nntrain" --resume "$dir/stop2b.h5" --checkpoint "$dir/stop2b.h5" --metrics "$dir/stop2b.jsonl" \
    --timeout 120 >"$dir/resume3.out" 2>&1 || fail "resume at -np 3: exit $? ($(tail -1 "$dir/resume3.out"))"
same ref stop2b "-np 2, stopped, resumed at -np 3 with the checkpoint's settings = -np 1"

# MNIST, 784-300-10, batch 1200: a product deeper than one slice of nn_gemm (256) and
# a layer cut into tiles of whole panels with a narrower last one (300 = 9 x 32 + 12)
if [ -f "$mnist" ]; then
    saved=("${base[@]}")
    base=(--data "$mnist" --train-limit 2400 --layers 784,300,10 --activation relu --batch-size 1200 --epochs 2
          --lr 0.1 --thread-tuning off --timeout 120)
    run mnist1 1 --deterministic --threads 2 || fail "MNIST -np 1: exit $?"
    run mnist3 3 --deterministic || fail "MNIST -np 3: exit $?"
    same mnist1 mnist3 "MNIST 784-300-10, batch 1200: -np 3 = -np 1"
    NN_EXACT_SUM=mpi run mnist5 5 --deterministic || fail "MNIST -np 5, NN_EXACT_SUM=mpi: exit $?"
    same mnist1 mnist5 "MNIST 784-300-10, batch 1200: -np 5, every rank its own node = -np 1"
    # a /dev/shm too small for the node's factors (a 2 MiB tmpfs as OpenMPI's backing
    # directory): every rank on its own, in its own memory, the same bits
    shm=$dir/smallshm
    mkdir -p "$shm"
    if mount -t tmpfs -o size=2M tmpfs "$shm" 2>/dev/null; then
        OMPI_MCA_osc_sm_backing_directory=$shm run mnistcrowded 2 --deterministic || fail "MNIST, small /dev/shm: exit $?"
        umount "$shm"
        same mnist1 mnistcrowded "MNIST, /dev/shm too small for the factors: -np 2, each rank on its own = -np 1"
        grep -q "each rank on its own: $shm has no room" "$dir/mnistcrowded.out" ||
            fail "the header does not say why each rank is on its own: $(head -1 "$dir/mnistcrowded.out")"
    else
        echo "skip: cannot mount a tmpfs here (the small /dev/shm case)"
    fi
    base=("${saved[@]}")
else
    fail "$mnist is missing: run scripts/fetch_mnist.sh first (scripts/test.sh does)"
fi

# one line and exit 2: more ranks than virtual shards, V not dividing the batch, a mode change on resume
expect_usage() {
    local what=$1 np=$2
    shift 2
    timeout 120 "$mpiexec" -n "$np" "$nntrain" "${base[@]}" --epochs 1 "$@" >"$dir/u.out" 2>"$dir/u.err"
    local rc=$?
    if [ $rc -ne 2 ] || ! grep -q "$what" "$dir/u.err"; then fail "expected exit 2 and '$what', got $rc: $(cat "$dir/u.err")"
    else echo "ok: exit 2, $what"; fi
}
expect_usage "runs on at most 4 ranks, not 5 (choose --virtual-shards V >= 5 dividing --batch-size 16, such as 8)" 5 \
    --virtual-shards 4
# a resume's V is its checkpoint's: the advice is fewer ranks, not another V (which the
# resume refuses)
timeout 120 "$mpiexec" -n 1 "$nntrain" "${base[@]}" --epochs 1 --virtual-shards 2 --checkpoint "$dir/v2.h5" \
    >"$dir/v2.out" 2>&1 || fail "the V = 2 run: exit $? ($(tail -1 "$dir/v2.out"))"
expect_usage "runs on at most 2 ranks, not 3 ($dir/v2.h5 was written with them: resume it with at most 2 ranks)" 3 \
    --resume "$dir/v2.h5" --epochs 2
# a prime batch above the largest V: no V fits it, and the line says so (it advised one)
[ -f "$mnist" ] && expect_usage "at most 1 rank, not 2 (no V from 2 to 4096 divides --batch-size 4099" 2 \
    --data "$mnist" --layers 784,10 --deterministic --batch-size 4099 --train-limit 9000
expect_usage "does not divide --batch-size 16" 1 --virtual-shards 5
expect_usage "conflicts with checkpoint" 1 --resume "$dir/plain1.h5" --deterministic

[ $fails -eq 0 ] && echo "test_deterministic: all passed" || echo "test_deterministic: $fails failed"
[ $fails -eq 0 ]
