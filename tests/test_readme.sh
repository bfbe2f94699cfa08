#!/usr/bin/env bash
# The README and docs/ stay true: every relative link in README.md and docs/*.md names
# a file that exists (and, for FILE#anchor, a heading of that file), and every ```sh
# block of README.md runs and exits 0.
#
# Convention: a ```sh block is run unless the line just before its fence (blank lines
# aside) is
#     <!-- test_readme: skip (why) -->
# Mark so the blocks that are slow, install packages, need root, Slurm or a cluster.
# Keep the others cheap (--help, --version, a few epochs or a --train-limit run at
# -np 2): this whole test should stay under ~60 s on 2 cores.
#
# Each block runs as one bash script (set -e: any failing line fails it), in a scratch
# directory holding symlinks build -> the build directory, data -> REPO/data,
# scripts -> REPO/scripts, jobs -> REPO/jobs, so outputs (ck.h5, run.jsonl) land in the
# scratch directory, under the environment of scripts/mpi_env.sh (root and
# oversubscription allowed) with OMP_NUM_THREADS=1 and a 60 s limit per block.
# Without data/mnist.h5 the links are checked and the blocks skipped (exit 77).
# Usage: test_readme.sh REPO BINDIR WORKDIR
set -u
repo=$1 bindir=$2 dir=$3/readme
rm -rf "$dir" && mkdir -p "$dir/blocks" "$dir/run" || exit 1
failures=0

# Links, and the blocks written out to $dir/blocks/NN.sh (NN.skip for the skipped ones).
python3 - "$repo" "$dir/blocks" <<'PY' || failures=$((failures + 1))
import os, re, sys
repo, out = sys.argv[1], sys.argv[2]
files = ["README.md"] + sorted("docs/" + f for f in os.listdir(os.path.join(repo, "docs")) if f.endswith(".md"))

def slugs(path):
    seen, result, fence = {}, set(), False
    for line in open(path, encoding="utf-8"):
        if line.startswith("```"):
            fence = not fence
        if fence or not line.startswith("#"):
            continue
        text = re.sub(r"[`*_]", "", line.lstrip("#").strip()).lower()
        slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        result.add(slug if n == 0 else f"{slug}-{n}")
    return result

bad = checked = 0
for name in files:
    path, fence = os.path.join(repo, name), False
    for number, line in enumerate(open(path, encoding="utf-8"), 1):
        if line.startswith("```"):
            fence = not fence
            continue
        if fence:
            continue
        for target in re.findall(r"\]\(([^)\s]+)\)", re.sub(r"`[^`]*`", "", line)):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto: not checked here
            checked += 1
            file, _, anchor = target.partition("#")
            goal = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
            if not os.path.exists(goal):
                print(f"test_readme: {name}:{number}: link to {target}: no such file")
                bad += 1
            elif anchor and goal.endswith(".md") and anchor not in slugs(goal):
                print(f"test_readme: {name}:{number}: link to {target}: no such heading")
                bad += 1
print(f"test_readme: {checked} relative links checked in {len(files)} files, {bad} broken")

lines = open(os.path.join(repo, "README.md"), encoding="utf-8").read().split("\n")
i = count = 0
while i < len(lines):
    if lines[i].strip() == "```sh":
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        skip = k >= 0 and lines[k].strip().startswith("<!-- test_readme: skip")
        count += 1
        with open(os.path.join(out, f"{count:02d}.{'skip' if skip else 'sh'}"), "w") as f:
            f.write(f"# README.md line {i + 2}\n" + "\n".join(lines[i + 1:j]) + "\n")
        i = j
    i += 1
sys.exit(1 if bad else 0)
PY

ran=0
if [ ! -f "$repo/data/mnist.h5" ]; then
    echo "test_readme: $repo/data/mnist.h5 missing (scripts/fetch_mnist.sh): README blocks not run"
    [ "$failures" -eq 0 ] && exit 77
    exit 1
fi
cd "$dir/run" || exit 1
ln -s "$bindir" build && ln -s "$repo/data" data && ln -s "$repo/scripts" scripts && ln -s "$repo/jobs" jobs || exit 1
. "$repo/scripts/mpi_env.sh"
export OMP_NUM_THREADS=1
for block in "$dir"/blocks/*.sh; do
    [ -e "$block" ] || continue
    where=$(head -1 "$block")
    start=$(date +%s)
    if timeout 60 bash -e -o pipefail "$block" >"$block.log" 2>&1; then
        echo "test_readme: ok: ${where#\# } ($(($(date +%s) - start)) s)"
    else
        echo "test_readme: FAILED (exit $?): ${where#\# }:"; sed 's/^/    /' "$block"; tail -15 "$block.log"
        failures=$((failures + 1))
    fi
    ran=$((ran + 1))
done
skipped=$(ls "$dir"/blocks/*.skip 2>/dev/null | wc -l)
echo "test_readme: $ran sh blocks run, $skipped marked skip"
[ "$ran" -gt 0 ] || { echo "test_readme: no runnable sh block found"; failures=$((failures + 1)); }
[ "$failures" -eq 0 ] && echo "test_readme: passed" || echo "test_readme: $failures failure(s)"
[ "$failures" -eq 0 ]
