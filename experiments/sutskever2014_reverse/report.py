r"""The forwards / backwards table of sutskever2014_reverse run directories, one per seed.

  python -m experiments.sutskever2014_reverse.report --out_dir=runs/sutskever2014_reverse/bible
  python -m experiments.sutskever2014_reverse.report --out_dir=runs/sutskever2014_reverse/bible \
      --out_dir=runs/sutskever2014_reverse/bible_seed1

Reads OUT_DIR/{forward,reversed}.test.json (experiments.evaluate) and OUT_DIR/{forward,reversed}/
results.json (the test perplexity of training's final evaluation), config.json (the seed) and
metrics.jsonl; writes table.md in the first OUT_DIR: the scores beside the paper's, with several
OUT_DIRs a row per seed and the mean ± standard deviation over the seeds; the test score by source
length (where the evaluations have the per-length profile) and the validation loss at every
evaluation (was it still falling?).
"""

import argparse
import json
import os
from typing import NamedTuple

from experiments import study_report

PAPER = {"forward": "test perplexity 5.8, BLEU 25.9", "reversed": "test perplexity 4.7, BLEU 30.6"}


def scores(evaluation: dict) -> tuple[float, float]:
  """(WER, PER) in % or (BLEU, chrF): the two test scores of the table."""
  if "wer" in evaluation:
    return 100 * evaluation["wer"], 100 * evaluation["per"]
  return evaluation["bleu"], evaluation["chrf"]


class Run(NamedTuple):
  direction: str      # "forward" or "reversed"
  seed: int
  run_dir: str        # the training workdir
  evaluation: dict    # its <direction>.test.json
  results: dict       # its results.json


def run_label(run: Run, several_seeds: bool) -> str:
  """'forward' for seed 0 (or the only seed), 'forward, seed 1' for the others."""
  return f"{run.direction}, seed {run.seed}" if several_seeds and run.seed else run.direction


def row(run: Run, label: str) -> str:
  unit = "%" if "wer" in run.evaluation else ""
  first, second = scores(run.evaluation)
  paper = PAPER[run.direction] if label == run.direction else ""
  return (f"| {label} | {run.results['eval']['perplexity']:.2f} | {first:.1f}{unit} | {second:.1f}{unit} | "
          f"{run.results['step']} | {run.results['wall_s'] / 60:.1f} min | {paper} |")


def seeds_row(direction: str, runs: list[Run]) -> str:
  """The mean ± sample standard deviation of a direction's seeds."""
  unit = "%" if "wer" in runs[0].evaluation else ""
  digits = 2 if unit else 1
  perplexity = study_report.mean_and_spread([run.results["eval"]["perplexity"] for run in runs], 2)
  first, second = ([scores(run.evaluation)[i] for run in runs] for i in (0, 1))
  return (f"| **{direction}, {len(runs)} seeds** | {perplexity} | "
          f"**{study_report.mean_and_spread(first, digits)}{unit}** | "
          f"{study_report.mean_and_spread(second, digits)}{unit} | | | |")


def by_length_table(evaluations: dict[str, dict]) -> list[str]:
  """Test BLEU by source length in words, a row per run; [] where the evaluations lack the profile."""
  profiles = {name: evaluation.get("bleu_by_source_length") for name, evaluation in evaluations.items()}
  if not all(profiles.values()):
    return []
  buckets = next(iter(profiles.values()))
  table = ["| test BLEU by source length (words) | " + " | ".join(
               f"{study_report.length_bucket_label(b)} ({b['examples']})" for b in buckets) + " |",
           "| --- | " + " | ".join("---" for _ in buckets) + " |"]
  table += [f"| {name} | " + " | ".join(f"{b['bleu']:.1f}" for b in profile) + " |"
            for name, profile in profiles.items()]
  return table


def load_json(path: str) -> dict:
  with open(path) as f:
    return json.load(f)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out_dir", required=True, action="append",
                      help="a run.sh output directory; repeat it for the seeds of one recipe")
  args = parser.parse_args()
  several = len(args.out_dir) > 1
  runs = []
  for out_dir in args.out_dir:
    names = [n for n in ("forward", "reversed") if os.path.exists(os.path.join(out_dir, f"{n}.test.json"))]
    if not names:
      raise SystemExit(f"no forward.test.json or reversed.test.json in {out_dir}; run run.sh into it first")
    for name in names:
      run_dir = os.path.join(out_dir, name)
      seed = load_json(os.path.join(run_dir, "config.json"))["full_config"]["seed"] if several else 0
      runs.append(Run(name, seed, run_dir, load_json(os.path.join(out_dir, f"{name}.test.json")),
                      load_json(os.path.join(run_dir, "results.json"))))
  if len({(run.direction, run.seed) for run in runs}) != len(runs):
    raise SystemExit(f"the directories {args.out_dir} hold two runs of one direction and seed; give each seed once")
  runs.sort(key=lambda run: (run.seed, run.direction))
  labels = [run_label(run, several) for run in runs]
  wer = "wer" in runs[0].evaluation
  header = "| source read | test perplexity | " + ("test WER | test PER" if wer else "test BLEU | test chrF") + \
           " | steps | process wall | paper (WMT'14 En-Fr, §3.3) |"
  table = [header, "| --- | --- | --- | --- | --- | --- | --- |"]
  table += [row(run, label) for run, label in zip(runs, labels)]
  if several:
    for direction in ("forward", "reversed"):
      seeds = [run for run in runs if run.direction == direction]
      if seeds:
        table.append(seeds_row(direction, seeds))
  validation = study_report.validation_loss_table({label: run.run_dir for run, label in zip(runs, labels)})
  by_length = by_length_table({label: run.evaluation for run, label in zip(runs, labels)})
  for section in (by_length, validation if len(validation) > 2 else []):
    table += [""] + section if section else []
  with open(os.path.join(args.out_dir[0], "table.md"), "w") as f:
    f.write("\n".join(table) + "\n")
  print("\n".join(table))


if __name__ == "__main__":
  main()
