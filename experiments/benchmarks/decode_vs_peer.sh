#!/usr/bin/env bash
# Decoding speed beside the PyTorch/HuggingFace peer, interleaved in one run (3 rounds).
#   PEER_PYTHON=/path/to/.peers/bin/python PEERS=../shared/peers bash experiments/benchmarks/decode_vs_peer.sh > results.jsonl
# The peer venv: python -m venv .peers && .peers/bin/pip install torch==2.13.0 transformers==5.24.0
# Per round and beam (greedy, 4):
#   - the peer as its kit runs it (float32), and the same peer with its model cast to bfloat16
#     (peer_decode_bfloat16.py), so that each of our dtypes has a like-for-like peer;
#   - ours in float32 on one device (--xla_force_host_platform_device_count=1, its ops on XLA's
#     thread pool) and data-parallel over two host devices (what experiments.decode does by
#     default), one per core, each running its ops on its own thread (--xla_cpu_multi_thread_eigen=false);
#   - ours in bfloat16 (--dtype=bfloat16: bfloat16 operands, float32 sums) on two host devices.
set -euo pipefail
PEER_PYTHON=${PEER_PYTHON:-.peers/bin/python}
PEERS=${PEERS:-../shared/peers}
HERE=$(dirname "$0")
TWO_DEVICES="--xla_force_host_platform_device_count=2 --xla_cpu_multi_thread_eigen=false"
"$PEER_PYTHON" "$PEERS/torch_peers.py" matmul
python "$PEERS/torch_peers.py" jaxmatmul
for round in 1 2 3; do
  for beam in 1 4; do
    "$PEER_PYTHON" "$PEERS/torch_peers.py" decode --config small --beam $beam --batch 32 --len 32
    "$PEER_PYTHON" "$HERE/peer_decode_bfloat16.py" "$PEERS" decode --config small --beam $beam --batch 32 --len 32
    ours=$([ $beam = 1 ] && echo 0 || echo $beam)
    XLA_FLAGS=--xla_force_host_platform_device_count=1 python -m experiments.bench decode --config=small --beam_size=$ours --batch_size=32 --decode_len=32
    XLA_FLAGS="$TWO_DEVICES" python -m experiments.bench decode --config=small --beam_size=$ours --batch_size=32 --decode_len=32
    XLA_FLAGS="$TWO_DEVICES" python -m experiments.bench decode --config=small --beam_size=$ours --batch_size=32 --decode_len=32 --dtype=bfloat16
  done
done
