# What every reproduce_*.sh starts with (sourced): strict mode, the l2t and python commands
# (L2T, PYTHON override them), one thread per process, and the runs directory ($1) made.
set -euo pipefail
l2t=${L2T:-l2t}
python=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # small students: one thread per run is fastest
mkdir -p "$runs"
