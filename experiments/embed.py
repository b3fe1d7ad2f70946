r"""Sentence embeddings from a trained encoder: one float32 vector per input line.

  python -m experiments.embed --workdir=runs/default --input_file=words.txt --output=E.npy --pooling=max
  python -m experiments.embed --workdir=runs/default --input_file=words.txt --output=E.tsv --format=tsv
  python -m experiments.embed --workdir=runs/speech --input_file=wav_paths.txt --output=E.npy --pooling=stats

.npy: one [lines, D] float32 array.  tsv: one line per input line, its D values tab-separated.
"""

import os

import numpy as np
from absl import flags, logging

from experiments import checkpoint_flags, entry_point
from seq2seq_jax.data import audio_files
from seq2seq_jax.errors import UsageError
from seq2seq_jax.sentence_encoder import POOLINGS

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "runs/default", "Training workdir.")
flags.DEFINE_string("input_file", None, "One input per line.", required=True)
flags.DEFINE_string("output", None, "Where to write the vectors.", required=True)
flags.DEFINE_enum("format", "npy", ["npy", "tsv"], "npy: a [lines, D] float32 array; tsv: one line "
                  "of D tab-separated values per input line.")
flags.DEFINE_enum("pooling", "mean", list(POOLINGS), "How to pool the encoder states (stats: [mean; std], "
                  "twice the width).")
flags.DEFINE_integer("batch_size", 256, "Inputs per batch.")
flags.DEFINE_bool("truncate", False, "Embed the first --max_source_length tokens of a longer input "
                  "instead of refusing it.")


def write_atomic(path: str, vectors: np.ndarray, fmt: str) -> None:
  """Writes [N, D] float32 `vectors` as .npy or tsv through a temporary file."""
  tmp = path + ".tmp"
  with open(tmp, "wb") as f:
    if fmt == "npy":
      np.save(f, vectors)
    else:
      np.savetxt(f, vectors, fmt="%.7g", delimiter="\t")
  os.replace(tmp, path)


def main():
  logging.set_verbosity(logging.WARNING)
  if not os.path.exists(FLAGS.input_file):
    raise UsageError(f"--input_file={FLAGS.input_file} does not exist")
  with open(FLAGS.input_file, encoding="utf-8") as f:
    texts = [line.rstrip("\n") for line in f]
  encoder = checkpoint_flags.load_sentence_encoder(FLAGS.workdir, FLAGS.pooling)
  if encoder.translator.source_unit > 1:  # a speech model: lines are WAV files or directories of them
    texts = audio_files.expand_paths(texts)
  vectors = encoder.encode(texts, FLAGS.batch_size, truncate=FLAGS.truncate)
  write_atomic(FLAGS.output, vectors, FLAGS.format)
  print(f"{len(vectors)} vectors of size {vectors.shape[1]} ({FLAGS.pooling} pooling) -> {FLAGS.output}")


if __name__ == "__main__":
  entry_point.run(main)
