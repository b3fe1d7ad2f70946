#!/usr/bin/env bash
# The beam-4 float32 pair of vs_peers.sh alone: `python -m experiments.bench decode --beam_size=4` as
# a user runs it (nothing set) against CTranslate2 float32 (shared/peers/ct2_peer.py), interleaved in
# ROUNDS rounds (default 5), one JSON line per measurement; table.py gives medians, ranges and
# per-round ratios.
#   PEER_PYTHON=.peers/bin/python PEERS=../shared/peers bash experiments/benchmarks/beam4_vs_ct2.sh > beam4.jsonl
#   python experiments/benchmarks/table.py beam4.jsonl
set -euo pipefail
ROUNDS=${ROUNDS:-5} ONLY='^beam 4: (ours float32, default command|CTranslate2 float32)$' \
  exec bash "$(dirname "$0")/vs_peers.sh"
