#!/usr/bin/env bash
# Memory and undefined-behaviour checks (run by scripts/test.sh after the suite):
#  1. a sanitizer build (AddressSanitizer + UndefinedBehaviorSanitizer, any finding
#     fatal) runs the serial suites, the 2-rank MPI suites, short --deterministic
#     trainings at 2 ranks and the node's chunked sum at 3 (early, after a barrier, and
#     the default timing of early against the factored sum, switching every 2 steps);
#  2. valgrind memcheck runs nnprep, a short nntrain -np 1 (watchdog and checkpoint
#     on) and nneval on a portable build (-march=x86-64-v2: valgrind does not decode
#     every AVX-512 instruction): zero errors, no definite leak outside OpenMPI's own
#     MPI_Init/MPI_Finalize (tests/valgrind.supp); and nntrain --deterministic.
# Exit status 0 when both are clean.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/mpi_env.sh
export OMP_NUM_THREADS=1

echo "== sanitizers (build-asan)"
BUILD_DIR=build-asan scripts/build.sh -DNN_SANITIZE=ON >/dev/null
# OpenMPI and HDF5 keep some allocations at exit: leaks are valgrind's part below.
( cd build-asan &&
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  ctest --output-on-failure \
        -R '^test_(idx|kernels|layers|conv|textbook|options|hint|placement|output_place|nnprep|checkpoint_compat|outputs|mpi_grad_np2|reduce_np2|dataset_mpi_np2|thread_tuning_np2)$' )

# --deterministic at 2 ranks: the global product's shared factors and tiles, with a
# copy of the weights a rank, one a node, and every rank its own node
det=build-asan/det
rm -rf "$det" && mkdir -p "$det" && build-asan/tests/make_test_data "$det" >/dev/null
for env in NN_NODE_PARAMS=private NN_NODE_PARAMS=shared NN_EXACT_SUM=mpi; do
    echo "-- sanitizers: mpiexec -n 2 nntrain --deterministic ($env)"
    if ! env "$env" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        mpiexec -n 2 build-asan/nntrain --data "$det/good.h5" --layers 16,12,8,3 --batch-size 16 --epochs 2 \
        --deterministic --accumulate 2 --max-norm 1 --thread-tuning off >"$det/out" 2>&1; then
        echo "sanitizers: FAIL"; tail -30 "$det/out"; exit 1
    fi
done
# the node's sum at 3 ranks (one copy of the weights): begun in backward, after a
# barrier, and the default (auto: early and factors timed, switching every 2 steps
# here), with max-norm, on a dense and a conv net
for sum in early chunked auto; do
    for layers in 16,40,8,3 conv2x2x4p1,pool2,10,3; do
        echo "-- sanitizers: mpiexec -n 3 nntrain (NN_NODE_SUM=$sum, --layers $layers)"
        if ! NN_NODE_SUM=$sum NN_TUNE_BLOCK=2 ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
            mpiexec -n 3 -x NN_NODE_SUM -x NN_TUNE_BLOCK build-asan/nntrain --data "$det/good.h5" --layers "$layers" --batch-size 16 \
            --epochs 2 --max-norm 1 --thread-tuning off >"$det/out" 2>&1; then
            echo "sanitizers: FAIL"; tail -30 "$det/out"; exit 1
        fi
    done
done
echo "== valgrind memcheck (build-memcheck)"
BUILD_DIR=build-memcheck scripts/build.sh -DNN_ARCH=x86-64-v2 >/dev/null
work=build-memcheck/memcheck
rm -rf "$work" && mkdir -p "$work/idx"
build-memcheck/tests/make_test_data "$work"
python3 tests/make_idx.py "$work/idx"
memcheck() {
    echo "-- valgrind $*"
    valgrind -q --log-file="$work/valgrind" --error-exitcode=9 --num-callers=64 --suppressions=tests/valgrind.supp \
             --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite "$@" >"$work/out" 2>"$work/err"
    local rc=$?
    if [ "$rc" -ne 0 ] || [ -s "$work/valgrind" ]; then
        echo "memcheck: FAIL (exit $rc)"; cat "$work/valgrind" "$work/err"; exit 1
    fi
}
set +e
memcheck build-memcheck/nnprep --out "$work/prep.h5" "$work/idx"
memcheck build-memcheck/nntrain --data "$work/good.h5" --layers 16,8,3 --batch-size 8 --epochs 2 \
         --checkpoint "$work/ck.h5" --metrics "$work/m.jsonl"
memcheck build-memcheck/nneval --data "$work/good.h5" --checkpoint "$work/ck.h5"
memcheck build-memcheck/nntrain --data "$work/good.h5" --layers 16,8,3 --batch-size 8 --epochs 2 \
         --deterministic --accumulate 2 --max-norm 1
echo "memcheck: clean"
