#!/usr/bin/env bash
# Trains one CMUdict G2P recipe in the environment its result in README.md was measured with.
#
#   experiments/g2p_cmudict/run.sh RECIPE [WORKDIR] [more experiments.train flags]
#   experiments/g2p_cmudict/run.sh transformer_1h_relative_cross            # -> runs/g2p_transformer_1h_relative_cross
#
# RECIPE is a flagfile name without .flags.  The environment per recipe (glibc's malloc unless it
# says tcmalloc: LD_PRELOAD set to nothing, so that experiments.train does not preload tcmalloc):
#   transformer_1h, transformer_1h_cosine*, rnn_*_1h   one device, XLA's defaults (both cores)
#   transformer_1h_2dev, transformer_1h_2dev_dropout02 two host devices (data parallel, one per core)
#   transformer_1h_2dev_tcmalloc, transformer_1h_relative*
#                                                      two host devices and tcmalloc
#                                                      (apt-get install -y libtcmalloc-minimal4)
#   [g014b2b_]rnn_seq2seq_1core, [g014b2b_]rnn_attention_1core
#                                                      pinned to one core (CORE, default 0 and 1),
#                                                      one XLA thread; the two ran side by side
# On two host devices XLA's collective timeouts are 60 s, so that a stalled all-reduce aborts the
# process (exit status 134) instead of hanging; this script then runs the same command again, which
# resumes from the latest checkpoint and ends exactly where an uninterrupted run ends.
set -euo pipefail
cd "$(dirname "$0")/../.."
recipe=${1:?usage: experiments/g2p_cmudict/run.sh RECIPE [WORKDIR] [flags...]}
recipe=${recipe%.flags}
shift
workdir=runs/g2p_$recipe
if [ $# -gt 0 ] && [[ $1 != --* ]]; then workdir=$1; shift; fi
flagfile=experiments/g2p_cmudict/$recipe.flags
[ -f "$flagfile" ] || { echo "no such recipe: $flagfile" >&2; exit 2; }
TCMALLOC=${TCMALLOC:-/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4}
TWO_DEVICES="--xla_force_host_platform_device_count=2 --xla_cpu_collective_call_terminate_timeout_seconds=60 --xla_cpu_collective_timeout_seconds=60"
train=(python -m experiments.train "--flagfile=$flagfile" "--workdir=$workdir" "$@")
retries=0
export LD_PRELOAD=${LD_PRELOAD-}  # unless the user set it
case $recipe in
  transformer_1h_2dev|transformer_1h_2dev_dropout02)
    export XLA_FLAGS="$TWO_DEVICES${XLA_FLAGS:+ $XLA_FLAGS}"; retries=5 ;;
  transformer_1h_2dev_tcmalloc|transformer_1h_relative|transformer_1h_relative_cross)
    [ -f "$TCMALLOC" ] || { echo "tcmalloc not found at $TCMALLOC (apt-get install -y libtcmalloc-minimal4, or set TCMALLOC)" >&2; exit 2; }
    export LD_PRELOAD="$TCMALLOC" XLA_FLAGS="$TWO_DEVICES${XLA_FLAGS:+ $XLA_FLAGS}"; retries=5 ;;
  *rnn_seq2seq_1core|*rnn_attention_1core)
    core=${CORE:-$([[ $recipe = *rnn_seq2seq_1core ]] && echo 0 || echo 1)}
    export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false${XLA_FLAGS:+ $XLA_FLAGS}"
    train=(taskset -c "$core" "${train[@]}") ;;
esac
for attempt in $(seq 0 "$retries"); do
  status=0
  "${train[@]}" || status=$?
  [ "$status" -ne 134 ] && exit "$status"
  echo "run.sh: XLA aborted the run (attempt $((attempt + 1))); resuming from the latest checkpoint" >&2
done
exit 134
