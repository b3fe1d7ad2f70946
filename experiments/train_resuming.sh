#!/bin/bash
# Runs `python -m experiments.train "$@"` again from its latest checkpoint whenever XLA aborts it
# (exit status 134, SIGABRT), at most 5 times; any other exit status is returned as it is.
#
# Why: on two host devices (XLA_FLAGS=--xla_force_host_platform_device_count=2) XLA's CPU runtime
# has twice stopped a one-hour G2P run at a gradient all-reduce that one device never reached
# (experiments/g2p_cmudict/README.md).  With a short collective timeout XLA aborts the process
# instead of waiting, and because a resumed run ends exactly as an uninterrupted one
# (tests/test_train_entry_point.py), restarting it loses only the steps since the last checkpoint.
#
#   XLA_FLAGS="--xla_force_host_platform_device_count=2 --xla_cpu_collective_call_terminate_timeout_seconds=60 \
#       --xla_cpu_collective_timeout_seconds=60" experiments/train_resuming.sh --workdir=DIR --flagfile=F
for attempt in 1 2 3 4 5 6; do
  echo "train_resuming: attempt $attempt at $(date -u +%FT%TZ)" >&2
  python -m experiments.train "$@"
  status=$?
  [ "$status" -ne 134 ] && exit "$status"
done
echo "train_resuming: aborted 6 times; giving up" >&2
exit 134
