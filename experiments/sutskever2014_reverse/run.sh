#!/usr/bin/env bash
# Sutskever et al. (2014, §3.3): the LSTM encoder-decoder reading its source forwards and backwards,
# on DATASET (g2p: CMUdict, bible: English -> Spanish); a table of test perplexity and WER/PER or
# BLEU/chrF beside the paper's.
#
#   experiments/sutskever2014_reverse/run.sh DATASET [OUT_DIR] [more experiments.train flags]
set -euo pipefail
cd "$(dirname "$0")/../.."
dataset=${1:?usage: experiments/sutskever2014_reverse/run.sh g2p|bible [OUT_DIR] [flags...]}
shift
out=runs/sutskever2014_reverse/$dataset
if [ $# -gt 0 ] && [[ $1 != --* ]]; then out=$1; shift; fi
experiments/run_recipes.sh experiments/sutskever2014_reverse "$dataset" "$out" "$@"
python -m experiments.sutskever2014_reverse.report --out_dir="$out"
