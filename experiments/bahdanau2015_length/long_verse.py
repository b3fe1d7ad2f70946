r"""Prints the longest test source a trained workdir accepts (at most --max_words words), for the
alignment heatmap of one long sentence (Bahdanau et al. 2015, Fig. 3).

  python -m experiments.bahdanau2015_length.long_verse --workdir=W --max_words=50 > verse.txt
"""

import argparse
import json
import os

from seq2seq_jax.data import datasets, pipeline
from seq2seq_jax.translator import Translator


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--max_words", type=int, default=50)
  args = parser.parse_args()
  with open(os.path.join(args.workdir, "config.json")) as f:
    config = json.load(f)
  options = datasets.DatasetOptions(**config["dataset_options"])
  spec = datasets.spec(config["dataset"], options)
  split = datasets.load(config["dataset"], config["full_config"]["data_dir"], options)["test"]
  translator = Translator.from_workdir(args.workdir)
  candidates = [e.source for e in pipeline.read_examples(split, spec)
                if len(e.source.split()) <= args.max_words
                and len(translator.source_vocab.encode(e.source)) <= translator.max_source_length]
  print(max(candidates, key=lambda s: (len(s.split()), s)))


if __name__ == "__main__":
  main()
