#!/usr/bin/env bash
# Training speed beside the PyTorch peer (eager), interleaved in one run: matmul peaks, 3 rounds of
# `small` (ours on one device, ours data-parallel over 2 host devices, then the peer), 1 round of `base`.
#   PEER_PYTHON=/path/to/.peers/bin/python PEERS=../shared/peers bash experiments/benchmarks/train_vs_peer.sh > results.jsonl
# The peer venv: python -m venv .peers && .peers/bin/pip install torch==2.13.0 transformers==5.24.0
set -euo pipefail
PEER_PYTHON=${PEER_PYTHON:-.peers/bin/python}
PEERS=${PEERS:-../shared/peers}
"$PEER_PYTHON" "$PEERS/torch_peers.py" matmul
python "$PEERS/torch_peers.py" jaxmatmul
for round in 1 2 3; do
  python -m experiments.bench train --config=small
  XLA_FLAGS=--xla_force_host_platform_device_count=2 python -m experiments.bench train --config=small
  "$PEER_PYTHON" "$PEERS/torch_peers.py" train --config small
done
python -m experiments.bench train --config=base
"$PEER_PYTHON" "$PEERS/torch_peers.py" train --config base
