"""Search algorithms, each a single `lax.while_loop` over a step function.

A step function is `tokens_to_logits(tokens [N, 1] int32, cache) -> (logits [N, V], cache)`; the
search never imports a model.  A search runs at most `max_decode_length` steps (a static bound,
the width of its token arrays), and every row has its own length limit `max_lengths` [N] <=
max_decode_length (e.g. a * source_length + b): at its last position only EOS is allowed, so
every output ends in EOS and a row's result never depends on the other rows of the batch.

Scores follow Whisper: the log-probability of a chosen token is read from `log_softmax(filtered
logits)` at temperature 1; `length` counts output tokens including EOS.
"""

from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax

from seq2seq_jax.decoding.logit_filters import NEG_INF, LogitFilter
from seq2seq_jax.special_tokens import PAD_ID


def no_filter(logits, tokens, step):
  return logits


def length_penalty_fn(length_penalty: float | None) -> Callable:
  """length -> divisor of the summed log-probability.

  None: the length itself (Whisper's default); alpha: GNMT's ((5 + length) / 6) ** alpha
  (Wu et al. 2016, eq. 14); 0 gives the raw sum.  Both increase with length, which makes
  `score(alive) <= logprob / penalty(max_length)` an exact bound for early stopping.
  """
  if length_penalty is None:
    return lambda length: length.astype(jnp.float32)
  return lambda length: ((5.0 + length.astype(jnp.float32)) / 6.0) ** length_penalty


def _force_eos_at_limit(logprobs, step, max_lengths, eos_id):
  """At a row's last allowed position only EOS remains.  Applied to log-probabilities, without
  renormalising, so that a sequence's score stays its true log-probability under the model."""
  at_limit = (step >= max_lengths - 1)[:, None]
  only_eos = jnp.where(jnp.arange(logprobs.shape[-1]) == eos_id, logprobs, NEG_INF)
  return jnp.where(at_limit, only_eos, logprobs)


def _top_k_top_p(logits, top_k: int | None, top_p: float | None):
  """Keeps the k most likely tokens, or the smallest set whose probability reaches p."""
  if top_k:
    kth = lax.top_k(logits, top_k)[0][:, -1:]
    logits = jnp.where(logits < kth, NEG_INF, logits)
  if top_p is not None:
    order = jnp.argsort(-logits, axis=-1)
    sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
    cumulative = jnp.cumsum(jax.nn.softmax(sorted_logits, axis=-1), axis=-1)
    drop_sorted = (cumulative - jax.nn.softmax(sorted_logits, axis=-1)) >= top_p  # keeps >= 1 token
    drop = jnp.zeros_like(drop_sorted).at[jnp.arange(logits.shape[0])[:, None], order].set(drop_sorted)
    logits = jnp.where(drop, NEG_INF, logits)
  return logits


