#!/usr/bin/env bash
# Configure and build nntrain (Release, -march=native by default) into build/.
#   scripts/build.sh [extra cmake -D options]    e.g. -DNN_ARCH=x86-64-v3, -DNN_SANITIZE=ON
# BUILD_DIR overrides the build directory.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-Release} "$@" >/dev/null
cmake --build "$build" -j "$(nproc)"
