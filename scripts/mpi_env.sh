# Sourced by the scripts that launch MPI jobs on a workstation or CI container:
# OpenMPI refuses root unless told, needs leave to run more ranks than cores, and
# oversubscribed ranks must yield instead of busy-polling (else an 8-byte Allreduce
# takes tens of milliseconds). Values already set in the environment win.
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1}
    export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
fi
export OMPI_MCA_rmaps_base_oversubscribe=${OMPI_MCA_rmaps_base_oversubscribe:-1}
export OMPI_MCA_mpi_yield_when_idle=${OMPI_MCA_mpi_yield_when_idle:-1}
