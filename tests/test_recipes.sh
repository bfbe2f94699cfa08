#!/usr/bin/env bash
# The accuracy recipes (scripts/recipes/*-best.sh, *-cnn.sh) as a user runs them, cut short: each
# must run its network on 2 ranks with its settings, pass the caller's arguments on
# (--epochs, --train-limit and --metrics here, which win over the recipe's own) and
# print nntrain's output, from the caller's directory with the caller's relative paths.
# The fashion recipes are pointed at MNIST with --dat=FILE, so nothing is fetched. (The recipes' accuracy is measured by hand: README, "Best MLP".)
# Usage: test_recipes.sh REPO DATA WORKDIR
set -u
repo=$1 data=$2 dir=$3
if [ ! -f "$data" ]; then
    echo "FAIL: $data is missing: run scripts/fetch_mnist.sh first (scripts/test.sh does)"
    exit 1
fi
passed=0 failed=0
# Run from a directory of the caller's own, with relative paths: they must mean the
# caller's files (not the repository's), and --dat=FILE (a prefix nntrain takes) is a
# --data that spares the fetch.
caller=$dir/recipe-caller
rm -rf "$caller" && mkdir -p "$caller" && ln -s "$data" "$caller/mine.h5" && cd "$caller" || exit 1
for recipe in mnist-best fashion-best mnist-cnn fashion-cnn; do
    log=$dir/recipe-$recipe.log metrics=recipe-$recipe.jsonl
    extra=(--epochs 2 --train-limit 2000 --metrics "$metrics")
    [[ $recipe = fashion-* ]] && extra+=(--dat=mine.h5)
    case $recipe in # each recipe's network and settings, as its header line shows them
    *-best) network="network 784-800-800-10 relu/softmax" settings="dropout 0\.[0-9]+ \(input 0\.[0-9]+\), max-norm 3\.5" ;;
    mnist-cnn) network="network 1x28x28,conv5x5x32,pool2,conv5x5x64,pool2,flatten 1024-256-10 relu/softmax"
               settings="dropout 0\.5 \(input 0\), shift 2 px" ;;
    fashion-cnn) network="network 1x28x28,conv3x3x32p1,pool2,conv3x3x64p1,pool2,flatten 3136-256-10 relu/softmax"
                 settings="dropout 0\.3 \(input 0\), shift 1 px" ;;
    esac
    timeout 300 "$repo/scripts/recipes/$recipe.sh" "${extra[@]}" >"$log" 2>&1
    rc=$?
    [ -e "$repo/$metrics" ] && { echo "FAIL: $recipe wrote its metrics into the repository"; rm -f "$repo/$metrics"; rc=99; }
    [[ $recipe = fashion-* ]] && grep -q "fetch_fashion" "$log" && { echo "FAIL: $recipe fetched its dataset despite --dat="; rc=99; }
    epochs=$(wc -l <"$metrics" 2>/dev/null || echo 0)
    if [ "$rc" -eq 0 ] && grep -q "$network" "$log" && grep -qE "$settings" "$log" && grep -q "2 ranks x 1 thread;" "$log" &&
       grep -q "^done: 2 epochs" "$log" && [ "$epochs" -eq 2 ]
    then passed=$((passed + 1)); echo "ok   $recipe: its network and settings, the caller's --epochs 2 and --metrics"
    else failed=$((failed + 1)); echo "FAIL: $recipe (exit $rc, $epochs metrics lines)"; cat "$log"; fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
