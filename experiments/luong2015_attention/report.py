r"""The table and figure of a `sweep.sh` run directory, beside Luong et al. (2015).

  python -m experiments.luong2015_attention.report --out_dir=runs/luong2015_attention \
      --output=experiments/luong2015_attention/results.md --plot=experiments/luong2015_attention/results.png

Reads, for every run NAME of the sweep (`general,attention=luong_general,input_feeding=true,seed=0`,
...): OUT_DIR/NAME/results.json (training's final test evaluation of the last checkpoint: BLEU, chrF,
perplexity, parameters, wall time) and OUT_DIR/NAME/metrics.jsonl (validation NLL at each
evaluation; base.flags validates every fifth of the steps, the last time at 80%, so the table gives
the trend between the last two validations, not a last-fifth convergence test).  Writes one row per attention variant in ROWS order, `not run` where a run has no
results; several seeds of a variant: mean ± sample standard deviation.  With --plot, draws the
validation NLL by step (left) and test BLEU (right, the seeds' spread as error bars).
"""

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position

from experiments import study_report  # pylint: disable=wrong-import-position
from experiments.convergence import last_two_validations, trend  # pylint: disable=wrong-import-position
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
  (step_before, before), (step_after, after) = last_two_validations(losses)
  evaluation = results["eval"]
  return {"name": name, "dataset": results["dataset"], "steps": results["step"], "losses": losses,
          "bleu": evaluation["bleu"], "chrf": evaluation["chrf"], "ppl": evaluation["perplexity"],
          "val_before": before, "val_after": after, "val_steps": (step_before, step_after), "params": results["params"], "wall_min": results["wall_s"] / 60,
          "hardware": results.get("hardware"), "finished": results.get("finished")}


def table(by_label: dict[str, list[dict]]) -> str:
  header = ("| run | score | input feeding | seeds | test BLEU | test chrF | test perplexity | "
            "validation NLL, last two validations (steps) | params | wall min/run | Luong et al. (2015) |")
  lines = [header, "|" + " --- |" * (header.count("|") - 1)]
  for label, score, feeding, paper in ROWS:
    runs = by_label.get(label, [])
    if not runs:
      lines.append(f"| {label} | {score} | {feeding} | 0 | not run | | | | | | {paper} |")
      continue
    column = lambda key, digits: study_report.mean_and_spread([run[key] for run in runs], digits)
    validation = " / ".join(f"{run['val_before']:.3f} → {run['val_after']:.3f} ({run['val_steps'][0]} → "
                            f"{run['val_steps'][1]}: {trend(run['val_before'], run['val_after'])})" for run in runs)
    lines.append(f"| {label} | {score} | {feeding} | {len(runs)} | {column('bleu', 1)} | {column('chrf', 1)} | "
                 f"{column('ppl', 1)} | {validation} | {runs[0]['params'] / 1e6:.2f}M | {column('wall_min', 1)} | {paper} |")
  return "\n".join(lines) + "\n\n" + study_report.machines(by_label, [label for label, *_ in ROWS])


def plot(by_label: dict[str, list[dict]], path: str):
  labels = [label for label, *_ in ROWS if by_label.get(label)]
  runs = [run for label in labels for run in by_label[label]]
  steps, dataset = max(run["steps"] for run in runs), runs[0]["dataset"]
  fig, (curves, bars) = plt.subplots(1, 2, figsize=(12, 4.8))
  colours = dict(zip(labels, plt.get_cmap("tab10").colors))
  for label in labels:
    for seed, run in enumerate(by_label[label]):
      points = sorted(run["losses"].items())
      curves.plot([s for s, _ in points], [l for _, l in points], marker="o", color=colours[label],
                  linestyle="--" if "nofeed" in label else "-", label=label if seed == 0 else None)
  curves.set(xlabel="training step", ylabel="validation NLL per target token", title="validation loss during training")
  curves.legend(fontsize=8)
  study_report.seed_bars(bars, by_label, labels, "bleu", ["tab:grey" if "nofeed" in label else "tab:blue" for label in labels])
  bars.set(xlabel="attention score (grey: without input feeding)",
           ylabel="test BLEU (beam 4; error bar: seeds' sd)", title="test BLEU of the last checkpoint")
  bars.tick_params(axis="x", rotation=30)
  study_report.save_figure(fig, f"Luong et al. (2015) global attention variants on {dataset}, {steps:,} steps each", path)


def runs_by_label(out_dir: str) -> dict[str, list[dict]]:
  """Run label -> its finished seeds' figures."""
  return study_report.finished_runs_by_label(out_dir, load_run, rerun="experiments/luong2015_attention/sweep.sh")


if __name__ == "__main__":
  study_report.main(__doc__.splitlines()[0], runs_by_label, table, plot, "the validation curves and test BLEU")
