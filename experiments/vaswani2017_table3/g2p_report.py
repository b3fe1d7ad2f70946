r"""The Table 3 of a `g2p_sweep.sh` run directory, beside the paper's rows.

  python -m experiments.vaswani2017_table3.g2p_report --out_dir=runs/vaswani2017_table3_g2p \
      --output=experiments/vaswani2017_table3/g2p_results.md

Reads, for every run NAME of the sweep (`base,seed=0`, `A-h1,num_heads=1,seed=0`, ...):
OUT_DIR/NAME/results.json (training's final test evaluation: perplexity, WER of the last
checkpoint, parameters, wall time), OUT_DIR/NAME/metrics.jsonl (validation NLL at each evaluation)
and OUT_DIR/averaged/NAME.test.json (experiments.evaluate of the average of the last checkpoints).
Writes one row per variation of the paper's Table 3, in the paper's order; a variation without a
finished run is written as `not run`.  Several seeds: mean ± sample standard deviation.  With
--plot, also draws each finished run's validation NLL by step (left) and the test WER of its
averaged checkpoints (right, one bar per row, the base row's seeds as its error bar).
"""

import itertools
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position

from experiments import study_report  # pylint: disable=wrong-import-position
from experiments.convergence import last_fifth_change, trend  # pylint: disable=wrong-import-position
from seq2seq_jax import workdir  # pylint: disable=wrong-import-position

# (our run label, our change, the paper's change, paper dev perplexity, paper dev BLEU, paper params)
# in the order of the paper's Table 3 (Vaswani et al. 2017, newstest2013); base: N=2, d_model=128,
# d_ff=512, h=8, d_k=16 here against N=6, d_model=512, d_ff=2048, h=8, d_k=64 there.
ROWS = [
    ("base", "base (N=2, d 128, d_ff 512, h 8, d_k 16)", "base", "4.92", "25.8", "65M"),
    ("A-h1", "(A) h=1, d_k=128", "(A) h=1, d_k=512", "5.29", "24.9", ""),
    ("A-h4", "(A) h=4, d_k=32", "(A) h=4, d_k=128", "5.00", "25.5", ""),
    ("A-h16", "(A) h=16, d_k=8", "(A) h=16, d_k=32", "4.91", "25.8", ""),
    ("A-h32", "(A) h=32, d_k=4", "(A) h=32, d_k=16", "5.01", "25.4", ""),
    ("B-dk4", "(B) d_k=4 (1/4)", "(B) d_k=16 (1/4)", "5.16", "25.1", "58M"),
    ("B-dk8", "(B) d_k=8 (1/2)", "(B) d_k=32 (1/2)", "5.01", "25.4", "60M"),
    ("C-N1", "(C) N=1 (fewer)", "(C) N=2", "6.11", "23.7", "36M"),
    ("", "", "(C) N=4", "5.19", "25.3", "50M"),
    ("C-N4", "(C) N=4 (more)", "(C) N=8", "4.88", "25.5", "80M"),
    ("C-d64", "(C) d_model=64 (1/2)", "(C) d_model=256", "5.75", "24.5", "28M"),
    ("C-d256", "(C) d_model=256 (2x)", "(C) d_model=1024", "4.66", "26.0", "168M"),
    ("C-ff256", "(C) d_ff=256 (1/2)", "(C) d_ff=1024", "5.12", "25.4", "53M"),
    ("C-ff1024", "(C) d_ff=1024 (2x)", "(C) d_ff=4096", "4.75", "26.2", "90M"),
    ("D-drop0", "(D) dropout 0.0", "(D) P_drop=0.0", "5.77", "24.6", ""),
    ("D-drop0.2", "(D) dropout 0.2", "(D) P_drop=0.2", "4.95", "25.5", ""),
    ("D-ls0", "(D) label smoothing 0.0", "(D) eps_ls=0.0", "4.67", "25.3", ""),
    ("D-ls0.2", "(D) label smoothing 0.2", "(D) eps_ls=0.2", "5.47", "25.7", ""),
    ("E-learned", "(E) learned positions", "(E) positional embedding", "4.92", "25.7", ""),
]


