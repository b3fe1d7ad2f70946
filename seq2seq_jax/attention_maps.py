"""Cross-attention weights of a source/output pair, for plotting: which source tokens each output
token looked at (Bahdanau et al. 2015, Fig. 3; Vaswani et al. 2017, encoder-decoder attention).

The weights come from one teacher-forced forward pass over [BOS] + output with the `intermediates`
collection mutable: the models sow every attention's weights there.  The decoder state at output
position t depends only on the source and the tokens before t, so these are exactly the weights
the incremental search computed when it emitted the output (tests/test_attention_plots.py checks
this step by step).  Every map is cropped to the real source and output lengths, so padding never
appears; the output includes EOS.

Shapes: a batch of weights is [batch, layers, heads, target_len, source_len]; one map is
[layers, heads, output_len, source_len].  The attention RNN has one layer and one head.
"""

import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from seq2seq_jax import models
from seq2seq_jax.data.tokenizers import SPECIALS, AudioInput
from seq2seq_jax.special_tokens import EOS_ID, PAD_ID
from seq2seq_jax.errors import UsageError
from seq2seq_jax.models import audio
from seq2seq_jax.models.rnn_attention import RNNAttention
from seq2seq_jax.models.speech_transformer import SpeechTransformer
from seq2seq_jax.models.transformer import Transformer


@dataclasses.dataclass(frozen=True)
class AttentionMap:
  """One pair's cross-attention.  weights [layers, heads, len(output), len(source)]; each row
  (one output token) sums to 1 over the source tokens."""
  source: tuple[str, ...]   # source symbols
  output: tuple[str, ...]   # output symbols, ending in EOS
  weights: np.ndarray
  description: str          # what the weights are, e.g. "Transformer encoder-decoder attention"


def model_name(model) -> str:
  """The registry name (`--model`) of a model instance."""
  return next((name for name, (_, cls) in models.MODELS.items() if type(model) is cls),
              type(model).__name__)


def require_attention(model) -> None:
  """UsageError unless the model has cross-attention (the Transformer or the attention RNN)."""
  if not isinstance(model, (Transformer, RNNAttention)):
    raise UsageError(f"{model_name(model)} has no attention to plot (its decoder sees only the "
                     f"final encoder state); train --model=rnn_attention or --model=transformer")


def attention_description(model) -> str:
  """A one-line name for the plotted weights."""
  require_attention(model)
  if isinstance(model, Transformer):
    return ("Transformer encoder-decoder attention over 20 ms audio frames" if isinstance(model, SpeechTransformer)
            else "Transformer encoder-decoder attention")
  return f"{model.config.attention} attention ({model.config.rnn_cell.upper()})"


def cross_attention_from_intermediates(model, intermediates) -> jax.Array:
  """The `intermediates` collection of a teacher-forced pass -> cross-attention
  [batch, layers, heads, target_len, source_len].

  Transformer: each decoder layer's `cross_attention` ([batch, heads, T, S] each).  Attention RNN:
  the decoder step's `attention`, stacked over time by `nn.scan` ([batch, T, S]: one layer, one
  head).  Also reads a cached `decode=True` call (T = the tokens that call fed; the RNN then sows
  one [batch, S] per step).
  """
  require_attention(model)
  if isinstance(model, Transformer):
    layers = [intermediates[f"decoder_{i}"]["cross_attention"]["attention_weights"][0]
              for i in range(model.config.num_decoder_layers)]
    return jnp.stack(layers, axis=1)
  steps = intermediates["decoder"]["step"]["attention"]["attention_weights"]
  weights = steps[0] if steps[0].ndim == 3 else jnp.stack(steps, axis=1)
  return weights[:, None, None]


@functools.partial(jax.jit, static_argnames="model")
def cross_attention(model, params, inputs, targets) -> jax.Array:
  """Teacher forcing: inputs [batch, S], targets [batch, T] (ending in EOS, pad 0) ->
  cross-attention [batch, layers, heads, T, S].  Row t holds the weights with which output token
  t was predicted (the decoder input is [BOS] + targets[:t]).  Weights on padded sources are 0;
  rows of padded target positions are meaningless and must be cropped."""
  _, variables = model.apply({"params": params}, inputs, targets, mutable=["intermediates"])
  return cross_attention_from_intermediates(model, variables["intermediates"])


