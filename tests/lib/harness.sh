# Sourced by the shell tests that start `shardsim run` under mpirun (tests/mpi/*.sh): strict mode,
# the variables ctest gives them, the tiny job they run, a temp folder removed on exit (after
# killing what a script left in `pids`), `rank_pid` to find a rank among mpirun's children, and
# `fail`, which counts instead of stopping so that a
# script reports every case. A script ends with `exit $((failures > 0))`.
set -uo pipefail
: "${SHARDSIM:?}" "${SHARDSIM_SOURCE_DIR:?}"
MPIEXEC=${MPIEXEC:-mpirun}
job=$SHARDSIM_SOURCE_DIR/jobs/tiny-llama-cpu.ini
tmp=$(mktemp -d)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# The pid of rank $2 among the children of mpirun $1 (its environment says which rank it is).
rank_pid() {
  local p
  for p in $(ps -o pid= --ppid "$1"); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
      echo "$p"
      return 0
    fi
  done
  return 1
}
