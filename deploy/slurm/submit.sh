#!/bin/bash
# usage: deploy/slurm/submit.sh CONFIG OUT SHARDS [sbatch options...]
# Submits SHARDS array tasks (sweep.sbatch) and the merge job that waits for all of them to
# succeed (--dependency=afterok); prints both job ids. Set SWEEP_SBATCH=sweep-gpu.sbatch for
# the GPU partition. Extra options (e.g. --wait, --partition=...) go to both submissions.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 CONFIG OUT SHARDS [sbatch options...]" >&2
  exit 2
fi
config=$(realpath "$1") out=$(realpath -m "$2") shards=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
# --wait applies to the merge job only (it ends after the array)
array_opts=()
for o in "$@"; do [ "$o" = --wait ] || array_opts+=("$o"); done
array=$(sbatch --parsable --array="0-$((shards - 1))" --export=ALL,CONFIG="$config",OUT="$out" \
  "${array_opts[@]}" "$here/${SWEEP_SBATCH:-sweep.sbatch}")
echo "array job $array ($shards shards)"
merge=$(sbatch --parsable --dependency="afterok:$array" --kill-on-invalid-dep=yes \
  --export=ALL,OUT="$out" "$@" "$here/merge.sbatch")
echo "merge job $merge"
