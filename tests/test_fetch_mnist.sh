#!/usr/bin/env bash
# scripts/fetch_mnist.sh never loses an IDX file it did not put in place itself. The
# script runs from a copy in a scratch repository (its cache there is data/mnist), so
# the real cache is only read; no network is used (--from a directory, or a URL that
# cannot be reached):
#  - your own IDX files in data/mnist, with --from data/mnist (the directory itself) or
#    --from the real MNIST: each named in one line, expected and actual checksum, exit 2,
#    the files unchanged;
#  - data/mnist a symbolic link to a shared folder of other IDX files: the same;
#  - a --from directory whose files are not MNIST: exit 2, the directory unchanged;
#  - the script's own file damaged in place: kept while no good copy can be fetched
#    (exit 1), replaced once one is (exit 0);
#  - a file the script installed, since overwritten by the user: refused, left;
#  - a file put in the cache while the fetch runs (a fake curl puts it there): kept, exit 2.
# Until 2026-12-07 every file with a wrong checksum in data/mnist was deleted before the
# fetch: a failed fetch (no network, --from data/mnist itself) left the user with nothing.
# Needs the IDX cache data/mnist of the repository (skips, 77, without it).
# Usage: test_fetch_mnist.sh NNPREP REPO WORKDIR
set -u
nnprep=$(realpath "$1") repo=$2 dir=$3/fetch_mnist
real=$repo/data/mnist
for name in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    [ -f "$real/$name" ] || { echo "SKIP: no $real/$name (scripts/fetch_mnist.sh)"; exit 77; }
done
rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || exit 1
trap 'rm -rf "$dir"' EXIT
fails=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; sed 's/^/     /' fetch.err | tail -4; fails=$((fails + 1)); }
sums() { (cd "$1" && sha256sum -- * 2>/dev/null); }

# scratch REPOSITORY: a fresh scratch repository, the script under test in it, no cache
scratch() {
    rm -rf "$dir/$1" && mkdir -p "$dir/$1/scripts" "$dir/$1/data" &&
        cp "$repo/scripts/fetch_mnist.sh" "$dir/$1/scripts/"
}
fetch() { # REPOSITORY ARGS...: fetch.out, fetch.err; exit status in rc
    local r=$1; shift
    (cd "$dir" && NNPREP=$nnprep timeout 120 "$dir/$r/scripts/fetch_mnist.sh" "$@" >fetch.out 2>fetch.err)
    rc=$?
}
mkdir own && python3 "$repo/tests/make_idx.py" own 40 # your own IDX files: 40 training images

