r"""Decode with a trained model (greedy search).

  python -m experiments.decode --workdir=runs/default --inputs=hello,world
  python -m experiments.decode --workdir=runs/default --input_file=words.txt --output_file=out.txt

One output line per input line.  Inputs are checked against the model's vocabulary and length
limit before anything is decoded or written.
"""

import os
import sys

from absl import app, flags, logging

FLAGS = flags.FLAGS

flags.DEFINE_string("workdir", "runs/default", "Training workdir (config, vocabularies, checkpoints).")
flags.DEFINE_list("inputs", [], "Comma-separated inputs; outputs go to stdout.")
flags.DEFINE_string("input_file", None, "File with one input per line.")
flags.DEFINE_string("output_file", None, "Where to write one output per input line (default stdout).")
flags.DEFINE_integer("batch_size", 256, "Decoding batch size.")


def read_inputs() -> list[str]:
  from seq2seq_jax.errors import UsageError  # pylint: disable=g-import-not-at-top
  if bool(FLAGS.inputs) == bool(FLAGS.input_file):
    raise UsageError("give exactly one of --inputs=a,b,c or --input_file=F")
  if FLAGS.inputs:
    return list(FLAGS.inputs)
  if not os.path.exists(FLAGS.input_file):
    raise UsageError(f"--input_file={FLAGS.input_file} does not exist")
  with open(FLAGS.input_file, encoding="utf-8") as f:
    return [line.rstrip("\n") for line in f]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.WARNING)
  from seq2seq_jax.errors import UsageError  # pylint: disable=g-import-not-at-top
  from seq2seq_jax.translator import Translator  # pylint: disable=g-import-not-at-top
  try:
    texts = read_inputs()
    translator = Translator.from_workdir(FLAGS.workdir)
    sources = translator.encode_sources(texts)  # validates every input before any work
    outputs = translator.translate(sources, FLAGS.batch_size)
  except UsageError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  if FLAGS.output_file:
    tmp = FLAGS.output_file + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
      f.writelines(o + "\n" for o in outputs)
    os.replace(tmp, FLAGS.output_file)
  else:
    for text, out in zip(texts, outputs):
      print(f"{text}\t{out}")


if __name__ == "__main__":
  app.run(main)