def top_k(x, k: int, block: int = 64):
  """lax.top_k(x, k) over the last axis of x [N, W], computed by blocks: values and indices [N, k].

  The k largest entries lie in at most k blocks of `block` entries, and those blocks are among the
  k whose maxima are largest (a block holding one of them has a maximum at least the k-th largest
  value; at most k blocks do).  So one pass takes the maximum of every block, and the exact top k
  is taken from the k best blocks only, in index order so that ties fall as in lax.top_k.  A
  block maximum is a far cheaper pass over a wide row than a full top-k selection.
  """
  rows, width = x.shape
  if width <= 4 * k * block:
    return lax.top_k(x, k)
  pad = -width % block
  blocks = jnp.pad(x, ((0, 0), (0, pad)), constant_values=-jnp.inf).reshape(rows, -1, block)
  best_blocks = jnp.sort(lax.top_k(blocks.max(axis=-1), k)[1], axis=-1)           # [N, k]
  candidates = jnp.take_along_axis(blocks, best_blocks[:, :, None], axis=1).reshape(rows, k * block)
  values, position = lax.top_k(candidates, k)
  index = jnp.take_along_axis(best_blocks, position // block, axis=1) * block + position % block
  return values, index


def argmax(x):
  """jnp.argmax(x, axis=-1) for x [N, V] (the first index of the maximum), as two single-output
  reductions (a maximum, then the least index that holds it), which compile to simpler loops than
  the paired (value, index) reduction of jnp.argmax."""
  best = jnp.max(x, axis=-1, keepdims=True)
  index = jnp.arange(x.shape[-1], dtype=jnp.float32)  # exact below 2**24 entries
  return jnp.min(jnp.where(x == best, index, jnp.inf), axis=-1).astype(jnp.int32)


def sample_search(tokens_to_logits, cache, first_tokens, max_lengths, max_decode_length: int, eos_id: int, *,
                  keys=None, temperature: float = 0.0, top_k: int | None = None,
                  top_p: float | None = None, logit_filter: LogitFilter = no_filter, pad_id: int = PAD_ID):
  """Greedy (temperature 0) or ancestral sampling, one token per row per step.

  first_tokens [N] (BOS, or the last prompt token), max_lengths [N] int32, keys [N] PRNG keys
  (sampling only; row i draws with fold_in(keys[i], step)).  Rows are never reordered, so the
  cache is passed from step to step as the step function returns it.
  Returns tokens [N, max_decode_length] (EOS included, pad after), sum_logprobs [N], lengths [N].
  """
  num_rows = first_tokens.shape[0]

  def choose(logits, step):
    if temperature == 0.0:
      return argmax(logits)
    scaled = _top_k_top_p(logits / temperature, top_k, top_p)
    step_keys = jax.vmap(lambda k: jax.random.fold_in(k, step))(keys)
    return jax.vmap(jax.random.categorical)(step_keys, scaled).astype(jnp.int32)

  def cond(state):
    step, _, _, finished, _, _ = state
    return (step < max_decode_length) & ~jnp.all(finished)

  def body(state):
    step, last, tokens, finished, sum_logprobs, cache = state
    logits, cache = tokens_to_logits(last[:, None], cache)
    logits = logit_filter(logits.astype(jnp.float32), tokens, step)
    logprobs = _force_eos_at_limit(jax.nn.log_softmax(logits), step, max_lengths, eos_id)
    next_token = choose(logprobs, step)  # log_softmax keeps the arg-max and the sampling distribution
    logprob = jnp.take_along_axis(logprobs, next_token[:, None], -1)[:, 0]
    sum_logprobs += jnp.where(finished, 0.0, logprob)
    next_token = jnp.where(finished, pad_id, next_token)
    tokens = lax.dynamic_update_slice(tokens, next_token[:, None], (0, step))
    return step + 1, next_token, tokens, finished | (next_token == eos_id), sum_logprobs, cache

  init = (jnp.array(0, jnp.int32), first_tokens.astype(jnp.int32),
          jnp.full((num_rows, max_decode_length), pad_id, jnp.int32), jnp.zeros((num_rows,), bool),
          jnp.zeros((num_rows,), jnp.float32), cache)
  _, _, tokens, _, sum_logprobs, _ = lax.while_loop(cond, body, init)
  lengths = jnp.sum(tokens != pad_id, axis=-1)
  return tokens, sum_logprobs, lengths


def greedy_search(tokens_to_logits, cache, first_tokens, max_lengths, max_decode_length: int, eos_id: int, *,
                  logit_filter: LogitFilter = no_filter, pad_id: int = PAD_ID):
  """Arg-max decoding: `sample_search` at temperature 0."""
  return sample_search(tokens_to_logits, cache, first_tokens, max_lengths, max_decode_length, eos_id,
                       logit_filter=logit_filter, pad_id=pad_id)


def take_rows(x, rows):
  """x [N, ...] -> x[rows] for rows [N] int in [0, N): whole contiguous rows.  The indices are
  promised in bounds, which lets XLA copy rows instead of checking every element."""
  return x.at[rows].get(mode="promise_in_bounds")


def take_every_row(cache, rows):
  """Reorders every leaf of `cache` with a leading row axis by `rows` [N]; scalars stay as they
  are.  The default of `beam_search`, for a cache that is all per-row state."""
  return jax.tree.map(lambda x: x if x.ndim == 0 else take_rows(x, rows), cache)


def beam_rows(origins, beam: int):
  """origins [B, K] (the beam each new beam continues) -> rows [B * K]: row b*K + k continues
  row b*K + origins[b, k]."""
  return (jnp.arange(origins.shape[0])[:, None] * beam + origins).reshape(-1)


def beam_search(tokens_to_logits, cache, first_tokens, max_lengths, max_decode_length: int, eos_id: int, *,
                beam_size: int, length_penalty: float | None = None, patience: float | None = None,
                logit_filter: LogitFilter = no_filter, pad_id: int = PAD_ID,
                reorder_cache: Callable = take_every_row):
  """Beam search with a pool of finished hypotheses (Whisper's BeamSearchDecoder, in one loop).

  The cache and `first_tokens`/`max_lengths` come per *row*, already repeated `beam_size` times
  (rows b*K .. b*K+K-1 belong to input b).  Each step expands every alive beam, keeps the
  `beam_size` best non-EOS continuations alive and moves EOS-ending ones into the finished pool of
  `round(beam_size * patience)` hypotheses, ranked by logprob / penalty(length).  An input stops
  when its pool is full and no alive beam can still beat the pool's worst: alive scores are
  bounded by logprob / penalty(max_length) because log-probs only fall and penalties only grow.

  reorder_cache(cache, rows [N]) -> cache: moves the cache's per-row state so that row i holds
  what row rows[i] held (see `beam_rows`); the search knows nothing else of the cache.

  Returns finished tokens [B, F, max_decode_length], scores [B, F] (length-penalised), sum_logprobs [B, F],
  lengths [B, F], sorted best first.  A slot that never filled has score -inf.
  """
  rows = first_tokens.shape[0]
  batch, beam = rows // beam_size, beam_size
  pool = max(beam, int(round(beam * (patience or 1.0))))
  penalty = length_penalty_fn(length_penalty)
  input_max_lengths = max_lengths.reshape(batch, beam)[:, 0]  # [B]

  def cond(state):
    return (state["step"] < max_decode_length) & ~jnp.all(state["done"])

  def body(state):
    step = state["step"]
    logits, cache = tokens_to_logits(state["last"][:, None], state["cache"])
    alive_tokens = state["alive_tokens"].reshape(rows, max_decode_length)
    logits = logit_filter(logits.astype(jnp.float32), alive_tokens, step)
    vocab = logits.shape[-1]
    logprobs = _force_eos_at_limit(jax.nn.log_softmax(logits), step, max_lengths, eos_id)
    logprobs = logprobs.reshape(batch, beam, vocab)
    candidates = state["alive_logprobs"][:, :, None] + logprobs          # [B, K, V]
    flat = candidates.reshape(batch, beam * vocab)
    top_scores, top_index = top_k(flat, 2 * beam)                         # [B, 2K]
    origin, token = top_index // vocab, (top_index % vocab).astype(jnp.int32)
    seqs = jnp.take_along_axis(state["alive_tokens"], origin[:, :, None], axis=1)
    seqs = seqs.at[:, :, step].set(token)                                 # [B, 2K, L]
    is_eos = token == eos_id
    impossible = top_scores <= NEG_INF / 2

    # Alive: the best K continuations that did not end.
    alive_rank = jnp.where(is_eos | impossible, NEG_INF, top_scores)
    alive_scores, keep = lax.top_k(alive_rank, beam)
    new_alive_tokens = jnp.take_along_axis(seqs, keep[:, :, None], axis=1)
    new_origin = jnp.take_along_axis(origin, keep, axis=1)

    # Finished: merge EOS-ending candidates into the pool, keep the best `pool`.
    length = step + 1
    done = state["done"]
    fin_scores = jnp.where(is_eos & ~impossible & ~done[:, None],
                           top_scores / penalty(jnp.asarray(length)), NEG_INF)
    all_scores = jnp.concatenate([state["fin_scores"], fin_scores], axis=1)
    all_tokens = jnp.concatenate([state["fin_tokens"], seqs], axis=1)
    all_logprobs = jnp.concatenate([state["fin_logprobs"], top_scores], axis=1)
    all_lengths = jnp.concatenate([state["fin_lengths"], jnp.full_like(token, length)], axis=1)
    fin_scores, best = lax.top_k(all_scores, pool)
    pick = lambda x: jnp.take_along_axis(x, best.reshape(best.shape + (1,) * (x.ndim - 2)), axis=1)

    # Stop an input when its pool is full and no alive beam can beat the pool's worst.
    bound = alive_scores[:, 0] / penalty(input_max_lengths)
    pool_full = fin_scores[:, -1] > NEG_INF / 2
    done = done | (pool_full & (bound <= fin_scores[:, -1])) | (length >= input_max_lengths)

    return {
        "step": step + 1,
        "last": new_alive_tokens[:, :, step].reshape(rows),
        "cache": reorder_cache(cache, beam_rows(new_origin, beam)),
        "alive_tokens": new_alive_tokens,
        "alive_logprobs": alive_scores,
        "fin_tokens": pick(all_tokens), "fin_scores": fin_scores,
        "fin_logprobs": pick(all_logprobs), "fin_lengths": pick(all_lengths),
        "done": done,
    }

  # Only the first beam of each input starts alive, so that identical beams are not expanded K times.
  start = jnp.where(jnp.arange(beam) == 0, 0.0, NEG_INF)
  state = {
      "step": jnp.array(0, jnp.int32),
      "last": first_tokens.astype(jnp.int32),
      "cache": cache,
      "alive_tokens": jnp.full((batch, beam, max_decode_length), pad_id, jnp.int32),
      "alive_logprobs": jnp.broadcast_to(start, (batch, beam)),
      "fin_tokens": jnp.full((batch, pool, max_decode_length), pad_id, jnp.int32),
      "fin_scores": jnp.full((batch, pool), NEG_INF, jnp.float32),
      "fin_logprobs": jnp.full((batch, pool), NEG_INF, jnp.float32),
      "fin_lengths": jnp.zeros((batch, pool), jnp.int32),
      "done": jnp.zeros((batch,), bool),
  }
  state = lax.while_loop(cond, body, state)
  return state["fin_tokens"], state["fin_scores"], state["fin_logprobs"], state["fin_lengths"]
