"""Attention RNN decoders: the decoder looks at every encoder state at every step.

* Bahdanau et al. (2015), §3.1 and App. A: the previous decoder state s_{i-1} scores every
  encoder state additively (eqs. 5-6); the context c_i enters the recurrence s_i = f(s_{i-1},
  y_{i-1}, c_i) and the output layer (a tanh layer over [s_i; c_i; E y_{i-1}] instead of maxout).
* Luong et al. (2015), §3.1 and §3.3: the new top state h_t scores the encoder states (dot,
  general or concat, eq. 8), h~_t = tanh(W_c [c_t; h_t]) (eq. 5) predicts y_t, and h~_t is fed to
  the next step's input ("input feeding"; `input_feeding=False` gives their plain global attention,
  whose recurrence sees only y_{t-1}).

Attention weights [B, T, S] are sown into the `intermediates` collection for plotting.
"""

import flax.linen as nn
import jax.numpy as jnp

from seq2seq_jax.errors import UsageError
from seq2seq_jax.models.attention import AdditiveAttention, MultiplicativeAttention
from seq2seq_jax.models.rnn import RNNConfig, RNNSeq2Seq, StackedCells


def top_hidden(carry):
  """The output vector h of a layer's carry (LSTM carry is (c, h); GRU carry is h)."""
  return carry[1] if isinstance(carry, tuple) else carry


class BahdanauDecoderStep(nn.Module):
  """state = layer carries.  (state, E y_{i-1} [B, E], encoded) -> (state, features [B, H])."""
  config: RNNConfig
  train: bool = False

  @nn.compact
  def __call__(self, state, embedded, encoded):
    c = self.config
    context, _ = AdditiveAttention(c.hidden_size, name="attention")(
        top_hidden(state[-1]), encoded["states"], encoded["mask"], encoded["projected_keys"])
    state, h = StackedCells(c, self.train, name="cells")(state, jnp.concatenate([embedded, context], -1))
    features = jnp.tanh(nn.Dense(c.hidden_size, name="deep_output")(jnp.concatenate([h, context, embedded], -1)))
    return state, nn.Dropout(c.dropout)(features, deterministic=not self.train)

  @staticmethod
  def initial_state(encoded, config):
    del config
    return encoded["final"]


class LuongDecoderStep(nn.Module):
  """state = (layer carries, h~_{t-1}).  (state, E y_{t-1}, encoded) -> (state, h~_t [B, H])."""
  config: RNNConfig
  train: bool = False

  @nn.compact
  def __call__(self, state, embedded, encoded):
    c = self.config
    carries, feed = state
    step_input = jnp.concatenate([embedded, feed], -1) if c.input_feeding else embedded
    carries, h = StackedCells(c, self.train, name="cells")(carries, step_input)
    kind = c.attention.removeprefix("luong_")
    context, _ = MultiplicativeAttention(kind, name="attention")(h, encoded["states"], encoded["mask"])
    attentional = jnp.tanh(nn.Dense(c.hidden_size, use_bias=False, name="W_c")(jnp.concatenate([context, h], -1)))
    attentional = nn.Dropout(c.dropout)(attentional, deterministic=not self.train)
    return (carries, attentional), attentional

  @staticmethod
  def initial_state(encoded, config):
    batch = encoded["states"].shape[0]
    return encoded["final"], jnp.zeros((batch, config.hidden_size), encoded["states"].dtype)


class RNNAttention(RNNSeq2Seq):
  """`--model=rnn_attention`: the RNN encoder-decoder with `--attention=bahdanau|luong_*`."""

  def setup(self):
    super().setup()
    if self.config.attention == "bahdanau":
      self.attention_keys = nn.Dense(self.config.hidden_size, use_bias=False)  # U of eq. (6)

  def encode(self, inputs, train: bool = False):
    """As RNNSeq2Seq.encode; Bahdanau attention adds "projected_keys" [B, S, H] = U h_j, which
    every decoder step reuses instead of recomputing (Bahdanau et al. App. A.1.2)."""
    encoded = super().encode(inputs, train)
    if self.config.attention == "bahdanau":
      encoded = {**encoded, "projected_keys": self.attention_keys(encoded["states"])}
    return encoded

  def step_class(self) -> type:
    c = self.config
    if c.attention == "luong_dot" and c.bidirectional_encoder:
      raise UsageError("luong_dot scores h_t . h_s and needs equal sizes: use a unidirectional "
                       "encoder or luong_general")
    return BahdanauDecoderStep if c.attention == "bahdanau" else LuongDecoderStep
