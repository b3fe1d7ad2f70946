#!/usr/bin/env bash
# The speed table of the README: our commands as a user runs them (no environment set), the tuned
# variants beside them, and the peers (eager PyTorch for training; HF `generate` and CTranslate2 for
# decoding), interleaved in ROUNDS rounds (default 3), one JSON line per measurement.
#   PEER_PYTHON=.peers/bin/python PEERS=../shared/peers bash experiments/benchmarks/vs_peers.sh > vs_peers.jsonl
#   python experiments/benchmarks/table.py vs_peers.jsonl     # medians [per-round min-max] and ratios
# The peer venv: python -m venv .peers && .peers/bin/pip install torch==2.13.0 transformers==5.24.0 ctranslate2
# tcmalloc (what experiments.train and bench train preload when it is installed): apt-get install libtcmalloc-minimal4
# Every line gets "group", "row" and "round"; our lines also say the XLA_FLAGS, LD_PRELOAD and
# allocator they ran with.  Rows (model `small`: shared/peers/README.md):
#   train:  ours as `python -m experiments.bench train` runs with nothing set (one device; tcmalloc
#           where installed); ours with glibc's malloc (LD_PRELOAD set to nothing); ours on two host
#           devices; ours in bfloat16 on two host devices; the peer as its kit runs it (glibc) and
#           with tcmalloc.
#   greedy, beam 4 (batch 32, 32 source tokens, exactly 32 new tokens): ours as `experiments.bench
#           decode` runs with nothing set (one host device per core) in float32 and bfloat16; HF
#           generate float32; CTranslate2 float32; and for beam 4 CTranslate2 int8 (its int8_float32
#           path; bfloat16 is not supported by CTranslate2 on a CPU without AVX512-BF16 kernels).
# ONLY (rows.sh) runs the rows it matches, e.g. beam4_vs_ct2.sh.
# SMOKE=1 runs the smallest sizes (1 timed step or call) to check that the script works; its
# figures mean nothing.
set -euo pipefail
ROUNDS=${ROUNDS:-3}
PEER_PYTHON=${PEER_PYTHON:-.peers/bin/python}
PEERS=${PEERS:-../shared/peers}
HERE=$(dirname "$0")
TCMALLOC=${TCMALLOC:-$(python -c 'from experiments import allocator; print(allocator.find_tcmalloc() or "")')}
TWO=--xla_force_host_platform_device_count=2
if [ "${SMOKE:-0}" = 1 ]; then
  OUR_TRAIN=(--steps=1 --warmup=1) PEER_TRAIN=(--steps 1 --warmup 1)
  OUR_DECODE=(--batch_size=2 --decode_len=2 --repeats=1) PEER_DECODE=(--batch 2 --len 2 --reps 1) N=64
else
  OUR_TRAIN=() PEER_TRAIN=()
  OUR_DECODE=(--batch_size=32 --decode_len=32) PEER_DECODE=(--batch 32 --len 32) N=2048
fi
DEFAULT=(env -u XLA_FLAGS -u LD_PRELOAD -u SEQ2SEQ_JAX_TCMALLOC)  # what a user gets with nothing set

. "$HERE/rows.sh"

round=0
row matmul "torch f32 ${N}x${N}" "$PEER_PYTHON" "$PEERS/torch_peers.py" matmul --n $N
row matmul "jax f32 ${N}x${N}" python "$PEERS/torch_peers.py" jaxmatmul --n $N
for round in $(seq 1 "$ROUNDS"); do
  row train "ours, default command" "${DEFAULT[@]}" python -m experiments.bench train --config=small "${OUR_TRAIN[@]}"
  row train "ours, glibc malloc" "${DEFAULT[@]}" LD_PRELOAD= python -m experiments.bench train --config=small "${OUR_TRAIN[@]}"
  row train "ours, 2 host devices" "${DEFAULT[@]}" XLA_FLAGS=$TWO python -m experiments.bench train --config=small "${OUR_TRAIN[@]}"
  row train "ours, bfloat16, 2 host devices" "${DEFAULT[@]}" XLA_FLAGS=$TWO python -m experiments.bench train --config=small --dtype=bfloat16 "${OUR_TRAIN[@]}"
  row train "eager PyTorch" "${DEFAULT[@]}" "$PEER_PYTHON" "$PEERS/torch_peers.py" train --config small "${PEER_TRAIN[@]}"
  if [ -n "$TCMALLOC" ]; then
    row train "eager PyTorch, tcmalloc" "${DEFAULT[@]}" LD_PRELOAD="$TCMALLOC" "$PEER_PYTHON" "$PEERS/torch_peers.py" train --config small "${PEER_TRAIN[@]}"
  fi
  for beam in 1 4; do
    group=$([ $beam = 1 ] && echo greedy || echo "beam $beam")
    ours_beam=$([ $beam = 1 ] && echo 0 || echo $beam)
    row "$group" "ours float32, default command" "${DEFAULT[@]}" python -m experiments.bench decode --config=small --beam_size=$ours_beam "${OUR_DECODE[@]}"
    row "$group" "ours bfloat16" "${DEFAULT[@]}" python -m experiments.bench decode --config=small --beam_size=$ours_beam --dtype=bfloat16 "${OUR_DECODE[@]}"
    row "$group" "HF generate float32" "${DEFAULT[@]}" "$PEER_PYTHON" "$PEERS/torch_peers.py" decode --config small --beam $beam "${PEER_DECODE[@]}"
    row "$group" "CTranslate2 float32" "${DEFAULT[@]}" "$PEER_PYTHON" "$PEERS/ct2_peer.py" decode --config small --beam $beam --compute_type float32 "${PEER_DECODE[@]}"
    if [ $beam != 1 ]; then
      row "$group" "CTranslate2 int8" "${DEFAULT[@]}" "$PEER_PYTHON" "$PEERS/ct2_peer.py" decode --config small --beam $beam --compute_type int8 "${PEER_DECODE[@]}"
    fi
  done
done
