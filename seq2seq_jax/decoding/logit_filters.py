"""Logit filters: pure functions `(logits [N, V], tokens [N, L], step) -> logits` applied inside
the search loop before the log-softmax (as in Whisper's `LogitFilter`s).

`tokens` holds the output tokens produced so far (positions >= step are padding) and `step` is the
index of the token being chosen.  Every filter works under jit, with no host round-trip, and is
usable with greedy, sampling and beam search.
"""

from typing import Callable, Sequence

import jax.numpy as jnp

NEG_INF = -1e10
LogitFilter = Callable[[jnp.ndarray, jnp.ndarray, jnp.ndarray], jnp.ndarray]


def suppress_tokens(token_ids: Sequence[int]) -> LogitFilter:
  """Never emit `token_ids`."""
  ids = jnp.asarray(sorted(set(token_ids)), jnp.int32)

  def apply(logits, tokens, step):
    return logits.at[:, ids].set(NEG_INF) if ids.size else logits
  return apply


def suppress_at_start(token_ids: Sequence[int], start: int = 0) -> LogitFilter:
  """Whisper's `suppress_blank`: `token_ids` (EOS, a blank) may not be the first free token."""
  ids = jnp.asarray(sorted(set(token_ids)), jnp.int32)

  def apply(logits, tokens, step):
    return jnp.where(step == start, logits.at[:, ids].set(NEG_INF), logits)
  return apply


def min_length(eos_id: int, min_len: int) -> LogitFilter:
  """No EOS before `min_len` tokens (EOS excluded) have been produced."""
  def apply(logits, tokens, step):
    return jnp.where(step < min_len, logits.at[:, eos_id].set(NEG_INF), logits)
  return apply


def force_prefix(prefix: Sequence[int]) -> LogitFilter:
  """Output positions 0..len(prefix)-1 are `prefix`: every other token gets -inf there."""
  prefix = jnp.asarray(prefix, jnp.int32)

  def apply(logits, tokens, step):
    forced = prefix[jnp.minimum(step, prefix.size - 1)]
    only_forced = jnp.where(jnp.arange(logits.shape[-1]) == forced, logits, NEG_INF)
    return jnp.where(step < prefix.size, only_forced, logits)
  return apply


def no_repeat_ngram(n: int) -> LogitFilter:
  """Bans any token that would complete an n-gram already present in the output (fairseq).

  The last n-1 tokens are compared with every earlier window of n-1 tokens; the token that
  followed a matching window is banned.  Vectorised over rows and windows: O(N L n) work.
  """
  def apply(logits, tokens, step):
    num_rows, length = tokens.shape
    if n < 1 or length < n:
      return logits
    starts = jnp.arange(length - n + 1)                        # window j covers tokens[j : j+n-1]
    window = starts[:, None] + jnp.arange(n - 1)[None, :]      # [J, n-1]
    recent = step - (n - 1) + jnp.arange(n - 1)                # positions of the last n-1 tokens
    recent_tokens = jnp.take(tokens, jnp.clip(recent, 0, length - 1), axis=1)  # [N, n-1]
    windows = jnp.take(tokens, window, axis=1)                  # [N, J, n-1]
    matches = jnp.all(windows == recent_tokens[:, None, :], axis=-1)  # [N, J]
    matches &= (starts + n - 1 < step)[None, :] & (step >= n - 1)
    followers = jnp.take(tokens, jnp.minimum(starts + n - 1, length - 1), axis=1)  # [N, J]
    rows = jnp.broadcast_to(jnp.arange(num_rows)[:, None], followers.shape)
    banned = jnp.zeros(logits.shape, bool).at[rows, followers].max(matches)
    return jnp.where(banned, NEG_INF, logits)
  return apply


def compose(filters: Sequence[LogitFilter]) -> LogitFilter:
  def apply(logits, tokens, step):
    for f in filters:
      logits = f(logits, tokens, step)
    return logits
  return apply
