#!/usr/bin/env bash
# Benchmark nntrain against PyTorch and against the machine's GEMM limit; writes
# bench/results.md and prints the same table.
#
#   bench/bench.sh [--quick] [--repeat N] [--epochs-small N] [--epochs-large N]
#                  [--no-torch] [--torch-active] [--wait-quiet S] [--no-install]
#                  [--out FILE] [--keep DIR] [--report DIR]
#
#   networks   784-50-100-10 sigmoid, batch 100, lr 0.3 (the reference network)
#              784-800-800-10 relu, batch 128, lr 0.05
#   nntrain    mpirun -np R --bind-to none build/nntrain ... --threads T, for 1x1 and every
#              R x T = nproc; samples/s of the epochs after the first (evaluation excluded,
#              from --metrics), allreduce and data shares, peak RSS per rank (/usr/bin/time)
#   PyTorch    bench/bench_torch.py with Debian's python3-torch, eager mode as it ships:
#              one process, searched over its settings -- intra-op threads
#              (torch.set_num_threads) 1..nproc x OpenBLAS threads 1..nproc x OpenMP wait
#              policy (passive, or the default active) -- every one recorded, the best
#              is the baseline; and DistributedDataParallel (gloo), nproc processes x 1
#   OpenBLAS   bench/bench_blas.c: SGEMM GFLOP/s on the exact GEMM shapes of one training
#              step for every procs x threads layout above, and a 2048^3 SGEMM; measured
#              at the start and again at the end, the faster kept
#
#   --quick          fewer epochs (3 and 2), shorter GEMM timings, a 1024^3 square SGEMM
#   --repeat N       run every training configuration N times, keep the fastest (default 1)
#   --epochs-small N / --epochs-large N   epochs per run (default 5 and 3; at least 2)
#   --no-torch       skip PyTorch (the ratio column is then empty)
#   --torch-active   accepted for old command lines; both wait policies are always searched
#   --wait-quiet S   before each run, wait up to S seconds (default 30; 0: never) for other
#                    work on the machine to fall under 10% of the CPUs
#   (a run during which other work took 10% of the CPUs or more is run again, 3 tries at most)
#   --no-install     never apt-get install; fail with the list of what is missing
#   --out FILE       the Markdown report (default bench/results.md)
#   --keep DIR       keep the raw JSON and logs in DIR
#   --report DIR     only write the report again, from a --keep directory
#
# Environment: BUILD_DIR (default build). OPENBLAS_CORETYPE, OPENBLAS_NUM_THREADS and the
# OMP_* variables are cleared for every run (the report says what was set). Exit status:
# 0 ok, 1 a run failed or a dependency is missing, 2 bad usage.
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"; }
die() { echo "bench.sh: $*" >&2; exit 1; }
note() { echo "bench.sh: $*" >&2; }

