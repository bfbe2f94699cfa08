#!/usr/bin/env bash
# A small convolutional network for Fashion-MNIST, trained in under 10 minutes with
# mpirun -np 2 on this 2-core machine: conv 3x3x32 (pad 1) -> pool -> conv 3x3x64
# (pad 1) -> pool -> dense 256 (dropout 0.3) -> 10, relu, random shifts of up to 1
# pixel (--shift 1), SGD with momentum 0.9, lr 0.05 annealed by cosine over 22 epochs,
# batch 64, weight decay 1e-4. Settings chosen on a validation split (--validation
# 10000), never on the test set; see docs/convolution.md.
#
#   scripts/recipes/fashion-cnn.sh [nntrain options]     e.g. --seed 2 --metrics run.jsonl
#
# Builds build/nntrain and fetches data/fashion-mnist.h5 (Debian's dataset-fashion-mnist)
# only when missing. NP=4 for 4 ranks.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd) # paths the caller gives stay relative to the caller
. "$repo/scripts/recipes/recipe_env.sh"
recipe_run "$repo/data/fashion-mnist.h5" "$repo/scripts/fetch_fashion.sh" \
    --layers conv3x3x32p1,pool2,conv3x3x64p1,pool2,256,10 --activation relu --dropout 0.3 --shift 1 \
    --weight-decay 0.0001 --lr 0.05 --momentum 0.9 --batch-size 64 --epochs 22 "$@"
