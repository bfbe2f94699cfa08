#!/usr/bin/env bash
# The hostile-input table (tests/hostile_inputs.txt): each row runs one tool on one
# bad input and expects its exit code and exactly one line from the tool (rank 0)
# containing the row's message, within a time limit (a hang is a failure).
# Usage: test_hostile.sh NNTRAIN NNEVAL NNPREP MAKE_TEST_DATA CKPT_TAMPER MPIEXEC WORKDIR
set -u
nntrain=$1 nneval=$2 nnprep=$3 make_data=$4 tamper=$5 mpiexec=$6 dir=$7/hostile
here=$(cd "$(dirname "$0")" && pwd)
table=$here/hostile_inputs.txt
rm -rf "$dir" && mkdir -p "$dir/idx" || exit 1
"$make_data" "$dir" && python3 "$here/make_idx.py" "$dir/idx" || { echo "FAIL cannot make test data"; exit 1; }

# the checkpoints: the committed format-1 fixture, damaged copies, and a small valid one
v1=$here/fixtures/checkpoint-v1.h5
cp "$v1" "$dir/v1.h5"
head -c $(($(stat -c %s "$v1") / 2)) "$v1" >"$dir/truncated.h5"
cp "$v1" "$dir/corrupt.h5" && "$tamper" "$dir/corrupt.h5" weight
cp "$v1" "$dir/version.h5" && "$tamper" "$dir/version.h5" version 99
cp "$v1" "$dir/realversion.h5" && "$tamper" "$dir/realversion.h5" real-version
timeout 120 "$mpiexec" -n 2 "$nntrain" --data "$dir/good.h5" --layers 16,8,3 --batch-size 8 --epochs 1 \
    --checkpoint "$dir/small.h5" >/dev/null 2>&1 || { echo "FAIL cannot make small.h5"; exit 1; }
# edited copies of it: attrs.h5 keeps its attribute checksum; the others have none, as
# files written before it (their values must pass the command line's checks)
edit() { local name=$1; shift; cp "$dir/small.h5" "$dir/$name.h5" && "$tamper" "$dir/$name.h5" "$@"; }
edit attrs set /optimizer lr -1.0
edit negloss loss -1e6 && edit nanloss loss nan
edit wide unsigned && "$tamper" "$dir/wide.h5" widths 16,1000000,1000000,3 # 4 TB of weights it does not hold
edit sparse unsigned && "$tamper" "$dir/sparse.h5" sparse 16,1000000,1000000,3 # ... or holds, never written
edit toowide unsigned && "$tamper" "$dir/toowide.h5" widths 16,2000000,3 # wider than --layers allows
# outputs that are symbolic links leading nowhere
ln -s nowhere/ck.h5 "$dir/dangling.h5" && ln -s loop2.jsonl "$dir/loop1.jsonl" && ln -s loop1.jsonl "$dir/loop2.jsonl"
for e in "neglr /optimizer lr -1.0" "negwd /optimizer weight_decay -0.5" "bigbatch /options batch_size 4294967396" \
         "endstep /progress global_step 100000" "unknown /options foo 3" "epochs /progress epochs_completed 3"; do
    set -- $e; edit "$1" set "$2" "$3" "$4" && "$tamper" "$dir/$1.h5" unsigned
done

passed=0 failed=0
trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; printf '%s' "${s%"${s##*[![:space:]]}"}"; }
while IFS='|' read -r tool ranks code message words; do
    tool=$(trim "$tool")
    case "$tool" in ''|'#'*) continue ;; esac
    ranks=$(trim "$ranks") code=$(trim "$code") message=$(trim "$message")
    message=${message//@DIR@/$dir}
    args=() envs=() exports=()
    for word in $words; do # split on spaces; no globbing of the table's words
        word=${word//@DIR@/$dir}
        word=${word//@SP@/ }
        word=${word//@NL@/$'\n'}
        [ "$word" = @EMPTY@ ] && word=""
        if [[ $word == @ENV:* ]]; then # NAME=VALUE in the tool's environment (every rank's)
            word=${word#@ENV:}
            envs+=("$word") exports+=(-x "${word%%=*}")
            continue
        fi
        args+=("$word")
    done
    case "$tool" in
        nntrain) program=$nntrain ;; nneval) program=$nneval ;; nnprep) program=$nnprep ;;
        *) echo "FAIL unknown tool '$tool' in the table"; failed=$((failed + 1)); continue ;;
    esac
    # </dev/null: mpiexec would otherwise read the rest of the table from stdin
    if [ "$ranks" -eq 0 ]; then env "${envs[@]}" timeout 60 "$program" "${args[@]}" </dev/null >"$dir/out" 2>"$dir/err"
    else env "${envs[@]}" timeout 60 "$mpiexec" -n "$ranks" "${exports[@]}" "$program" "${args[@]}" \
        </dev/null >"$dir/out" 2>"$dir/err"; fi
    rc=$?
    lines=$(grep -c "^$tool: " "$dir/err")
    if [ "$rc" -eq "$code" ] && grep -qF -- "$tool: $message" "$dir/err" && [ "$lines" -eq 1 ]; then
        passed=$((passed + 1)); echo "ok   $tool -np $ranks ${words# } -> $code"
    else
        failed=$((failed + 1))
        echo "FAIL $tool -np $ranks ${words# } -> expected exit $code and one line with '$message'"
        echo "     got exit $rc, $lines line(s): $(grep "^$tool: " "$dir/err" | head -2)"
    fi
done <"$table"

echo "$passed passed, $failed failed"
rows=$(grep -c '^[a-z]' "$table")
[ $((passed + failed)) -eq "$rows" ] || echo "FAIL only $((passed + failed)) of the table's $rows rows ran"
[ "$failed" -eq 0 ] && [ "$passed" -eq "$rows" ]
