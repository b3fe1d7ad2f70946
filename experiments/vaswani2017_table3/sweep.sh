#!/usr/bin/env bash
# Vaswani et al. (2017) Table 3 at CPU scale: one sweep of named runs over base.flags, one table
# row each (see README.md).  The base row runs with 3 seeds (noise level), every variation with one.
# Extra arguments go to experiments.sweep, e.g. `experiments/vaswani2017_table3/sweep.sh --dry_run`.
set -euo pipefail
cd "$(dirname "$0")/../.."
args=(
  --base_flagfile=experiments/vaswani2017_table3/base.flags --out_dir=runs/vaswani2017_table3
  --runs=base: --seeds_for=base:3
  # (A) attention heads at constant computation (d_k = d_v = 128 / h)
  --runs=A-h1:num_heads=1          # d_k 128
  --runs=A-h32:num_heads=32        # d_k 4
  # (B) smaller attention key size alone (h = 8): d_k 4 instead of 16
  --runs=B-dk4:key_size=4
  # (C) model size: fewer layers; wider feed-forward
  --runs=C-N1:num_layers=1
  --runs=C-ff1024:d_ff=1024
  # (D) regularisation: no residual/attention dropout; no label smoothing
  --runs=D-drop0:dropout=0.0
  --runs=D-ls0:label_smoothing=0.0
  # (E) learned positional embeddings instead of sinusoids
  --runs=E-learned:positional=learned
)
python -m experiments.sweep "${args[@]}" "$@"
