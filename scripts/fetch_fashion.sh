#!/usr/bin/env bash
# Install Fashion-MNIST from Debian (package dataset-fashion-mnist, IDX files with .gz
# under /usr/share/datasets/fashion-mnist) and convert it to HDF5 with nnprep.
#
#   scripts/fetch_fashion.sh [--out FILE]      (default data/fashion-mnist.h5)
#
# Environment: NNPREP (path of nnprep; default $BUILD_DIR/nnprep), BUILD_DIR (default build).
# Exit status: 0 ok, 1 runtime failure (install, missing nnprep), 2 bad usage or bad data.
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"; }
die() { echo "fetch_fashion.sh: $2" >&2; exit "$1"; }
absolute() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }

PACKAGE=dataset-fashion-mnist
SOURCE_DIR=/usr/share/datasets/fashion-mnist
NAMES=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)

out=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --out) [[ $# -ge 2 ]] || die 2 "--out needs a file"; out=$(absolute "$2"); shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die 2 "unknown argument '$1' (see --help)" ;;
    esac
done
[[ ${NNPREP:-} == */* ]] && NNPREP=$(absolute "$NNPREP")
cd "$(dirname "$0")/.."
out=${out:-data/fashion-mnist.h5}
nnprep=${NNPREP:-${BUILD_DIR:-build}/nnprep}

if [[ $(dpkg-query -W -f='${Status}' "$PACKAGE" 2>/dev/null || true) != "install ok installed" ]]; then
    [[ $(id -u) -eq 0 ]] || die 1 "$PACKAGE is not installed: run as root, or: sudo apt-get install --no-install-recommends $PACKAGE"
    echo "fetch_fashion.sh: installing $PACKAGE"
    export DEBIAN_FRONTEND=noninteractive
    # Refresh the package lists only when apt does not know the package yet.
    apt-cache show "$PACKAGE" >/dev/null 2>&1 || apt-get -o DPkg::Lock::Timeout=900 update -qq
    apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "$PACKAGE" \
        || die 1 "cannot install $PACKAGE"
fi

up_to_date=1
for name in "${NAMES[@]}"; do
    [[ $out -nt $SOURCE_DIR/$name.gz ]] || up_to_date=0
done
if [[ $up_to_date -eq 1 ]]; then
    echo "fetch_fashion.sh: $out is up to date"
    exit 0
fi
command -v "$nnprep" >/dev/null 2>&1 || die 1 "$nnprep not found: build first (cmake -B build && cmake --build build) or set NNPREP"
mkdir -p "$(dirname "$out")"
"$nnprep" --fashion --out "$out" "$SOURCE_DIR"
