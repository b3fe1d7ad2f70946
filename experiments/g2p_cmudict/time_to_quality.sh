#!/usr/bin/env bash
# The standard split's best recipe at shorter budgets: for each MINUTES, the two one-core recipes
# (g014b2b_rnn_seq2seq_1core on core 0, g014b2b_rnn_attention_1core on core 1) trained side by
# side with their step counts and warmups scaled to MINUTES, each evaluated alone, then the two
# decoded as one ensemble; every figure on the 12,000 test words with beam 4.
#
#   experiments/g2p_cmudict/time_to_quality.sh [OUT] [MINUTES...]      # default: runs/g014_ttq 5 15 30
#
# Steps per minute are those the full recipes ran at side by side on 2 cores of an AMD EPYC
# (STEPS_PER_MIN_SEQ2SEQ, STEPS_PER_MIN_ATTENTION to override on another machine).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/g014_ttq}
shift || true
minutes=("$@")
[ ${#minutes[@]} -gt 0 ] || minutes=(5 15 30)
seq2seq_rate=${STEPS_PER_MIN_SEQ2SEQ:-45}
attention_rate=${STEPS_PER_MIN_ATTENTION:-55}
mkdir -p "$out"
for m in "${minutes[@]}"; do
  pids=()
  for pair in "rnn_seq2seq $seq2seq_rate" "rnn_attention $attention_rate"; do
    read -r family rate <<< "$pair"
    steps=$(( m * rate )); warmup=$(( (steps + 9) / 10 ))
    workdir=$out/${family}_${m}min
    ( start=$(date +%s)
      experiments/g2p_cmudict/run.sh "g014b2b_${family}_1core" "$workdir" --num_train_steps="$steps" \
        --warmup_steps="$warmup" --checkpoint_every_steps="$steps" --keep_checkpoints=1 > "$workdir.log" 2>&1
      echo "$family ${m}min: $steps steps trained in $(( $(date +%s) - start )) s ($(date -u +%F))" >> "$out/wall.txt"
    ) & pids+=($!)
  done
  wait "${pids[@]}"
  for family in rnn_seq2seq rnn_attention; do
    python -m experiments.evaluate --workdir="$out/${family}_${m}min" --beam_size=4 \
      --output="$out/${family}_${m}min.test.json" > /dev/null
  done
  python -m experiments.evaluate --workdir="$out/rnn_seq2seq_${m}min" --ensemble="$out/rnn_attention_${m}min" \
    --beam_size=4 --output="$out/ensemble_${m}min.test.json" > /dev/null
done
tail -n "$(( 2 * ${#minutes[@]} ))" "$out/wall.txt"
