"""What the studies' reports share: the command line (a sweep directory in, a markdown table and a
figure out), the sweep directory read as finished runs by label, seeds written as mean ± sd, the
shared tables (validation loss by step, BLEU-by-length bucket labels).

  python -m experiments.<study>.report --out_dir=RUNS --output=results.md [--plot=results.png]
"""

import argparse
import collections
import os
import statistics
from typing import Callable, Optional

from seq2seq_jax import workdir


def main(description: str, load_runs: Callable[[str], dict], table: Callable[[dict], str],
         plot: Callable[[dict, str], None], plotted: str) -> None:
  """Parses --out_dir, --output and --plot; writes table(load_runs(out_dir)) to --output (and prints
  it) and draws plot(runs, --plot) when asked.  `plotted` says what the figure shows."""
  parser = argparse.ArgumentParser(description=description)
  parser.add_argument("--out_dir", required=True)
  parser.add_argument("--output", required=True, help="Markdown file to write the table to.")
  parser.add_argument("--plot", help=f"PNG file to draw {plotted} in.")
  args = parser.parse_args()
  runs = load_runs(args.out_dir)
  text = table(runs)
  if args.plot:
    plot(runs, args.plot)
  with open(args.output, "w") as f:
    f.write(text)
  print(text, end="")


def length_bucket_label(bucket: dict) -> str:
  """'11-20' for a bucket of `bleu_by_source_length` (source lengths in words), '51+' for the open last one."""
  return f"{bucket['min_words']}-{bucket['max_words']}" if bucket["max_words"] else f"{bucket['min_words']}+"


def validation_loss_table(run_dirs: dict[str, str]) -> list[str]:
  """The lines of a markdown table of the validation negative log-likelihood per token at every
  evaluation, a column per run (header -> run directory): its header, then a row per step."""
  losses = {header: workdir.metric_history(run_dir, "validation/nll") for header, run_dir in run_dirs.items()}
  table = ["| validation NLL per token, step | " + " | ".join(losses) + " |",
           "| --- | " + " | ".join("---" for _ in losses) + " |"]
  for step in sorted({step for by_step in losses.values() for step in by_step}):
    table.append(f"| {step} | " + " | ".join(f"{by_step[step]:.3f}" if step in by_step else ""
                                              for by_step in losses.values()) + " |")
  return table


def finished_run_names(out_dir: str) -> list[str]:
  """The run directories of a sweep (names with `seed=`) that have a results.json, sorted."""
  return sorted(name for name in os.listdir(out_dir)
                if "seed=" in name and os.path.exists(os.path.join(out_dir, name, "results.json")))


def seed_of(run_name: str) -> str:
  """The seed of a sweep's run name: `1` of `A-h32,num_heads=32,seed=1`."""
  return run_name.rsplit("seed=", 1)[-1]


def finished_runs_by_label(out_dir: str, load_run: Callable[[str, str], Optional[dict]],
                           rerun: str) -> dict[str, list[dict]]:
  """Run label (the run name before its first comma: `base` of `base,seed=0`) -> the figures
  load_run(out_dir, name) gives for each of its seeds, over the run directories of a sweep; a run
  for which load_run returns None (unfinished) is left out.  A sweep directory that is missing or
  has no finished run stops with a line naming `rerun`, the command that makes one."""
  if not os.path.isdir(out_dir):
    raise SystemExit(f"{out_dir}: no such sweep directory; run {rerun}")
  by_label = collections.defaultdict(list)
  for name in finished_run_names(out_dir):
    run = load_run(out_dir, name)
    if run is not None:
      by_label[name.split(",")[0]].append(run)
  if not by_label:
    raise SystemExit(f"{out_dir}: no finished run (no */results.json); run {rerun}")
  return dict(by_label)


def mean_and_spread(values: list[float], digits: int) -> str:
  """One seed: its value; several: mean ± sample standard deviation, `digits` decimals."""
  if len(values) == 1:
    return f"{values[0]:.{digits}f}"
  return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def seed_bars(axes, by_label: dict[str, list[dict]], labels: list[str], key: str, color) -> None:
  """One bar per label on `axes`: the mean of run[key] over its seeds, their sample standard
  deviation as the error bar (none for one seed)."""
  values = [[run[key] for run in by_label[label]] for label in labels]
  axes.bar(labels, [statistics.mean(v) for v in values],
           yerr=[statistics.stdev(v) if len(v) > 1 else 0 for v in values], capsize=4, color=color)


def machines(by_label: dict[str, list[dict]], order: list[str]) -> str:
  """The line under a study's table saying where its runs ran: for each machine (results.json's
  `hardware` and `finished` date, in run["hardware"] and run["finished"]) the labels of the runs it
  ran, in `order`, with their number of seeds where more than one, or which seeds where a label's
  seeds ran on different machines (seed N is the run name's `seed=N`)."""
  seeds_on = collections.defaultdict(lambda: collections.defaultdict(list))
  for label in order:
    for run in by_label.get(label, []):
      machine = (f"{run['hardware']}, finished {run['finished']}" if run.get("hardware")
                 else "not recorded in results.json (see the provenance table)")
      seeds_on[machine][label].append(seed_of(run["name"]))

  def named(label, seeds):
    if len(seeds) == len(by_label[label]):
      return label + (f" ({len(seeds)} seeds)" if len(seeds) > 1 else "")
    return label + f" (seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)})"

  parts = [f"{machine}: " + ", ".join(named(label, seeds) for label, seeds in labels.items())
           for machine, labels in sorted(seeds_on.items())]
  return "Machines: " + "; ".join(parts) + ".\n"


def save_figure(fig, title: str, path: str) -> None:
  """The figure with its title (the study, dataset and steps) as a PNG at `path`."""
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
