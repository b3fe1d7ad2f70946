"""The Transformer, Vaswani et al. (2017), "Attention Is All You Need", §3.

Encoder (§3.1): N layers of [self-attention, feed-forward], each sublayer wrapped as
LayerNorm(x + Dropout(Sublayer(x))) (post-LN, the paper) or x + Dropout(Sublayer(LayerNorm(x)))
(pre-LN, `pre_ln=True`, with a final LayerNorm).  Decoder (§3.1): N layers of [masked
self-attention, encoder-decoder attention, feed-forward].  Embeddings are scaled by sqrt(d_model)
and summed with positional encodings (§3.4-3.5), to which `relative_positions` adds a learned
bias of the clipped offset in both self-attentions (T5's scheme, beyond the paper) and
`cross_relative_positions` one of source position minus target position in encoder-decoder
attention (an alignment prior, also beyond the paper); the target embedding may be shared with the
pre-softmax projection, and with a vocabulary common to both sides the source embedding too: the
paper's "same weight matrix between the two embedding layers and the pre-softmax linear
transformation" (§3.4, `share_embeddings`).

Shapes: inputs [B, S], targets [B, T] int32 with pad 0; encoded [B, S, D]; logits [B, T, V].
`dtype="bfloat16"` computes activations and matrix-product operands in bfloat16; products are summed in
float32 (`layers.float32_sum_dot_general`), parameters stay float32, and the attention softmax,
LayerNorm statistics and logits are float32.
"""

import dataclasses
import functools

import flax.linen as nn
import jax.numpy as jnp

from seq2seq_jax.errors import UsageError
from seq2seq_jax.models.attention import MultiHeadAttention, causal_mask, padding_mask
from seq2seq_jax.models.layers import (FeedForward, PositionalEncoding, TokenEmbedding, float32_sum_dot_general,
                                      shift_right)
from seq2seq_jax.special_tokens import BOS_ID, PAD_ID

DTYPES = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  """Hyper-parameters; defaults are a small G2P model. `dropout=0` turns every dropout off."""
  source_vocab_size: int
  target_vocab_size: int
  d_model: int = 128
  num_heads: int = 4
  key_size: int = 0             # d_k = d_v per head; 0 = d_model / num_heads (§3.2.2)
  d_ff: int = 512
  num_encoder_layers: int = 2
  num_decoder_layers: int = 2
  dropout: float = 0.1          # residual, embedding and attention-weight dropout (P_drop)
  attention_dropout: float | None = None  # attention-weight dropout alone; None = `dropout`
  relative_positions: int = 0   # K > 0: self-attention adds a learned bias of the offset clipped to [-K, K]
  cross_relative_positions: int = 0  # K > 0: the same in encoder-decoder attention (source j - target i)
  max_len: int = 128            # longest source or target the positional encoding covers
  positional: str = "sinusoidal"  # or "learned"
  pre_ln: bool = False
  share_target_embedding: bool = True  # tie target embedding and output projection
  share_embeddings: bool = False  # one table for source, target and output (§3.4); needs one vocabulary
  activation: str = "relu"
  bos_id: int = BOS_ID
  pad_id: int = PAD_ID
  dtype: str = "float32"        # activations/matmuls: float32 or bfloat16; parameters stay float32

  def __post_init__(self):
    if self.dtype not in DTYPES:
      raise UsageError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
    if self.key_size < 0:
      raise UsageError(f"key_size must be >= 0 (0 = d_model / num_heads), got {self.key_size}")
    if self.d_model % self.num_heads and not self.key_size:
      raise UsageError(f"d_model={self.d_model} must be divisible by num_heads={self.num_heads}")
    if self.positional not in ("sinusoidal", "learned"):
      raise UsageError(f"positional must be 'sinusoidal' or 'learned', got {self.positional!r}")
    if not 0.0 <= self.dropout < 1.0:
      raise UsageError(f"dropout must be in [0, 1), got {self.dropout}")
    for name in ("relative_positions", "cross_relative_positions"):
      if getattr(self, name) < 0:
        raise UsageError(f"{name} must be >= 0 (0 = off), got {getattr(self, name)}")
    if self.share_embeddings and self.source_vocab_size != self.target_vocab_size:
      raise UsageError(f"share_embeddings needs one vocabulary for source and target, got sizes "
                       f"{self.source_vocab_size} and {self.target_vocab_size}; drop --share_embeddings")
    if self.share_embeddings and not self.share_target_embedding:
      raise UsageError("share_embeddings ties the output projection too; it cannot be combined with "
                       "share_target_embedding=False")
    if self.attention_dropout is not None and not 0.0 <= self.attention_dropout < 1.0:
      raise UsageError(f"attention_dropout must be in [0, 1), got {self.attention_dropout}")

  @property
  def attention_weight_dropout(self) -> float:
    """`attention_dropout` if set, else `dropout`; `dropout=0` turns it off as every other."""
    if self.dropout == 0.0 or self.attention_dropout is None:
      return self.dropout
    return self.attention_dropout


class Sublayer(nn.Module):
  """Residual connection around `fn` with layer normalisation, post-LN (paper) or pre-LN."""
  pre_ln: bool
  dropout: float
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x, fn, train):
    norm = nn.LayerNorm(dtype=self.dtype, name="norm")
    drop = lambda y: nn.Dropout(self.dropout)(y, deterministic=not train)
    if self.pre_ln:
      return x + drop(fn(norm(x)))
    return norm(x + drop(fn(x)))


