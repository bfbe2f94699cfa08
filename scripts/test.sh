#!/usr/bin/env bash
# Install what is missing, build, fetch MNIST (the end-to-end test trains on it), run
# every test with CTest, then the memory checks (scripts/check_memory.sh: sanitizer
# build and valgrind memcheck) and 20 s of fuzzing per harness (scripts/fuzz.sh);
# NN_SKIP_MEMCHECK=1 skips those two stages for a quick local run.
# Exit status: non-zero when anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
scripts/build.sh
scripts/fetch_mnist.sh
# test_slurm and test_export may skip themselves where Slurm or the Python packages are
# missing; not here, where setup.sh installed them
(cd "${BUILD_DIR:-build}" && NN_REQUIRE_SLURM=1 NN_REQUIRE_EXPORT=1 ctest --output-on-failure "$@")
if [ "${NN_SKIP_MEMCHECK:-0}" != 1 ]; then
    scripts/check_memory.sh
    scripts/fuzz.sh 20
fi
