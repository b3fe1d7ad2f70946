#!/usr/bin/env bash
# Training speed beside the PyTorch peer (eager), interleaved in one run: matmul peaks, 3 rounds of
# `small`, 1 round of `base`.  Each round: ours on one device and data-parallel over 2 host
# devices, with glibc's malloc and with tcmalloc (LD_PRELOAD), then the peer with glibc's malloc
# and with tcmalloc.  Every JSON line says which allocator it ran with ("ld_preload"; the peer's
# lines get the field added here).
#   PEER_PYTHON=/path/to/.peers/bin/python PEERS=../shared/peers bash experiments/benchmarks/train_vs_peer.sh > results.jsonl
# The peer venv: python -m venv .peers && .peers/bin/pip install torch==2.13.0 transformers==5.24.0
# tcmalloc: apt-get install -y libtcmalloc-minimal4
set -euo pipefail
PEER_PYTHON=${PEER_PYTHON:-.peers/bin/python}
PEERS=${PEERS:-../shared/peers}
TCMALLOC=${TCMALLOC:-/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4}
TWO=--xla_force_host_platform_device_count=2
peer() {  # peer ARGS... with LD_PRELOAD from the environment; adds "ld_preload" to its JSON line
  "$PEER_PYTHON" "$PEERS/torch_peers.py" "$@" | python -c \
    'import json, os, sys; d = json.loads(sys.stdin.read()); d["ld_preload"] = os.environ.get("LD_PRELOAD", ""); print(json.dumps(d))'
}
peer matmul
python "$PEERS/torch_peers.py" jaxmatmul
for round in 1 2 3; do
  LD_PRELOAD= python -m experiments.bench train --config=small  # glibc: bench train would preload tcmalloc
  LD_PRELOAD= XLA_FLAGS=$TWO python -m experiments.bench train --config=small
  LD_PRELOAD=$TCMALLOC python -m experiments.bench train --config=small
  LD_PRELOAD=$TCMALLOC XLA_FLAGS=$TWO python -m experiments.bench train --config=small
  peer train --config small
  LD_PRELOAD=$TCMALLOC peer train --config small
done
LD_PRELOAD=$TCMALLOC python -m experiments.bench train --config=base
peer train --config base
LD_PRELOAD=$TCMALLOC peer train --config base
