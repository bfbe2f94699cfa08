# Sourced by the recipes in this directory, which set $repo (the repository root) and
# stay in the caller's directory, so the caller's relative paths (--data, --metrics,
# --checkpoint) mean what they say. Builds build/nntrain and fetches the dataset only
# when they are missing, then runs nntrain on $NP ranks (default 2) with the recipe's
# settings followed by the caller's own arguments (nntrain keeps the last value of a
# repeated option, so those win; a caller's --data, or any prefix of it nntrain takes
# such as --dat, means the recipe's own file is not needed, so it is not fetched).

# recipe_run DATA_FILE FETCH_SCRIPT NNTRAIN_ARGS...   (both paths absolute)
recipe_run() {
    local data=$1 fetch=$2 arg
    shift 2
    [ -x "$repo/build/nntrain" ] && [ -x "$repo/build/nnprep" ] || "$repo/scripts/build.sh"
    local own_data=1 name
    for arg in "$@"; do # --data, --dat=F, --da F ...: getopt_long takes unambiguous prefixes
        name=${arg%%=*}
        if [[ ${#name} -ge 4 && --data == "$name"* ]]; then own_data=0; fi
    done
    if [ "$own_data" -eq 1 ] && [ ! -f "$data" ]; then "$fetch" --out "$data"; fi
    . "$repo/scripts/mpi_env.sh"
    local np=${NP:-2}
    echo "+ mpirun -np $np $repo/build/nntrain --data $data $*"
    exec mpirun -np "$np" "$repo/build/nntrain" --data "$data" "$@"
}
