#!/usr/bin/env bash
# Luong et al. (2015) global attention at CPU scale on bible_en_es: dot, general and concat scores
# (§3.1, eq. 8), each with and without input feeding (§3.3), over base.flags, plus Bahdanau's additive
# score on the same decoder as the reference row; `general` gets a second seed, the seed-to-seed
# noise the other differences are read against.  Two training processes at a time with one XLA
# thread each (one core each on a 2-core machine), then report.py writes the table and figure.
# Runs are listed in the order they run (a second seed right after its first), so an interrupted
# sweep has the most telling rows first; running the script again resumes the unfinished runs and
# skips the finished ones.
# OUT (default runs/luong2015_attention) is the sweep directory, TABLE and PLOT (default results.md
# and results.png here) the table and figure.  ARCHIVE (default runs.json here; empty: none) keeps the
# finished runs: they are restored into OUT before the sweep (so it trains only the runs the archive
# lacks) and the runs of OUT are added to it before the table is written.  TRAIN=0 trains
# nothing: archives and tables the runs that finished.  Extra arguments go to
# experiments.sweep, e.g. --dry_run.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-runs/luong2015_attention}
archive=${ARCHIVE-experiments/luong2015_attention/runs.json}
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false${XLA_FLAGS:+ $XLA_FLAGS}"
args=(
  --base_flagfile=experiments/luong2015_attention/base.flags --out_dir="$out" --parallel=2
  --runs=general:attention=luong_general,input_feeding=true
  --runs=general-nofeed:attention=luong_general,input_feeding=false
  --runs=dot:attention=luong_dot,input_feeding=true
  --runs=concat:attention=luong_concat,input_feeding=true
  --runs=dot-nofeed:attention=luong_dot,input_feeding=false
  --runs=concat-nofeed:attention=luong_concat,input_feeding=false
  --runs=additive:attention=bahdanau
  --seeds_for=general:2
)
case " $* " in *" --dry_run "*) ;; *) [ -z "$archive" ] || python -m experiments.run_archive restore --archive="$archive" --out_dir="$out";; esac
status=0
[ "${TRAIN:-1}" = 0 ] || python -m experiments.sweep "${args[@]}" "$@" || status=$?
case " $* " in *" --dry_run "*) exit "$status";; esac
[ -z "$archive" ] || python -m experiments.run_archive save --out_dir="$out" --archive="$archive" --metric=validation/nll
python -m experiments.luong2015_attention.report --out_dir="$out" \
  --output="${TABLE:-experiments/luong2015_attention/results.md}" --plot="${PLOT:-experiments/luong2015_attention/results.png}"
exit "$status"
