#!/usr/bin/env bash
# Vaswani et al. (2017) Table 3 to convergence on cmudict_g2p: named runs over g2p_base.flags, two
# training processes at a time with one XLA thread each (one core each on a 2-core machine), then
# the last 5 checkpoints of every finished run averaged and evaluated on the test words, and the
# table written (see README.md).  Extra arguments go to experiments.sweep, e.g. --dry_run.
# Rows are listed in the order they run, so an interrupted sweep has the most telling rows first;
# rows whose WER came within 0.5 points of the base row's have a second seed (--seeds_for) to
# tell a trend from seed noise;
# running the script again resumes the unfinished runs and skips the finished ones.
# OUT (default runs/vaswani2017_table3_g2p) is the sweep directory, TABLE and PLOT (default
# g2p_results.md and g2p_results.png here) the table and figure written; EVAL_MAX_EXAMPLES=N
# decodes only N test words of the averages (smoke tests).  ARCHIVE (default g2p_runs.json here;
# empty: none) keeps the finished runs: they are restored into OUT before the sweep (so it trains
# only the rows the archive lacks) and the runs of OUT are added to it before the table is written.
# TRAIN=0 trains nothing: averages, tests, archives and tables the runs that finished.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-runs/vaswani2017_table3_g2p}
archive=${ARCHIVE-experiments/vaswani2017_table3/g2p_runs.json}
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false${XLA_FLAGS:+ $XLA_FLAGS}"
args=(
  --base_flagfile=experiments/vaswani2017_table3/g2p_base.flags --out_dir="$out" --parallel=2
  --runs=base: --seeds_for=base:2
  --runs=C-d256:d_model=256        # (C) wider model, h 8 (d_k 32)
  --runs=C-N4:num_layers=4         # (C) more layers
  --runs=A-h1:num_heads=1          # (A) one head, d_k 128
  --runs=D-drop0:dropout=0.0       # (D) no residual/attention dropout
  --runs=C-N1:num_layers=1         # (C) fewer layers
  --runs=E-learned:positional=learned  # (E) learned positional embeddings
  --runs=D-ls0:label_smoothing=0.0 --seeds_for=D-ls0:2  # (D) no label smoothing
  --runs=A-h32:num_heads=32 --seeds_for=A-h32:2  # (A) 32 heads, d_k 4
  --runs=C-ff1024:d_ff=1024        # (C) wider feed-forward
  --runs=D-drop0.2:dropout=0.2     # (D) more dropout
  --runs=B-dk4:key_size=4          # (B) smaller attention key size alone (h 8)
  --runs=A-h4:num_heads=4          # (A) 4 heads, d_k 32
  --runs=A-h16:num_heads=16 --seeds_for=A-h16:2  # (A) 16 heads, d_k 8
  --runs=B-dk8:key_size=8          # (B) half the attention key size
  --runs=D-ls0.2:label_smoothing=0.2 --seeds_for=D-ls0.2:2  # (D) more label smoothing
  --runs=C-ff256:d_ff=256          # (C) narrower feed-forward
  --runs=C-d64:d_model=64          # (C) narrower model, h 8 (d_k 8)
)
case " $* " in *" --dry_run "*) ;; *) [ -z "$archive" ] || python -m experiments.run_archive restore --archive="$archive" --out_dir="$out";; esac
status=0
[ "${TRAIN:-1}" = 0 ] || python -m experiments.sweep "${args[@]}" "$@" || status=$?
case " $* " in *" --dry_run "*) exit "$status";; esac
# The paper's models are the average of their last 5 checkpoints (§6.1): average each finished run's
# last 5 and decode the test words with the base row's beam search.
mkdir -p "$out/averaged"
for results in "$out"/*/results.json; do
  run=$(dirname "$results"); name=$(basename "$run")
  [ -f "$out/averaged/$name.test.json" ] && continue
  rm -rf "$out/averaged/$name"
  python -m experiments.average --workdir="$run" --last=5 --output_workdir="$out/averaged/$name"
  python -m experiments.evaluate --workdir="$out/averaged/$name" --split=test --beam_size=4 --length_penalty=0.6 \
    --max_examples="${EVAL_MAX_EXAMPLES:-0}" --output="$out/averaged/$name.test.json" > /dev/null
done
[ -z "$archive" ] || python -m experiments.run_archive save --out_dir="$out" --archive="$archive" \
  --metric=validation/nll --also='averaged/{name}.test.json'
python -m experiments.vaswani2017_table3.g2p_report --out_dir="$out" --output="${TABLE:-experiments/vaswani2017_table3/g2p_results.md}" \
  --plot="${PLOT:-experiments/vaswani2017_table3/g2p_results.png}"
exit "$status"
