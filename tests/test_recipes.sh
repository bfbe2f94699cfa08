#!/usr/bin/env bash
# The accuracy recipes (scripts/recipes/*-best.sh) as a user runs them, cut short: each
# must run its network on 2 ranks with its settings, pass the caller's arguments on
# (--epochs, --train-limit and --metrics here, which win over the recipe's own) and
# print nntrain's output. fashion-best.sh is pointed at MNIST with --data, so nothing
# is fetched. (The recipes' accuracy is measured by hand: README, "Best MLP".)
# Usage: test_recipes.sh REPO DATA WORKDIR
set -u
repo=$1 data=$2 dir=$3
if [ ! -f "$data" ]; then
    echo "FAIL: $data is missing: run scripts/fetch_mnist.sh first (scripts/test.sh does)"
    exit 1
fi
passed=0 failed=0
for recipe in mnist-best fashion-best; do
    log=$dir/recipe-$recipe.log metrics=$dir/recipe-$recipe.jsonl
    rm -f "$metrics"
    extra=(--epochs 2 --train-limit 2000 --metrics "$metrics")
    [ "$recipe" = fashion-best ] && extra+=(--data "$data")
    timeout 300 "$repo/scripts/recipes/$recipe.sh" "${extra[@]}" >"$log" 2>&1
    rc=$?
    epochs=$(wc -l <"$metrics" 2>/dev/null || echo 0)
    if [ "$rc" -eq 0 ] && grep -q "network 784-800-800-10 relu/softmax" "$log" &&
       grep -qE "dropout 0\.[0-9]+ \(input 0\.[0-9]+\), max-norm 3\.5" "$log" && grep -q "2 ranks x 1 thread;" "$log" &&
       grep -q "^done: 2 epochs" "$log" && [ "$epochs" -eq 2 ]
    then passed=$((passed + 1)); echo "ok   $recipe: its network and settings, the caller's --epochs 2 and --metrics"
    else failed=$((failed + 1)); echo "FAIL: $recipe (exit $rc, $epochs metrics lines)"; cat "$log"; fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