def load_run(out_dir: str, name: str) -> dict | None:
  """One finished run's figures, or None when it has no results or no averaged evaluation yet."""
  run_dir = os.path.join(out_dir, name)
  averaged = os.path.join(out_dir, "averaged", f"{name}.test.json")
  if not (os.path.exists(os.path.join(run_dir, "results.json")) and os.path.exists(averaged)):
    return None
  with open(os.path.join(run_dir, "results.json")) as f:
    results = json.load(f)
  with open(averaged) as f:
    evaluation = json.load(f)
  losses = workdir.metric_history(run_dir, "validation/nll")  # without label smoothing: rows compare
  before, after = last_fifth_change(losses, results["step"])
  return {"name": name, "dataset": results["dataset"], "losses": losses,
          "wer_avg": 100 * evaluation["wer"], "per_avg": 100 * evaluation["per"], "wer_last": 100 * results["eval"]["wer"], "ppl": results["eval"]["perplexity"],
          "val_before": before, "val_after": after, "params": results["params"],
          "wall_min": results["wall_s"] / 60, "steps": results["step"],
          "hardware": results.get("hardware"), "finished": results.get("finished")}


def runs_by_label(out_dir: str) -> dict[str, list[dict]]:
  """Row label -> its finished seeds' figures."""
  return study_report.finished_runs_by_label(out_dir, load_run, rerun="experiments/vaswani2017_table3/g2p_sweep.sh")


def row(label: str, ours: str, paper: tuple[str, ...], runs: list[dict]) -> str:
  if not label:
    return f"| | (no counterpart at N=2) | | | | | | | | | {' | '.join(paper)} |"
  if not runs:
    return f"| {label} | {ours} | not run | | | | | | | | {' | '.join(paper)} |"
  column = lambda key, digits: study_report.mean_and_spread([r[key] for r in runs], digits)
  validation = " / ".join(f"{r['val_before']:.3f} → {r['val_after']:.3f} ({trend(r['val_before'], r['val_after'])})"
                         for r in runs)
  return (f"| {label} | {ours} | {len(runs)} | {column('wer_avg', 2)} | {column('per_avg', 2)} | "
          f"{column('wer_last', 2)} | {column('ppl', 3)} | {validation} | "
          f"{runs[0]['params'] / 1e6:.2f}M | {column('wall_min', 1)} | {' | '.join(paper)} |")


def table(by_label: dict[str, list[dict]]) -> str:
  header = ("| row | ours: change | seeds | test WER %, last 5 averaged | test PER %, last 5 averaged | "
            "test WER %, last checkpoint | test PPL, last checkpoint | validation NLL at 80% of steps → last validation | "
            "params | wall min/run | paper: change | paper PPL (dev) | paper BLEU (dev) | paper params |")
  lines = [header, "|" + " --- |" * (header.count("|") - 1)]
  lines += [row(label, ours, paper, by_label.get(label, [])) for label, ours, *paper in ROWS]
  return "\n".join(lines) + "\n\n" + study_report.machines(by_label, [label for label, *_ in ROWS if label])


def plot(by_label: dict[str, list[dict]], path: str):
  labels = [label for label, *_ in ROWS if by_label.get(label)]
  runs = [run for label in labels for run in by_label[label]]
  steps, dataset = max(run["steps"] for run in runs), runs[0]["dataset"]
  fig, (curves, bars) = plt.subplots(1, 2, figsize=(13, 5))
  colours = itertools.cycle(plt.get_cmap("tab20").colors)  # one per row; a row's seeds share it
  for label in labels:
    colour, several = next(colours), len(by_label[label]) > 1
    for i, run in enumerate(by_label[label]):
      points = sorted(run["losses"].items())
      curves.plot([s for s, _ in points], [l for _, l in points], marker=".", color=colour,
                  linestyle="--" if i else "-", linewidth=2.5 if label == "base" else 1,
                  label=label + (f" seed {study_report.seed_of(run['name'])}" if several else ""))
  curves.axvspan(0.8 * steps, steps, color="grey", alpha=0.15, label="last 20% of steps")
  curves.set(xlabel="training step", ylabel="validation NLL per target token",
             title="validation loss during training")
  late = [loss for run in runs for step, loss in run["losses"].items() if step >= 0.2 * steps]
  curves.set_ylim(0.97 * min(late), 1.03 * max(late))  # the first evaluations are far above the rest
  curves.legend(fontsize=7, ncol=2)
  study_report.seed_bars(bars, by_label, labels, "wer_avg", "tab:blue")
  bars.set(xlabel="Table 3 row (one change from base)", ylabel="test WER % (last 5 checkpoints averaged)",
           title="test word error rate")
  bars.tick_params(axis="x", rotation=45)
  study_report.save_figure(fig, f"Vaswani et al. (2017) Table 3 variations on {dataset}, {steps:,} steps each", path)


if __name__ == "__main__":
  study_report.main(__doc__.splitlines()[0], runs_by_label, table, plot, "the validation curves and test WER")
