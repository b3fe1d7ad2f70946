"""DecodingOptions -> DecodingTask -> DecodingResult: Whisper's decoding interface, jit-compiled.

The task knows a model only through `model.encode(inputs)` and
`model.decode(encoded, inputs, tokens, decode=True)` with its state in the `cache` collection,
whose leaves say their role (the cache contract in `seq2seq_jax.models`): `initial_cache` keeps
the per-source ones once per input, and beam search reorders the per-row ones (`reorder_rows`).
Token ids, not text, cross this boundary; `detokenize` turns ids into text for the results.

Given a mesh of several devices, a task decodes data-parallel: each device searches its own rows
of the batch (`decode_batch_data_parallel`); results do not depend on how rows are split, because
a row's result never depends on the other rows.
"""

import dataclasses
import functools
import zlib
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from seq2seq_jax.decoding import logit_filters, search
from seq2seq_jax.errors import UsageError
from seq2seq_jax.models import kv_cache
from seq2seq_jax.special_tokens import BOS_ID, PAD_ID


@dataclasses.dataclass(frozen=True)
class DecodingOptions:
  """What to decode and how.  Validated on construction; every error names the option.

  temperature: 0 = greedy / beam search; > 0 = sampling; a tuple = Whisper's fallback schedule
    (the next temperature is tried for inputs whose result crossed a threshold below).
  """
  temperature: float | tuple[float, ...] = 0.0
  beam_size: int | None = None
  nbest: int = 1
  patience: float | None = None
  length_penalty: float | None = None   # None: divide by length; alpha in [0, 1]: GNMT
  best_of: int | None = None
  top_k: int | None = None
  top_p: float | None = None
  max_len_a: float = 2.0                # max output length = a * source_length + b,
  max_len_b: int = 10                   #   capped by the model's limit
  min_len: int = 0
  suppress_tokens: tuple[int, ...] = ()
  suppress_blank: bool = True           # no EOS as the first free output token
  no_repeat_ngram_size: int = 0
  prefix: tuple[int, ...] = ()          # forced start of every output (part of the output)
  prompt: tuple[int, ...] = ()          # fed to the decoder before the output (not part of it)
  compression_ratio_threshold: float | None = 2.4
  logprob_threshold: float | None = -1.0

  def __post_init__(self):
    temps = self.temperatures
    if any(t < 0 for t in temps):
      raise UsageError(f"temperature must be >= 0, got {self.temperature}")
    fallback = len(temps) > 1
    if self.beam_size is not None:
      if self.beam_size < 1:
        raise UsageError(f"beam_size must be >= 1, got {self.beam_size}")
      if self.best_of is not None and not fallback:
        raise UsageError("beam_size and best_of can't be given together (best_of ranks samples; "
                         "with a temperature schedule, beam_size applies at 0 and best_of above)")
      if temps[0] > 0:
        raise UsageError("beam_size needs temperature 0 (beam search is deterministic)")
    if self.patience is not None:
      if self.beam_size is None:
        raise UsageError("patience requires beam_size")
      if self.patience < 1.0:
        raise UsageError(f"patience must be >= 1.0, got {self.patience}")
    if self.length_penalty is not None and not 0.0 <= self.length_penalty <= 1.0:
      raise UsageError(f"length_penalty must be between 0 and 1, got {self.length_penalty}")
    if self.best_of is not None:
      if self.best_of < 1:
        raise UsageError(f"best_of must be >= 1, got {self.best_of}")
      if max(temps) == 0:
        raise UsageError("best_of requires temperature > 0 (greedy decoding has one candidate)")
    if self.top_k is not None and self.top_p is not None:
      raise UsageError("top_k and top_p can't be given together; choose one")
    if self.top_k is not None and self.top_k < 1:
      raise UsageError(f"top_k must be >= 1, got {self.top_k}")
    if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
      raise UsageError(f"top_p must be in (0, 1], got {self.top_p}")
    if (self.top_k is not None or self.top_p is not None) and max(temps) == 0:
      raise UsageError("top_k/top_p require temperature > 0")
    if self.nbest < 1 or self.nbest > (self.beam_size or 1):
      raise UsageError(f"nbest={self.nbest} must be between 1 and beam_size ({self.beam_size or 1})")
    if self.min_len < 0 or self.no_repeat_ngram_size < 0:
      raise UsageError("min_len and no_repeat_ngram_size must be >= 0")
    if self.max_len_a < 0 or (self.max_len_a == 0 and self.max_len_b < 1):
      raise UsageError(f"max_len_a={self.max_len_a}, max_len_b={self.max_len_b} allow no output")
    if self.min_len >= self.max_len_b and self.max_len_a == 0:
      raise UsageError(f"min_len={self.min_len} must be below the maximum length {self.max_len_b}")

  @property
  def temperatures(self) -> tuple[float, ...]:
    t = self.temperature
    return tuple(float(x) for x in t) if isinstance(t, (tuple, list)) else (float(t),)

  def at_temperature(self, t: float) -> "DecodingOptions":
    """The single-temperature options used for one attempt of the schedule."""
    return dataclasses.replace(self, temperature=t, beam_size=self.beam_size if t == 0 else None,
                               patience=self.patience if t == 0 else None,
                               nbest=self.nbest if t == 0 else 1,
                               best_of=self.best_of if t > 0 else None)


