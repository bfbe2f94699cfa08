#!/usr/bin/env bash
# From a fresh Debian machine to a trained network: install what is missing, build,
# fetch MNIST (checksummed) and train the reference network 784-50-100-10 under mpirun.
#   scripts/quickstart.sh [nntrain options]     NP=4 scripts/quickstart.sh --epochs 20
# Runs in the caller's directory: relative paths given to nntrain (--metrics run.jsonl)
# mean the caller's files; the dataset is the repository's data/mnist.h5 unless --data.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/setup.sh"
"$repo/scripts/build.sh"
"$repo/scripts/fetch_mnist.sh"
. "$repo/scripts/mpi_env.sh"
np=${NP:-2}
echo "+ mpirun -np $np $repo/build/nntrain --data $repo/data/mnist.h5 $*"
exec mpirun -np "$np" "$repo/build/nntrain" --data "$repo/data/mnist.h5" "$@"
