#!/usr/bin/env bash
# Install what is missing, build, fetch MNIST (the end-to-end test trains on it) and
# run every test with CTest. Exit status is CTest's.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
scripts/fetch_mnist.sh
cd "${BUILD_DIR:-build}"
ctest --output-on-failure "$@"
