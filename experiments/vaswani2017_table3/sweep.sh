#!/usr/bin/env bash
# DRAFT (see README.md): the rows of Vaswani et al. (2017) Table 3 as one sweep of named runs over
# base.flags, one table row each.  Extra arguments go to experiments.sweep, e.g.
#   experiments/vaswani2017_table3/sweep.sh --dry_run
#   experiments/vaswani2017_table3/sweep.sh --seeds=3 --out_dir=runs/table3_3seeds
# There is no key-size flag: d_k = d_v = d_model / num_heads.  Row (A) therefore keeps the
# paper's constant computation (d_model fixed, d_k shrinking as h grows); row (B), which shrinks
# d_k alone, cannot be expressed and is left out.
set -euo pipefail
cd "$(dirname "$0")/../.."
args=(
  --base_flagfile=experiments/vaswani2017_table3/base.flags
  --out_dir=runs/vaswani2017_table3
  --runs=base:
  # (A) attention heads at constant computation: h (d_k = 128 / h)
  --runs=A-h1:num_heads=1      # d_k 128
  --runs=A-h4:num_heads=4      # d_k 32
  --runs=A-h16:num_heads=16    # d_k 8
  --runs=A-h32:num_heads=32    # d_k 4
  # (B) d_k = 8, 16 at h = 8: not expressible (no key-size flag), see README.md
  # (C) model size: layers, width (h = 8, so d_k = d_model / 8), feed-forward width
  --runs=C-N1:num_layers=1
  --runs=C-N3:num_layers=3
  --runs=C-N4:num_layers=4
  --runs=C-d64:d_model=64      # d_k 8
  --runs=C-d256:d_model=256    # d_k 32
  --runs=C-ff256:d_ff=256
  --runs=C-ff1024:d_ff=1024
  # (D) regularisation: residual/attention dropout, label smoothing
  --runs=D-drop0:dropout=0.0
  --runs=D-drop0.2:dropout=0.2
  --runs=D-ls0:label_smoothing=0.0
  --runs=D-ls0.2:label_smoothing=0.2
  # (E) learned positional embeddings instead of sinusoids
  --runs=E-learned:positional=learned
)
python -m experiments.sweep "${args[@]}" "$@"
