"""Decoding flags shared by experiments.train (evaluation), decode and evaluate.

Their defaults are `TrainConfig().decoding`: a model is decoded as it was evaluated unless told
otherwise.
"""

from absl import flags

from seq2seq_jax.config import TrainConfig
from seq2seq_jax.decoding.task import DecodingOptions
from seq2seq_jax.errors import UsageError
from seq2seq_jax.translator import options_for_language

FLAGS = flags.FLAGS

DEFAULT = TrainConfig().decoding  # the decoding a model is evaluated with

flags.DEFINE_integer("beam_size", DEFAULT.beam_size or 0, "Beam width; 0 = greedy / sampling.")
flags.DEFINE_integer("nbest", DEFAULT.nbest, "Hypotheses returned per input (beam search).")
flags.DEFINE_float("length_penalty", DEFAULT.length_penalty, "Unset: divide log-prob by length; alpha "
                   "in [0, 1]: GNMT.")
flags.DEFINE_float("patience", DEFAULT.patience, "Beam patience (Kasai et al. 2022): finished pool = "
                   "beam * patience.")
flags.DEFINE_list("temperature", [str(t) for t in DEFAULT.temperatures], "Temperature, or a "
                  "comma-separated fallback schedule (Whisper).")
flags.DEFINE_integer("top_k", DEFAULT.top_k, "Sample from the k most likely tokens.")
flags.DEFINE_float("top_p", DEFAULT.top_p, "Nucleus sampling: the smallest set with probability >= p.")
flags.DEFINE_integer("best_of", DEFAULT.best_of, "Samples per input, the best by score is kept.")
flags.DEFINE_integer("min_len", DEFAULT.min_len, "Minimum output tokens before EOS.")
flags.DEFINE_float("max_len_a", DEFAULT.max_len_a, "Maximum output length = a * source length + b ...")
flags.DEFINE_integer("max_len_b", DEFAULT.max_len_b, "... capped by the model's limit.")
flags.DEFINE_integer("no_repeat_ngram_size", DEFAULT.no_repeat_ngram_size, "Ban repeated n-grams of this "
                     "size (0 = off).")
flags.DEFINE_string("suppress_tokens", "", "Output symbols never to emit (space-separated for "
                    "word/phoneme vocabularies, one character each otherwise).")
flags.DEFINE_bool("suppress_blank", DEFAULT.suppress_blank, "No EOS as the first free output token.")
flags.DEFINE_string("prefix", "", "Forced start of every output (target-side text).")
flags.DEFINE_string("prompt", "", "Target-side text fed to the decoder before the output.")
flags.DEFINE_string("target_language", None, "A model trained in both directions (--both_directions): "
                    "the language to translate into (e.g. es), given to the decoder as its token <2es>.")
flags.DEFINE_float("compression_ratio_threshold", DEFAULT.compression_ratio_threshold, "Fallback when "
                   "the output's zlib compression ratio is above.")
flags.DEFINE_float("logprob_threshold", DEFAULT.logprob_threshold, "Fallback when the average log-prob "
                   "is below.")


class _TextFreeVocabulary:
  """For training's evaluation, which takes no text-valued decoding options (they need the
  trained vocabulary)."""

  def encode(self, text):
    if text:
      raise UsageError("--prefix/--prompt/--suppress_tokens are decode-time options: "
                       "use them with experiments.decode")
    return []


TEXT_FREE_VOCABULARY = _TextFreeVocabulary()


def define_dtype_flag():
  """`--dtype` for the entry points that decode a trained model (decode, evaluate); training has its own."""
  flags.DEFINE_enum("dtype", None, ["float32", "bfloat16"], "Compute dtype for decoding (default: the one the "
                    "model was trained with). bfloat16: matrix-product operands and caches in bfloat16, sums, "
                    "softmax and scores in float32 (faster on CPUs with bfloat16 units).")


def options_from_flags(target_vocab):
  """DecodingOptions from the flags; text options are tokenized with the target vocabulary;
  --target_language: its token is the first prompt token (`translator.options_for_language`)."""
  try:
    temperatures = tuple(float(t) for t in FLAGS.temperature)
  except ValueError as e:
    raise UsageError(f"--temperature must be numbers, got {FLAGS.temperature}") from e
  options = DecodingOptions(
      temperature=temperatures[0] if len(temperatures) == 1 else temperatures,
      beam_size=FLAGS.beam_size or None, nbest=FLAGS.nbest, length_penalty=FLAGS.length_penalty,
      patience=FLAGS.patience, best_of=FLAGS.best_of, top_k=FLAGS.top_k, top_p=FLAGS.top_p,
      max_len_a=FLAGS.max_len_a, max_len_b=FLAGS.max_len_b, min_len=FLAGS.min_len,
      suppress_tokens=tuple(target_vocab.encode(FLAGS.suppress_tokens)),
      suppress_blank=FLAGS.suppress_blank, no_repeat_ngram_size=FLAGS.no_repeat_ngram_size,
      prefix=tuple(target_vocab.encode(FLAGS.prefix)), prompt=tuple(target_vocab.encode(FLAGS.prompt)),
      compression_ratio_threshold=FLAGS.compression_ratio_threshold,
      logprob_threshold=FLAGS.logprob_threshold)
  if not FLAGS.target_language:
    return options
  if target_vocab is TEXT_FREE_VOCABULARY:
    raise UsageError("--target_language is a decode-time option: use it with experiments.decode or "
                     "experiments.evaluate (training evaluates each example in its own direction)")
  return options_for_language(options, target_vocab, FLAGS.target_language)
