"""How incremental decoding keeps keys and values (the `cache` collection of `MultiHeadAttention`).

Attention (Vaswani et al. 2017, §3.2) reads the keys and values of every position a query may
see.  A decoder that emits one token per step need not recompute them: each step projects its new
position only and reads the earlier ones from the cache.  This module owns how they are kept.

- Self-attention: step t writes its key and value at position t of row b's own slot,
  `key_slots`/`value_slots` [B, H, L, Dh].  `slot_table` [B, L] says which slot holds row b's key
  and value at each position: b itself, until beam search reorders the rows.  Beam search
  reorders only the table; each step reads the keys and values through it.
- Encoder-decoder attention: keys and values depend only on the source, so they are projected
  once, by the call that creates the cache, and kept as `source_key`/`source_value`
  [B / G, H, S, Dh]: once per source for the G consecutive rows (beams or samples) that decode
  it, whose queries attend to them side by side (`group_rows`).
- bfloat16 keys and values are stored as their uint16 bits, so that the per-step write and the
  slot reads move 16-bit words without a round trip through float32.

The roles of cache leaves are marked in the cache itself, by Flax metadata boxes that the model
reads through as plain values (see the contract in `seq2seq_jax.models`):
`PerRow` leaves have one entry per decoding row and are reordered with the beams; `PerSource`
leaves have one entry per source and are filled by the creating call; every other leaf (step
counters, the key/value slots) stays where it is.
"""

from typing import Any, Callable

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
from flax.core import meta
from jax import lax


class _CacheRole(flax.struct.PyTreeNode, meta.AxisMetadata):
  """A Flax metadata box around one cache leaf: the model reads and writes the plain value,
  decoding sees the box and so the leaf's role."""
  value: Any

  def unbox(self):
    return self.value

  def replace_boxed(self, val):
    return self.replace(value=val)

  def add_axis(self, index, params):
    return self

  def remove_axis(self, index, params):
    return self


class PerRow(_CacheRole):
  """A cache leaf [rows, ...] with one entry per decoding row (hypothesis): whoever reorders the
  rows (beam search) reorders it."""


class PerSource(_CacheRole):
  """A cache leaf [sources, ...] that depends only on the source: computed by the call that
  creates the cache and read by the G consecutive rows of each source; never reordered."""


def per_row(tree):
  """Marks every array of `tree` as `PerRow` (a box per leaf, so a model may write the tree back)."""
  return jax.tree.map(PerRow, tree)


def is_per_row(x) -> bool:
  return isinstance(x, PerRow)


def is_per_source(x) -> bool:
  return isinstance(x, PerSource)


def storage_dtype(dtype):
  """The dtype keys and values are stored in: bfloat16 as its uint16 bits, others as they are."""
  return jnp.uint16 if dtype == jnp.bfloat16 else dtype


def to_storage(x):
  """Values -> their stored form (see `storage_dtype`)."""
  return lax.bitcast_convert_type(x, jnp.uint16) if x.dtype == jnp.bfloat16 else x


def from_storage(x, dtype):
  """Stored form -> values of `dtype` (see `storage_dtype`)."""
  return lax.bitcast_convert_type(x, dtype) if x.dtype != dtype else x


def read_slots(slots, table):
  """slots [B, H, L, Dh], table [B, L] int -> [B, H, L, Dh]: row b's entry at position t is
  slots[table[b, t], :, t]."""
  heads, length = slots.shape[1], slots.shape[2]
  return slots[table[:, None, :], jnp.arange(heads)[None, :, None], jnp.arange(length)[None, None, :]]


