r"""The forwards / backwards table of a sutskever2014_reverse run directory.

  python -m experiments.sutskever2014_reverse.report --out_dir=runs/sutskever2014_reverse/bible

Reads OUT_DIR/{forward,reversed}.test.json (experiments.evaluate) and OUT_DIR/{forward,reversed}/
results.json (the test perplexity of training's final evaluation) and metrics.jsonl; writes
OUT_DIR/table.md: the scores beside the paper's, the test score by source length (where the
evaluation has the per-length profile) and the validation loss at every evaluation (was it still
falling?).
"""

import argparse
import json
import os

from experiments import study_report

PAPER = {"forward": "test perplexity 5.8, BLEU 25.9", "reversed": "test perplexity 4.7, BLEU 30.6"}


def row(name: str, evaluation: dict, results: dict) -> str:
  if "wer" in evaluation:
    scores = f"{100 * evaluation['wer']:.1f}% | {100 * evaluation['per']:.1f}%"
  else:
    scores = f"{evaluation['bleu']:.1f} | {evaluation['chrf']:.1f}"
  return (f"| {name} | {results['eval']['perplexity']:.2f} | {scores} | {results['step']} | "
          f"{results['wall_s'] / 60:.1f} min | {PAPER[name]} |")


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
  parser.add_argument("--out_dir", required=True)
  args = parser.parse_args()
  names = [n for n in ("forward", "reversed") if os.path.exists(os.path.join(args.out_dir, f"{n}.test.json"))]
  if not names:
    raise SystemExit(f"no forward.test.json or reversed.test.json in {args.out_dir}")
  evaluations = {n: load_json(os.path.join(args.out_dir, f"{n}.test.json")) for n in names}
  wer = "wer" in evaluations[names[0]]
  header = "| source read | test perplexity | " + ("test WER | test PER" if wer else "test BLEU | test chrF") + \
           " | steps | process wall | paper (WMT'14 En-Fr, §3.3) |"
  table = [header, "| --- | --- | --- | --- | --- | --- | --- |"]
  table += [row(n, evaluations[n], load_json(os.path.join(args.out_dir, n, "results.json"))) for n in names]
  validation = study_report.validation_loss_table({n: os.path.join(args.out_dir, n) for n in names})
  for section in (by_length_table(evaluations), validation if len(validation) > 2 else []):
    table += [""] + section if section else []
  with open(os.path.join(args.out_dir, "table.md"), "w") as f:
    f.write("\n".join(table) + "\n")
  print("\n".join(table))


if __name__ == "__main__":
  main()
