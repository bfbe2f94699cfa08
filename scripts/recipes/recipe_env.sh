# Sourced by the recipes in this directory, from the repository root: builds
# build/nntrain and fetches the dataset only when they are missing, then runs nntrain
# on $NP ranks (default 2) with the recipe's settings followed by the caller's own
# arguments (nntrain keeps the last value of a repeated option, so those win; a
# caller's --data means the recipe's own file is not needed, so it is not fetched).

# recipe_run DATA_FILE FETCH_SCRIPT NNTRAIN_ARGS...
recipe_run() {
    local data=$1 fetch=$2 arg
    shift 2
    [ -x build/nntrain ] && [ -x build/nnprep ] || scripts/build.sh
    local own_data=1
    for arg in "$@"; do case $arg in --data | --data=*) own_data=0 ;; esac; done
    if [ "$own_data" -eq 1 ] && [ ! -f "$data" ]; then "$fetch" --out "$data"; fi
    . scripts/mpi_env.sh
    local np=${NP:-2}
    echo "+ mpirun -np $np build/nntrain --data $data $*"
    exec mpirun -np "$np" build/nntrain --data "$data" "$@"
}
