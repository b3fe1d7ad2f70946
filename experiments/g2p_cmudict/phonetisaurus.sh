#!/usr/bin/env bash
# Phonetisaurus (joint-sequence WFST G2P; PyPI `phonetisaurus` 0.3.0) trained on one core on the
# same training words as our models, tested on the same test words, scored with our WER/PER.
#
#   experiments/g2p_cmudict/phonetisaurus.sh [DATASET] [OUT_DIR]
#   experiments/g2p_cmudict/phonetisaurus.sh cmudict_g2p/g014b2b     # the standard split
#   experiments/g2p_cmudict/phonetisaurus.sh cmudict_g2p             # this project's seed-2019 split
#
# Installs the peer into its own environment (.peers_g2p/, once), then writes OUT_DIR/result.json:
# {dataset, examples, wer, per, missing, train_s (one core), predict_s, date, cpu}.
set -euo pipefail
cd "$(dirname "$0")/../.."
dataset=${1:-cmudict_g2p/g014b2b}
out=${2:-runs/phonetisaurus_${dataset//\//_}}
core=${CORE:-0}
mkdir -p "$out"
if [ ! -x .peers_g2p/bin/phonetisaurus ]; then
  python -m venv .peers_g2p && .peers_g2p/bin/pip install -q phonetisaurus==0.3.0
fi
python experiments/g2p_cmudict/peer_data.py export --dataset="$dataset" --split=train --output="$out/train.lex"
python experiments/g2p_cmudict/peer_data.py export --dataset="$dataset" --split=test --output="$out/test.words"
start=$(date +%s.%N)
taskset -c "$core" .peers_g2p/bin/phonetisaurus train --model="$out/model.fst" --casing=ignore "$out/train.lex" > "$out/train.log" 2>&1
trained=$(date +%s.%N)
taskset -c "$core" .peers_g2p/bin/phonetisaurus predict --model="$out/model.fst" --casing=ignore --nbest=1 \
  --word-separator=$'\t' < "$out/test.words" > "$out/test.pred"
predicted=$(date +%s.%N)
score=$(python experiments/g2p_cmudict/peer_data.py score --dataset="$dataset" --predictions="$out/test.pred")
python - "$out/result.json" "$dataset" "$score" "$start" "$trained" "$predicted" <<'PY'
import json, platform, subprocess, sys, datetime
path, dataset, score, start, trained, predicted = sys.argv[1:]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
result = {"dataset": dataset, **json.loads(score), "train_s": round(float(trained) - float(start), 1),
          "predict_s": round(float(predicted) - float(trained), 1), "date": datetime.date.today().isoformat(),
          "cpu": f"one core of {cpu}", "peer": "phonetisaurus 0.3.0 (PyPI)"}
json.dump(result, open(path, "w"), indent=1)
print(json.dumps(result))
PY
