r"""The words a G2P peer trains and is tested on, and its score by this project's WER/PER.

  python experiments/g2p_cmudict/peer_data.py export --dataset=cmudict_g2p/g014b2b --split=train --output=train.lex
  python experiments/g2p_cmudict/peer_data.py export --dataset=cmudict_g2p/g014b2b --split=test --output=test.words
  python experiments/g2p_cmudict/peer_data.py score --dataset=cmudict_g2p/g014b2b --predictions=test.pred

export: train -> one `word<TAB>phonemes` line per pronunciation; test -> one word per line.
score: reads `word<TAB>phonemes` predictions (one per test word; a word without one counts as
wrong) and prints {"examples", "wer", "per", "missing"} as one JSON line, scored as
`experiments.evaluate` scores ours (`evaluation.error_rates`: right if equal to any reference).
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from seq2seq_jax import evaluation  # pylint: disable=wrong-import-position
from seq2seq_jax.data import datasets, pipeline  # pylint: disable=wrong-import-position


def examples(dataset: str, split: str, data_dir: str):
  spec = datasets.spec(dataset)
  return pipeline.read_examples(datasets.load(dataset, data_dir)[split], spec)


def export(args) -> None:
  with open(args.output, "w", encoding="utf-8") as f:
    for ex in examples(args.dataset, args.split, args.data_dir):
      if args.split == "train":
        f.writelines(f"{ex.source}\t{ref}\n" for ref in ex.references)
      else:
        f.write(ex.source + "\n")


def score(args) -> None:
  predicted = {}
  with open(args.predictions, encoding="utf-8") as f:
    for line in f:
      word, _, phonemes = line.rstrip("\n").partition("\t")
      predicted.setdefault(word, " ".join(phonemes.split()))
  test = examples(args.dataset, "test", args.data_dir)
  hypotheses = [predicted.get(ex.source, "") for ex in test]
  rates = evaluation.error_rates(hypotheses, [ex.references for ex in test])
  print(json.dumps({"examples": len(test), **rates, "missing": sum(ex.source not in predicted for ex in test)}))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("command", choices=["export", "score"])
  parser.add_argument("--dataset", default="cmudict_g2p")
  parser.add_argument("--split", default="train", choices=["train", "test"])
  parser.add_argument("--data_dir", default="~/tensorflow_datasets")
  parser.add_argument("--output")
  parser.add_argument("--predictions")
  args = parser.parse_args()
  export(args) if args.command == "export" else score(args)


if __name__ == "__main__":
  main()