cmdline="${BUILD_DIR:+BUILD_DIR=$BUILD_DIR }bench/bench.sh${*:+ $*}"
quick=0 repeat=1 epochs_small="" epochs_large="" torch=1 install=1 out="" keep="" report="" quiet_wait=30
posint() { [[ $2 =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: $1 needs a positive integer, not '$2'" >&2; exit 2; }; }
while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) quick=1; shift ;;
        --repeat) [[ $# -ge 2 ]] || { echo "bench.sh: --repeat needs N" >&2; exit 2; }
                  posint "$1" "$2"; repeat=$2; shift 2 ;;
        --epochs-small|--epochs-large)
            [[ $# -ge 2 ]] || { echo "bench.sh: $1 needs N" >&2; exit 2; }
            posint "$1" "$2"
            [[ $2 -ge 2 ]] || { echo "bench.sh: $1 must be at least 2 (epoch 1 is not counted)" >&2; exit 2; }
            if [[ $1 == --epochs-small ]]; then epochs_small=$2; else epochs_large=$2; fi
            shift 2 ;;
        --no-torch) torch=0; shift ;;
        --torch-active) shift ;; # old command lines: both wait policies are searched now
        --wait-quiet) [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || { echo "bench.sh: --wait-quiet needs seconds" >&2; exit 2; }
                      quiet_wait=$2; shift 2 ;;
        --no-install) install=0; shift ;;
        --out) [[ $# -ge 2 ]] || { echo "bench.sh: --out needs a file" >&2; exit 2; }
               out=$2; shift 2 ;;
        --keep) [[ $# -ge 2 ]] || { echo "bench.sh: --keep needs a directory" >&2; exit 2; }
                keep=$2; shift 2 ;;
        --report) [[ $# -ge 2 ]] || { echo "bench.sh: --report needs a directory" >&2; exit 2; }
                  report=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
# paths given by the user are relative to where they ran us
absolute() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
[[ -n $out ]] && out=$(absolute "$out")
[[ -n $keep ]] && keep=$(absolute "$keep")
[[ -n $report ]] && report=$(absolute "$report")

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
out=${out:-$root/bench/results.md}
build=${BUILD_DIR:-build}
if [[ $quick -eq 1 ]]; then
    epochs_small=${epochs_small:-3}; epochs_large=${epochs_large:-2}; blas_time=0.5
else
    epochs_small=${epochs_small:-5}; epochs_large=${epochs_large:-3}; blas_time=1.5
fi
PY=/usr/bin/python3   # Debian's: python3-torch/h5py/numpy live there, not in a pyenv python
start_s=$(date +%s)
loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report: $1 = the directory of raw results ---------------------------------------
write_report() {
    mkdir -p "$(dirname "$out")"
    $PY bench/report.py "$1" "$out" "${2:-}"
}
if [[ -n $report ]]; then
    [[ -f $report/meta.txt ]] || die "$report holds no benchmark results (made with --keep)"
    write_report "$report" "$cmdline"
    exit 0
fi

# ---- environment: nothing inherited may pick kernels or thread counts ----------------
env_notes=()
for v in OPENBLAS_CORETYPE OPENBLAS_NUM_THREADS GOTO_NUM_THREADS OMP_NUM_THREADS \
         OMP_WAIT_POLICY OMP_PROC_BIND OMP_PLACES GOMP_SPINCOUNT OMP_DYNAMIC; do
    if [[ -n ${!v+x} ]]; then
        env_notes+=("$v=${!v}")
        [[ $v == OPENBLAS_CORETYPE ]] && coretype_was=${!v}
        unset "$v"
    fi
done
[[ ${#env_notes[@]} -eq 0 ]] || note "cleared from the environment for every run: ${env_notes[*]}"

# ---- dependencies: the project's own, then the benchmark's ---------------------------
if [[ $install -eq 1 ]]; then
    scripts/setup.sh
fi
bench_pkgs=(gcc pkg-config libopenblas-dev time openmpi-bin)
[[ $torch -eq 0 ]] || bench_pkgs+=(python3 python3-torch python3-h5py python3-numpy)
missing=()
for pkg in "${bench_pkgs[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$pkg")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    if [[ $install -eq 0 ]]; then
        die "missing Debian packages: ${missing[*]} (apt-get install --no-install-recommends ${missing[*]})"
    fi
    if [[ $(id -u) -ne 0 ]]; then
        die "missing Debian packages: ${missing[*]}; run as root, or: sudo apt-get install --no-install-recommends ${missing[*]}"
    fi
    note "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=900 update -qq
    apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[[ -x /usr/bin/time ]] || die "/usr/bin/time not found (Debian package 'time')"
command -v mpirun >/dev/null || die "mpirun not found (Debian package 'openmpi-bin')"
pkg-config --exists openblas || die "pkg-config cannot find openblas (Debian package 'libopenblas-dev')"
[[ -x $PY ]] || die "$PY not found (Debian package 'python3')"
if [[ $torch -eq 1 ]]; then
    $PY -c 'import torch, h5py, numpy' 2>/dev/null ||
        die "$PY cannot import torch, h5py and numpy (Debian packages python3-torch python3-h5py python3-numpy; a pyenv/venv python3 on PATH is not used)"
fi

# ---- build, data ---------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nntrain-bench.XXXXXX")
cleanup() {
    if [[ -n $keep ]]; then mkdir -p "$keep" && cp -r "$tmp"/. "$keep"/; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
note "building nntrain ($build)"
scripts/build.sh >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log" >&2; die "build failed"; }
nntrain=$root/$build/nntrain
[[ -x $nntrain ]] || die "$nntrain was not built"
data=$root/data/mnist.h5
if [[ ! -f $data ]]; then
    note "fetching MNIST"
    scripts/fetch_mnist.sh
fi
blas=$root/$build/bench_blas
# shellcheck disable=SC2046
gcc -std=c11 -O2 -Wall -Wextra -o "$blas" bench/bench_blas.c $(pkg-config --cflags --libs openblas) ||
    die "cannot compile bench/bench_blas.c against OpenBLAS"

# shellcheck source=scripts/mpi_env.sh
. scripts/mpi_env.sh
ncores=$(nproc)
# 1 x 1, then every ranks x threads that fills the cores
configs=("1 1")
for ((r = 1; r <= ncores; r++)); do
    if ((ncores % r == 0)) && ! ((r == 1 && ncores == 1)); then configs+=("$r $((ncores / r))"); fi
done

nets=(small large)
declare -A net_layers=([small]="784,50,100,10" [large]="784,800,800,10")
declare -A net_act=([small]=sigmoid [large]=relu)
declare -A net_batch=([small]=100 [large]=128)
declare -A net_lr=([small]=0.3 [large]=0.05)
declare -A net_epochs=([small]=$epochs_small [large]=$epochs_large)

results=$tmp/results.jsonl
: >"$results"
# the CPU time of the whole machine since boot, in clock ticks, from /proc/stat's "cpu"
# line: prints TOTAL IDLE. TOTAL: user nice system idle iowait irq softirq steal;
# IDLE: idle and iowait.
cpu_ticks() {
    local -a s
    read -r -a s </proc/stat
    echo "$(( s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7] + s[8] )) $(( s[4] + s[5] ))"
}
# the share of the CPUs (percent) busy over half a second
busy_pct() {
    local tot0 idle0 tot1 idle1
    read -r tot0 idle0 < <(cpu_ticks); sleep 0.5; read -r tot1 idle1 < <(cpu_ticks)
    local tot=$(( tot1 - tot0 )) idle=$(( idle1 - idle0 ))
    echo $(( tot > 0 ? 100 * (tot - idle) / tot : 0 ))
}
# wait (up to --wait-quiet seconds) until other work leaves the machine nearly idle;
# the last figure goes with the run's results
wait_quiet() {
    local t0=$SECONDS
    busy=$(busy_pct)
    while (( busy >= 10 && SECONDS - t0 < quiet_wait )); do busy=$(busy_pct); done
    if (( busy >= 10 )); then note "the machine is ${busy}% busy with other work; measuring anyway"; fi
}
busy=0
# every run: a time limit, its log kept for a failure
# and a measure of how much other work shared the machine with it: the CPU time the
# machine spent (/proc/stat, steal included) minus the run's own (/usr/bin/time), as a
# percentage of all the CPUs over the run -> $other
other=0
hz=$(getconf CLK_TCK)
runlog() { # name, command...
    local name=$1; shift
    wait_quiet
    local tot0 idle0 tot1 idle1
    read -r tot0 idle0 < <(cpu_ticks)
    if ! /usr/bin/time -f '%U %S' -o "$tmp/$name.cpu" \
            timeout --kill-after=10 1200 "$@" >"$tmp/$name.log" 2>&1; then
        tail -n 30 "$tmp/$name.log" >&2
        die "run '$name' failed: $*"
    fi
    read -r tot1 idle1 < <(cpu_ticks)
    local tot=$(( tot1 - tot0 )) idle=$(( idle1 - idle0 )) user sys
    read -r user sys < <(tail -n 1 "$tmp/$name.cpu")
    other=$(awk -v t="$tot" -v i="$idle" -v u="$user" -v s="$sys" -v hz="$hz" \
        'BEGIN { o = t > 0 ? ((t - i) / hz - u - s) / (t / hz) : 0; printf "%d", (o < 0 ? 0 : o) * 100 + 0.5 }')
}

# ---- OpenBLAS ------------------------------------------------------------------------
note "OpenBLAS: $("$blas" --info)"
"$blas" --info >"$tmp/blas_info.json"
if [[ -n ${coretype_was+x} ]]; then
    OPENBLAS_CORETYPE=$coretype_was "$blas" --info >"$tmp/blas_info_coretype.json" || true
fi
: >"$tmp/blas.jsonl"
# a bench_blas measurement, again (3 tries at most) while other work took 10% of the CPUs
# or more; prints the fastest
blas_best() { # name, command...
    local name=$1; shift
    local try best="" g bestg=0
    for try in 1 2 3; do
        runlog "$name-$try" "$@"
        g=$(tail -n 1 "$tmp/$name-$try.log" | $PY -c 'import json, sys; print(json.load(sys.stdin)["gflops"])') ||
            die "bench_blas gave no result (see $tmp/$name-$try.log)"
        if awk -v g="$g" -v b="$bestg" 'BEGIN { exit !(g > b) }'; then
            best=$(tail -n 1 "$tmp/$name-$try.log"); bestg=$g
        fi
        if (( other < 10 )); then break; fi
        note "other work took ${other}% of the CPUs during $name: measuring again"
    done
    printf '%s\n' "$best"
}
blas_shapes() { # pass net procs threads
    local pass=$1 net=$2 p=$3 t=$4
    local b=$(( (${net_batch[$net]} + p - 1) / p ))
    local key="$pass $net $p $t $b"
    grep -qxF "$key" "$tmp/blas.done" 2>/dev/null && return 0
    echo "$key" >>"$tmp/blas.done"
    blas_best "blas$pass-$net-${p}x$t-b$b" env OPENBLAS_NUM_THREADS="$t" "$blas" \
        --layers "${net_layers[$net]}" --batch "$b" --threads "$t" --procs "$p" \
        --min-time "$blas_time" | sed "s/^{/{\"net\": \"$net\", /" >>"$tmp/blas.jsonl"
}
# all the layouts the training runs use, and each with one thread per process (the limit
# of R processes x T threads is the faster of the two: OpenBLAS may do better on small
# shapes with fewer threads); run at the start and again at the end, the report keeps the
# faster of the two passes
blas_pass() { # pass
    local pass=$1 net c r t square=2048
    for net in "${nets[@]}"; do
        note "OpenBLAS SGEMM on the shapes of $net (${net_layers[$net]}, batch ${net_batch[$net]}), pass $pass"
        for c in "${configs[@]}"; do
            read -r r t <<<"$c"
            blas_shapes "$pass" "$net" "$r" "$t"
            blas_shapes "$pass" "$net" "$r" 1
        done
        for ((t = 1; t <= ncores; t++)); do blas_shapes "$pass" "$net" 1 "$t"; done
        if [[ $torch -eq 1 && $ncores -gt 1 ]]; then blas_shapes "$pass" "$net" "$ncores" 1; fi
    done
    [[ $quick -eq 1 ]] && square=1024
    note "OpenBLAS SGEMM ${square}^3, pass $pass"
    for t in 1 "$ncores"; do
        blas_best "blas$pass-square-$t" env OPENBLAS_NUM_THREADS="$t" "$blas" --square "$square" \
            --threads "$t" --min-time "$blas_time" >>"$tmp/blas_square.jsonl"
        if [[ $ncores -eq 1 ]]; then break; fi
    done
}
blas_pass 1

# ---- training runs -------------------------------------------------------------------
# one measured run, run again (3 tries at most) while other work took 10% of the CPUs or
# more during it; every try is recorded, the report keeps the fastest undisturbed one
train() { # label, function, name, args...
    local label=$1 fn=$2 name=$3; shift 3
    local try
    for ((try = 1; try <= 3; try++)); do
        if (( try == 1 )); then note "$label"; else note "$label, try $try"; fi
        "$fn" "$name.$try" "$@"
        if (( other < 10 )); then break; fi
        note "other work took ${other}% of the CPUs during that run"
    done
}

nntrain_run() { # name net ranks threads
    local name=$1 net=$2 r=$3 t=$4
    rm -f "$tmp/$name".rss.* "$tmp/$name.jsonl"
    # /usr/bin/time per rank: peak resident set (KiB) into NAME.rss.RANK
    # shellcheck disable=SC2016
    runlog "$name" mpirun -np "$r" --bind-to none \
        sh -c 'exec /usr/bin/time -f "%M" -o "$0.rss.$OMPI_COMM_WORLD_RANK" "$@"' "$tmp/$name" \
        "$nntrain" --data "$data" --layers "${net_layers[$net]}" \
        --activation "${net_act[$net]}" --batch-size "${net_batch[$net]}" \
        --lr "${net_lr[$net]}" --threads "$t" --epochs "${net_epochs[$net]}" \
        --metrics "$tmp/$name.jsonl"
    $PY bench/nntrain_record.py "$tmp/$name" "$net" "$r" "$t" "$other" >>"$results" ||
        die "cannot read the metrics of $name"
}

torch_run() { # name net intra_op_threads blas_threads wait_policy [extra args]
    local name=$1 net=$2 t=$3 b=$4 policy=$5; shift 5
    local envs=(OPENBLAS_NUM_THREADS="$b" OMP_NUM_THREADS="$t")
    if [[ -n $policy ]]; then envs+=(OMP_WAIT_POLICY="$policy"); fi
    runlog "$name" env "${envs[@]}" $PY bench/bench_torch.py --data "$data" \
        --layers "${net_layers[$net]}" --activation "${net_act[$net]}" \
        --batch-size "${net_batch[$net]}" --lr "${net_lr[$net]}" --momentum 0.9 \
        --epochs "${net_epochs[$net]}" --threads "$t" "$@"
    tail -n 1 "$tmp/$name.log" | $PY -c '
import json, sys
d = json.loads(sys.stdin.read())
d.update(net=sys.argv[1], kind="pytorch-ddp" if d["ddp"] else "pytorch", variant=sys.argv[2],
         procs=d["processes"], other_cpu=int(sys.argv[3]))
print(json.dumps(d))' "$net" "BLAS threads $b${policy:+, OMP_WAIT_POLICY=$policy}" "$other" >>"$results" ||
        die "cannot read the output of $name"
}

for net in "${nets[@]}"; do
    for c in "${configs[@]}"; do
        read -r r t <<<"$c"
        for ((rep = 1; rep <= repeat; rep++)); do
            train "nntrain $net ${r}x$t (${net_epochs[$net]} epochs, run $rep/$repeat)" \
                nntrain_run "nntrain-$net-${r}x$t-$rep" "$net" "$r" "$t"
        done
    done
done

if [[ $torch -eq 1 ]]; then
    for net in "${nets[@]}"; do
        for ((rep = 1; rep <= repeat; rep++)); do
            # PyTorch at its best: its own (intra-op) threads x OpenBLAS's threads x
            # the OpenMP wait policy (with several threads, GOMP's default active wait
            # spins on cores OpenBLAS's threads may need; passive sleeps)
            for ((t = 1; t <= ncores; t++)); do
                for ((b = 1; b <= ncores; b++)); do
                    for policy in passive ""; do
                        [[ $t -eq 1 && -z $policy ]] && continue # one OpenMP thread never waits
                        train "PyTorch $net 1 process x $t intra-op, $b BLAS threads${policy:+, OMP_WAIT_POLICY=$policy} (run $rep/$repeat)" \
                            torch_run "torch-$net-1x$t-b$b-${policy:-active}-$rep" "$net" "$t" "$b" "$policy"
                    done
                done
            done
            if [[ $ncores -gt 1 ]]; then
                train "PyTorch DDP $net $ncores processes x 1 thread (run $rep/$repeat)" \
                    torch_run "ddp-$net-${ncores}x1-$rep" "$net" 1 1 "" --ddp "$ncores"
            fi
        done
    done
fi

blas_pass 2

# ---- report --------------------------------------------------------------------------
end_s=$(date +%s)
cpu_model=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
simd=$(grep -o -w -E 'avx512f|avx2|fma' /proc/cpuinfo | sort -u | tr '\n' ' ')
{
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "cpu=$cpu_model"
    echo "cores=$ncores"
    echo "simd=$simd"
    # shellcheck disable=SC1091
    echo "os=$(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "kernel=$(uname -r)"
    echo "commit=$(git describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)"
    echo "gcc=$(gcc -dumpfullversion)"
    echo "mpi=$(mpirun --version 2>/dev/null | head -n 1)"
    echo "command=$cmdline"
    echo "seconds=$((end_s - start_s))"
    echo "loadavg_start=$loadavg_start"
    echo "loadavg=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "quiet_wait=$quiet_wait"
    echo "env_cleared=${env_notes[*]:-}"
    echo "epochs_small=$epochs_small"
    echo "epochs_large=$epochs_large"
    echo "repeat=$repeat"
} >"$tmp/meta.txt"
write_report "$tmp"
note "wrote ${out#"$root"/} in $((end_s - start_s)) s"
