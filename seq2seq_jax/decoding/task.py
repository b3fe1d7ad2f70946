"""Connecting a model to the search: encode once, then step with a cache.

The only things decoding needs from a model are its `encode` and `decode(..., decode=True)`
methods (the contract in `seq2seq_jax.models`).
"""

import functools

import jax
import jax.numpy as jnp

from seq2seq_jax.decoding.search import greedy_search


def initial_cache(model, params, encoded, inputs, max_decode_len: int):
  """The model's incremental-decoding state for `max_decode_len` steps, all zeros.

  The cache is created by the model itself: a `decode=True` call on a [B, max_decode_len] token
  array declares every cache variable with its full size; `eval_shape` makes that call free.
  """
  tokens = jnp.zeros((inputs.shape[0], max_decode_len), jnp.int32)
  shapes = jax.eval_shape(
      lambda: model.apply({"params": params}, encoded, inputs, tokens, decode=True,
                          method=model.decode, mutable=["cache"])[1]["cache"])
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def step_function(model, params, inputs, max_decode_len: int):
  """Encodes `inputs` [B, S] once; returns (tokens_to_logits, initial cache)."""
  encoded = model.apply({"params": params}, inputs, method=model.encode)
  cache = initial_cache(model, params, encoded, inputs, max_decode_len)

  def tokens_to_logits(tokens, cache):
    logits, variables = model.apply({"params": params, "cache": cache}, encoded, inputs, tokens,
                                    decode=True, method=model.decode, mutable=["cache"])
    return logits[:, -1], variables["cache"]

  return tokens_to_logits, cache


@functools.partial(jax.jit, static_argnames=("model", "max_decode_len", "bos_id", "eos_id"))
def greedy_decode(model, params, inputs, max_decode_len: int, bos_id: int, eos_id: int):
  """inputs [B, S] -> (tokens [B, max_decode_len], log_probs [B]); jit-compiled once per shape."""
  tokens_to_logits, cache = step_function(model, params, inputs, max_decode_len)
  return greedy_search(tokens_to_logits, cache, inputs.shape[0], max_decode_len, bos_id, eos_id)
