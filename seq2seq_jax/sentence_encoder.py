"""A trained workdir's encoder as a sentence encoder (as in LASER, Artetxe & Schwenk 2019): one
float32 vector per input text.

  encoder = SentenceEncoder.from_workdir("runs/bible_both", pooling="max")
  vectors = encoder.encode(["In the beginning...", "En el principio..."])   # [2, D] float32

Pooling is over the real (non-pad) positions of the encoder states, so neither padding nor the
other inputs of a batch change a vector: mean, max (LASER: max-pooling over the BiLSTM states),
final (an RNN's top-layer final state, the context vector of Sutskever et al. 2014; for the
Transformer, the state at the last real position), or stats ([mean; std], [B, 2D]: the statistics
pooling of speaker embeddings, where `audio.AttentiveStatisticsPooling` starts before training).
A speech model's encoder gives utterance vectors the same way, over its real audio frames; its
inputs are WAV paths.  The encoder never sees a target-language
token (it is given to the decoder only), so one encoder serves every language it was trained on.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from seq2seq_jax.data import pipeline
from seq2seq_jax.errors import UsageError
from seq2seq_jax.models import audio
from seq2seq_jax.translator import Translator

POOLINGS = ("mean", "max", "final", "stats")


def _states_and_final(encoded, mask):
  """encoded: [B, S, D] (Transformer) or {"states", "final"} (RNN) -> (states [B, S, D], final [B, D])."""
  if isinstance(encoded, dict):
    top = encoded["final"][-1]
    return encoded["states"], top[1] if isinstance(top, tuple) else top
  last = jnp.maximum(jnp.sum(mask, axis=-1) - 1, 0)
  return encoded, jnp.take_along_axis(encoded, last[:, None, None], axis=1)[:, 0]


def pool(states, final, mask, pooling: str):
  """states [B, S, D], final [B, D], mask [B, S] (True at real positions) -> [B, D] float32
  ([B, 2D] for "stats")."""
  states = states.astype(jnp.float32)
  if pooling == "final":
    return final.astype(jnp.float32)
  if pooling == "stats":  # [mean; std] over the real positions: statistics pooling (Snyder et al. 2018)
    return jnp.concatenate(audio.weighted_statistics(states, mask[..., None].astype(jnp.float32)), axis=-1)
  if pooling == "max":
    return jnp.max(jnp.where(mask[..., None], states, -jnp.inf), axis=1)
  total = jnp.sum(jnp.where(mask[..., None], states, 0.0), axis=1)
  return total / jnp.maximum(jnp.sum(mask, -1, keepdims=True), 1).astype(jnp.float32)


@functools.partial(jax.jit, static_argnames=("model", "pooling"))
def embed(model, params, inputs, pooling: str = "mean"):
  """inputs [B, S] int32 (pad 0) -> sentence vectors [B, D] float32."""
  if pooling not in POOLINGS:
    raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
  mask = (model.apply({"params": params}, inputs, method=model.source_mask) if hasattr(model, "source_mask")
          else inputs != 0)   # audio: the encoded frames of each utterance
  encoded = model.apply({"params": params}, inputs, method=model.encode)
  states, final = _states_and_final(encoded, mask)
  return pool(states, final, mask, pooling)


# Where each model family keeps the table that embeds source tokens, first match wins (a Transformer
# with --share_embeddings embeds the source with the target table).
SOURCE_EMBEDDING_PATHS = (("source_embedding", "table", "embedding"), ("encoder", "embedding", "table", "embedding"),
                          ("target_embedding", "table", "embedding"))


def source_embedding_table(params) -> np.ndarray | None:
  """The model's source-token embedding table [source_vocab, E] as float32, or None if the
  parameters hold none of `SOURCE_EMBEDDING_PATHS` (e.g. an ensemble)."""
  for path in SOURCE_EMBEDDING_PATHS:
    node = params
    for key in path:
      node = node.get(key) if hasattr(node, "get") else None
      if node is None:
        break
    if node is not None:
      return np.asarray(node, np.float32)
  return None


@dataclasses.dataclass
class SentenceEncoder:
  """Texts -> [N, D] float32 sentence vectors with a trained model's encoder (no decoder is run)."""
  translator: Translator
  pooling: str = "mean"

  def __post_init__(self):
    if self.pooling not in POOLINGS:
      raise UsageError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")

  @classmethod
  def from_workdir(cls, workdir: str, pooling: str = "mean", checkpoint: str | int = "latest",
                   use_ema: bool = True) -> "SentenceEncoder":
    """The encoder of `workdir` at `checkpoint` ("latest", "best" or a step; see `Translator.from_workdir`)."""
    return cls(Translator.from_workdir(workdir, checkpoint=checkpoint, use_ema=use_ema), pooling)

  @property
  def source_vocab(self):
    return self.translator.source_vocab

  def token_ids(self, texts: list[str], truncate: bool = False) -> list[np.ndarray]:
    """Source token ids per text.  UsageError naming the line for an empty or out-of-vocabulary
    text, and for one longer than the model's --max_source_length unless `truncate` (then its first
    max_source_length tokens are used, as `evaluation.decode_and_score` does)."""
    if not truncate or self.translator.source_unit > 1:  # audio longer than the model takes is refused
      return self.translator.encode_sources(texts)
    out = []
    for line, text in enumerate(texts, 1):
      ids = self.source_vocab.encode(text)
      if not ids:
        raise UsageError(f"input {line} is empty")
      out.append(np.asarray(ids[: self.translator.max_source_length], np.int32))
    return out

  def encode_ids(self, sources: list[np.ndarray], batch_size: int = 256) -> np.ndarray:
    """Token-id rows (no EOS, no pad) -> [N, D] float32, in input order."""
    if not sources:
      raise UsageError("no inputs to encode")
    vectors = [None] * len(sources)
    t = self.translator
    for idx, batch in pipeline.eval_batches(sources, None, batch_size, t.buckets, t.source_unit):
      out = np.asarray(embed(t.model, t.params, batch["inputs"], self.pooling))
      for row, i in enumerate(idx):
        vectors[i] = out[row]
    return np.stack(vectors).astype(np.float32)

  def encode(self, texts: list[str], batch_size: int = 256, truncate: bool = False) -> np.ndarray:
    """Texts -> [N, D] float32 sentence vectors (`token_ids` says which texts are refused)."""
    return self.encode_ids(self.token_ids(texts, truncate), batch_size)
