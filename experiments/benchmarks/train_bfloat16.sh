#!/usr/bin/env bash
# Training in bfloat16 beside float32 (ours) and the peer (float32; its kit has no bfloat16 mode),
# interleaved in one run: 3 rounds of `small`, all on 2 cores with tcmalloc, ours on 2 host devices.
#   PEER_PYTHON=/path/to/.peers/bin/python PEERS=../shared/peers bash experiments/benchmarks/train_bfloat16.sh > results.jsonl
set -euo pipefail
PEER_PYTHON=${PEER_PYTHON:-.peers/bin/python}
PEERS=${PEERS:-../shared/peers}
export LD_PRELOAD=${TCMALLOC:-/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4}
for round in 1 2 3; do
  XLA_FLAGS=--xla_force_host_platform_device_count=2 python -m experiments.bench train --config=small --dtype=float32
  XLA_FLAGS=--xla_force_host_platform_device_count=2 python -m experiments.bench train --config=small --dtype=bfloat16
  "$PEER_PYTHON" "$PEERS/torch_peers.py" train --config small
done
