#!/usr/bin/env bash
# Fuzzing with libFuzzer (Debian's clang): builds the harnesses in tests/fuzz/ with
# AddressSanitizer and UndefinedBehaviorSanitizer, replays every saved regression input
# (tests/fuzz/regressions/<harness>/), then runs each harness for SECONDS (default 20)
# and prints its executions. A crash, a sanitizer report or a leak fails the script
# and leaves the input in build-fuzz/<harness>-crashes/.
#   scripts/fuzz.sh [SECONDS]        (CI runs it with the default; longer runs find more)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
out=build-fuzz
mkdir -p "$out/obj"
[ -f build/generated/nn/version.h ] || scripts/build.sh >/dev/null

read -r -a deps <<<"$(pkg-config --cflags hdf5-openmpi ompi-c)"
read -r -a libs <<<"$(pkg-config --libs hdf5-openmpi ompi-c zlib)"
cflags=(-std=c11 -g -O1 -fopenmp -Wno-pass-failed -fno-sanitize-recover=undefined -Iinclude -Ibuild/generated "${deps[@]}")

# the library, instrumented for coverage but without libFuzzer's main
objects=()
for src in src/*.c; do
    obj=$out/obj/$(basename "${src%.c}").o
    if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ]; then
        clang "${cflags[@]}" -fsanitize=fuzzer-no-link,address,undefined -c "$src" -o "$obj"
    fi
    objects+=("$obj")
done

# seeds: a valid tiny IDX file of each kind, raw and gzipped (first byte: expected dims)
seeds=$out/seeds/fuzz_idx
mkdir -p "$seeds" "$out/idx"
python3 tests/make_idx.py "$out/idx"
{ printf '\001'; cat "$out/idx/train-images-idx3-ubyte"; } >"$seeds/images"
{ printf '\000'; cat "$out/idx/train-labels-idx1-ubyte"; } >"$seeds/labels"
{ printf '\001'; gzip -c "$out/idx/t10k-images-idx3-ubyte"; } >"$seeds/images.gz"

# huge allocations a file asks for return NULL (the code must say "out of memory")
asan=allocator_may_return_null=1:abort_on_error=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# the harnesses' scratch files: libFuzzer ends a timed run without cleaning up
export NN_FUZZ_SCRATCH
NN_FUZZ_SCRATCH=$(mktemp -d /dev/shm/nntrain-fuzz.XXXXXX)
trap 'rm -rf "$NN_FUZZ_SCRATCH"' EXIT
total=0
for harness in fuzz_idx fuzz_checkpoint fuzz_dataset; do
    clang "${cflags[@]}" -fsanitize=fuzzer,address,undefined "tests/fuzz/$harness.c" "${objects[@]}" \
          "${libs[@]}" -lm -lpthread -o "$out/$harness"
    # leak checks only where no MPI or HDF5 state lives across inputs and past exit
    leaks=0; [ "$harness" = fuzz_idx ] && leaks=1
    export ASAN_OPTIONS=$asan:detect_leaks=$leaks
    corpus=$out/corpus/$harness crashes=$out/$harness-crashes
    mkdir -p "$corpus" "$crashes" "$out/seeds/$harness"
    regressions=tests/fuzz/regressions/$harness
    if [ -d "$regressions" ] && [ -n "$(ls -A "$regressions")" ]; then
        "$out/$harness" -detect_leaks=$leaks -rss_limit_mb=0 "$regressions"/* >"$out/$harness.replay.log" 2>&1 ||
            { echo "fuzz: $harness fails a regression input:"; tail -30 "$out/$harness.replay.log"; exit 1; }
    fi
    "$out/$harness" -max_total_time="$seconds" -detect_leaks=$leaks -rss_limit_mb=0 -print_final_stats=1 \
        -artifact_prefix="$crashes/" "$corpus" "$out/seeds/$harness" >"$out/$harness.log" 2>&1 ||
        { echo "fuzz: $harness FOUND A PROBLEM (input in $crashes/):"; grep -v '^#' "$out/$harness.log" | tail -40; exit 1; }
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$harness.log")
    cov=$(grep -o 'cov: [0-9]*' "$out/$harness.log" | tail -1)
    echo "fuzz: $harness: $runs executions in ${seconds}s, $cov edges, corpus $(ls "$corpus" | wc -l) inputs: clean"
    total=$((total + runs))
done
echo "fuzz: $total executions in all, no crash"
