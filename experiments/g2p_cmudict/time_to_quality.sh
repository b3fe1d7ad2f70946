#!/usr/bin/env bash
# The standard split's best recipe at shorter budgets: for each MINUTES, the two one-core recipes
# (g014b2b_rnn_seq2seq_1core on core 0, g014b2b_rnn_attention_1core on core 1) trained side by
# side with their step counts and warmups scaled to MINUTES, each decoding the test words at the end
# of its training (results.json), then the two decoded as one ensemble; every figure on the 12,000
# test words with beam 4.  The moving average's decay is scaled with the steps so that the initial
# parameters keep the weight they have at the end of the full recipe (decay^steps = 0.999^full steps):
# at 0.999 a 5-minute run would evaluate parameters three quarters of which are the initial ones.
#
#   experiments/g2p_cmudict/time_to_quality.sh [OUT] [MINUTES...]      # default: runs/g014_ttq 5 15 30
#
# Steps per minute are those of the full recipes on one core of an AMD EPYC, from their CPU time
# (3,500 steps in 81.6 min, 4,500 in 77.6 min; STEPS_PER_MIN_SEQ2SEQ, STEPS_PER_MIN_ATTENTION to
# override on another machine); the wall time each run took is appended to OUT/wall.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-runs/g014_ttq}
shift || true
minutes=("$@")
[ ${#minutes[@]} -gt 0 ] || minutes=(5 15 30)
seq2seq_rate=${STEPS_PER_MIN_SEQ2SEQ:-43}
attention_rate=${STEPS_PER_MIN_ATTENTION:-58}
mkdir -p "$out"
for m in "${minutes[@]}"; do
  pids=()
  for recipe in "rnn_seq2seq $seq2seq_rate 3500" "rnn_attention $attention_rate 4500"; do
    read -r family rate full_steps <<< "$recipe"
    steps=$(( m * rate )); warmup=$(( (steps + 9) / 10 ))
    ema_decay=$(python -c "print(f'{0.999 ** ($full_steps / $steps):.6f}')")
    workdir=$out/${family}_${m}min
    ( start=$(date +%s)
      experiments/g2p_cmudict/run.sh "g014b2b_${family}_1core" "$workdir" --num_train_steps="$steps" \
        --warmup_steps="$warmup" --ema_decay="$ema_decay" --checkpoint_every_steps="$steps" --keep_checkpoints=1 > "$workdir.log" 2>&1
      echo "$family ${m}min: $steps steps (moving average $ema_decay) trained and test-decoded in $(( $(date +%s) - start )) s ($(date -u +%F))" >> "$out/wall.txt"
    ) & pids+=($!)
  done
  wait "${pids[@]}"
  python -m experiments.evaluate --workdir="$out/rnn_seq2seq_${m}min" --ensemble="$out/rnn_attention_${m}min" \
    --beam_size=4 --output="$out/ensemble_${m}min.test.json" > /dev/null
done
# One summary: OUT/time_to_quality.json, a row per budget and system (test WER and PER in %).
python - "$out" "${minutes[@]}" <<'PY'
import json, sys
out, minutes = sys.argv[1], sys.argv[2:]
rows = []
for m in minutes:
  for family in ("rnn_seq2seq", "rnn_attention"):
    r = json.load(open(f"{out}/{family}_{m}min/results.json"))
    rows.append({"minutes": int(m), "system": family, "steps": r["step"], "evaluated_params": r["evaluated_params"],
                 "wer": round(100 * r["eval"]["wer"], 2), "per": round(100 * r["eval"]["per"], 2),
                 "process_wall_s": r["wall_s"]})
  r = json.load(open(f"{out}/ensemble_{m}min.test.json"))
  rows.append({"minutes": int(m), "system": "ensemble", "wer": round(100 * r["wer"], 2),
               "per": round(100 * r["per"], 2), "decode_s": r["decode_s"]})
json.dump(rows, open(f"{out}/time_to_quality.json", "w"), indent=1)
for row in rows:
  print(json.dumps(row))
PY
tail -n "$(( 2 * ${#minutes[@]} ))" "$out/wall.txt"
