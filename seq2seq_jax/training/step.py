"""The generic train and eval steps.  They know nothing of any model: only `state.apply_fn`.

Both are written against a named device axis (`axis_name`).  Each device computes the *sum* of its
token losses and the gradient of that sum; sums, gradients and token counts are reduced with
`lax.psum`, and the gradient is divided by the *global* number of target tokens.  The update is
therefore the gradient of the mean loss over the global batch, whatever the number of devices and
however many microbatches (`grad_accum_steps`) each device splits its rows into.

Mixed precision: the model may compute in bfloat16 (its own `dtype`); parameters, gradients,
optimizer state and the loss stay float32 (logits are cast to float32 before the loss).
"""

import functools

import jax
import jax.numpy as jnp
import optax
from jax import lax

PAD_ID = 0


def token_losses(logits, targets, label_smoothing: float):
  """Label-smoothed cross entropy per token (Szegedy et al. 2016; Vaswani et al. §5.4).

  logits [B, T, V] (any float dtype; computed in float32), targets [B, T] -> (smoothed [B, T],
  nll [B, T]).  With the smoothed distribution q = low + (confidence - low) * onehot(target),
  -sum_v q_v log p_v = lse - (confidence - low) * x_target - low * sum_v x_v (since sum_v q_v = 1),
  so no [B, T, V] one-hot or log-probability tensor is materialised.  The minimum (the entropy of
  q) is subtracted, so a perfect model scores 0.
  """
  logits = logits.astype(jnp.float32)
  vocab = logits.shape[-1]
  confidence = 1.0 - label_smoothing
  low = label_smoothing / (vocab - 1)
  lse = jax.nn.logsumexp(logits, axis=-1)
  target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
  nll = lse - target_logit
  smoothed = lse - (confidence - low) * target_logit - low * jnp.sum(logits, axis=-1)
  if label_smoothing > 0:
    smoothed -= -(confidence * jnp.log(confidence) + (vocab - 1) * low * jnp.log(low + 1e-20))
  return smoothed, nll


def _sums(logits, targets, label_smoothing):
  """Per-device sums: loss (smoothed), nll, correct tokens, tokens.  Pads (id 0) count 0."""
  weights = (targets != PAD_ID).astype(jnp.float32)
  smoothed, nll = token_losses(logits, targets, label_smoothing)
  correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
  return {"loss": jnp.sum(smoothed * weights), "nll": jnp.sum(nll * weights),
          "correct": jnp.sum(correct * weights), "tokens": jnp.sum(weights)}


def dropout_key(base_key, step, axis_name: str):
  """A different dropout key per step and per device, folded from the base key."""
  return jax.random.fold_in(jax.random.fold_in(base_key, step), lax.axis_index(axis_name))


def split_microbatches(batch: dict, num_microbatches: int) -> dict:
  """{"x": [b, ...]} -> {"x": [k, b/k, ...]}: microbatch i holds rows i*b/k .. (i+1)*b/k - 1."""
  def split(x):
    if x.shape[0] % num_microbatches:
      raise ValueError(f"{x.shape[0]} rows per device do not split into {num_microbatches} microbatches")
    return x.reshape(num_microbatches, x.shape[0] // num_microbatches, *x.shape[1:])
  return jax.tree.map(split, batch)


def gradient_sums(loss_fn, params, batch, key, num_microbatches: int = 1):
  """(gradient of the summed loss, metric sums) over this device's rows.

  loss_fn(params, batch, key) -> (summed loss, sums dict).  With k = num_microbatches > 1 the rows
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


def _loss_and_sums(params, batch, key, *, apply_fn, label_smoothing):
  """Summed label-smoothed loss of `batch` (teacher forcing, dropout from `key`) and its sums."""
  logits = apply_fn({"params": params}, batch["inputs"], batch["targets"], train=True,
                    rngs={"dropout": key})
  sums = _sums(logits, batch["targets"], label_smoothing)
  return sums["loss"], sums


def train_step(state, batch, base_key, *, label_smoothing: float = 0.1, axis_name: str = "data",
               grad_accum_steps: int = 1):
  """One optimizer step.  state: TrainState (replicated); batch: {"inputs" [b, S], "targets" [b, T]}
  (this device's share b of the global batch, b divisible by `grad_accum_steps`); base_key: PRNG
  key (replicated).  Returns (new state, metric sums over the global batch)."""
  key = dropout_key(base_key, state.step, axis_name)
  loss_fn = functools.partial(_loss_and_sums, apply_fn=state.apply_fn, label_smoothing=label_smoothing)
  grads, sums = gradient_sums(loss_fn, state.params, batch, key, grad_accum_steps)
  sums = lax.psum(sums, axis_name)
  grads = lax.psum(grads, axis_name)
  grads = jax.tree.map(lambda g: g / jnp.maximum(sums["tokens"], 1.0), grads)
  sums["grad_norm"] = optax.tree.norm(grads)
  return state.apply_gradients(grads=grads), sums


def eval_step(params, batch, apply_fn, *, label_smoothing: float = 0.1, axis_name: str = "data"):
  """Teacher-forced metric sums over the global batch (no dropout)."""
  logits = apply_fn({"params": params}, batch["inputs"], batch["targets"], train=False)
  return lax.psum(_sums(logits, batch["targets"], label_smoothing), axis_name)


def summarize(sums: dict) -> dict:
  """Metric sums -> per-token means: loss, nll, perplexity, accuracy."""
  tokens = max(float(sums["tokens"]), 1.0)
  out = {"loss": float(sums["loss"]) / tokens, "nll": float(sums["nll"]) / tokens,
         "accuracy": float(sums["correct"]) / tokens, "tokens": int(sums["tokens"])}
  out["perplexity"] = float(jnp.exp(out["nll"]))
  if "grad_norm" in sums:
    out["grad_norm"] = float(sums["grad_norm"])
  return out
