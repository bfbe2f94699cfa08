#!/usr/bin/env bash
# The README and docs/ stay true: every relative link in README.md and docs/*.md names
# a file that exists (and, for FILE#anchor, a heading of that file), and every ```sh
# block of README.md runs and exits 0.
#
# Three more checks keep the front door true: every repository path the README names
# (scripts/x.sh, src/tools/, ...) exists; the example run (the ```text block whose
# first line is "$ mpirun ...") prints the header shown and, within the rounding of a
# machine with other vector units, the losses and accuracies shown; and
# docs/options.md's table names exactly the options `nntrain --help` lists.
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

# Every path the README names in the repository (scripts/x.sh, src/tools/, jobs/...) is there.
text = open(os.path.join(repo, "README.md"), encoding="utf-8").read()
named = set(re.findall(r"(?<![\w/.-])((?:scripts|jobs|bench|tests|src|include|docs)/[\w./-]*[\w/])", text))
missing = sorted(p for p in named if not os.path.exists(os.path.join(repo, p)))
for p in missing:
    print(f"test_readme: README.md names {p}, which does not exist")
bad += len(missing)
print(f"test_readme: {len(named)} repository paths named in README.md, {len(missing)} missing")

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
# The example run, and the options table against --help.
python3 - "$repo" "$bindir" "$dir" <<'PY' || failures=$((failures + 1))
import os, re, subprocess, sys
repo, bindir, work = sys.argv[1:4]
lines = open(os.path.join(repo, "README.md"), encoding="utf-8").read().split("\n")
starts = [i for i, l in enumerate(lines) if l.strip() == "```text" and lines[i + 1].startswith("$ mpirun")]
if len(starts) != 1:
    sys.exit("test_readme: README.md has no example run (a ```text block beginning '$ mpirun')")
i = starts[0] + 1
shown = []
while not lines[i + 1].startswith("```"):
    i += 1
    shown.append(lines[i])
command = lines[starts[0] + 1][2:]
run = subprocess.run(["bash", "-c", command], cwd=os.path.join(work, "run"), capture_output=True, text=True, timeout=300)
printed = run.stdout.split("\n")
bad = 0 if run.returncode == 0 else print(f"test_readme: the example run `{command}` exited {run.returncode}") or 1
def fields(line):
    return {k: float(v.rstrip("%")) for k, v in re.findall(r"(train_loss|test_loss|test_acc|final test accuracy) +([0-9.]+%?)", line)}
for want in shown:
    if want == "...":
        continue
    key = re.match(r"epoch +\d+/\d+ ", want).group(0) if want.startswith("epoch") else want.split(",")[0]
    got = next((l for l in printed if l.startswith(key)), None)
    if got is None:
        print(f"test_readme: the example run printed no line like: {want}")
        bad += 1
    elif want.startswith("nntrain:") and got != want:
        print(f"test_readme: the example run's header is now:\n    {got}\n  the README shows:\n    {want}")
        bad += 1
    else:  # losses within 0.002, accuracies within 0.15 points: other vector units round otherwise
        w, g = fields(want), fields(got)
        off = [k for k in w if k not in g or abs(w[k] - g[k]) > (0.15 if "acc" in k else 0.002)]
        if off:
            print(f"test_readme: the example run printed\n    {got}\n  the README shows\n    {want}")
            bad += 1
print(f"test_readme: example run compared, {len(shown) - 1} lines shown, {bad} differ")

help_text = subprocess.run([os.path.join(bindir, "nntrain"), "--help"], capture_output=True, text=True).stdout
in_help = set(re.findall(r"^  (--[a-z-]+)", help_text, re.M))
in_doc = set()
for line in open(os.path.join(repo, "docs", "options.md"), encoding="utf-8"):
    if line.startswith("| `--"):
        in_doc |= set(re.findall(r"`(--[a-z-]+)", line.split(" | ")[0]))
for name in sorted(in_help - in_doc):
    print(f"test_readme: docs/options.md lacks {name}, which nntrain --help lists")
for name in sorted(in_doc - in_help):
    print(f"test_readme: docs/options.md lists {name}, which nntrain --help does not")
print(f"test_readme: {len(in_help)} options in --help, {len(in_doc)} in docs/options.md")
sys.exit(1 if bad or in_help != in_doc else 0)
PY
skipped=$(ls "$dir"/blocks/*.skip 2>/dev/null | wc -l)
echo "test_readme: $ran sh blocks run, $skipped marked skip"
[ "$ran" -gt 0 ] || { echo "test_readme: no runnable sh block found"; failures=$((failures + 1)); }
[ "$failures" -eq 0 ] && echo "test_readme: passed" || echo "test_readme: $failures failure(s)"
[ "$failures" -eq 0 ]
