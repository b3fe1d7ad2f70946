r"""The forwards / backwards table of a sutskever2014_reverse run directory.

  python experiments/sutskever2014_reverse/report.py --out_dir=runs/sutskever2014_reverse/bible

Reads OUT_DIR/{forward,reversed}.test.json (experiments.evaluate) and OUT_DIR/{forward,reversed}/
results.json (the test perplexity of training's final evaluation); writes OUT_DIR/table.md.
"""

import argparse
import json
import os

PAPER = {"forward": "test perplexity 5.8, BLEU 25.9", "reversed": "test perplexity 4.7, BLEU 30.6"}


def row(out_dir: str, name: str) -> str:
  with open(os.path.join(out_dir, f"{name}.test.json")) as f:
    evaluation = json.load(f)
  with open(os.path.join(out_dir, name, "results.json")) as f:
    results = json.load(f)
  if "wer" in evaluation:
    scores = f"{100 * evaluation['wer']:.1f}% | {100 * evaluation['per']:.1f}%"
  else:
    scores = f"{evaluation['bleu']:.1f} | {evaluation['chrf']:.1f}"
  return (f"| {name} | {results['eval']['perplexity']:.2f} | {scores} | {results['step']} | "
          f"{results['wall_s'] / 60:.1f} min | {PAPER[name]} |")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out_dir", required=True)
  args = parser.parse_args()
  names = [n for n in ("forward", "reversed") if os.path.exists(os.path.join(args.out_dir, f"{n}.test.json"))]
  if not names:
    raise SystemExit(f"no forward.test.json or reversed.test.json in {args.out_dir}")
  with open(os.path.join(args.out_dir, f"{names[0]}.test.json")) as f:
    wer = "wer" in json.load(f)
  header = "| source read | test perplexity | " + ("test WER | test PER" if wer else "test BLEU | test chrF") + \
           " | steps | process wall | paper (WMT'14 En-Fr, §3.3) |"
  table = [header, "| --- | --- | --- | --- | --- | --- | --- |"] + [row(args.out_dir, n) for n in names]
  with open(os.path.join(args.out_dir, "table.md"), "w") as f:
    f.write("\n".join(table) + "\n")
  print("\n".join(table))


if __name__ == "__main__":
  main()
