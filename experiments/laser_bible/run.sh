#!/usr/bin/env bash
# The multilingual Bible encoder and its measures: train (about an hour on 2 CPU cores; training ends
# by translating the test verses in both directions: results.json, "by_target_language"), then
# bitext retrieval (xsim error, cosine and margin) with the encoder's mean- and max-pooled vectors
# beside the bag-of-pieces floor.  The JSON results go to OUT.
#
#   experiments/laser_bible/run.sh [WORKDIR] [OUT]      # default: runs/bible_both experiments/laser_bible
set -euo pipefail
cd "$(dirname "$0")/../.."
workdir=${1:-runs/bible_both}
out=${2:-experiments/laser_bible}
start=$(date +%s)
python -m experiments.train --flagfile=experiments/laser_bible/both_directions_1h.flags --workdir="$workdir"
echo "trained in $(( $(date +%s) - start )) s ($(date -u +%F))" >&2
cp "$workdir/results.json" "$out/results.json"
for pooling in mean max; do
  python -m experiments.evaluate_embeddings --workdir="$workdir" --pooling=$pooling \
    --output="$out/xsim_$pooling.json"
done
echo "all in $(( $(date +%s) - start )) s" >&2