class EncoderLayer(nn.Module):
  config: TransformerConfig

  @nn.compact
  def __call__(self, x, mask, train):
    """x [B, S, D], mask [B, 1, S, S] -> [B, S, D]."""
    c = self.config
    attn = MultiHeadAttention(c.num_heads, c.attention_weight_dropout, dtype=c.dtype, head_dim=c.key_size or None,
                              relative_positions=c.relative_positions, name="self_attention")
    x = Sublayer(c.pre_ln, c.dropout, c.dtype, name="attention_block")(
        x, lambda h: attn(h, h, mask, train), train)
    ffn = FeedForward(c.d_ff, activation=c.activation, dtype=c.dtype, name="feed_forward")
    return Sublayer(c.pre_ln, c.dropout, c.dtype, name="feed_forward_block")(x, lambda h: ffn(h, train), train)


class DecoderLayer(nn.Module):
  config: TransformerConfig

  @nn.compact
  def __call__(self, y, encoded, self_mask, cross_mask, train, decode):
    """y [B, T, D], encoded [B, S, D], self_mask [B, 1, T, T], cross_mask [B, 1, T, S] -> [B, T, D]."""
    c = self.config
    self_attn = MultiHeadAttention(c.num_heads, c.attention_weight_dropout, dtype=c.dtype, head_dim=c.key_size or None,
                                   relative_positions=c.relative_positions, name="self_attention")
    cross_attn = MultiHeadAttention(c.num_heads, c.attention_weight_dropout, dtype=c.dtype, head_dim=c.key_size or None,
                                    static_keys_values=True, relative_positions=c.cross_relative_positions,
                                    name="cross_attention")
    ffn = FeedForward(c.d_ff, activation=c.activation, dtype=c.dtype, name="feed_forward")
    y = Sublayer(c.pre_ln, c.dropout, c.dtype, name="self_attention_block")(
        y, lambda h: self_attn(h, h, self_mask, train, decode), train)
    y = Sublayer(c.pre_ln, c.dropout, c.dtype, name="cross_attention_block")(
        y, lambda h: cross_attn(h, encoded, cross_mask, train, decode), train)
    return Sublayer(c.pre_ln, c.dropout, c.dtype, name="feed_forward_block")(y, lambda h: ffn(h, train), train)


class Transformer(nn.Module):
  """Encoder-decoder Transformer.  `__call__` is teacher forcing; `encode`/`decode` serve search."""
  config: TransformerConfig

  def setup(self):
    c = self.config
    self.target_embedding = TokenEmbedding(c.target_vocab_size, c.d_model, dtype=c.dtype)
    self.source_embedding = (self.target_embedding if c.share_embeddings else
                             TokenEmbedding(c.source_vocab_size, c.d_model, dtype=c.dtype))
    self.positional = PositionalEncoding(c.max_len, c.positional, name="source_positions")
    self.target_positional = PositionalEncoding(c.max_len, c.positional, name="target_positions")
    self.encoder_layers = [EncoderLayer(c, name=f"encoder_{i}") for i in range(c.num_encoder_layers)]
    self.decoder_layers = [DecoderLayer(c, name=f"decoder_{i}") for i in range(c.num_decoder_layers)]
    self.embedding_dropout = nn.Dropout(c.dropout)
    if c.pre_ln:
      self.encoder_norm = nn.LayerNorm(dtype=c.dtype)
      self.decoder_norm = nn.LayerNorm(dtype=c.dtype)
    if not c.share_target_embedding:
      self.output_projection = nn.Dense(c.target_vocab_size, dtype=c.dtype,  # float32 logits
                                        dot_general=functools.partial(float32_sum_dot_general,
                                                                      preferred_element_type=jnp.float32))

  def encode(self, inputs, train: bool = False):
    """inputs [B, S] -> encoded [B, S, D] (§3.1, encoder)."""
    c = self.config
    x = self.source_embedding(inputs)
    x = self.positional(x)
    x = self.embedding_dropout(x, deterministic=not train)
    mask = padding_mask(inputs, inputs, c.pad_id)
    for layer in self.encoder_layers:
      x = layer(x, mask, train)
    return self.encoder_norm(x) if c.pre_ln else x

  def source_mask(self, inputs):
    """inputs [B, S] -> [B, S] bool: the encoded positions the decoder may attend to (not padding)."""
    return inputs != self.config.pad_id

  def decode(self, encoded, inputs, decoder_tokens, train: bool = False, decode: bool = False):
    """Decoder (§3.1).  encoded [B, S, D], inputs [B, S] (for the padding mask),
    decoder_tokens [B, T] (BOS-shifted targets; with `decode=True` the newest token(s) only,
    positions and keys/values kept in the `cache` collection) -> logits [B, T, V]."""
    c = self.config
    if decode:
      self_mask = None  # the cache masks future positions itself
      cross_mask = nn.make_attention_mask(jnp.ones_like(decoder_tokens, bool), self.source_mask(inputs))
    else:
      self_mask = padding_mask(decoder_tokens, decoder_tokens, c.pad_id) & causal_mask(decoder_tokens)
      cross_mask = nn.make_attention_mask(decoder_tokens != c.pad_id, self.source_mask(inputs))
    y = self.target_embedding(decoder_tokens)
    y = self.target_positional(y, decode)
    y = self.embedding_dropout(y, deterministic=not train)
    for layer in self.decoder_layers:
      y = layer(y, encoded, self_mask, cross_mask, train, decode)
    if c.pre_ln:
      y = self.decoder_norm(y)
    if c.share_target_embedding:
      return self.target_embedding.attend(y)  # logits = y E^T (§3.4), E ~ N(0, 1/d_model)
    return self.output_projection(y)

  def __call__(self, inputs, targets, train: bool = False):
    """Teacher forcing: inputs [B, S], targets [B, T] (ending in EOS, pad 0) -> logits [B, T, V]."""
    encoded = self.encode(inputs, train)
    return self.decode(encoded, inputs, shift_right(targets, self.config.bos_id), train)
