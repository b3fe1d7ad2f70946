r"""Evaluate a trained workdir on a split with any decoding options; prints one JSON line.

  python -m experiments.evaluate --workdir=runs/g2p --split=test --beam_size=0    # greedy
  python -m experiments.evaluate --workdir=runs/g2p --split=test --beam_size=4 --output=beam4.json
  python -m experiments.evaluate --workdir=runs/g2p --max_examples=2000 --error_profile   # where the errors are
  python -m experiments.evaluate --workdir=runs/g2p --step=9500    # an earlier saved checkpoint
"""

import json
import sys
import time

from absl import app, flags, logging

from experiments import decoding_flags, decoding_xla_flags

FLAGS = flags.FLAGS
decoding_flags.define_dtype_flag()
flags.DEFINE_string("workdir", None, "Training workdir.", required=True)
flags.DEFINE_enum("split", "test", ["train", "validation", "test"], "Split to evaluate.")
flags.DEFINE_string("data_dir", None, "TFDS data_dir (default: the one the workdir was trained with).")
flags.DEFINE_integer("max_examples", 0, "Evaluate only the first N examples (0 = all).")
flags.DEFINE_bool("error_profile", False, "WER/PER datasets: add WER by source length and the wrong "
                  "outputs by edit distance to their closest reference (`evaluation.error_profile`).")
flags.DEFINE_integer("batch_size", 512, "Decoding batch size.")
flags.DEFINE_integer("step", None, "Evaluate this saved checkpoint (default: the latest).")
flags.DEFINE_string("output", None, "Also write the JSON to this file.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.WARNING)
  decoding_xla_flags.use_decoding_xla_flags()  # before the first JAX computation
  import dataclasses  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from seq2seq_jax import evaluation  # pylint: disable=g-import-not-at-top
  from seq2seq_jax.data import datasets, pipeline  # pylint: disable=g-import-not-at-top
  from seq2seq_jax.errors import UsageError  # pylint: disable=g-import-not-at-top
  from seq2seq_jax.training import loop  # pylint: disable=g-import-not-at-top
  from seq2seq_jax.translator import Translator  # pylint: disable=g-import-not-at-top
  try:
    config, _, _ = loop.load_workdir(FLAGS.workdir)
    translator = Translator.from_workdir(FLAGS.workdir, FLAGS.step, dtype=FLAGS.dtype)
    options = decoding_flags.options_from_flags(translator.target_vocab)
    dataset_options = datasets.DatasetOptions(**config["dataset_options"])
    spec = datasets.spec(config["dataset"], dataset_options)
    data_dir = FLAGS.data_dir or config["full_config"]["data_dir"]
    examples = pipeline.read_examples(datasets.load(config["dataset"], data_dir, dataset_options)[FLAGS.split], spec)
    examples = examples[: FLAGS.max_examples or None]
    sources = [translator.source_vocab.encode(e.source)[: translator.max_source_length] for e in examples]
    start = time.time()
    results = translator.translate([np.asarray(s, np.int32) for s in sources], options, FLAGS.batch_size)
    seconds = time.time() - start
  except UsageError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  hypotheses = [r.text for r in results]
  references = [e.references for e in examples]
  out = {
      "workdir": FLAGS.workdir, "step": translator.step, "split": FLAGS.split, "examples": len(examples),
      **evaluation.sequence_metrics(spec.metrics, hypotheses, references, [e.source for e in examples],
                                    translator.target_vocab.separator),
      **(evaluation.error_profile(hypotheses, references, [len(x) for x in sources],
                                  translator.target_vocab.separator) if FLAGS.error_profile else {}),
      "decode_s": round(seconds, 1), "devices": jax.device_count(),
      "dtype": getattr(translator.model_config, "dtype", "float32"),
      "decoding": json.loads(json.dumps(dataclasses.asdict(options))),
  }
  line = json.dumps(out)
  print(line)
  if FLAGS.output:
    with open(FLAGS.output, "w") as f:
      f.write(line + "\n")


if __name__ == "__main__":
  app.run(main)
