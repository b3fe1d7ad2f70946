#!/usr/bin/env bash
# Luong et al. (2015), Table 4's global-attention rows at CPU scale: dot, general and concat scores,
# each with and without input feeding (§3.3), over base.flags; plus Bahdanau's additive attention
# as the reference row.  Results: runs/luong2015_attention/results.md (experiments.sweep's table).
# Extra arguments go to experiments.sweep, e.g. `experiments/luong2015_attention/sweep.sh --dry_run`.
set -euo pipefail
cd "$(dirname "$0")/../.."
python -m experiments.sweep --base_flagfile=experiments/luong2015_attention/base.flags \
  --out_dir=runs/luong2015_attention \
  --runs=dot:attention=luong_dot --runs=general:attention=luong_general --runs=concat:attention=luong_concat \
  --grid=input_feeding=true,false "$@"
python -m experiments.sweep --base_flagfile=experiments/luong2015_attention/base.flags \
  --out_dir=runs/luong2015_attention_bahdanau --runs=bahdanau:attention=bahdanau "$@"
