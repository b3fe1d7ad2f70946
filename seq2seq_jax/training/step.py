"""The generic train and eval steps.  They know nothing of any model: only `state.apply_fn`.

Both are written against a named device axis (`axis_name`).  Each device computes the *sum* of its
token losses and the gradient of that sum; sums, gradients and token counts are reduced with
`lax.psum`, and the gradient is divided by the *global* number of target tokens.  The update is
therefore the gradient of the mean loss over the global batch, whatever the number of devices.
"""

import jax
import jax.numpy as jnp
import optax
from jax import lax

PAD_ID = 0


def token_losses(logits, targets, label_smoothing: float):
  """Label-smoothed cross entropy per token (Szegedy et al. 2016; Vaswani et al. §5.4).

  logits [B, T, V], targets [B, T] -> (smoothed [B, T], nll [B, T]).  The smoothed loss has its
  minimum (the entropy of the smoothed distribution) subtracted, so a perfect model scores 0.
  """
  vocab = logits.shape[-1]
  confidence = 1.0 - label_smoothing
  low = label_smoothing / (vocab - 1)
  soft = jax.nn.one_hot(targets, vocab) * (confidence - low) + low
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32))
  nll = -jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
  smoothed = -jnp.sum(soft * log_probs, axis=-1)
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


def train_step(state, batch, base_key, *, label_smoothing: float = 0.1, axis_name: str = "data"):
  """One optimizer step.  state: TrainState (replicated); batch: {"inputs" [b, S], "targets" [b, T]}
  (this device's share b of the global batch); base_key: PRNG key (replicated).
  Returns (new state, metric sums over the global batch)."""
  key = dropout_key(base_key, state.step, axis_name)

  def loss_fn(params):
    logits = state.apply_fn({"params": params}, batch["inputs"], batch["targets"], train=True,
                            rngs={"dropout": key})
    sums = _sums(logits, batch["targets"], label_smoothing)
    return sums["loss"], sums

  grads, sums = jax.grad(loss_fn, has_aux=True)(state.params)
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