# --- your own IDX files in data/mnist ---
for from in "data/mnist" "$real" "file://$dir/nowhere"; do
    scratch r && mkdir r/data/mnist && cp own/* r/data/mnist/
    before=$(sums r/data/mnist)
    (cd r && NNPREP=$nnprep timeout 120 scripts/fetch_mnist.sh --from "$from" --out t/custom.h5 >../fetch.out 2>../fetch.err)
    rc=$?
    if [ "$rc" -eq 2 ] && [ "$(wc -l <fetch.err)" -eq 4 ] && [ "$(grep -c "not put there by fetch_mnist.sh: left alone" fetch.err)" -eq 4 ] &&
       grep -q "data/mnist/train-images-idx3-ubyte: not MNIST's (SHA-256 expected ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db, got $(sha256sum <own/train-images-idx3-ubyte | cut -d' ' -f1))" fetch.err &&
       [ "$before" = "$(sums r/data/mnist)" ] && [ ! -e r/t/custom.h5 ]
    then ok "own IDX files in data/mnist, --from $from: exit 2, one line each (expected, got), the files kept"
    else fail "own IDX files in data/mnist, --from $from: exit $rc, files now: $(ls r/data/mnist | tr '\n' ' ')"; fi
done

# --- data/mnist a symbolic link to a shared folder ---
scratch r && mkdir shared && cp own/* shared/ && ln -s "$dir/shared" r/data/mnist
before=$(sums shared)
fetch r --from "$real" --out "$dir/s.h5"
if [ "$rc" -eq 2 ] && [ "$before" = "$(sums shared)" ] && [ -L r/data/mnist ]
then ok "data/mnist a link to a shared folder of other IDX files: exit 2, the folder unchanged"
else fail "data/mnist a link to a shared folder of other IDX files: exit $rc, folder now: $(ls shared | tr '\n' ' ')"; fi

# --- a --from directory that is not MNIST: only read ---
scratch r
before=$(sums own)
fetch r --from "$dir/own" --out "$dir/o.h5"
if [ "$rc" -eq 2 ] && [ "$(wc -l <fetch.err)" -eq 1 ] && grep -q "SHA-256 mismatch: expected" fetch.err &&
   [ "$before" = "$(sums own)" ] && [ -z "$(ls -A r/data/mnist 2>/dev/null)" ]
then ok "--from a directory of other IDX files: exit 2, one line, the directory unchanged, nothing cached"
else fail "--from a directory of other IDX files: exit $rc"; fi

# --- the script's own file, damaged in place (a flipped byte; same inode, size, mtime) ---
scratch r
fetch r --from "$real" --out "$dir/m.h5"
if [ "$rc" -eq 0 ] && [ "$(sums r/data/mnist)" = "$(sums "$real")" ]
then ok "--from the real MNIST into an empty cache: the four files installed"
else fail "--from the real MNIST into an empty cache: exit $rc"; fi
f=r/data/mnist/t10k-labels-idx1-ubyte
stamp=$(stat -c %Y "$f")
printf '\377' | dd of="$f" bs=1 seek=100 conv=notrunc status=none && touch -d "@$stamp" "$f"
damaged=$(sha256sum <"$f")
fetch r --from "file://$dir/nowhere" --out "$dir/m.h5"
if [ "$rc" -eq 1 ] && [ "$damaged" = "$(sha256sum <"$f" 2>/dev/null)" ] && grep -q "t10k-labels-idx1-ubyte: damaged" fetch.err
then ok "its own file damaged, no good copy to be had: exit 1, the file kept"
else fail "its own file damaged, no good copy to be had: exit $rc, $(ls r/data/mnist | tr '\n' ' ')"; fi
fetch r --from "$real" --out "$dir/m.h5"
if [ "$rc" -eq 0 ] && [ "$(sums r/data/mnist)" = "$(sums "$real")" ]
then ok "its own file damaged, a good copy fetched: replaced, exit 0"
else fail "its own file damaged, a good copy fetched: exit $rc"; fi

# --- a file it installed, since overwritten by the user ---
cp own/train-labels-idx1-ubyte r/data/mnist/
fetch r --from "$real" --out "$dir/m.h5"
if [ "$rc" -eq 2 ] && [ "$(wc -l <fetch.err)" -eq 1 ] && cmp -s own/train-labels-idx1-ubyte r/data/mnist/train-labels-idx1-ubyte
then ok "a file it installed, overwritten since by the user: exit 2, one line, kept"
else fail "a file it installed, overwritten since by the user: exit $rc"; fi

# --- a file put in the cache while the fetch runs ---
# A fake curl (first in PATH) serves the real MNIST for --from file://.../mnist and, as it
# serves the first file, puts the user's own t10k-labels-idx1-ubyte in the cache, where there
# was none at the start: that file is kept, named in one line, exit 2; the other three are
# installed (and recorded as the script's). Until 2026-12-07 the mv after the fetch replaced it.
scratch r && mkdir -p fakebin && cat >fakebin/curl <<EOF_CURL
#!/usr/bin/env bash
out=\${@: -2:1} name=\${@: -1} # fetch_mnist.sh's download: curl -fsSL --retry 3 -o FILE URL
name=\${name##*/}
case \$name in *.gz) exit 22 ;; esac
cp "$real/\$name" "\$out" || exit 22
if [ "\$name" = train-images-idx3-ubyte ] && [ ! -e "$dir/r/data/mnist/t10k-labels-idx1-ubyte" ]; then
    cp "$dir/own/t10k-labels-idx1-ubyte" "$dir/r/data/mnist/t10k-labels-idx1-ubyte"
fi
EOF_CURL
chmod +x fakebin/curl
(cd "$dir" && PATH=$dir/fakebin:$PATH NNPREP=$nnprep timeout 120 "$dir/r/scripts/fetch_mnist.sh" --from "file://$dir/mnist" \
    --out "$dir/f.h5" >fetch.out 2>fetch.err); rc=$?
if [ "$rc" -eq 2 ] && [ "$(wc -l <fetch.err)" -eq 1 ] && grep -q "t10k-labels-idx1-ubyte: changed during the fetch" fetch.err &&
   cmp -s own/t10k-labels-idx1-ubyte r/data/mnist/t10k-labels-idx1-ubyte && cmp -s "$real/train-images-idx3-ubyte" r/data/mnist/train-images-idx3-ubyte &&
   [ "$(grep -c . r/data/mnist/.fetch_mnist)" -eq 3 ] && ! grep -q t10k-labels r/data/mnist/.fetch_mnist
then ok "a file put in the cache during the fetch: kept, one line, exit 2; the other three installed"
else fail "a file put in the cache during the fetch: exit $rc, cache: $(ls r/data/mnist | tr '\n' ' ')"; fi

[ "$fails" -eq 0 ]
