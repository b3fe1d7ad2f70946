"""Attention mechanisms.

Multi-head scaled dot-product attention, Vaswani et al. (2017) §3.2.1-3.2.2:
  Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V,
  MultiHead(Q, K, V) = Concat(head_1..head_h) W^O,  head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V).

Masks are boolean, True = may attend, shaped [B, 1 or H, Tq, Tk].  The attention weights are
sown into the `intermediates` collection (`attention_weights`, [B, H, Tq, Tk]) for plotting.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from seq2seq_jax.models.layers import float32_sum_dot_general


def padding_mask(query_tokens, key_tokens, pad_id: int = 0):
  """[B, Tq], [B, Tk] -> [B, 1, Tq, Tk]: True where both query and key are real tokens."""
  return nn.make_attention_mask(query_tokens != pad_id, key_tokens != pad_id, dtype=jnp.bool_)


def causal_mask(tokens):
  """[B, T] -> [B, 1, T, T]: position i may attend to positions j <= i."""
  return nn.make_causal_mask(tokens, dtype=jnp.bool_)


def group_rows(x, group: int):
  """[S * G, H, Tq, ...] -> [S, H, G * Tq, ...]: the G consecutive rows of each source side by side
  as queries, so that they attend to that source's keys and values in one product."""
  rows, heads = x.shape[:2]
  x = x.reshape((rows // group, group) + x.shape[1:])
  x = jnp.swapaxes(x, 1, 2)  # [S, H, G, Tq, ...]
  return x.reshape((rows // group, heads, group * x.shape[3]) + x.shape[4:])


def ungroup_rows(x, group: int):
  """The inverse of `group_rows`: [S, H, G * Tq, ...] -> [S * G, H, Tq, ...]."""
  sources, heads = x.shape[:2]
  x = x.reshape((sources, heads, group, x.shape[2] // group) + x.shape[3:])
  x = jnp.swapaxes(x, 1, 2)  # [S, G, H, Tq, ...]
  return x.reshape((sources * group, heads) + x.shape[3:])


def cache_storage_dtype(dtype):
  """The dtype a key/value cache is stored in: bfloat16 values are kept as their uint16 bit
  patterns.  XLA:CPU widens a bfloat16 dynamic-update-slice to float32, so that each decoding step
  converted every cache to float32 and back; on integers the write and the slot reads move the
  16-bit words as they are."""
  return jnp.uint16 if dtype == jnp.bfloat16 else dtype


def to_storage(x):
  """Values -> their form in a cache (see `cache_storage_dtype`)."""
  return lax.bitcast_convert_type(x, jnp.uint16) if x.dtype == jnp.bfloat16 else x


def from_storage(x, dtype):
  """A cache's stored form -> values of `dtype` (see `cache_storage_dtype`)."""
  return lax.bitcast_convert_type(x, dtype) if x.dtype != dtype else x


def read_slots(cache, slots):
  """cache [B, H, L, Dh], slots [B, L] int -> [B, H, L, Dh]: row b's entry at position t is
  cache[slots[b, t], :, t] (see `MultiHeadAttention`, self-attention cache)."""
  heads, length = cache.shape[1], cache.shape[2]
  return cache[slots[:, None, :], jnp.arange(heads)[None, :, None], jnp.arange(length)[None, None, :]]


def relative_position_buckets(query_positions, key_positions, max_distance: int):
  """[Tq], [Tk] int -> [Tq, Tk] int in [0, 2 * max_distance]: the key's offset from the query,
  j - i, clipped to [-max_distance, max_distance] and shifted to start at 0."""
  offsets = key_positions[None, :] - query_positions[:, None]
  return jnp.clip(offsets, -max_distance, max_distance) + max_distance


def dot_product_weights(query, key, mask, bias=None):
  """softmax(Q K^T / sqrt(d_k) + bias) with masking.  query [B, H, Tq, Dh], key [B, H, Tk, Dh],
  mask [B, 1|H, Tq, Tk] (True = attend), bias [1|B, H, Tq, Tk] or None -> weights [B, H, Tq, Tk];
  masked weights are exactly 0."""
  logits = jnp.einsum("bhqd,bhkd->bhqk", query, key, preferred_element_type=jnp.float32) / jnp.sqrt(query.shape[-1])
  if bias is not None:
    logits = logits + bias.astype(logits.dtype)
  if mask is not None:
    logits = jnp.where(mask, logits, jnp.finfo(logits.dtype).min)
  weights = jax.nn.softmax(logits, axis=-1)
  if mask is not None:
    weights = jnp.where(mask, weights, 0.0)
  return weights.astype(query.dtype)


class MultiHeadAttention(nn.Module):
  """Multi-head attention with an optional key/value cache for incremental decoding.

  queries [B, Tq, D], keys_values [B, Tk, D] -> [B, Tq, D].

  With `decode=True` the `cache` collection keeps what earlier steps computed:
  - self-attention: the projected keys and values of each new position are written into
    `slot_key`/`slot_value` [B, H, L_max, Dh] at `cache_index`, so one step costs O(1) new
    projections; queries attend to positions <= index.  The cache is sized by the length of the
    call that creates it (see `seq2seq_jax.decoding.task.initial_cache`).  Row b writes into slot
    b, and `cached_slots` [B, L_max] says, for each position, which slot holds the key and value
    of row b's own history there (b itself, until beam search reorders the rows).  Beam search
    reorders `cached_slots` like every per-row leaf, while keys and values stay in the slots they
    were written to (`slot_*` leaves are never reordered), and each step reads them through it:
    one read of the cache instead of a copy of it per reordering (about 20% faster beam search).
  - `static_keys_values=True` (encoder-decoder attention): keys_values are the same at every step,
    so they are projected once, by the call that creates the cache, and kept in
    `static_key`/`static_value` [B, H, Tk, Dh]; decoding steps project only the query.  Beam
    search and best-of sampling keep them once per source ([B / G, ...], G rows per source): the
    G rows' queries then attend together, which reads each source's K and V once per step.

  `relative_positions=K > 0` adds a learned scalar per head and clipped offset j - i in [-K, K]
  to the logits, as T5 does in self-attention (Raffel et al. 2020, §2.1; Shaw et al. 2018 clip
  offsets the same way): a bias toward neighbouring positions that is the same at every absolute
  position.  In encoder-decoder attention the offset is that of source position j from target
  position i (a prior on the alignment, for tasks such as G2P whose alignment is near-diagonal).
  It starts at 0, so an untrained model attends as without it.

  Heads are split head-major, [B, H, T, Dh], so that the batched products over (B, H) read keys,
  values and caches in place; with [B, T, H, Dh], every decoding step copied a transposed cache
  per layer.
  """
  num_heads: int
  dropout: float = 0.0
  dtype: jnp.dtype = jnp.float32
  head_dim: int | None = None  # d_k = d_v; None = features / num_heads (the paper's choice)
  static_keys_values: bool = False  # keys_values do not change between decoding steps
  relative_positions: int = 0  # K > 0: learned per-head bias of the offset j - i clipped to [-K, K]

  @nn.compact
  def __call__(self, queries, keys_values, mask=None, train: bool = False, decode: bool = False):
    features = queries.shape[-1]
    if self.head_dim is None and features % self.num_heads:
      raise ValueError(f"d_model={features} is not divisible by num_heads={self.num_heads}")
    head_dim = self.head_dim or features // self.num_heads
    # W^Q, W^K, W^V are plain matrices (§3.2.2): a key bias would shift every logit of a query
    # equally and so has exactly zero gradient.
    project = lambda name, x: jnp.swapaxes(   # x W^Q etc., [B, T, D] -> [B, H, T, Dh]
        nn.DenseGeneral((self.num_heads, head_dim), use_bias=False, dtype=self.dtype,
                        dot_general=float32_sum_dot_general, name=name)(x), 1, 2)
    query = project("query", queries)
    query_start = 0
    if decode and self.static_keys_values:
      key, value = self._static_keys_values(project, keys_values)
      if self.relative_positions:
        query_start = self._decoding_position(queries.shape[1])
    else:
      key = project("key", keys_values)
      value = project("value", keys_values)

    if decode and not self.static_keys_values:
      is_initialized = self.has_variable("cache", "slot_key")
      stored = cache_storage_dtype(key.dtype)
      slot_key = self.variable("cache", "slot_key", jnp.zeros, key.shape, stored)
      slot_value = self.variable("cache", "slot_value", jnp.zeros, value.shape, stored)
      slots = self.variable("cache", "cached_slots", jnp.zeros, (key.shape[0], key.shape[2]), jnp.int32)
      cache_index = self.variable("cache", "cache_index", lambda: jnp.array(0, jnp.int32))
      if is_initialized:  # one new position: write it, attend to everything written so far
        index = query_start = cache_index.value
        write = lambda cache, new: lax.dynamic_update_slice(cache, to_storage(new), (0, 0, index, 0))
        slot_key.value, slot_value.value = write(slot_key.value, key), write(slot_value.value, value)
        rows = jnp.arange(key.shape[0], dtype=jnp.int32)[:, None]
        slots.value = lax.dynamic_update_slice(slots.value, jnp.broadcast_to(rows, (key.shape[0], queries.shape[1])),
                                               (0, index))
        key, value = (from_storage(read_slots(cache.value, slots.value), key.dtype) for cache in (slot_key, slot_value))
        cache_index.value = index + queries.shape[1]
        max_len = key.shape[2]
        mask = (jnp.arange(max_len) <= index)[None, None, None, :]

    bias = self._relative_position_bias(query_start, query.shape[2], key.shape[2])
    group = query.shape[0] // key.shape[0]  # > 1: several query rows share one source's K, V
    if group > 1:
      query, mask = group_rows(query, group), None if mask is None else group_rows(mask, group)
      bias = None if bias is None else jnp.tile(bias, (1, 1, group, 1))  # the same positions in each row
    weights = dot_product_weights(query, key, mask, bias)
    self.sow("intermediates", "attention_weights", ungroup_rows(weights, group) if group > 1 else weights)
    weights = nn.Dropout(self.dropout)(weights, deterministic=not train)
    out = jnp.einsum("bhqk,bhkd->bhqd", weights, value, preferred_element_type=jnp.float32).astype(value.dtype)
    out = jnp.swapaxes(ungroup_rows(out, group) if group > 1 else out, 1, 2)  # [B, Tq, H, Dh]
    return nn.DenseGeneral(features, axis=(-2, -1), dtype=self.dtype, dot_general=float32_sum_dot_general,
                           name="out")(out)

  def _relative_position_bias(self, query_start, query_length, key_length):
    """[1, H, Tq, Tk] learned bias of the clipped offset (key position - query position), or None.
    Queries sit at positions query_start.. (the cache index while decoding), keys at 0..Tk-1."""
    if not self.relative_positions:
      return None
    table = self.param("relative_bias", nn.initializers.zeros,
                       (2 * self.relative_positions + 1, self.num_heads))   # [2K + 1, H]
    buckets = relative_position_buckets(query_start + jnp.arange(query_length), jnp.arange(key_length),
                                        self.relative_positions)
    return jnp.transpose(table[buckets], (2, 0, 1))[None]

  def _decoding_position(self, length):
    """Encoder-decoder attention with relative positions: the position of this decoding step's
    first query, counted in the `cache` collection as the decoder's positional encoding counts."""
    is_initialized = self.has_variable("cache", "query_position")
    position = self.variable("cache", "query_position", lambda: jnp.array(0, jnp.int32))
    start = position.value
    if is_initialized:
      position.value = start + length
    return start

  def _static_keys_values(self, project, keys_values):
    """K = keys_values W^K and V = keys_values W^V [Bs, H, Tk, Dh]: projected by the call that
    creates the cache (see `seq2seq_jax.decoding.task.initial_cache`), read from it afterwards.
    The cache may hold them once per source (Bs = B / group) while the queries come in B rows,
    `group` consecutive rows per source (the beams or samples of an input)."""
    cached_key = self.variable("cache", "static_key", lambda: project("key", keys_values))
    cached_value = self.variable("cache", "static_value", lambda: project("value", keys_values))
    return cached_key.value, cached_value.value


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
