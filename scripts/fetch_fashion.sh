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

# Always convert (about 1.3 s for MNIST): a file's age says nothing of what it holds, and
# a damaged, truncated, foreign or partial dataset at $out newer than the IDX files was
# once reported "up to date" and kept. nnprep replaces only an nntrain dataset (renamed
# into place, so a run reading the old one keeps it) and refuses anything else, exit 2.
command -v "$nnprep" >/dev/null 2>&1 || die 1 "$nnprep not found: build first (cmake -B build && cmake --build build) or set NNPREP"
mkdir -p "$(dirname "$out")"
# Another fetch converting to the same file (two test runs of one checkout) holds its
# lock: nnprep waits for it, up to two minutes, then converts again (whole either way).
exec "$nnprep" --wait 120 --fashion --out "$out" "$SOURCE_DIR"
