#!/usr/bin/env bash
# nnprep end to end: good conversions (--name value and --name=value), --help, and
# never overwriting one of its own inputs. (Its other refusals are rows of the
# hostile-input table, test_hostile.sh.)
# Usage: test_nnprep.sh NNPREP WORKDIR
set -u
nnprep=$1 dir=$2/nnprep
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$dir" && mkdir -p "$dir/idx" && python3 "$here/make_idx.py" "$dir/idx" || { echo "FAIL cannot make IDX files"; exit 1; }
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; sed 's/^/     /' "$dir/err" | head -3; }
# expect CODE MESSAGE ARGS...: nnprep ARGS exits CODE with MESSAGE in one line on
# stderr (MESSAGE empty: nothing on stderr)
expect() {
    local code=$1 msg=$2; shift 2
    "$nnprep" "$@" >"$dir/out" 2>"$dir/err"
    local rc=$? lines
    lines=$(wc -l <"$dir/err")
    local said=1
    if [ -n "$msg" ]; then grep -qF -- "$msg" "$dir/err" && [ "$lines" -eq 1 ] || said=0
    else [ "$lines" -eq 0 ] || said=0; fi
    if [ "$rc" -eq "$code" ] && [ "$said" -eq 1 ]; then ok "nnprep $* -> $code${msg:+: $msg}"
    else fail "nnprep $* -> expected exit $code and one line with '$msg' (got $rc, $lines lines)"; fi
}

expect 0 "" --out "$dir/ok.h5" "$dir/idx"
if [ -s "$dir/ok.h5" ] && grep -q "12 training and 5 test images of 3x3" "$dir/out"; then ok "the conversion wrote its file"
else fail "the conversion wrote its file"; fi
expect 0 "" --out="$dir/ok2.h5" --classes=12 "$dir/idx"
if h5dump -a /num_classes "$dir/ok2.h5" 2>/dev/null | grep -q '(0): 12$'; then ok "--classes=12: the file says 12 classes (not the default 10)"
else fail "--classes=12: the file says 12 classes"; fi

before=$(sha256sum "$dir/idx/train-images-idx3-ubyte")
expect 2 "--out $dir/idx/train-images-idx3-ubyte: is the same file as the input $dir/idx/train-images-idx3-ubyte" --out "$dir/idx/train-images-idx3-ubyte" "$dir/idx"
if [ "$before" = "$(sha256sum "$dir/idx/train-images-idx3-ubyte")" ]; then ok "the input file is untouched"
else fail "the input file is untouched"; fi

expect 0 "" --help
if grep -q -- "--out FILE" "$dir/out" && grep -qi "usage" "$dir/out"; then ok "--help prints the usage, --out among it"
else fail "--help prints the usage, --out among it"; fi

# A stop signal mid-write (caught with the temporary file there, the process frozen
# by SIGSTOP so the signal lands mid-write on any machine): the process ends as the
# signal says, and leaves neither the half-written temporary file nor its lock; an
# earlier dataset at --out is kept as it was. Tries again where the write was over
# before it could be caught.
mkdir -p "$dir/big" && python3 "$here/make_idx.py" "$dir/big" 100000 || fail "cannot make the large IDX files"
for sig in INT TERM HUP; do
    out="$dir/stopped_$sig.h5"
    [ "$sig" = TERM ] && cp "$dir/ok.h5" "$out" && before=$(sha256sum <"$out")
    caught=0
    for attempt in 1 2 3 4 5 6 7 8; do
        rm -f "$out.tmp" "$out.lock"
        env --default-signal="$sig" "$nnprep" --out "$out" "$dir/big" >/dev/null 2>"$dir/err" & # (a background job ignores SIGINT)
        pid=$!
        while [ ! -e "$out.tmp" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.005; done
        kill -STOP "$pid" 2>/dev/null
        if [ -e "$out.tmp" ]; then caught=1; kill -"$sig" "$pid"; fi
        kill -CONT "$pid" 2>/dev/null
        wait "$pid"
        rc=$?
        [ "$caught" -eq 1 ] && break
    done
    expected=$(( 128 + $(kill -l "$sig") ))
    kept=yes
    if [ "$sig" = TERM ]; then [ "$(sha256sum <"$out")" = "$before" ] || kept=no
    else [ ! -e "$out" ] || kept=no; fi
    name="SIG$sig mid-write: exit $expected (got $rc), no $out.tmp, no lock, --out as before ($kept)"
    if [ "$caught" -eq 1 ] && [ "$rc" -eq "$expected" ] && [ ! -e "$out.tmp" ] && [ ! -e "$out.lock" ] && [ "$kept" = yes ]
    then ok "$name"; else fail "$name (caught mid-write: $caught)"; fi
done

# What --out named when checked is what may be replaced: a file put there while
# nnprep writes (none was there), or the directory moved away and made anew (a user's
# file in it), is kept: exit 1, no temporary file, and no lock left in either
# directory. (Until 2026-12-07 both were replaced with exit 0.) Caught as above.
# change_during_write CASE COMMAND: COMMAND runs with nnprep frozen mid-write
change_during_write() {
    local where="$dir/$1" caught=0 pid attempt; shift
    for attempt in 1 2 3 4 5 6 7 8; do
        rm -rf "$where" "$where.old" && mkdir -p "$where"
        "$nnprep" --out "$where/m.h5" "$dir/big" >/dev/null 2>"$dir/err" &
        pid=$!
        while [ ! -e "$where/m.h5.tmp" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.005; done
        kill -STOP "$pid" 2>/dev/null
        if [ -e "$where/m.h5.tmp" ]; then caught=1; "$@"; fi
        kill -CONT "$pid" 2>/dev/null
        wait "$pid"
        rc=$?
        [ "$caught" -eq 1 ] && break
    done
    [ "$caught" -eq 1 ] || echo "     (never caught mid-write)"
}
change_during_write appeared sh -c "echo notes >'$dir/appeared/m.h5'"
if [ "$rc" -eq 1 ] && grep -q "m.h5: a file was put there during the run; not replacing it" "$dir/err" &&
    [ "$(cat "$dir/appeared/m.h5")" = notes ] && [ ! -e "$dir/appeared/m.h5.tmp" ] && [ ! -e "$dir/appeared/m.h5.lock" ]
then ok "a file put at --out mid-write is kept: exit 1, nothing left"; else fail "a file put at --out mid-write is kept (exit $rc)"; fi
change_during_write remade sh -c "mv '$dir/remade' '$dir/remade.old' && mkdir '$dir/remade' && echo notes >'$dir/remade/m.h5'"
if [ "$rc" -eq 1 ] && grep -q "m.h5: its directory is not the one this run started in" "$dir/err" &&
    [ "$(cat "$dir/remade/m.h5")" = notes ] && [ -z "$(ls "$dir/remade.old")" ] && [ "$(ls "$dir/remade")" = m.h5 ]
then ok "--out's directory moved away and made anew mid-write: its file kept, exit 1, nothing left in either"
else fail "--out's directory moved away and made anew mid-write (exit $rc; old: $(ls "$dir/remade.old" | tr '\n' ' '))"; fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
