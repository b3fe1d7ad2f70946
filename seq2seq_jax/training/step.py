"""The generic train and eval steps.  They know nothing of any model: only `state.apply_fn`.

Both are written against a named device axis (`axis_name`).  The *global* number of target tokens
is known from the batch before the forward pass (`lax.psum` of each device's count); each device
differentiates the sum of its token losses divided by that number, and gradients and metric sums
are reduced with `lax.psum`.  The update is therefore the gradient of the mean loss over the global
batch, whatever the number of devices and however many microbatches (`grad_accum_steps`) each
device splits its rows into.

Mixed precision: the model may compute in bfloat16 (its own `dtype`); parameters, gradients,
optimizer state and the loss stay float32 (logits are cast to float32 before the loss).

Dropout draws its masks from `HASH_PRNG`: a counter-based hash that XLA fuses into the masking
itself, instead of materialising random words with a separate generator (see `hash_bits`).
"""

import functools

import jax
import jax.extend.random as jax_random
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from seq2seq_jax.special_tokens import PAD_ID


def _mix32(x):
  """lowbias32 (C. Wellons, "Hash Prospector"): a bijective 32-bit integer hash.  uint32 -> uint32."""
  x = x ^ (x >> 16)
  x = x * np.uint32(0x7FEB352D)
  x = x ^ (x >> 15)
  x = x * np.uint32(0x846CA68B)
  return x ^ (x >> 16)


def hash_bits(key, bit_width: int, shape):
  """Random bits for `shape` from a 2-word key: mix(mix(i ^ k0) ^ k1) for the flat index i.

  Every element is an independent function of its index, so XLA fuses the generator into the op
  that consumes it (a dropout mask costs a few integer ops per element, nothing in memory);
  distinct indices give distinct words for one key (the hash is a bijection).  Up to 2^32 elements.
  """
  size = int(np.prod(shape))
  if size > 2**32:
    raise ValueError(f"hash_bits draws at most 2^32 numbers per call, asked for {size}")
  index = lax.iota(jnp.uint32, size).reshape(shape)
  bits = _mix32(_mix32(index ^ key[0]) ^ key[1])
  if bit_width == 64:
    high = _mix32(_mix32(index ^ key[1]) ^ key[0])
    return (high.astype(jnp.uint64) << 32) | bits.astype(jnp.uint64)
  return bits.astype({8: jnp.uint8, 16: jnp.uint16, 32: jnp.uint32}[bit_width])


# Keys are threefry keys (seed, split and fold_in are threefry's); only the bulk bits are hashed.
HASH_PRNG = jax_random.define_prng_impl(
    key_shape=(2,), seed=jax_random.threefry_prng_impl.seed, split=jax_random.threefry_prng_impl.split,
    fold_in=jax_random.threefry_prng_impl.fold_in, random_bits=hash_bits, name="hash32", tag="hash32")


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _target_logits(logits, targets, vocab: int):
  """logits [B, T, V], targets [B, T] -> logits[b, t, targets[b, t]]  [B, T].

  A gather forward; backward, the one-hot cotangent is an elementwise select that XLA fuses into
  the rest of the logits' gradient (plain autodiff would scatter into a separate [B, T, V] array).
  """
  del vocab
  return jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]


def _target_logits_fwd(logits, targets, vocab):
  return _target_logits(logits, targets, vocab), targets


def _target_logits_bwd(vocab, targets, cotangent):
  is_target = lax.broadcasted_iota(jnp.int32, (*targets.shape, vocab), targets.ndim) == targets[..., None]
  return jnp.where(is_target, cotangent[..., None], 0.0), None


_target_logits.defvjp(_target_logits_fwd, _target_logits_bwd)


def _token_terms(logits, targets, label_smoothing: float):
  """(smoothed loss, nll, correct) per token; logits [B, T, V] (any float dtype; float32 here),
  targets [B, T] -> three [B, T] float32 arrays.

  With the smoothed target q = low + (confidence - low) * onehot(target) and sum_v q_v = 1,
  -sum_v q_v log p_v = lse - (confidence - low) * x_target - low * sum_v x_v: a few reductions
  over V and a gather, with no [B, T, V] one-hot, log-probability or scatter; "correct" is
  x_target == max_v x_v (argmax up to exact ties) from the max the log-sum-exp needs anyway.
  The minimum (the entropy of q) is subtracted, so a perfect model scores 0.
  """
  logits = logits.astype(jnp.float32)
  vocab = logits.shape[-1]
  confidence = 1.0 - label_smoothing
  low = label_smoothing / (vocab - 1)
  top = lax.stop_gradient(jnp.max(logits, axis=-1))
  lse = top + jnp.log(jnp.sum(jnp.exp(logits - top[..., None]), axis=-1))
  target_logit = _target_logits(logits, targets, vocab)
  nll = lse - target_logit
  smoothed = lse - (confidence - low) * target_logit - low * jnp.sum(logits, axis=-1)
  if label_smoothing > 0:
    smoothed -= -(confidence * np.log(confidence) + (vocab - 1) * low * np.log(low + 1e-20))
  return smoothed, nll, (target_logit >= top).astype(jnp.float32)


def token_losses(logits, targets, label_smoothing: float):
  """Label-smoothed cross entropy per token (Szegedy et al. 2016; Vaswani et al. §5.4), minus its
  minimum.  logits [B, T, V], targets [B, T] -> (smoothed [B, T], nll [B, T])."""
  smoothed, nll, _ = _token_terms(logits, targets, label_smoothing)
  return smoothed, nll


