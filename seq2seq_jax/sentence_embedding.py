"""The encoder as a sentence encoder (as in LASER, Artetxe & Schwenk 2019): one vector per input.

Pooling over the real (non-pad) positions of the encoder states, so padding never changes a vector:
mean, max, or final (an RNN's top-layer final state, the context vector; for the Transformer, the
state at the last real position).
"""

import functools

import jax
import jax.numpy as jnp

POOLINGS = ("mean", "max", "final")


def _states_and_final(encoded, mask):
  """encoded: [B, S, D] (Transformer) or {"states", "final"} (RNN) -> (states, final [B, D])."""
  if isinstance(encoded, dict):
    top = encoded["final"][-1]
    return encoded["states"], top[1] if isinstance(top, tuple) else top
  last = jnp.maximum(jnp.sum(mask, axis=-1) - 1, 0)
  return encoded, jnp.take_along_axis(encoded, last[:, None, None], axis=1)[:, 0]


@functools.partial(jax.jit, static_argnames=("model", "pooling"))
def embed(model, params, inputs, pooling: str = "mean"):
  """inputs [B, S] int32 (pad 0) -> sentence vectors [B, D]."""
  if pooling not in POOLINGS:
    raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
  mask = inputs != 0
  encoded = model.apply({"params": params}, inputs, method=model.encode)
  states, final = _states_and_final(encoded, mask)
  if pooling == "final":
    return final
  if pooling == "max":
    return jnp.max(jnp.where(mask[..., None], states, -jnp.inf), axis=1)
  return jnp.sum(jnp.where(mask[..., None], states, 0.0), axis=1) / jnp.maximum(jnp.sum(mask, -1, keepdims=True), 1)