def group_rows(x, group: int):
  """[S * G, H, Tq, ...] -> [S, H, G * Tq, ...]: the G consecutive rows of each source side by side
  as queries, so that they attend to that source's keys and values (kept once, `PerSource`) in one
  product.  The identity for G = 1."""
  if group == 1:
    return x
  rows, heads = x.shape[:2]
  x = x.reshape((rows // group, group) + x.shape[1:])
  x = jnp.swapaxes(x, 1, 2)  # [S, H, G, Tq, ...]
  return x.reshape((rows // group, heads, group * x.shape[3]) + x.shape[4:])


def ungroup_rows(x, group: int):
  """The inverse of `group_rows`: [S, H, G * Tq, ...] -> [S * G, H, Tq, ...]."""
  if group == 1:
    return x
  sources, heads = x.shape[:2]
  x = x.reshape((sources, heads, group, x.shape[2] // group) + x.shape[3:])
  x = jnp.swapaxes(x, 1, 2)  # [S, G, H, Tq, ...]
  return x.reshape((sources * group, heads) + x.shape[3:])


def decoding_keys_values(module: nn.Module, project: Callable[[], tuple], mask, *, source_side: bool,
                         query_length: int, count_queries: bool = False):
  """The keys and values one decoding step attends to, kept in `module`'s `cache` collection.

  project: () -> (K, V) [B, H, T, Dh], this call's projected keys and values (called at most
  once); mask: the caller's mask [B, 1|H, Tq, Tk] or None; query_length: Tq.
  source_side: encoder-decoder attention (keys and values fixed for the whole decoding);
  count_queries: there, also count the decoding position of the queries.
  Returns (key, value [B or B / G, H, Tk, Dh], mask, query_start): the mask to apply and the
  position of the first query.
  """
  if source_side:
    key, value = _source_keys_values(module, project)
    query_start = _query_position(module, query_length) if count_queries else 0
    return key, value, mask, query_start
  return _append(module, *project(), mask)


def _source_keys_values(module, project):
  """K = E W^K, V = E W^V [B / G, H, S, Dh] of the encoder output E: projected by the call that
  creates the cache (see `seq2seq_jax.decoding.task.initial_cache`), read from it afterwards."""
  projected = []
  def initial(i):
    if not projected:
      projected.extend(project())
    return PerSource(projected[i])
  key = module.variable("cache", "source_key", initial, 0)
  value = module.variable("cache", "source_value", initial, 1)
  return key.value, value.value


def _query_position(module, length: int):
  """The decoding position of this step's first query, counted as the decoder's positional
  encoding counts its positions."""
  is_initialized = module.has_variable("cache", "query_position")
  position = module.variable("cache", "query_position", lambda: jnp.array(0, jnp.int32))
  start = position.value
  if is_initialized:
    position.value = start + length
  return start


def _append(module, key, value, mask):
  """Self-attention: writes the new positions' key and value [B, H, Tq, Dh] into each row's own
  slot at the cache index, points the rows' slot tables at them, and returns every row's keys and
  values so far [B, H, L, Dh] (read through its slot table) with the mask of positions written
  so far [1, 1, 1, L].  The call that creates the cache ([B, L] queries) sizes it and returns
  its own keys and values with the caller's `mask`."""
  is_initialized = module.has_variable("cache", "key_slots")
  rows, length = key.shape[0], key.shape[2]
  key_slots = module.variable("cache", "key_slots", jnp.zeros, key.shape, storage_dtype(key.dtype))
  value_slots = module.variable("cache", "value_slots", jnp.zeros, value.shape, storage_dtype(value.dtype))
  table = module.variable("cache", "slot_table", lambda: PerRow(jnp.zeros((rows, length), jnp.int32)))
  cache_index = module.variable("cache", "cache_index", lambda: jnp.array(0, jnp.int32))
  if not is_initialized:
    return key, value, mask, 0
  index = cache_index.value
  write = lambda slots, new: lax.dynamic_update_slice(slots, to_storage(new), (0, 0, index, 0))
  key_slots.value, value_slots.value = write(key_slots.value, key), write(value_slots.value, value)
  own_slot = jnp.broadcast_to(jnp.arange(rows, dtype=jnp.int32)[:, None], (rows, length))
  table.value = lax.dynamic_update_slice(table.value, own_slot, (0, index))
  read = lambda slots: from_storage(read_slots(slots, table.value), key.dtype)
  cache_index.value = index + length
  max_length = key_slots.value.shape[2]
  return read(key_slots.value), read(value_slots.value), (jnp.arange(max_length) <= index)[None, None, None, :], index
