#!/usr/bin/env bash
# Builds the kit for run.sh into .device/ (git-ignored), from the repository root:
#   bash bench/scaling/host16/2026-12-05-factored/prepare.sh
# then, with the 16-core machine lent: the device tool's run with carry [".device"] and
# command "bash .device/run.sh" (timeout about 480 s), and give the machine back.
# Dry run here first:  SCALE=0.1 NP_MAX=4 BIND=none DEADLINE=200 bash .device/run.sh
set -euo pipefail
kit=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ -f CMakeLists.txt ] || { echo "prepare.sh: run from the repository root" >&2; exit 2; }
# the binaries for a Sapphire Rapids class Xeon (AVX-512), as the earlier kits
cmake -S . -B build-kit -DCMAKE_BUILD_TYPE=Release -DNN_ARCH=x86-64-v4 -DCMAKE_C_FLAGS=-mtune=sapphirerapids >/dev/null
cmake --build build-kit -j2 --target nntrain nnprep nneval bench_reduce bench_gemm >/dev/null
grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >>.git/info/exclude
rm -rf .device
../shared/device/mkbundle.sh build-kit .device >/dev/null
cp build-kit/bench_reduce build-kit/tests/bench_gemm .device/bin/
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    if [ -f "data/mnist/$f.gz" ]; then cp "data/mnist/$f.gz" .device/data/; else gzip -c "data/mnist/$f" >".device/data/$f.gz"; fi
done
cp "$kit/run.sh" .device/run.sh
cp -r "$kit/pyshim" .device/
cp bench/bench_torch.py .device/
echo "nntrain: $(git rev-parse --short HEAD)$(git diff --quiet || echo '+uncommitted'), -march=x86-64-v4 -mtune=sapphirerapids" >.device/VERSIONS
du -sh .device
