"""Attention mechanisms.

Multi-head scaled dot-product attention, Vaswani et al. (2017) §3.2.1-3.2.2:
  Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V,
  MultiHead(Q, K, V) = Concat(head_1..head_h) W^O,  head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V).

Masks are boolean, True = may attend, shaped [B, 1 or H, Tq, Tk].  The attention weights are
sown into the `intermediates` collection (`attention_weights`, [B, H, Tq, Tk]) for plotting.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from seq2seq_jax.models import kv_cache
from seq2seq_jax.models.layers import float32_sum_dot_general
from seq2seq_jax.special_tokens import PAD_ID


def padding_mask(query_tokens, key_tokens, pad_id: int = PAD_ID):
  """[B, Tq], [B, Tk] -> [B, 1, Tq, Tk]: True where both query and key are real tokens."""
  return nn.make_attention_mask(query_tokens != pad_id, key_tokens != pad_id, dtype=jnp.bool_)


def causal_mask(tokens):
  """[B, T] -> [B, 1, T, T]: position i may attend to positions j <= i."""
  return nn.make_causal_mask(tokens, dtype=jnp.bool_)


def relative_position_buckets(query_positions, key_positions, max_distance: int):
  """[Tq], [Tk] int -> [Tq, Tk] int in [0, 2 * max_distance]: the key's offset from the query,
  j - i, clipped to [-max_distance, max_distance] and shifted to start at 0."""
  offsets = key_positions[None, :] - query_positions[:, None]
  return jnp.clip(offsets, -max_distance, max_distance) + max_distance


def attention_logits(query, key):
  """Q K^T / sqrt(d_k) (eq. 1).  query [B, H, Tq, Dh], key [B / G, H, Tk, Dh] -> float32 [B, H, Tq, Tk].

  Keys may come once per source for G consecutive query rows (the beams or samples of an input,
  see `kv_cache.group_rows`): each source's keys serve its G rows, as if repeated G times."""
  group = query.shape[0] // key.shape[0]
  logits = jnp.einsum("bhqd,bhkd->bhqk", kv_cache.group_rows(query, group), key, preferred_element_type=jnp.float32)
  return kv_cache.ungroup_rows(logits, group) / jnp.sqrt(query.shape[-1])


def masked_softmax(logits, mask, bias=None):
  """softmax(logits + bias) over the keys with masking.  logits [B, H, Tq, Tk], mask [B, 1|H, Tq, Tk]
  (True = attend) or None, bias [1|B, H, Tq, Tk] or None -> weights [B, H, Tq, Tk]; masked weights
  are exactly 0."""
  if bias is not None:
    logits = logits + bias.astype(logits.dtype)
  if mask is not None:
    logits = jnp.where(mask, logits, jnp.finfo(logits.dtype).min)
  weights = jax.nn.softmax(logits, axis=-1)
  return weights if mask is None else jnp.where(mask, weights, 0.0)


def weighted_values(weights, value):
  """softmax(...) V (eq. 1).  weights [B, H, Tq, Tk], value [B / G, H, Tk, Dh] -> [B, H, Tq, Dh]
  (values once per source serve its G rows, as in `attention_logits`)."""
  group = weights.shape[0] // value.shape[0]
  out = jnp.einsum("bhqk,bhkd->bhqd", kv_cache.group_rows(weights, group), value, preferred_element_type=jnp.float32)
  return kv_cache.ungroup_rows(out, group).astype(value.dtype)


