r"""Bitext retrieval with a workdir's sentence encoder: the xsim error rate of LASER, beside a floor.

  python -m experiments.evaluate_embeddings --workdir=runs/bible_both --pooling=max
  python -m experiments.evaluate_embeddings --workdir=runs/bible_both --dataset=bible_en_es --output=xsim.json

Reads the aligned pairs of --split of the workdir's dataset (or --dataset): source x_i and its
first reference y_i.  Both sides are embedded with the workdir's encoder (`SentenceEncoder`, the
source vocabulary; texts longer than --max_source_length tokens are cut to it and counted), each
x_i is matched to the nearest y_j and each y_j to the nearest x_i, by cosine and by the ratio
margin with --margin_k neighbours (`seq2seq_jax.retrieval`), and the error rates (%) are printed
as one JSON line.  "baseline" is the same evaluation of an untrained floor on the same token ids:
each text as the mean of the one-hot vectors of its pieces (`retrieval.bag_of_pieces`: untrained
embeddings in the limit of a large width), i.e. what shared pieces alone retrieve.
"input_embeddings" is the mean of the model's own (trained) source-token embeddings, no context:
what the encoder's layers add beyond them.
"""

import dataclasses
import json

from absl import flags, logging

from experiments import checkpoint_flags, entry_point
from seq2seq_jax import retrieval, workdir
from seq2seq_jax.data import datasets, pipeline
from seq2seq_jax.errors import UsageError
from seq2seq_jax.sentence_encoder import POOLINGS, source_embedding_table

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Training workdir.", required=True)
flags.DEFINE_enum("pooling", "mean", list(POOLINGS), "How to pool the encoder states.")
flags.DEFINE_integer("margin_k", 4, "Nearest neighbours in the ratio margin (Artetxe & Schwenk 2019).",
                     lower_bound=1)
flags.DEFINE_string("dataset", None, "Parallel dataset to retrieve in (default: the workdir's, with its options).")
flags.DEFINE_enum("split", "test", ["train", "validation", "test"], "Split whose pairs are retrieved.")
flags.DEFINE_string("data_dir", None, "TFDS data_dir (default: the one the workdir was trained with).")
flags.DEFINE_integer("max_examples", 0, "Use only the first N pairs (0 = all).")
flags.DEFINE_integer("batch_size", 256, "Inputs per encoder batch.")
flags.DEFINE_string("output", None, "Also write the JSON to this file (atomically).")


def aligned_pairs(config: dict) -> tuple[list[str], list[str], tuple[str, str]]:
  """(sources, first references, (source language, target language)) of --split, each pair once
  (a dataset trained in both directions is read in its own direction)."""
  name = FLAGS.dataset or config["dataset"]
  options = datasets.DatasetOptions(**(config["dataset_options"] if not FLAGS.dataset else {}))
  options = dataclasses.replace(options, both_directions=None)
  spec = datasets.spec(name, options)
  data_dir = FLAGS.data_dir or config["full_config"]["data_dir"]
  splits = datasets.load(name, data_dir, options)
  if FLAGS.split not in splits:
    raise UsageError(f"dataset {name} has no {FLAGS.split} split (it has: {', '.join(splits)})")
  examples = pipeline.read_examples(splits[FLAGS.split], spec)[: FLAGS.max_examples or None]
  if len(examples) < 2:
    raise UsageError(f"retrieval needs at least 2 pairs; {name} {FLAGS.split} has {len(examples)}")
  return [e.source for e in examples], [e.references[0] for e in examples], spec.languages or ("source", "target")


def percent(errors: dict, names: tuple[str, str]) -> dict:
  """{"x_to_y", "y_to_x"} fractions -> {"<src>_to_<tgt>", "<tgt>_to_<src>"} in percent."""
  src, tgt = names
  return {f"{src}_to_{tgt}": round(100 * errors["x_to_y"], 2), f"{tgt}_to_{src}": round(100 * errors["y_to_x"], 2)}


def main():
  logging.set_verbosity(logging.WARNING)
  config, _, _ = workdir.load(FLAGS.workdir)
  sources, targets, names = aligned_pairs(config)
  encoder = checkpoint_flags.load_sentence_encoder(FLAGS.workdir, FLAGS.pooling)
  limit = encoder.translator.max_source_length
  ids_x = encoder.token_ids(sources, truncate=True)
  try:
    ids_y = encoder.token_ids(targets, truncate=True)
  except UsageError as e:
    raise UsageError(f"the {names[1]} side is outside the encoder's vocabulary ({e}); retrieval needs an "
                     "encoder that reads both sides (a model trained with --both_directions)") from None
  truncated = sum(len(encoder.source_vocab.encode(t)) > limit for t in sources + targets)
  x, y = encoder.encode_ids(ids_x, FLAGS.batch_size), encoder.encode_ids(ids_y, FLAGS.batch_size)
  model = retrieval.bitext_retrieval_errors(x, y, FLAGS.margin_k)
  bag = [retrieval.bag_of_pieces(ids, encoder.source_vocab.size) for ids in (ids_x, ids_y)]
  baseline = retrieval.bitext_retrieval_errors(*bag, FLAGS.margin_k)
  table = source_embedding_table(encoder.translator.params)
  own = None if table is None else retrieval.bitext_retrieval_errors(bag[0] @ table, bag[1] @ table, FLAGS.margin_k)
  out = {
      "workdir": FLAGS.workdir, "step": encoder.translator.step, "dataset": FLAGS.dataset or config["dataset"],
      "split": FLAGS.split, "examples": model["examples"], "truncated_texts": truncated,
      "pooling": FLAGS.pooling, "dim": int(x.shape[1]), "margin_k": FLAGS.margin_k,
      "error_percent": {"cosine": percent(model["cosine"], names), "margin": percent(model["margin"], names)},
      "baseline_error_percent": {"cosine": percent(baseline["cosine"], names),
                                 "margin": percent(baseline["margin"], names)},
      "baseline": "bag of pieces: mean of one-hot vectors of the source-vocabulary ids",
      **({} if own is None else {"input_embeddings_error_percent": {
          "cosine": percent(own["cosine"], names), "margin": percent(own["margin"], names)}}),
  }
  print(json.dumps(out))
  if FLAGS.output:
    workdir.write_json_atomic(FLAGS.output, out)


if __name__ == "__main__":
  entry_point.run(main)
