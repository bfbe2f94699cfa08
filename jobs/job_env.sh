# Sourced by the job scripts in jobs/ (Slurm runs a copy of the script from its spool
# directory, so they find this file through the submit directory or $NNTRAIN_HOME).
# It sets what every nntrain job needs and refuses, in the job's output, what cannot run.
#   NNTRAIN_HOME  the repository (default: the directory sbatch was run from)
# Run outside Slurm, a job script stops at once with exit 2 and one line saying so.
#   NNTRAIN_BIN   the nntrain binary          [$NNTRAIN_HOME/build/nntrain]
#   NNTRAIN_DATA  the HDF5 dataset            [$NNTRAIN_HOME/data/mnist.h5]
# Output files (metrics, checkpoints) go to the job's working directory (sbatch --chdir).
# Outside a Slurm job (`bash jobs/nntrain.sbatch`) there is no allocation to run in and
# no job id to keep one run's files apart from another's: say so in one line and stop.
if [ -z "${SLURM_JOB_ID:-}" ]; then
    echo "nntrain job: $(basename "$0") is a Slurm batch script: submit it with sbatch" \
         "(to train on this machine: mpirun -np 2 build/nntrain, or scripts/quickstart.sh)" >&2
    exit 2
fi
NNTRAIN_HOME=${NNTRAIN_HOME:-$SLURM_SUBMIT_DIR}
NNTRAIN_BIN=${NNTRAIN_BIN:-$NNTRAIN_HOME/build/nntrain}
NNTRAIN_DATA=${NNTRAIN_DATA:-$NNTRAIN_HOME/data/mnist.h5}
# The run's name in its files: an array element's own (ARRAYJOBID_TASK), so elements
# never share a checkpoint or metrics file, else the job id. array_id names what all
# elements of an array share (the scaling study's CSV).
if [ -n "${SLURM_ARRAY_JOB_ID:-}" ]; then
    job_id=${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID:?}
else
    job_id=$SLURM_JOB_ID
fi
array_id=${SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}

job_fail() { echo "nntrain job $job_id: $*" >&2; exit 1; }
[ -x "$NNTRAIN_BIN" ] || job_fail "no nntrain binary at $NNTRAIN_BIN (run scripts/build.sh in $NNTRAIN_HOME, or set NNTRAIN_BIN)"
[ -r "$NNTRAIN_DATA" ] || job_fail "no dataset at $NNTRAIN_DATA (run scripts/fetch_mnist.sh, or set NNTRAIN_DATA)"

# OpenMPI refuses to run as root unless told (a local demo cluster runs jobs as root).
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# One rank per task, --cpus-per-task OpenMP threads per rank, kept on their cores
# (the launcher gives each task its cores). With one thread the launcher's binding is
# all there is: OMP_PROC_BIND would pin the lone thread to the first core of its
# task's mask, and where tasks are not bound (TaskPlugin=task/none) every rank would
# land on the same core.
export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}
if [ "$OMP_NUM_THREADS" -gt 1 ]; then
    export OMP_PROC_BIND=${OMP_PROC_BIND:-close} OMP_PLACES=${OMP_PLACES:-cores}
fi
# Ranks waiting in a collective yield their core instead of spinning on it.
export OMPI_MCA_mpi_yield_when_idle=${OMPI_MCA_mpi_yield_when_idle:-1}
echo "nntrain job $job_id on ${SLURM_JOB_NUM_NODES:-1} node(s) (${SLURM_JOB_NODELIST:-$(hostname)}):" \
     "${SLURM_NTASKS:-1} ranks x $OMP_NUM_THREADS threads, restart ${SLURM_RESTART_COUNT:-0}"

# A requeued run (SLURM_RESTART_COUNT > 0: a node failed, an admin ran scontrol requeue)
# runs the job script again with the same options, and a fresh nntrain would replace the
# first run's checkpoint and metrics. requeue_resume NNTRAIN_OPTIONS... (for the jobs
# that take nntrain's options as given; the preemptible job names its own checkpoint)
# sets resume=(--resume CHECKPOINT) when the options name a --checkpoint that is there:
# nntrain goes on from it, and appends to the metrics (cut back to the checkpoint's
# epoch). With no checkpoint to resume from, a restart whose metrics file (--metrics, else
# nntrain-JOBID.jsonl) holds records stops with exit 2 and one line, leaving it; one
# whose first run left no records starts afresh. A fresh job (restart 0) runs as given.
requeue_resume() {
    resume=()
    [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ] 2>/dev/null || return 0
    local checkpoint="" metrics="nntrain-$job_id.jsonl" name value shown
    while [ $# -gt 0 ]; do # nntrain takes the last value; --metrics by any prefix
        [ "$1" = -- ] && break # nntrain refuses what follows anyway
        name=${1%%=*}
        case $name in
            --checkpoint) ;; # only in full: shorter is --checkpoint-every's too
            --me*) [[ metrics == "${name#--}"* ]] || { shift; continue; } ;;
            *) shift; continue ;;
        esac
        if [ "$name" != "$1" ]; then value=${1#*=}; shift; else value=${2-}; shift $(($# > 1 ? 2 : 1)); fi
        if [ "$name" = --checkpoint ]; then checkpoint=$value; else metrics=$value; fi
    done
    if [ -n "$checkpoint" ] && [ -f "$checkpoint" ]; then
        resume=(--resume "$checkpoint")
        echo "nntrain job $job_id: restart $SLURM_RESTART_COUNT resumes from $checkpoint"
    elif [ -s "$metrics" ]; then
        case $metrics in /*) shown=$metrics ;; *) shown=$PWD/$metrics ;; esac
        echo "nntrain job $job_id: restart $SLURM_RESTART_COUNT: no checkpoint to resume from" \
             "(${checkpoint:+$checkpoint is missing; }--checkpoint FILE makes a requeue resume), and a fresh run" \
             "would overwrite the first run's metrics $shown: not starting" >&2
        exit 2
    else
        echo "nntrain job $job_id: restart $SLURM_RESTART_COUNT: nothing to resume from, no metrics to lose: fresh start"
    fi
}
