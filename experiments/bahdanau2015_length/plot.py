r"""Quality by source length, one line per model, from `experiments.evaluate` JSON files.

  python -m experiments.bahdanau2015_length.plot --out_dir=runs/bahdanau2015_length/reverse --task=reverse

Reads OUT_DIR/<model>.test.json (written with --error_profile: `bleu_by_source_length` for a
translation dataset, else `wer_by_source_length`) and each model's OUT_DIR/<model>/config.json,
metrics.jsonl and results.json; writes OUT_DIR/by_length.png and OUT_DIR/by_length.md: the table by
length, then each model's validation loss at every evaluation (was it still falling?) and its
test loss.
"""

import argparse
import glob
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position

from experiments import study_report  # pylint: disable=wrong-import-position
from seq2seq_jax import workdir  # pylint: disable=wrong-import-position

MODEL_ORDER = ("rnn_seq2seq", "rnn_attention", "transformer")
LABELS = {"rnn_seq2seq": "LSTM encoder-decoder (no attention)", "rnn_attention": "LSTM + additive attention",
          "transformer": "Transformer"}


def load(out_dir: str) -> dict:
  """model -> (evaluation JSON, training config dict)."""
  runs = {}
  for path in glob.glob(os.path.join(out_dir, "*.test.json")):
    model = os.path.basename(path)[: -len(".test.json")]
    with open(path) as f:
      evaluation = json.load(f)
    with open(os.path.join(out_dir, model, "config.json")) as f:
      config = json.load(f)
    runs[model] = (evaluation, config)
  return dict(sorted(runs.items(), key=lambda kv: MODEL_ORDER.index(kv[0]) if kv[0] in MODEL_ORDER else 99))


def test_loss(run_dir: str) -> float:
  """The test negative log-likelihood per target token of training's final evaluation."""
  with open(os.path.join(run_dir, "results.json")) as f:
    return json.load(f)["eval"]["nll"]


def curve(evaluation: dict) -> tuple[list, list, list, list, str]:
  """(x, row labels, y, examples, y label): BLEU by source length in words (x: bucket upper
  bounds, labels '11-20') for a translation, else exact-match accuracy (%) by source length in
  tokens."""
  if "bleu_by_source_length" in evaluation:
    rows = evaluation["bleu_by_source_length"]
    return ([r["max_words"] or r["min_words"] for r in rows], [study_report.length_bucket_label(r) for r in rows],
            [r["bleu"] for r in rows], [r["examples"] for r in rows], "BLEU")
  rows = evaluation["wer_by_source_length"]
  lengths = [r["source_length"] for r in rows]
  return (lengths, lengths, [100 * (1 - r["wer"]) for r in rows], [r["examples"] for r in rows],
          "exact-match accuracy (%)")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out_dir", required=True)
  parser.add_argument("--task", required=True)
  args = parser.parse_args()
  runs = load(args.out_dir)
  if not runs:
    raise SystemExit(f"no <model>.test.json in {args.out_dir}; run experiments/bahdanau2015_length/run.sh first")
  fig, ax = plt.subplots(figsize=(7, 4.2))
  lines = []
  steps = set()
  for model, (evaluation, config) in runs.items():
    x, labels, y, examples, ylabel = curve(evaluation)
    full = config["full_config"]
    steps.add(full["num_train_steps"])
    ax.plot(x, y, marker="o", markersize=3, label=LABELS.get(model, model))
    lines.append((model, evaluation, labels, y, examples, full))
  by_words = ylabel == "BLEU"
  train_max = (runs[next(iter(runs))][1]["full_config"]["dataset_options"].get("train_lengths") or [None, None])[1]
  if train_max and not by_words:
    ax.axvline(train_max + 0.5, color="gray", linestyle="--", linewidth=1)
    ax.text(train_max + 0.8, 5, "longest training length", color="gray", fontsize=8)
  ax.set_xlabel("source length (words, bucket end)" if by_words else "source length (tokens)")
  ax.set_ylabel(ylabel)
  if by_words:
    ax.set_ylim(0, max(max(line[3]) for line in lines) * 1.15 + 1)
  else:
    ax.set_ylim(-2, 102)
  dataset = runs[next(iter(runs))][1]["dataset"]
  ax.set_title(f"{dataset}: test {ylabel.split(' (')[0]} by source length, "
               f"{'/'.join(map(str, sorted(steps)))} training steps")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  png = os.path.join(args.out_dir, "by_length.png")
  fig.savefig(png, dpi=110)

  names = [LABELS.get(model, model) for model, *_ in lines]
  overall = [f"WER {100 * e['wer']:.1f}%" if "wer" in e else f"BLEU {e['bleu']:.1f}" for _, e, *_ in lines]
  table = [f"| source length ({'words' if by_words else 'tokens'}) | test examples | " + " | ".join(names) + " |",
           "| --- | --- | " + " | ".join("---" for _ in names) + " |",
           "| all | | " + " | ".join(overall) + " |"]
  for i, label in enumerate(lines[0][2]):
    table.append(f"| {label} | {lines[0][4][i]} | " + " | ".join(f"{line[3][i]:.1f}" for line in lines) + " |")
  table += [""] + study_report.validation_loss_table(
      {name: os.path.join(args.out_dir, model) for name, (model, *_) in zip(names, lines)})
  table.append("| test, end of training | " + " | ".join(f"{test_loss(os.path.join(args.out_dir, model)):.3f}"
                                                        for model, *_ in lines) + " |")
  with open(os.path.join(args.out_dir, "by_length.md"), "w") as f:
    f.write("\n".join(table) + "\n")
  print("\n".join(table))
  print(f"-> {png}")


if __name__ == "__main__":
  main()