def _sums(logits, targets, label_smoothing):
  """Per-device sums: loss (smoothed), nll, correct tokens, tokens.  Pads (id 0) count 0."""
  weights = (targets != PAD_ID).astype(jnp.float32)
  smoothed, nll, correct = _token_terms(logits, targets, label_smoothing)
  return {"loss": jnp.sum(smoothed * weights), "nll": jnp.sum(nll * weights),
          "correct": jnp.sum(correct * weights), "tokens": jnp.sum(weights)}


def dropout_key(base_key, step, axis_name: str):
  """A `HASH_PRNG` key for this step and device, folded from the base key (any implementation;
  its first two words seed the hash key)."""
  key = jax.random.fold_in(jax.random.fold_in(base_key, step), lax.axis_index(axis_name))
  return jax.random.wrap_key_data(jax.random.key_data(key).reshape(-1)[:2], impl=HASH_PRNG)


def psum(tree, axis_name: str):
  """lax.psum over the data axis; on a 1-device axis the tree itself (XLA would otherwise keep an
  all-reduce that copies every gradient)."""
  return tree if lax.axis_size(axis_name) == 1 else lax.psum(tree, axis_name)


def split_microbatches(batch: dict, num_microbatches: int) -> dict:
  """{"x": [b, ...]} -> {"x": [k, b/k, ...]}: microbatch i holds rows i*b/k .. (i+1)*b/k - 1."""
  def split(x):
    if x.shape[0] % num_microbatches:
      raise ValueError(f"{x.shape[0]} rows per device do not split into {num_microbatches} microbatches")
    return x.reshape(num_microbatches, x.shape[0] // num_microbatches, *x.shape[1:])
  return jax.tree.map(split, batch)


def gradient_sums(loss_fn, params, batch, key, num_microbatches: int = 1):
  """(gradient of the loss, metric sums) over this device's rows.

  loss_fn(params, batch, key) -> (loss, sums dict).  With k = num_microbatches > 1 the rows
  are processed as k microbatches of b/k rows in a `lax.scan` (activations of one microbatch live
  at a time) and gradients and sums are added, so the result is that of the whole batch up to
  float summation order; microbatch i draws dropout from fold_in(key, i).
  """
  grad_fn = jax.grad(loss_fn, has_aux=True)
  if num_microbatches == 1:
    return grad_fn(params, batch, key)
  micro = split_microbatches(batch, num_microbatches)
  first = jax.tree.map(lambda x: x[0], micro)
  zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(grad_fn, params, first, key))

  def add_microbatch(total, xs):
    index, microbatch = xs
    out = grad_fn(params, microbatch, jax.random.fold_in(key, index))
    return jax.tree.map(jnp.add, total, out), None

  total, _ = lax.scan(add_microbatch, zeros, (jnp.arange(num_microbatches), micro))
  return total


def _loss_and_sums(params, batch, key, *, apply_fn, label_smoothing, scale):
  """`scale` x the summed label-smoothed loss of `batch` (teacher forcing, dropout from `key`), and
  the metric sums."""
  logits = apply_fn({"params": params}, batch["inputs"], batch["targets"], train=True,
                    rngs={"dropout": key})
  sums = _sums(logits, batch["targets"], label_smoothing)
  return sums["loss"] * scale, sums


def train_step(state, batch, base_key, *, label_smoothing: float = 0.1, axis_name: str = "data",
               grad_accum_steps: int = 1):
  """One optimizer step.  state: TrainState (replicated); batch: {"inputs" [b, S], "targets" [b, T]}
  (this device's share b of the global batch, b divisible by `grad_accum_steps`); base_key: PRNG
  key (replicated).  Returns (new state, metric sums over the global batch)."""
  key = dropout_key(base_key, state.step, axis_name)
  # The global token count is known before the forward pass: scaling the loss by its inverse gives
  # gradients of the global mean directly (no extra pass over the gradients).
  tokens = psum(jnp.sum(batch["targets"] != PAD_ID).astype(jnp.float32), axis_name)
  loss_fn = functools.partial(_loss_and_sums, apply_fn=state.apply_fn, label_smoothing=label_smoothing,
                              scale=1.0 / jnp.maximum(tokens, 1.0))
  grads, sums = gradient_sums(loss_fn, state.params, batch, key, grad_accum_steps)
  sums = psum(sums, axis_name)
  grads = psum(grads, axis_name)
  sums["grad_norm"] = optax.tree.norm(grads)
  return state.apply_gradients(grads=grads), sums


def eval_step(params, batch, apply_fn, *, label_smoothing: float = 0.1, axis_name: str = "data"):
  """Teacher-forced metric sums over the global batch (no dropout)."""
  logits = apply_fn({"params": params}, batch["inputs"], batch["targets"], train=False)
  return psum(_sums(logits, batch["targets"], label_smoothing), axis_name)


def metrics_from_sums(sums: dict) -> dict:
  """Metric sums -> per-token means: loss, nll, perplexity, accuracy."""
  tokens = max(float(sums["tokens"]), 1.0)
  out = {"loss": float(sums["loss"]) / tokens, "nll": float(sums["nll"]) / tokens,
         "accuracy": float(sums["correct"]) / tokens, "tokens": int(sums["tokens"])}
  out["perplexity"] = float(jnp.exp(out["nll"]))
  if "grad_norm" in sums:
    out["grad_norm"] = float(sums["grad_norm"])
  return out
