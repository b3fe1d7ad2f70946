"""RNN encoder-decoder: Sutskever et al. (2014) and Cho et al. (2014).

The encoder reads the source with a multi-layer LSTM or GRU (optionally bidirectional); its final
state is the fixed-size context vector that initialises the decoder, which generates the target
token by token.  Everything the decoder knows about the source passes through that vector: the
bottleneck that attention (rnn_attention.py) removes.

Shapes: inputs [B, S], targets [B, T] int32 with pad 0; H hidden size; logits [B, T, V].
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from seq2seq_jax.errors import UsageError
from seq2seq_jax.models import kv_cache
from seq2seq_jax.models.layers import TokenEmbedding, shift_right
from seq2seq_jax.special_tokens import BOS_ID, PAD_ID


@dataclasses.dataclass(frozen=True)
class RNNConfig:
  source_vocab_size: int
  target_vocab_size: int
  rnn_cell: str = "lstm"           # lstm | gru
  hidden_size: int = 256
  embedding_size: int = 256
  num_layers: int = 2
  bidirectional_encoder: bool = False
  reverse_source: bool = False     # Sutskever et al. §3.3: read the source backwards
  dropout: float = 0.1             # between layers and on embeddings
  attention: str = "bahdanau"      # rnn_attention only: bahdanau | luong_dot | luong_general | luong_concat
  input_feeding: bool = True       # luong_*: feed h~_{t-1} to the next step's input (Luong et al. §3.3)
  max_len: int = 128               # longest output the decoders are asked for
  bos_id: int = BOS_ID
  pad_id: int = PAD_ID

  def __post_init__(self):
    if self.rnn_cell not in ("lstm", "gru"):
      raise UsageError(f"rnn_cell must be 'lstm' or 'gru', got {self.rnn_cell!r}")
    if self.attention not in ("bahdanau", "luong_dot", "luong_general", "luong_concat"):
      raise UsageError(f"attention must be bahdanau, luong_dot, luong_general or luong_concat, "
                       f"got {self.attention!r}")
    if not 0.0 <= self.dropout < 1.0:
      raise UsageError(f"dropout must be in [0, 1), got {self.dropout}")


def make_cell(kind: str, features: int, name: str | None = None):
  """An LSTM or GRU cell; without a name it is left unbound, for `nn.RNN` to adopt."""
  cls = nn.OptimizedLSTMCell if kind == "lstm" else nn.GRUCell
  return cls(features, name=name) if name else cls(features, parent=None)


def reverse_real_tokens(tokens, pad_id: int = PAD_ID):
  """[B, S] -> [B, S] with each row's real tokens in reverse order and padding left in place."""
  lengths = jnp.sum(tokens != pad_id, axis=-1, keepdims=True)
  positions = jnp.arange(tokens.shape[1])[None, :]
  index = jnp.where(positions < lengths, lengths - 1 - positions, positions)
  return jnp.take_along_axis(tokens, index, axis=1)


class RNNEncoder(nn.Module):
  """Multi-layer (bi)directional RNN.  inputs [B, S] -> (states [B, S, H * directions],
  final carry of each layer; for a bidirectional layer the two directions' carries are bridged
  into one decoder-sized carry, s_0 = tanh(W [h_fwd; h_bwd]) as Bahdanau et al. App. A.2.2)."""
  config: RNNConfig

  @nn.compact
  def __call__(self, inputs, train: bool = False):
    c = self.config
    lengths = jnp.sum(inputs != c.pad_id, axis=-1)
    if c.reverse_source:
      inputs = reverse_real_tokens(inputs, c.pad_id)
    x = TokenEmbedding(c.source_vocab_size, c.embedding_size, scale=False, name="embedding")(inputs)
    x = nn.Dropout(c.dropout)(x, deterministic=not train)
    finals = []
    for layer in range(c.num_layers):
      forward = nn.RNN(make_cell(c.rnn_cell, c.hidden_size), name=f"forward_{layer}")
      carry, states = forward(x, seq_lengths=lengths, return_carry=True)
      if c.bidirectional_encoder:
        backward = nn.RNN(make_cell(c.rnn_cell, c.hidden_size), reverse=True, keep_order=True,
                          name=f"backward_{layer}")
        carry_b, states_b = backward(x, seq_lengths=lengths, return_carry=True)
        states = jnp.concatenate([states, states_b], axis=-1)
        bridge = nn.Dense(c.hidden_size, name=f"bridge_{layer}")
        carry = jax.tree.map(lambda f, b: jnp.tanh(bridge(jnp.concatenate([f, b], -1))), carry, carry_b)
      finals.append(carry)
      x = states if layer == c.num_layers - 1 else nn.Dropout(c.dropout)(states, deterministic=not train)
    states = jnp.where((jnp.arange(inputs.shape[1]) < lengths[:, None])[..., None], x, 0.0)
    return {"states": states, "final": tuple(finals), "mask": inputs != c.pad_id}


