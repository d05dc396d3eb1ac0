#!/bin/bash
# usage: deploy/slurm/submit.sh CONFIG OUT SHARDS [sbatch options...]
# Submits SHARDS array tasks (sweep.sbatch) and the merge job that waits for all of them to
# succeed (--dependency=afterok); prints both job ids. Set SWEEP_SBATCH=sweep-gpu.sbatch for
# the GPU partition. Extra options (e.g. --wait, --partition=...) go to both submissions.
# CONFIG must exist; SHARDS is a whole number 1..=100000 (a sweep has at most 100000 cells).
# CONFIG and OUT reach the jobs through the environment (--export=ALL), so a path may hold
# any character, commas included.
set -euo pipefail
usage() {
  echo "usage: $0 CONFIG OUT SHARDS [sbatch options...]" >&2
  [ $# -eq 0 ] || echo "error: $*" >&2
  exit 2
}
[ $# -ge 3 ] || usage
[ -f "$1" ] || usage "CONFIG $1 is not a file"
[[ $3 =~ ^[0-9]+$ ]] && [ "$((10#$3))" -ge 1 ] && [ "$((10#$3))" -le 100000 ] ||
  usage "SHARDS '$3' must be a whole number 1..=100000"
config=$(realpath "$1")
out=$(realpath -m "$2")
shards=$((10#$3))
shift 3
here=$(cd "$(dirname "$0")" && pwd)
# --wait applies to the merge job only (it ends after the array)
array_opts=()
for o in "$@"; do [ "$o" = --wait ] || array_opts+=("$o"); done
export CONFIG=$config OUT=$out
array=$(sbatch --parsable --array="0-$((shards - 1))" --export=ALL \
  "${array_opts[@]}" "$here/${SWEEP_SBATCH:-sweep.sbatch}")
echo "array job $array ($shards shards)"
merge=$(sbatch --parsable --dependency="afterok:$array" --kill-on-invalid-dep=yes \
  --export=ALL "$@" "$here/merge.sbatch")
echo "merge job $merge"
