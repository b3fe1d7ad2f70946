#!/usr/bin/env bash
# Trains every recipe STUDY_DIR/PREFIX_*.flags into OUT/<name> and evaluates its test split with the
# per-length error profile and the recipe's own decoding flags into OUT/<name>.test.json; appends
# each training's wall time to OUT/wall.txt.  A study's run.sh calls it, then draws its table.
# EVAL_MAX_EXAMPLES=N evaluates only the first N test examples (smoke tests).  SIDE_BY_SIDE=1 trains
# the recipes at the same time, one XLA thread each, sharing the cores evenly (the same budget on the
# same machine at the same time; logs in OUT/<name>.log), then evaluates them one after another;
# SIDE_BY_SIDE=N with N > 1 trains at most N at a time (one per core: SIDE_BY_SIDE=$(nproc)).
#
#   experiments/run_recipes.sh STUDY_DIR PREFIX OUT [more experiments.train flags]
set -euo pipefail
cd "$(dirname "$0")/.."
study=${1:?usage: experiments/run_recipes.sh STUDY_DIR PREFIX OUT [flags...]}
prefix=${2:?PREFIX}
out=${3:?OUT}
shift 3
ls "$study"/"$prefix"_*.flags > /dev/null || { echo "no recipes $study/${prefix}_*.flags" >&2; exit 2; }
side_by_side=${SIDE_BY_SIDE:-0}
[[ $side_by_side =~ ^[0-9]+$ ]] || { echo "SIDE_BY_SIDE=$side_by_side: expected 0, 1 or a number of runs at a time" >&2; exit 2; }
mkdir -p "$out"
train() {  # train FLAGFILE NAME [flags...]: trains one recipe and appends its wall time to OUT/wall.txt
  local flagfile=$1 name=$2 start; shift 2
  start=$(date +%s)
  python -m experiments.train --flagfile="$flagfile" --workdir="$out/$name" "$@"
  local how="$(nproc) cores"
  [ "$side_by_side" = 1 ] && how="$how shared side by side, one XLA thread"
  [ "$side_by_side" -gt 1 ] && how="$how shared, $side_by_side runs at a time, one XLA thread"
  echo "$name: trained in $(( $(date +%s) - start )) s ($(date -u +%F), $how)" | tee -a "$out/wall.txt"
}
if [ "$side_by_side" -gt 0 ]; then
  export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false${XLA_FLAGS:+ $XLA_FLAGS}"
  at_a_time=$side_by_side
  [ "$at_a_time" = 1 ] && at_a_time=$(ls "$study"/"$prefix"_*.flags | wc -l)
  running=0 failed=0
  for flagfile in "$study"/"$prefix"_*.flags; do
    if [ "$running" -ge "$at_a_time" ]; then wait -n || failed=1; running=$((running - 1)); fi
    name=$(basename "$flagfile" .flags); name=${name#"${prefix}"_}
    train "$flagfile" "$name" "$@" > "$out/$name.log" 2>&1 &
    running=$((running + 1))
  done
  while [ "$running" -gt 0 ]; do wait -n || failed=1; running=$((running - 1)); done
  [ "$failed" = 0 ] || { echo "a training run failed: see $out/*.log" >&2; exit 1; }
fi
for flagfile in "$study"/"$prefix"_*.flags; do
  name=$(basename "$flagfile" .flags); name=${name#"${prefix}"_}
  [ "$side_by_side" -gt 0 ] || train "$flagfile" "$name" "$@"
  python -m experiments.evaluate --workdir="$out/$name" --split=test --error_profile --max_examples="${EVAL_MAX_EXAMPLES:-0}" \
    --flagfile=<(grep -E '^--(beam_size|length_penalty|max_len_a|max_len_b)=' "$flagfile") \
    --output="$out/$name.test.json" > /dev/null
done
