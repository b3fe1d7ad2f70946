#!/usr/bin/env bash
# The beam-4 float32 pair alone: `python -m experiments.bench decode --beam_size=4` as a user runs it
# (nothing set) against CTranslate2 float32 (shared/peers/ct2_peer.py), interleaved in ROUNDS rounds
# (default 5), one JSON line per measurement; table.py gives medians, ranges and per-round ratios.
#   PEER_PYTHON=.peers/bin/python PEERS=../shared/peers bash experiments/benchmarks/beam4_vs_ct2.sh > beam4.jsonl
#   python experiments/benchmarks/table.py beam4.jsonl
set -euo pipefail
ROUNDS=${ROUNDS:-5}
PEER_PYTHON=${PEER_PYTHON:-.peers/bin/python}
PEERS=${PEERS:-../shared/peers}
HERE=$(dirname "$0")
DEFAULT=(env -u XLA_FLAGS -u LD_PRELOAD -u SEQ2SEQ_JAX_TCMALLOC)  # what a user gets with nothing set
. "$HERE/rows.sh"
for round in $(seq 1 "$ROUNDS"); do
  row "beam 4" "ours float32, default command" "${DEFAULT[@]}" python -m experiments.bench decode --config=small --beam_size=4 --batch_size=32 --decode_len=32
  row "beam 4" "CTranslate2 float32" "${DEFAULT[@]}" "$PEER_PYTHON" "$PEERS/ct2_peer.py" decode --config small --beam 4 --compute_type float32 --batch 32 --len 32
done
