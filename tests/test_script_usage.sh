#!/usr/bin/env bash
# The scripts' usage errors: one line naming the problem, exit 2, nothing run or
# written (scripts/scaling_study.py would otherwise run a grid of jobs).
# Usage: test_script_usage.sh REPO WORKDIR
set -u
repo=$1 dir=$2/script_usage
rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || exit 1
failures=0
expect_usage() { # PATTERN COMMAND...
    local pattern=$1 rc lines; shift
    "$@" --out "$dir/study" >out 2>err; rc=$?
    lines=$(wc -l <err)
    if [ "$rc" -eq 2 ] && [ "$lines" -eq 1 ] && grep -q -- "$pattern" err && [ ! -e "$dir/study" ]; then echo "ok   ${*:2}"
    else echo "FAIL ${*:2}: exit $rc, $lines line(s): $(head -2 err)"; failures=$((failures + 1)); fi
}
study=("python3" "$repo/scripts/scaling_study.py")
expect_usage "^scaling_study: argument --ranks: '0': each rank count must be in 1..1024" "${study[@]}" --ranks 0
expect_usage "^scaling_study: argument --ranks: 'abc': expected rank counts" "${study[@]}" --ranks abc
expect_usage "^scaling_study: argument --ranks: '2,,4'" "${study[@]}" --ranks 2,,4
expect_usage "^scaling_study: argument --suites: unknown suite(s) bogus" "${study[@]}" --suites strong,bogus
expect_usage "^scaling_study: argument --train-limit: 0: must be at least 1" "${study[@]}" --train-limit 0
expect_usage "^scaling_study: unrecognized arguments: --bogus" "${study[@]}" --bogus
[ "$failures" -eq 0 ]
