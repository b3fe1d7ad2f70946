"""Decoding flags shared by experiments.train (evaluation) and experiments.decode."""

from absl import flags

FLAGS = flags.FLAGS

flags.DEFINE_integer("beam_size", 4, "Beam width; 0 = greedy / sampling.")
flags.DEFINE_integer("nbest", 1, "Hypotheses returned per input (beam search).")
flags.DEFINE_float("length_penalty", None, "None: divide log-prob by length; alpha in [0, 1]: GNMT.")
flags.DEFINE_float("patience", None, "Beam patience (Kasai et al. 2022): finished pool = beam * patience.")
flags.DEFINE_list("temperature", ["0"], "Temperature, or a comma-separated fallback schedule.")
flags.DEFINE_integer("top_k", None, "Sample from the k most likely tokens.")
flags.DEFINE_float("top_p", None, "Nucleus sampling: the smallest set with probability >= p.")
flags.DEFINE_integer("best_of", None, "Samples per input, the best by score is kept.")
flags.DEFINE_integer("min_len", 0, "Minimum output tokens before EOS.")
flags.DEFINE_float("max_len_a", 2.0, "Maximum output length = a * source length + b ...")
flags.DEFINE_integer("max_len_b", 10, "... capped by the model's limit.")
flags.DEFINE_integer("no_repeat_ngram_size", 0, "Ban repeated n-grams of this size (0 = off).")
flags.DEFINE_string("suppress_tokens", "", "Output symbols never to emit (space-separated for "
                    "word/phoneme vocabularies, one character each otherwise).")
flags.DEFINE_bool("suppress_blank", True, "No EOS as the first free output token.")
flags.DEFINE_string("prefix", "", "Forced start of every output (target-side text).")
flags.DEFINE_string("prompt", "", "Target-side text fed to the decoder before the output.")
flags.DEFINE_float("compression_ratio_threshold", 2.4, "Fallback when the output's zlib ratio is above.")
flags.DEFINE_float("logprob_threshold", -1.0, "Fallback when the average log-prob is below.")


def define_dtype_flag():
  """`--dtype` for the entry points that decode a trained model (decode, evaluate); training has its own."""
  flags.DEFINE_enum("dtype", None, ["float32", "bfloat16"], "Compute dtype for decoding (default: the one the "
                    "model was trained with). bfloat16: matrix-product operands and caches in bfloat16, sums, "
                    "softmax and scores in float32; on CPUs with AMX or AVX512-BF16 about 1.5-2x faster.")


def options_from_flags(target_vocab):
  """DecodingOptions from the flags; text options are tokenized with the target vocabulary."""
  from seq2seq_jax.decoding.task import DecodingOptions  # pylint: disable=g-import-not-at-top
  from seq2seq_jax.errors import UsageError  # pylint: disable=g-import-not-at-top
  try:
    temperatures = tuple(float(t) for t in FLAGS.temperature)
  except ValueError as e:
    raise UsageError(f"--temperature must be numbers, got {FLAGS.temperature}") from e
  return DecodingOptions(
      temperature=temperatures[0] if len(temperatures) == 1 else temperatures,
      beam_size=FLAGS.beam_size or None, nbest=FLAGS.nbest, length_penalty=FLAGS.length_penalty,
      patience=FLAGS.patience, best_of=FLAGS.best_of, top_k=FLAGS.top_k, top_p=FLAGS.top_p,
      max_len_a=FLAGS.max_len_a, max_len_b=FLAGS.max_len_b, min_len=FLAGS.min_len,
      suppress_tokens=tuple(target_vocab.encode(FLAGS.suppress_tokens)),
      suppress_blank=FLAGS.suppress_blank, no_repeat_ngram_size=FLAGS.no_repeat_ngram_size,
      prefix=tuple(target_vocab.encode(FLAGS.prefix)), prompt=tuple(target_vocab.encode(FLAGS.prompt)),
      compression_ratio_threshold=FLAGS.compression_ratio_threshold,
      logprob_threshold=FLAGS.logprob_threshold)
