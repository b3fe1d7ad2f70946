r"""Sentence embeddings from a trained encoder: one vector per input line, written as .npy.

  python -m experiments.embed --workdir=runs/default --input_file=words.txt --output=E.npy --pooling=max
"""

import os

import numpy as np
from absl import flags, logging

from experiments import checkpoint_flags, entry_point
from seq2seq_jax.data import pipeline
from seq2seq_jax.errors import UsageError
from seq2seq_jax.sentence_embedding import embed
from seq2seq_jax.translator import Translator

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "runs/default", "Training workdir.")
flags.DEFINE_string("input_file", None, "One input per line.", required=True)
flags.DEFINE_string("output", None, "Where to write the [lines, D] float32 array (.npy).", required=True)
flags.DEFINE_enum("pooling", "mean", ["mean", "max", "final"], "How to pool the encoder states.")
flags.DEFINE_integer("batch_size", 256, "Inputs per batch.")


def main():
  logging.set_verbosity(logging.WARNING)
  if not os.path.exists(FLAGS.input_file):
    raise UsageError(f"--input_file={FLAGS.input_file} does not exist")
  with open(FLAGS.input_file, encoding="utf-8") as f:
    texts = [line.rstrip("\n") for line in f]
  if FLAGS.ensemble:
    raise UsageError("--ensemble decodes several models as one; embed takes one --workdir")
  translator = Translator.from_workdir(FLAGS.workdir, **checkpoint_flags.translator_args())
  sources = translator.encode_sources(texts)
  vectors = [None] * len(sources)
  for idx, batch in pipeline.eval_batches(sources, None, FLAGS.batch_size, translator.buckets):
    out = np.asarray(embed(translator.model, translator.params, batch["inputs"], FLAGS.pooling))
    for row, i in enumerate(idx):
      vectors[i] = out[row]
  tmp = FLAGS.output + ".tmp.npy"
  np.save(tmp, np.stack(vectors).astype(np.float32))
  os.replace(tmp, FLAGS.output)
  print(f"{len(vectors)} vectors of size {vectors[0].shape[0]} ({FLAGS.pooling} pooling) -> {FLAGS.output}")


if __name__ == "__main__":
  entry_point.run(main)