class StackedCells(nn.Module):
  """One time step through `num_layers` cells, dropout between layers.
  carries: tuple per layer, x [B, D] -> (new carries, top output [B, H])."""
  config: RNNConfig
  train: bool = False

  @nn.compact
  def __call__(self, carries, x):
    c = self.config
    new = []
    for layer in range(c.num_layers):
      carry, x = make_cell(c.rnn_cell, c.hidden_size, f"cell_{layer}")(carries[layer], x)
      new.append(carry)
      if layer < c.num_layers - 1:
        x = nn.Dropout(c.dropout)(x, deterministic=not self.train)
    return tuple(new), x


class ContextDecoderStep(nn.Module):
  """Sutskever/Cho decoder step: state = layer carries (initialised from the context vector).
  (state, y_{t-1} embedding [B, E], encoded) -> (state, features [B, H])."""
  config: RNNConfig
  train: bool = False

  @nn.compact
  def __call__(self, state, embedded, encoded):
    return StackedCells(self.config, self.train, name="cells")(state, embedded)

  @staticmethod
  def initial_state(encoded, config):
    del config
    return encoded["final"]


class RecurrentDecoder(nn.Module):
  """Runs a decoder step module over decoder_tokens [B, T] -> features [B, T, H].

  Teacher forcing: `nn.scan` over time.  `decode=True`: the step state lives in the `cache`
  collection, so each call costs one step per new token whatever came before: `state`, the
  carries [B, ...] of each row, marked `kv_cache.PerRow` (beam search reorders it with the rows),
  and `started`, a scalar that is False until the first step takes the state from the encoder.
  """
  config: RNNConfig
  step_cls: type

  @nn.compact
  def __call__(self, encoded, decoder_tokens, train: bool = False, decode: bool = False):
    c = self.config
    embed = TokenEmbedding(c.target_vocab_size, c.embedding_size, scale=False, name="embedding")
    embedded = nn.Dropout(c.dropout)(embed(decoder_tokens), deterministic=not train)
    init = self.step_cls.initial_state(encoded, c)
    if not decode:
      scan = nn.scan(self.step_cls, variable_broadcast="params", variable_axes={"intermediates": 1},
                     split_rngs={"params": False, "dropout": True}, in_axes=(1, nn.broadcast), out_axes=1)
      _, features = scan(c, train, name="step")(init, embedded, encoded)
      return features
    is_initialized = self.has_variable("cache", "state")
    cached = self.variable("cache", "state", lambda: kv_cache.per_row(init))
    started = self.variable("cache", "started", lambda: jnp.array(False))
    state = jax.tree.map(lambda s, i: jnp.where(started.value, s, i), cached.value, init)
    step = self.step_cls(c, train, name="step")
    outputs = []
    for t in range(decoder_tokens.shape[1]):
      state, out = step(state, embedded[:, t], encoded)
      outputs.append(out)
    if is_initialized:
      cached.value, started.value = state, jnp.array(True)
    return jnp.stack(outputs, axis=1)


class RNNSeq2Seq(nn.Module):
  """Encoder-decoder without attention (`--model=rnn_seq2seq`): the context vector is all the
  decoder sees of the source."""
  config: RNNConfig

  def step_class(self) -> type:
    """The decoder step module: the only thing the attention variants change."""
    return ContextDecoderStep

  def setup(self):
    self.encoder = RNNEncoder(self.config)
    self.decoder = RecurrentDecoder(self.config, self.step_class())
    self.output = nn.Dense(self.config.target_vocab_size)

  def encode(self, inputs, train: bool = False):
    """inputs [B, S] -> {"states" [B, S, H'], "final": carries per layer, "mask" [B, S]}."""
    return self.encoder(inputs, train)

  def decode(self, encoded, inputs, decoder_tokens, train: bool = False, decode: bool = False):
    """encoded from `encode`, inputs [B, S] (unused: the mask travels in `encoded`),
    decoder_tokens [B, T] -> logits [B, T, V]."""
    del inputs
    return self.output(self.decoder(encoded, decoder_tokens, train, decode))

  def __call__(self, inputs, targets, train: bool = False):
    encoded = self.encode(inputs, train)
    return self.decode(encoded, inputs, shift_right(targets, self.config.bos_id), train)
