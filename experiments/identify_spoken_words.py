r"""Spoken-word identification across unseen voices: are a speech model's utterance vectors the word?

  python -m experiments.identify_spoken_words --workdir=runs/speech_conv_1h
  python -m experiments.identify_spoken_words --workdir=runs/speech_conv_1h --pooling=mean --words=200 --output=ids.json

The same --words words of the test split (never heard in training) are spoken by each of the
test voices (`speech_cmudict.TEST_VOICES`, Scottish and Welsh English, never heard in training
either), each utterance at its own speed and pitch (`speech_cmudict.spoken_word_sets`).  Every
utterance becomes one vector with the workdir's audio encoder (`SentenceEncoder`, --pooling over its
real frames; stats: [mean; std], where the attentive statistics pooling of ECAPA-TDNN starts), and
each utterance of voice a is matched to the nearest utterance of voice b, by cosine and by the
ratio margin (`retrieval.cross_condition_errors`); an error is a match to another word.  Printed as
one JSON line: the error rate (%) for every ordered voice pair and their mean, beside the floor of
the same retrieval with the log-Mel features' [mean; std] over frames (no model).
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags, logging

from experiments import checkpoint_flags, entry_point
from seq2seq_jax import retrieval, workdir
from seq2seq_jax.data import pipeline
from seq2seq_jax.data.datasets import speech_cmudict
from seq2seq_jax.data.tokenizers import AudioInput
from seq2seq_jax.errors import UsageError
from seq2seq_jax.models import audio
from seq2seq_jax.sentence_encoder import POOLINGS

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Training workdir of a speech model.", required=True)
flags.DEFINE_enum("pooling", "stats", list(POOLINGS), "How to pool the encoder's frames.")
flags.DEFINE_integer("words", 500, "Test-split words, each spoken by every test voice.")
flags.DEFINE_integer("seed", 0, "Draws the words and each utterance's speed and pitch.")
flags.DEFINE_integer("margin_k", 4, "Nearest neighbours in the ratio margin (Artetxe & Schwenk 2019).",
                     lower_bound=1)
flags.DEFINE_integer("batch_size", 256, "Utterances per encoder batch.")
flags.DEFINE_string("output", None, "Also write the JSON to this file (atomically).")


@jax.jit
def _log_mel_statistics(samples):
  """int16 [B, N] zero-padded -> [B, 2 * 80]: the log-Mel features' mean and std over real frames."""
  lengths = audio.sample_lengths(samples)
  features = audio.log_mel_spectrogram(samples.astype(jnp.float32) / 32768.0, lengths)
  mask = audio.frame_mask(audio.num_frames(lengths), features.shape[1])[..., None].astype(jnp.float32)
  return jnp.concatenate(audio.weighted_statistics(features, mask), axis=-1)


def log_mel_statistics(utterances: list[np.ndarray], batch_size: int) -> np.ndarray:
  """The model-free floor: [mean; std] of each utterance's log-Mel frames -> [N, 160] float32."""
  longest = max(len(u) for u in utterances)
  out = []
  for start in range(0, len(utterances), batch_size):
    batch = np.zeros((batch_size, longest), np.int16)
    chunk = utterances[start:start + batch_size]
    for row, u in enumerate(chunk):
      batch[row, :len(u)] = u
    out.append(np.asarray(_log_mel_statistics(batch))[:len(chunk)])
  return np.concatenate(out).astype(np.float32)


def percent(errors: dict) -> dict:
  return {"mean": {m: round(100 * v, 2) for m, v in errors["mean"].items()},
          "pairs": {pair: {m: round(100 * v, 2) for m, v in e.items()} for pair, e in errors["pairs"].items()}}


def main():
  logging.set_verbosity(logging.WARNING)
  encoder = checkpoint_flags.load_sentence_encoder(FLAGS.workdir, FLAGS.pooling)
  vocab = encoder.source_vocab
  if not isinstance(vocab, AudioInput):
    raise UsageError(f"{FLAGS.workdir} holds a text model; spoken-word identification needs a speech model "
                     "(trained with --model=speech_transformer)")
  words, spoken = speech_cmudict.spoken_word_sets(FLAGS.words, speech_cmudict.TEST_VOICES, FLAGS.seed)
  limit = encoder.translator.max_source_length
  fits = [i for i in range(len(words))
          if all(pipeline.source_length(spoken[v][i], vocab.unit) <= limit for v in spoken)]
  if len(fits) < 2:
    raise UsageError(f"fewer than 2 of the {len(words)} words fit the model's --max_source_length ({limit} hops)")
  spoken = {v: [u[i] for i in fits] for v, u in spoken.items()}
  vectors = {v: encoder.encode_ids(u, FLAGS.batch_size) for v, u in spoken.items()}
  floor = {v: log_mel_statistics(u, FLAGS.batch_size) for v, u in spoken.items()}
  model, baseline = (retrieval.cross_condition_errors(x, FLAGS.margin_k) for x in (vectors, floor))
  out = {
      "workdir": FLAGS.workdir, "step": encoder.translator.step, "pooling": FLAGS.pooling,
      "dim": int(next(iter(vectors.values())).shape[1]), "margin_k": FLAGS.margin_k, "seed": FLAGS.seed,
      "words": len(fits), "words_too_long": len(words) - len(fits), "voices": list(spoken),
      "error_percent": percent(model), "baseline_error_percent": percent(baseline),
      "baseline": "log-Mel features (Whisper's, 80 bins): [mean; std] over each utterance's frames",
  }
  print(json.dumps(out))
  if FLAGS.output:
    workdir.write_json_atomic(FLAGS.output, out)


if __name__ == "__main__":
  entry_point.run(main)
