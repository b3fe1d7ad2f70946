#!/usr/bin/env bash
# Quality by source length for the three models of the story (Bahdanau et al. 2015, Fig. 2):
# trains each recipe of TASK, evaluates its test split with the per-length profile, and draws
# one PNG with a line per model plus a markdown table.
#
#   experiments/bahdanau2015_length/run.sh [TASK] [OUT_DIR] [more experiments.train flags]
#   experiments/bahdanau2015_length/run.sh reverse        # -> runs/bahdanau2015_length/reverse/
#
# TASK is the flagfiles' prefix: reverse (exact-match accuracy by length, trained on 1-20 letters,
# tested on 1-40) or bible (bible_en_es: BLEU by source length in words, plus the attention LSTM's
# alignment heatmap of the longest test verse of at most 50 words, their Fig. 3).  Extra flags go
# to every training run (e.g. --num_train_steps=20 to smoke-test).
set -euo pipefail
cd "$(dirname "$0")/../.."
task=${1:-reverse}
shift || true
out=runs/bahdanau2015_length/$task
if [ $# -gt 0 ] && [[ $1 != --* ]]; then out=$1; shift; fi
experiments/run_recipes.sh experiments/bahdanau2015_length "$task" "$out" "$@"
python -m experiments.bahdanau2015_length.plot --out_dir="$out" --task="$task"
if [ "$task" = bible ]; then
  python -m experiments.bahdanau2015_length.long_verse --workdir="$out/rnn_attention" > "$out/long_verse.txt"
  python -m experiments.decode --workdir="$out/rnn_attention" --input_file="$out/long_verse.txt" \
    --beam_size=4 --length_penalty=0.6 --max_len_a=1.5 --max_len_b=10 --plot_attention="$out/heatmap" \
    --output_file="$out/long_verse.out"
fi
