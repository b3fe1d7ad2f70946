r"""Evaluate a trained workdir on a split with any decoding options; prints one JSON line.

  python -m experiments.evaluate --workdir=runs/g2p --split=test --beam_size=0    # greedy
  python -m experiments.evaluate --workdir=runs/g2p --split=test --beam_size=4 --output=beam4.json
  python -m experiments.evaluate --workdir=runs/g2p --max_examples=2000 --error_profile   # where the errors are
  python -m experiments.evaluate --workdir=runs/g2p --checkpoint=9500    # an earlier saved checkpoint (or best)
"""

import dataclasses
import json
import time

import jax
from absl import flags, logging

from experiments import checkpoint_flags, decoding_flags, decoding_xla_flags, entry_point
from seq2seq_jax import evaluation, workdir
from seq2seq_jax.data import datasets, pipeline
from seq2seq_jax.errors import UsageError

FLAGS = flags.FLAGS
decoding_flags.define_dtype_flag()
flags.adopt_module_key_flags(decoding_flags)
flags.DEFINE_string("workdir", None, "Training workdir.", required=True)
flags.DEFINE_enum("split", "test", ["train", "validation", "test"], "Split to evaluate.")
flags.DEFINE_string("data_dir", None, "TFDS data_dir (default: the one the workdir was trained with).")
flags.DEFINE_integer("max_examples", 0, "Evaluate only the first N examples (0 = all).")
flags.DEFINE_bool("error_profile", False, "WER/PER datasets: add WER by source length and the wrong "
                  "outputs by edit distance to their closest reference (`evaluation.error_profile`).")
flags.DEFINE_integer("batch_size", 512, "Decoding batch size.")
flags.DEFINE_string("output", None, "Also write the JSON to this file.")
# --target_language (decoding_flags): a model trained --both_directions, evaluated in one direction.


def main():
  logging.set_verbosity(logging.WARNING)
  config, _, _ = workdir.load(FLAGS.workdir)
  translator = checkpoint_flags.load_translator(FLAGS.workdir, FLAGS.dtype)
  options = decoding_flags.options_from_flags(translator.target_vocab)
  dataset_options = datasets.DatasetOptions(**config["dataset_options"])
  spec = datasets.spec(config["dataset"], dataset_options)
  data_dir = FLAGS.data_dir or config["full_config"]["data_dir"]
  examples = pipeline.read_examples(datasets.load(config["dataset"], data_dir, dataset_options)[FLAGS.split], spec)
  if FLAGS.target_language:  # one direction; the token is already the prompt of `options`
    examples = [dataclasses.replace(e, target_language="") for e in examples
                if e.target_language == FLAGS.target_language]
    if not examples:
      raise UsageError(f"--target_language={FLAGS.target_language}: no {FLAGS.split} example translates "
                       f"into it; this dataset's languages: {', '.join(spec.languages) or 'none named'}")
  examples = examples[: FLAGS.max_examples or None]
  start = time.time()
  metrics = evaluation.decode_and_score(
      translator.task(options), examples, translator.source_vocab, translator.target_vocab, spec.metrics,
      translator.max_source_length, FLAGS.batch_size, translator.buckets, with_error_profile=FLAGS.error_profile)
  out = {
      "workdir": FLAGS.workdir, "step": translator.step, "split": FLAGS.split,
      **({"target_language": FLAGS.target_language} if FLAGS.target_language else {}), **metrics,
      "decode_s": round(time.time() - start, 1), "devices": jax.device_count(),
      "dtype": getattr(translator.model_config, "dtype", "float32"),
      "decoding": json.loads(json.dumps(dataclasses.asdict(options))),
  }
  line = json.dumps(out)
  print(line)
  if FLAGS.output:
    workdir.write_json_atomic(FLAGS.output, out)


if __name__ == "__main__":
  decoding_xla_flags.use_decoding_xla_flags()  # before JAX starts its backend: XLA reads XLA_FLAGS once
  entry_point.run(main)
