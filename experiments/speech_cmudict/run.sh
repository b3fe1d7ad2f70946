#!/usr/bin/env bash
# Both front ends trained side by side, each pinned to one core with one XLA thread (the same
# budget on the same machine at the same time), then for each: the test results (WER, CER on the
# unseen voices), spoken-word identification across those voices with the encoder's utterance
# vectors, and the cross-attention heatmap of one unseen word over the audio frames.
#
#   experiments/speech_cmudict/run.sh [RUNS] [OUT] [more experiments.train flags]
#       default RUNS=runs (workdirs RUNS/speech_conv_1h, RUNS/speech_res2net_1h; logs beside them)
#       default OUT=experiments/speech_cmudict (FRONTEND_1h_results.json, FRONTEND_1h_words.json,
#       attention_FRONTEND.png)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-runs}
out=${2:-experiments/speech_cmudict}
shift $(( $# < 2 ? $# : 2 ))
mkdir -p "$runs" "$out"
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false${XLA_FLAGS:+ $XLA_FLAGS}"
cores=$(nproc)
start=$(date +%s)
pids=()
for i in 0 1; do
  frontend=$([ $i = 0 ] && echo conv || echo res2net)
  taskset -c $(( i % cores )) python -m experiments.train --flagfile=experiments/speech_cmudict/${frontend}_1h.flags \
    --workdir="$runs/speech_${frontend}_1h" "$@" > "$runs/speech_${frontend}_1h.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
echo "trained both in $(( $(date +%s) - start )) s ($(date -u +%F))" >&2

# One test word (never heard in training) in one test voice, for the attention heatmaps.
python - "$runs/speech_heatmap" <<'PY'
import os, sys
from seq2seq_jax.data import audio_files
from seq2seq_jax.data.datasets import speech_cmudict as sc
words, spoken = sc.spoken_word_sets(2, voices=sc.TEST_VOICES[:1], seed=1)
os.makedirs(sys.argv[1], exist_ok=True)
audio_files.write_wav(os.path.join(sys.argv[1], f"{words[0]}.wav"), spoken[sc.TEST_VOICES[0]][0])
PY
for frontend in conv res2net; do
  workdir=$runs/speech_${frontend}_1h
  cp "$workdir/results.json" "$out/${frontend}_1h_results.json"
  python -m experiments.identify_spoken_words --workdir="$workdir" --output="$out/${frontend}_1h_words.json" > /dev/null
  rm -rf "$runs/speech_heatmap_$frontend"
  python -m experiments.decode --workdir="$workdir" --inputs="$runs/speech_heatmap" \
    --plot_attention="$runs/speech_heatmap_$frontend"
  cp "$runs/speech_heatmap_$frontend"/*.png "$out/attention_$frontend.png"
done
echo "all in $(( $(date +%s) - start )) s" >&2
