r"""The table and figure of a `sweep.sh` run directory, beside Luong et al. (2015).

  python -m experiments.luong2015_attention.report --out_dir=runs/luong2015_attention \
      --output=experiments/luong2015_attention/results.md --plot=experiments/luong2015_attention/results.png

Reads, for every run NAME of the sweep (`general,attention=luong_general,input_feeding=true,seed=0`,
...): OUT_DIR/NAME/results.json (training's final test evaluation of the last checkpoint: BLEU, chrF,
perplexity, parameters, wall time) and OUT_DIR/NAME/metrics.jsonl (validation NLL at each
evaluation).  Writes one row per attention variant in ROWS order, `not run` where a run has no
results; with --plot, draws the validation NLL by step (left) and test BLEU (right).
"""

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position

from experiments import study_report  # pylint: disable=wrong-import-position
from experiments.convergence import last_fifth_change, trend  # pylint: disable=wrong-import-position
from seq2seq_jax import workdir  # pylint: disable=wrong-import-position

# (run label, score function, input feeding, what Luong et al. 2015 report for it; WMT'14 En-De,
# newstest2014, BLEU before unknown-word replacement, Tables 1 and 4).
ROWS = [
    ("general", "general: h_t^T W_a h_s", "yes", "global (general): perplexity 6.1, BLEU 17.3 (Table 4)"),
    ("general-nofeed", "general", "no", "input feeding adds 1.3 BLEU to global attention (Table 1: 16.8 -> 18.1)"),
    ("dot", "dot: h_t^T h_s", "yes", "global (dot): perplexity 6.1, BLEU 18.6, their best global score (Table 4)"),
    ("concat", "concat: v_a^T tanh(W_a [h_t; h_s])", "yes", "not in Table 4: their concat \"does not yield good performances\" (global perplexity 6.7, a footnote)"),
    ("dot-nofeed", "dot", "no", "(input feeding: see general-nofeed)"),
    ("concat-nofeed", "concat", "no", "(input feeding: see general-nofeed)"),
    ("additive", "Bahdanau's additive score, same decoder", "(own recurrence)", "not in Luong et al.; Bahdanau et al. (2015) eq. 6"),
]


def load_run(out_dir: str, name: str) -> dict | None:
  """One finished run's figures, or None when it has no results.json yet."""
  path = os.path.join(out_dir, name, "results.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    results = json.load(f)
  losses = workdir.metric_history(os.path.join(out_dir, name), "validation/nll")
  before, after = last_fifth_change(losses, results["step"])
  evaluation = results["eval"]
  return {"dataset": results["dataset"], "steps": results["step"], "losses": losses,
          "bleu": evaluation["bleu"], "chrf": evaluation["chrf"], "ppl": evaluation["perplexity"],
          "val_before": before, "val_after": after, "params": results["params"], "wall_min": results["wall_s"] / 60}


def table(runs: dict[str, dict]) -> str:
  header = ("| run | score | input feeding | test BLEU | test chrF | test perplexity | "
            "validation NLL at 80% of steps → last | params | wall min | Luong et al. (2015) |")
  lines = [header, "|" + " --- |" * (header.count("|") - 1)]
  for label, score, feeding, paper in ROWS:
    run = runs.get(label)
    if run is None:
      lines.append(f"| {label} | {score} | {feeding} | not run | | | | | | {paper} |")
      continue
    validation = f"{run['val_before']:.3f} → {run['val_after']:.3f} ({trend(run['val_before'], run['val_after'])})"
    lines.append(f"| {label} | {score} | {feeding} | {run['bleu']:.1f} | {run['chrf']:.1f} | {run['ppl']:.1f} | "
                 f"{validation} | {run['params'] / 1e6:.2f}M | {run['wall_min']:.1f} | {paper} |")
  return "\n".join(lines) + "\n"


def plot(runs: dict[str, dict], path: str):
  labels = [label for label, *_ in ROWS if label in runs]
  steps, dataset = max(runs[label]["steps"] for label in labels), runs[labels[0]]["dataset"]
  fig, (curves, bars) = plt.subplots(1, 2, figsize=(12, 4.8))
  for label in labels:
    points = sorted(runs[label]["losses"].items())
    curves.plot([s for s, _ in points], [l for _, l in points], marker="o",
                linestyle="--" if "nofeed" in label else "-", label=label)
  curves.set(xlabel="training step", ylabel="validation NLL per target token", title="validation loss during training")
  curves.legend(fontsize=8)
  bars.bar(labels, [runs[label]["bleu"] for label in labels],
           color=["tab:grey" if "nofeed" in label else "tab:blue" for label in labels])
  bars.set(xlabel="attention score (grey: without input feeding)", ylabel="test BLEU (sacreBLEU, beam 4)",
           title="test BLEU of the last checkpoint")
  bars.tick_params(axis="x", rotation=30)
  study_report.save_figure(fig, f"Luong et al. (2015) global attention variants on {dataset}, {steps:,} steps each", path)


def one_run_per_label(out_dir: str) -> dict[str, dict]:
  """Run label -> its finished run's figures; a label with several seeds is refused, since each
  row of the table is a single run."""
  by_label = study_report.finished_runs_by_label(out_dir, load_run, rerun="experiments/luong2015_attention/sweep.sh")
  for label, seeds in by_label.items():
    if len(seeds) > 1:
      raise SystemExit(f"{out_dir}: {len(seeds)} finished seeds of {label}; this table has one run per "
                       "variant: move the extra seeds' directories out of the sweep directory")
  return {label: seeds[0] for label, seeds in by_label.items()}


if __name__ == "__main__":
  study_report.main(__doc__.splitlines()[0], one_run_per_label, table, plot, "the validation curves and test BLEU")
