#!/usr/bin/env bash
# The best plain MLP this 2-core machine trains on Fashion-MNIST in at most 10 minutes
# with mpirun -np 2: 784-800-800-10 relu with dropout on the hidden units (0.3) and the
# inputs (0.1), max-norm 3.5, SGD with momentum 0.9, lr 0.1 annealed by cosine over 180
# epochs, batch 128. Settings chosen on a validation split (--validation 10000), never
# on the test set; see the README.
#
#   scripts/recipes/fashion-best.sh [nntrain options]     e.g. --seed 2 --metrics run.jsonl
#
# Builds build/nntrain and fetches data/fashion-mnist.h5 (Debian's dataset-fashion-mnist)
# only when missing. NP=4 for 4 ranks.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd) # paths the caller gives stay relative to the caller
. "$repo/scripts/recipes/recipe_env.sh"
recipe_run "$repo/data/fashion-mnist.h5" "$repo/scripts/fetch_fashion.sh" \
    --layers 784,800,800,10 --activation relu --dropout 0.3 --input-dropout 0.1 --max-norm 3.5 \
    --lr 0.1 --momentum 0.9 --batch-size 128 --epochs 180 "$@"
