#!/usr/bin/env bash
# The train and decode rows of vs_peers.sh on a CUDA GPU: ours (jax with CUDA) beside eager PyTorch,
# HF generate and CTranslate2 on the same GPU, interleaved in ROUNDS rounds (default 3).
#   bash experiments/benchmarks/gpu.sh > gpu.jsonl && python experiments/benchmarks/table.py gpu.jsonl
# Set up once on the GPU machine (each a venv of its own; on Linux x86-64 PyPI's torch wheels are
# the CUDA builds, and PyPI's ctranslate2 wheels include CUDA):
#   python -m venv .gpu && .gpu/bin/pip install -r requirements.txt "jax[cuda12]==$(python -c 'import jax; print(jax.__version__)')"
#   python -m venv .peers-cuda && .peers-cuda/bin/pip install torch==2.13.0 transformers==5.24.0 ctranslate2
#   PYTHON=.gpu/bin/python PEER_PYTHON=.peers-cuda/bin/python PEERS=../shared/peers bash experiments/benchmarks/gpu.sh > gpu.jsonl
# Rows: train `small` and `base` (ours float32 and bfloat16, eager PyTorch float32); greedy and beam 4
# (batch 32, 32 source tokens, exactly 32 new tokens): ours float32 and bfloat16, HF generate float32,
# CTranslate2 float32, bfloat16 and int8.  Without a GPU it stops with one line on stderr, exit 1.
set -euo pipefail
ROUNDS=${ROUNDS:-3}
PYTHON=${PYTHON:-python}
PEER_PYTHON=${PEER_PYTHON:-.peers-cuda/bin/python}
PEERS=${PEERS:-../shared/peers}
HERE=$(dirname "$0")
fail() { echo "error: $*" >&2; exit 1; }
command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU' \
  || fail "no CUDA GPU on this machine (nvidia-smi lists none); gpu.sh measures the GPU rows on a machine with one, vs_peers.sh the CPU rows"
backend=$("$PYTHON" -c 'import jax; print(jax.default_backend())' 2>/dev/null) || fail "$PYTHON cannot import jax; set PYTHON to the venv with jax[cuda12] (see the top of $0)"
[ "$backend" = gpu ] || fail "jax in $PYTHON runs on $backend, not the GPU: install jax[cuda12] of the same version there (see the top of $0)"
"$PEER_PYTHON" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' 2>/dev/null \
  || fail "$PEER_PYTHON has no torch that sees the GPU; set PEER_PYTHON to the venv with torch's CUDA build (see the top of $0)"
. "$HERE/rows.sh"
peer() { "$PEER_PYTHON" "$HERE/peer_on_cuda.py" "$PEERS" "$@"; }
for round in $(seq 1 "$ROUNDS"); do
  for config in small base; do
    for dtype in float32 bfloat16; do
      row "train $config" "ours $dtype" "$PYTHON" -m experiments.bench train --config=$config --dtype=$dtype
    done
    row "train $config" "eager PyTorch" peer torch_peers train --config $config
  done
  for beam in 1 4; do
    group=$([ $beam = 1 ] && echo greedy || echo "beam $beam")
    ours_beam=$([ $beam = 1 ] && echo 0 || echo $beam)
    for dtype in float32 bfloat16; do
      row "$group" "ours $dtype" "$PYTHON" -m experiments.bench decode --config=small --beam_size=$ours_beam --batch_size=32 --decode_len=32 --dtype=$dtype
    done
    row "$group" "HF generate float32" peer torch_peers decode --config small --beam $beam --batch 32 --len 32
    for compute_type in float32 bfloat16 int8; do
      row "$group" "CTranslate2 $compute_type" peer ct2_peer decode --config small --beam $beam --batch 32 --len 32 --compute_type $compute_type
    done
  done
done
