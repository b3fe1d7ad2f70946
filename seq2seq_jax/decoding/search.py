"""Search algorithms, each one `lax.while_loop` over a step function.

A step function is `tokens_to_logits(tokens [B, 1] int32, cache) -> (logits [B, V], cache)`; the
search never imports a model.
"""

import jax
import jax.numpy as jnp
from jax import lax


def greedy_search(tokens_to_logits, cache, batch_size: int, max_len: int, bos_id: int, eos_id: int,
                  pad_id: int = 0):
  """Arg-max decoding until every row emitted EOS or `max_len` tokens were produced.

  Returns (tokens [B, max_len] (EOS included, pad after it), log_probs [B] (sum over tokens up to
  and including EOS)).
  """
  def cond(state):
    i, _, _, finished, _, _ = state
    return (i < max_len) & ~jnp.all(finished)

  def body(state):
    i, last, tokens, finished, score, cache = state
    logits, cache = tokens_to_logits(last[:, None], cache)
    log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    next_token = jnp.argmax(log_probs, axis=-1).astype(jnp.int32)
    score = score + jnp.where(finished, 0.0, jnp.take_along_axis(log_probs, next_token[:, None], -1)[:, 0])
    next_token = jnp.where(finished, pad_id, next_token)
    tokens = lax.dynamic_update_slice(tokens, next_token[:, None], (0, i))
    return i + 1, next_token, tokens, finished | (next_token == eos_id), score, cache

  init = (jnp.array(0, jnp.int32), jnp.full((batch_size,), bos_id, jnp.int32),
          jnp.full((batch_size, max_len), pad_id, jnp.int32), jnp.zeros((batch_size,), bool),
          jnp.zeros((batch_size,), jnp.float32), cache)
  _, _, tokens, _, score, _ = lax.while_loop(cond, body, init)
  return tokens, score