@dataclasses.dataclass(frozen=True)
class Hypothesis:
  tokens: tuple[int, ...]   # output tokens, EOS excluded
  text: str
  score: float              # sum_logprob / length penalty (the ranking score)
  sum_logprob: float


@dataclasses.dataclass(frozen=True)
class DecodingResult:
  tokens: tuple[int, ...]
  text: str
  sum_logprob: float
  avg_logprob: float        # sum_logprob / (number of output tokens incl. EOS)
  score: float
  temperature: float
  compression_ratio: float
  nbest: tuple[Hypothesis, ...]


def compression_ratio(text: str) -> float:
  """len(text) / len(zlib(text)) in bytes: high for repetitive (looping) output (Whisper)."""
  data = text.encode("utf-8")
  return len(data) / len(zlib.compress(data)) if data else 0.0


def step_function(model, params, inputs, max_decode_length: int, repeat: int = 1):
  """Encodes `inputs` [B, S] once (the encoding may be any pytree with a leading batch axis),
  repeats every row `repeat` times (beams, samples) and returns (tokens_to_logits, initial cache)
  for B * repeat rows and `max_decode_length` decoding steps.  The cache's per-source leaves stay
  at B rows (see `initial_cache`)."""
  encoded = model.apply({"params": params}, inputs, method=model.encode)
  cache = initial_cache(model, params, encoded, inputs, max_decode_length, repeat)
  encoded, inputs = jax.tree.map(lambda x: jnp.repeat(x, repeat, axis=0), (encoded, inputs))

  def tokens_to_logits(tokens, cache):
    logits, variables = model.apply({"params": params, "cache": cache}, encoded, inputs, tokens,
                                    decode=True, method=model.decode, mutable=["cache"])
    return logits[:, -1], variables["cache"]

  return tokens_to_logits, cache