class MultiHeadAttention(nn.Module):
  """Multi-head attention, §3.2.2: queries [B, Tq, D], keys_values [B, Tk, D] -> [B, Tq, D].

  With `decode=True` the keys and values of earlier decoding steps come from the `cache`
  collection (`kv_cache`): in self-attention each step projects only its new position; with
  `static_keys_values=True` (encoder-decoder attention) the source's keys and values are
  projected once, when the cache is created, and steps project only the query.

  `relative_positions=K > 0` adds a learned scalar per head and clipped offset j - i in [-K, K]
  to the logits, as T5 does in self-attention (Raffel et al. 2020, §2.1; Shaw et al. 2018 clip
  offsets the same way): a bias toward neighbouring positions that is the same at every absolute
  position.  In encoder-decoder attention the offset is that of source position j from target
  position i (a prior on the alignment, for tasks such as G2P whose alignment is near-diagonal).
  It starts at 0, so an untrained model attends as without it.

  Heads are split head-major, [B, H, T, Dh], so that the products batched over (B, H) read keys,
  values and caches in place.
  """
  num_heads: int
  dropout: float = 0.0
  dtype: jnp.dtype = jnp.float32
  head_dim: int | None = None  # d_k = d_v; None = features / num_heads (the paper's choice)
  static_keys_values: bool = False  # keys_values do not change between decoding steps
  relative_positions: int = 0  # K > 0: learned per-head bias of the offset j - i clipped to [-K, K]

  @nn.compact
  def __call__(self, queries, keys_values, mask=None, train: bool = False, decode: bool = False):
    """MultiHead(Q, K, V) = Concat(head_1..head_h) W^O (§3.2.2).  queries [B, Tq, D],
    keys_values [B, Tk, D], mask [B, 1|H, Tq, Tk] (True = attend) -> [B, Tq, D]."""
    d_model = queries.shape[-1]
    project = functools.partial(self._project, head_dim=self._head_dim(d_model))
    query = project("query", queries)                                       # Q W_i^Q: [B, H, Tq, Dh]
    project_keys_values = lambda: (project("key", keys_values),             # K W_i^K, V W_i^V: [B, H, Tk, Dh]
                                   project("value", keys_values))
    if decode:  # keys and values of earlier steps (or of the source) from the cache
      key, value, mask, query_start = kv_cache.decoding_keys_values(
          self, project_keys_values, mask, source_side=self.static_keys_values,
          query_length=queries.shape[1], count_queries=bool(self.relative_positions))
    else:
      (key, value), query_start = project_keys_values(), 0
    bias = self._relative_position_bias(query_start, query.shape[2], key.shape[2])
    weights = masked_softmax(attention_logits(query, key), mask, bias)      # softmax(Q K^T / sqrt(d_k)): [B, H, Tq, Tk]
    weights = weights.astype(query.dtype)
    self.sow("intermediates", "attention_weights", weights)
    weights = nn.Dropout(self.dropout)(weights, deterministic=not train)
    heads = jnp.swapaxes(weighted_values(weights, value), 1, 2)             # head_i, eq. (1): [B, Tq, H, Dh]
    return nn.DenseGeneral(d_model, axis=(-2, -1), dtype=self.dtype,        # Concat(head_1..head_h) W^O
                           dot_general=float32_sum_dot_general, name="out")(heads)

  def _head_dim(self, d_model: int) -> int:
    """d_k = d_v: `head_dim`, or d_model / h as in the paper (§3.2.2)."""
    if self.head_dim is None and d_model % self.num_heads:
      raise ValueError(f"d_model={d_model} is not divisible by num_heads={self.num_heads}")
    return self.head_dim or d_model // self.num_heads

  def _project(self, name, x, head_dim: int):
    """x W_i^Q (or W_i^K, W_i^V) for every head i: [B, T, D] -> [B, H, T, Dh].  Plain matrices
    (§3.2.2): a key bias would shift every logit of a query equally and so has zero gradient."""
    projected = nn.DenseGeneral((self.num_heads, head_dim), use_bias=False, dtype=self.dtype,
                                dot_general=float32_sum_dot_general, name=name)(x)
    return jnp.swapaxes(projected, 1, 2)

  def _relative_position_bias(self, query_start, query_length, key_length):
    """[1, H, Tq, Tk] learned bias of the clipped offset (key position - query position), or None.
    Queries sit at positions query_start.. (the decoding position while decoding), keys at 0..Tk-1."""
    if not self.relative_positions:
      return None
    table = self.param("relative_bias", nn.initializers.zeros,
                       (2 * self.relative_positions + 1, self.num_heads))   # [2K + 1, H]
    buckets = relative_position_buckets(query_start + jnp.arange(query_length), jnp.arange(key_length),
                                        self.relative_positions)
    return jnp.transpose(table[buckets], (2, 0, 1))[None]


def _masked_softmax(scores, mask):
  """scores [B, S], mask [B, S] (True = real) -> weights [B, S]; masked weights are exactly 0."""
  scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
  return jnp.where(mask, jax.nn.softmax(scores.astype(jnp.float32), axis=-1), 0.0).astype(scores.dtype)


class AdditiveAttention(nn.Module):
  """Bahdanau et al. (2015), eqs. (5)-(6): e_ij = v^T tanh(W s_{i-1} + U h_j),
  alpha_ij = softmax_j(e_ij), c_i = sum_j alpha_ij h_j.

  query [B, Dq], keys [B, S, Dk], mask [B, S] -> (context [B, Dk], weights [B, S]).
  U h_j does not depend on the decoder step, so a decoder passes it in as `projected_keys`
  [B, S, hidden_dim], computed once per source (App. A.1.2 says so); without it, U is this
  module's own `key` layer.
  """
  hidden_dim: int

  @nn.compact
  def __call__(self, query, keys, mask, projected_keys=None):
    if projected_keys is None:
      projected_keys = nn.Dense(self.hidden_dim, use_bias=False, name="key")(keys)   # U h_j
    projected_query = nn.Dense(self.hidden_dim, name="query")(query)[:, None, :]       # W s_{i-1}
    scores = nn.Dense(1, use_bias=False, name="energy")(jnp.tanh(projected_query + projected_keys))[..., 0]
    weights = _masked_softmax(scores, mask)
    self.sow("intermediates", "attention_weights", weights)
    return jnp.einsum("bs,bsd->bd", weights, keys), weights


class MultiplicativeAttention(nn.Module):
  """Luong et al. (2015), §3.1, eq. (8) global attention scores:
  dot: h_t^T h_s;  general: h_t^T W_a h_s;  concat: v_a^T tanh(W_a [h_t; h_s]).

  query [B, Dq], keys [B, S, Dk], mask [B, S] -> (context [B, Dk], weights [B, S]).
  """
  kind: str = "general"  # dot | general | concat

  @nn.compact
  def __call__(self, query, keys, mask):
    if self.kind == "dot":
      scores = jnp.einsum("bd,bsd->bs", query, keys)
    elif self.kind == "general":
      scores = jnp.einsum("bd,bsd->bs", query, nn.Dense(query.shape[-1], use_bias=False, name="W_a")(keys))
    elif self.kind == "concat":
      hidden = keys.shape[-1]
      both = nn.Dense(hidden, use_bias=False, name="W_a_query")(query)[:, None, :] + \
          nn.Dense(hidden, use_bias=False, name="W_a_key")(keys)   # W_a [h_t; h_s], split in two
      scores = nn.Dense(1, use_bias=False, name="v_a")(jnp.tanh(both))[..., 0]
    else:
      raise ValueError(f"unknown Luong score {self.kind!r}: dot, general or concat")
    weights = _masked_softmax(scores, mask)
    self.sow("intermediates", "attention_weights", weights)
    return jnp.einsum("bs,bsd->bd", weights, keys), weights
