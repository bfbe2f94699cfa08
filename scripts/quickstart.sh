#!/usr/bin/env bash
# From a fresh Debian machine to a trained network: install what is missing, build,
# fetch MNIST (checksummed) and train the reference network 784-50-100-10 under mpirun.
#   scripts/quickstart.sh [nntrain options]     NP=4 scripts/quickstart.sh --epochs 20
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
scripts/fetch_mnist.sh
. scripts/mpi_env.sh
np=${NP:-2}
echo "+ mpirun -np $np build/nntrain $*"
exec mpirun -np "$np" build/nntrain "$@"
