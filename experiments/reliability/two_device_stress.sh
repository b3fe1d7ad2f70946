#!/usr/bin/env bash
# Stress test of training on two host devices: many short steps of a tiny Transformer, with a
# checkpoint every 50 steps and the loss fetched every 10, so that whatever runs beside the
# gradient all-reduce (checkpoint writes, logging, data loading) meets it thousands of times.
# XLA warns after 10 s in a collective and aborts the process (exit status 134) after 60 s, so a
# stall shows as exit 134 instead of a hang.
#
#   experiments/reliability/two_device_stress.sh [STEPS] [WORKDIR] [more experiments.train flags]
#
# Prints the exit status and the wall time; the run's output is in WORKDIR/stress.log.
set -uo pipefail
cd "$(dirname "$0")/../.."
steps=${1:-100000}
workdir=${2:-runs/two_device_stress}
shift $(( $# < 2 ? $# : 2 ))
rm -rf "$workdir" && mkdir -p "$workdir"
export XLA_FLAGS="--xla_force_host_platform_device_count=2 --xla_cpu_collective_call_warn_stuck_timeout_seconds=10 \
--xla_cpu_collective_call_terminate_timeout_seconds=60 --xla_cpu_collective_timeout_seconds=60${XLA_FLAGS:+ $XLA_FLAGS}"
start=$(date +%s)
python -m experiments.train --workdir="$workdir" --num_train_steps="$steps" --d_model=32 --num_heads=2 \
  --d_ff=64 --num_layers=1 --batch_size=32 --length_buckets=32 --warmup_steps=100 \
  --checkpoint_every_steps=50 --log_every_steps=10 --eval_every_steps=1000000 --max_test_examples=64 \
  "$@" > "$workdir/stress.log" 2>&1
status=$?
echo "exit status $status after $(( $(date +%s) - start )) s; last step logged: $(tail -c 300 "$workdir/metrics.jsonl" | grep -o '"step": [0-9]*' | tail -1)"