def initial_cache(model, params, encoded, inputs, max_decode_length: int, repeat: int = 1):
  """The model's incremental-decoding state before the first of `max_decode_length` steps, for
  `repeat` rows per source (encoded and inputs [B, ...] -> step state for B * repeat rows).

  The cache is created by the model itself: a `decode=True` call on a [B * repeat,
  max_decode_length] token array declares every cache variable with its full size (`eval_shape`
  makes that call free), and the step state starts at zeros.  The leaves the model marks
  `PerSource` (the encoder-decoder keys and values; see the contract in `seq2seq_jax.models`) are
  taken from a real creating call on one token per source, of which XLA keeps only their
  projections, and stay at B rows: the model reads them for `repeat` consecutive rows at once.
  """
  create = lambda enc, src, tokens: model.apply({"params": params}, enc, src, tokens, decode=True,
                                                method=model.decode, mutable=["cache"])[1]["cache"]
  rows = jax.tree.leaves(inputs)[0].shape[0] * repeat
  repeated = jax.tree.map(lambda x: jnp.repeat(x, repeat, axis=0), (encoded, inputs))
  shapes = jax.eval_shape(lambda: create(*repeated, jnp.zeros((rows, max_decode_length), jnp.int32)))
  zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
  real = create(encoded, inputs, jnp.zeros((rows // repeat, 1), jnp.int32))
  return jax.tree.map(lambda zero, value: value if kv_cache.is_per_source(zero) else zero, zeros, real,
                      is_leaf=kv_cache.is_per_source)


def reorder_rows(cache, rows):
  """The cache with its `PerRow` leaves' rows taken from `rows` [N] (row i becomes row rows[i]):
  by the models' cache contract (`seq2seq_jax.models`) exactly those follow the beams; every other
  leaf (per-source keys and values, key/value slots read through a per-row table, step counters)
  stays as it is."""
  take = lambda x: x.replace_boxed(search.take_rows(x.value, rows)) if kv_cache.is_per_row(x) else x
  return jax.tree.map(take, cache, is_leaf=kv_cache.is_per_row)


def _prime(tokens_to_logits, cache, bos_id: int, prompt: tuple[int, ...], rows: int):
  """Feeds BOS and all but the last prompt token; returns (cache, first token [rows])."""
  fed = (bos_id,) + tuple(prompt)
  for token in fed[:-1]:
    _, cache = tokens_to_logits(jnp.full((rows, 1), token, jnp.int32), cache)
  return cache, jnp.full((rows,), fed[-1], jnp.int32)


def _filters(options: DecodingOptions, eos_id: int, banned_ids: Sequence[int]):
  fs = [logit_filters.suppress_tokens(tuple(banned_ids) + tuple(options.suppress_tokens))]
  if options.suppress_blank:
    fs.append(logit_filters.suppress_at_start([eos_id], start=len(options.prefix)))
  if options.min_len:
    fs.append(logit_filters.min_length(eos_id, options.min_len))
  if options.no_repeat_ngram_size:
    fs.append(logit_filters.no_repeat_ngram(options.no_repeat_ngram_size))
  if options.prefix:
    fs.append(logit_filters.force_prefix(options.prefix))
  return logit_filters.compose(fs)


def length_limits(inputs, options: DecodingOptions, model_max_length: int):
  """Each row's output limit min(a * source_length + b, model_max_length), `max_lengths` [B], and
  the static bound on all of them, `max_decode_length` (the number of search steps)."""
  source_length = jnp.sum(inputs != 0, axis=-1)
  per_row = jnp.floor(options.max_len_a * source_length + options.max_len_b).astype(jnp.int32)
  bound = int(min(np.floor(options.max_len_a * inputs.shape[1] + options.max_len_b), model_max_length))
  return jnp.clip(per_row, 1, bound), max(bound, 1)


@functools.partial(jax.jit, static_argnames=("model", "options", "bos_id", "eos_id", "model_max_length",
                                             "banned_ids"))
def decode_batch(model, params, inputs, key, row_ids, *, options: DecodingOptions, bos_id: int, eos_id: int,
                 model_max_length: int, banned_ids: tuple[int, ...] = (PAD_ID, BOS_ID)):
  """One attempt at one temperature.  inputs [B, S]; key: PRNG key; row_ids [B] int: sample j of
  a row draws from fold_in(fold_in(key, row_id), j), so it does not depend on the other rows.
  model_max_length: the most decoder positions (prompt and output) the model takes;
  banned_ids: ids that are never output (PAD, BOS).

  Returns tokens [B, F, L], scores [B, F], sum_logprobs [B, F], lengths [B, F], best first
  (F = nbest for beam search, 1 otherwise).
  """
  batch = inputs.shape[0]
  max_lengths, max_decode_length = length_limits(inputs, options, model_max_length - len(options.prompt))
  filt = _filters(options, eos_id, banned_ids)
  penalty = search.length_penalty_fn(options.length_penalty)
  t = options.temperatures[0]
  repeat = options.beam_size or options.best_of or 1
  step_fn, cache = step_function(model, params, inputs, len(options.prompt) + max_decode_length, repeat)
  cache, first = _prime(step_fn, cache, bos_id, options.prompt, batch * repeat)
  max_lengths = jnp.repeat(max_lengths, repeat)

  if options.beam_size:
    tokens, scores, logprobs, lengths = search.beam_search(
        step_fn, cache, first, max_lengths, max_decode_length, eos_id, beam_size=options.beam_size,
        length_penalty=options.length_penalty, patience=options.patience, logit_filter=filt,
        reorder_cache=reorder_rows)
    n = options.nbest
    return tokens[:, :n], scores[:, :n], logprobs[:, :n], lengths[:, :n]

  keys = jax.vmap(lambda r, j: jax.random.fold_in(jax.random.fold_in(key, r), j))(
      jnp.repeat(row_ids, repeat), jnp.tile(jnp.arange(repeat), batch))
  tokens, logprobs, lengths = search.sample_search(
      step_fn, cache, first, max_lengths, max_decode_length, eos_id, keys=keys, temperature=t,
      top_k=options.top_k, top_p=options.top_p, logit_filter=filt)
  scores = logprobs / penalty(lengths)
  tokens = tokens.reshape(batch, repeat, max_decode_length)
  scores, logprobs, lengths = (x.reshape(batch, repeat) for x in (scores, logprobs, lengths))
  best = jnp.argmax(scores, axis=1)[:, None]   # best_of: rank the samples like Whisper
  take = lambda x: jnp.take_along_axis(x, best.reshape(best.shape + (1,) * (x.ndim - 2)), axis=1)
  return take(tokens), take(scores), take(logprobs), take(lengths)


@functools.cache
def _sharded_decode(mesh, model, options: DecodingOptions, bos_id: int, eos_id: int, model_max_length: int,
                    banned_ids: tuple[int, ...]):
  """jit(shard_map(decode_batch)) over the 1-D `mesh`: inputs, row ids and results split by row."""
  rows = P(mesh.axis_names[0])
  fn = functools.partial(decode_batch, model, options=options, bos_id=bos_id, eos_id=eos_id,
                         model_max_length=model_max_length, banned_ids=banned_ids)
  # No collectives: every device runs its own search loop to its own end (check_vma=False lets
  # the loops' state start unsharded-typed inside the map).
  return jax.jit(jax.shard_map(lambda params, inputs, key, row_ids: fn(params, inputs, key, row_ids),
                               mesh=mesh, in_specs=(P(), rows, P(), rows), out_specs=rows,
                               check_vma=False))


def decode_batch_data_parallel(mesh, model, params, inputs, key, row_ids, *, options: DecodingOptions,
                               bos_id: int, eos_id: int, model_max_length: int,
                               banned_ids: tuple[int, ...] = (PAD_ID, BOS_ID)):
  """`decode_batch` with the rows split over the devices of a 1-D `mesh` (one process).  The batch
  is padded to a multiple of the device count with copies of its first row, whose results are
  dropped.  params should already be replicated on the mesh (`replicate_on`)."""
  inputs, row_ids = np.asarray(inputs), np.asarray(row_ids)
  batch, pad = inputs.shape[0], -inputs.shape[0] % mesh.size
  if pad:
    inputs = np.concatenate([inputs, np.repeat(inputs[:1], pad, axis=0)])
    row_ids = np.concatenate([row_ids, np.repeat(row_ids[:1], pad, axis=0)])
  out = _sharded_decode(mesh, model, options, bos_id, eos_id, model_max_length, tuple(banned_ids))(
      params, inputs, key, row_ids)
  return tuple(x[:batch] for x in out)


def replicate_on(mesh, tree):
  """Every leaf on every device of `mesh` (one process)."""
  return jax.device_put(tree, NamedSharding(mesh, P()))


@functools.partial(jax.jit, static_argnames=("model", "options", "bos_id", "eos_id", "banned_ids"))
def score_sequences(model, params, inputs, targets, *, options: DecodingOptions, bos_id: int,
                    eos_id: int, banned_ids: tuple[int, ...] = (PAD_ID, BOS_ID)):
  """Log-probability of given targets [B, T] (ending in EOS, pad 0) exactly as the search scores
  them: the same cached step function, the same logit filters (`options`), the same length
  penalty.  Returns (scores [B] as ranked by beam search, sum_logprobs [B])."""
  batch, length = targets.shape
  filt = _filters(options, eos_id, banned_ids)
  step_fn, cache = step_function(model, params, inputs, len(options.prompt) + length)
  cache, first = _prime(step_fn, cache, bos_id, options.prompt, batch)

  def body(carry, step):
    last, cache, so_far = carry
    logits, cache = step_fn(last[:, None], cache)
    logprobs = jax.nn.log_softmax(filt(logits.astype(jnp.float32), so_far, step))
    target = targets[:, step]
    logprob = jnp.take_along_axis(logprobs, target[:, None], -1)[:, 0]
    so_far = so_far.at[:, step].set(target)
    return (target, cache, so_far), jnp.where(target != 0, logprob, 0.0)

  init = (first, cache, jnp.zeros_like(targets))
  _, logprobs = jax.lax.scan(body, init, jnp.arange(length))
  sum_logprobs = jnp.sum(logprobs, axis=0)
  lengths = jnp.sum(targets != 0, axis=-1)
  return sum_logprobs / search.length_penalty_fn(options.length_penalty)(lengths), sum_logprobs


def check_room(options: DecodingOptions, model_max_length: int) -> None:
  """UsageError when the prompt, forced prefix and min_len leave no room for an output."""
  if options.min_len + len(options.prefix) >= model_max_length - len(options.prompt):
    raise UsageError(f"min_len + prefix ({options.min_len + len(options.prefix)}) leave no room "
                     f"below the model's limit of {model_max_length} tokens")


class DecodingTask:
  """Decodes batches of token ids with `options`, including Whisper's temperature fallback."""

  def __init__(self, model, params, options: DecodingOptions, *, bos_id: int, eos_id: int,
               detokenize: Callable[[Sequence[int]], str], model_max_length: int, mesh=None):
    """model_max_length: the most decoder positions (prompt and output) the model takes; mesh: a
    1-D mesh of this process's devices to decode data-parallel over (None or one device: decode
    on the default device)."""
    self.mesh = mesh if mesh is not None and mesh.size > 1 else None
    if self.mesh is not None:
      params = replicate_on(self.mesh, params)
    self.model, self.params, self.options = model, params, options
    self.bos_id, self.eos_id, self.detokenize = bos_id, eos_id, detokenize
    self.model_max_length = model_max_length
    check_room(options, model_max_length)

  def with_options(self, options: DecodingOptions) -> "DecodingTask":
    """The same model and parameters (already placed) decoding with `options`."""
    task = DecodingTask.__new__(DecodingTask)
    task.__dict__.update(self.__dict__, options=options)
    check_room(options, self.model_max_length)
    return task

  def _attempt(self, inputs, row_ids, key, temperature: float) -> list[DecodingResult]:
    options = self.options.at_temperature(temperature)
    static = dict(options=options, bos_id=self.bos_id, eos_id=self.eos_id, model_max_length=self.model_max_length)
    if self.mesh is not None:
      out = decode_batch_data_parallel(self.mesh, self.model, self.params, inputs, key, row_ids, **static)
    else:
      out = decode_batch(self.model, self.params, jnp.asarray(inputs), key, jnp.asarray(row_ids), **static)
    tokens, scores, logprobs, lengths = (np.asarray(x) for x in out)
    results = []
    for b in range(tokens.shape[0]):
      hyps = []
      for n in range(tokens.shape[1]):
        ids = tuple(int(t) for t in tokens[b, n, : max(int(lengths[b, n]) - 1, 0)])
        hyps.append(Hypothesis(ids, self.detokenize(ids), float(scores[b, n]), float(logprobs[b, n])))
      best = hyps[0]
      avg = best.sum_logprob / max(int(lengths[b, 0]), 1)
      results.append(DecodingResult(best.tokens, best.text, best.sum_logprob, avg, best.score,
                                    temperature, compression_ratio(best.text), tuple(hyps)))
    return results

  def needs_fallback(self, result: DecodingResult) -> bool:
    """Whisper's rule: too repetitive (compression ratio) or too unlikely (average log-prob)."""
    o = self.options
    if o.compression_ratio_threshold is not None and result.compression_ratio > o.compression_ratio_threshold:
      return True
    return o.logprob_threshold is not None and result.avg_logprob < o.logprob_threshold

  def run(self, inputs: np.ndarray, key=None) -> list[DecodingResult]:
    """inputs [B, S] int32 (pad 0) -> one DecodingResult per row.  Row i samples with
    fold_in(key, i); with a schedule, only rows that need it are retried at the next temperature."""
    key = jax.random.key(0) if key is None else key
    inputs = np.asarray(inputs)
    temps = self.options.temperatures
    results = [None] * inputs.shape[0]
    pending = np.arange(inputs.shape[0])
    for attempt, t in enumerate(temps):
      attempt_results = self._attempt(inputs[pending], pending, jax.random.fold_in(key, attempt), t)
      for i, res in zip(pending, attempt_results):
        results[i] = res
      if attempt + 1 < len(temps):
        pending = np.asarray([i for i in pending if self.needs_fallback(results[i])], np.int64)
        if pending.size == 0:
          break
    return results