def encoded_length(model, source) -> int:
  """The encoder positions a source occupies: its tokens, or for audio samples its frames (20 ms
  each after Whisper's stem; trailing exact silence is padding, `audio.sample_lengths`)."""
  if isinstance(model, SpeechTransformer):
    nonzero = np.flatnonzero(np.asarray(source))
    return int(audio.encoded_length(nonzero[-1] + 1 if nonzero.size else 0))
  return len(source)


def source_labels(vocab, source) -> tuple[str, ...]:
  """Column labels: the source's symbols, or for audio one per frame, the time every 10 frames."""
  if isinstance(vocab, AudioInput):
    frames = int(audio.encoded_length(len(source)))
    seconds = 2 * audio.HOP_LENGTH / audio.SAMPLE_RATE
    return tuple(f"{i * seconds:.1f}s" if i % 10 == 0 else "" for i in range(frames))
  return symbols(vocab, source)


def pad_rows(rows: Sequence[Sequence[int]]) -> np.ndarray:
  """Token id lists -> [len(rows), longest] int32, padded with PAD_ID."""
  out = np.full((len(rows), max(len(r) for r in rows)), PAD_ID, np.int32)
  for i, row in enumerate(rows):
    out[i, :len(row)] = row
  return out


def crop(weights: np.ndarray, output_start: int, output_len: int, source_len: int) -> np.ndarray:
  """[layers, heads, T, S] -> [layers, heads, output_len, source_len]: the real rows and columns."""
  return weights[:, :, output_start:output_start + output_len, :source_len]


def attention_weights(model, params, sources: Sequence[Sequence[int]], outputs: Sequence[Sequence[int]],
                      prompt: Sequence[int] = (), eos_id: int = EOS_ID) -> list[np.ndarray]:
  """One map [layers, heads, len(output) + 1, len(source)] per pair, from one batched pass.

  sources: source ids (no EOS, as the model reads them); outputs: output ids without EOS (as in
  `DecodingResult.tokens`; EOS is appended and gets the last row); prompt: target-side ids the
  decoder was fed before the output (`DecodingOptions.prompt`), fed here too but not returned.
  Columns follow the source as given: for a model that reads its source reversed
  (`reverse_source`) they are flipped back.
  """
  require_attention(model)
  if len(sources) != len(outputs):
    raise UsageError(f"{len(sources)} sources but {len(outputs)} outputs")
  targets = [list(prompt) + list(out) + [eos_id] for out in outputs]
  batch = np.asarray(cross_attention(model, params, pad_rows(sources), pad_rows(targets)), np.float32)
  maps = []
  for weights, source, output in zip(batch, sources, outputs):
    weights = crop(weights, len(prompt), len(output) + 1, encoded_length(model, source))
    if getattr(model.config, "reverse_source", False):
      weights = weights[..., ::-1]
    maps.append(weights)
  return maps


def symbols(vocab, ids: Sequence[int]) -> tuple[str, ...]:
  """Token ids -> their labels: specials as <pad>, <s>, </s>; a symbol `Vocabulary`'s symbols or
  a subword vocabulary's pieces (any vocabulary with a `pieces(ids)` method)."""
  def label(i: int) -> str:
    if i < len(SPECIALS):
      return SPECIALS[i]
    return vocab.pieces([i])[0] if hasattr(vocab, "pieces") else vocab.symbols[i - len(SPECIALS)]
  return tuple(label(int(i)) for i in ids)


def attention_maps(translator, sources: Sequence[Sequence[int]], outputs: Sequence[Sequence[int]],
                   prompt: Sequence[int] = ()) -> list[AttentionMap]:
  """Labelled maps for a `Translator`'s sources and decoded outputs (ids without EOS)."""
  weights = attention_weights(translator.model, translator.params, sources, outputs, prompt)
  description = attention_description(translator.model)
  return [AttentionMap(source_labels(translator.source_vocab, source)[:w.shape[-1]],
                       symbols(translator.target_vocab, list(output) + [EOS_ID]), w, description)
          for source, output, w in zip(sources, outputs, weights)]
