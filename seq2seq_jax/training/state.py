"""Train state, optimizer and learning-rate schedules (optax)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

SCHEDULES = ("inverse_sqrt", "constant", "cosine")


def learning_rate_schedule(name: str, d_model: int, warmup_steps: int, scale: float,
                           total_steps: int) -> optax.Schedule:
  """Learning rate per step.

  inverse_sqrt (Vaswani et al. 2017, §5.3, eq. 3):
      lrate = scale * d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)
  constant: scale after a linear warmup; cosine: linear warmup to `scale`, cosine decay to 0.
  """
  if warmup_steps < 1:
    raise ValueError(f"warmup_steps must be >= 1, got {warmup_steps}")
  if name == "inverse_sqrt":
    def schedule(step):
      step = jnp.maximum(step, 1).astype(jnp.float32)
      return scale * d_model**-0.5 * jnp.minimum(step**-0.5, step * warmup_steps**-1.5)
    return schedule
  if name == "constant":
    return optax.join_schedules(
        [optax.linear_schedule(0.0, scale, warmup_steps), optax.constant_schedule(scale)], [warmup_steps])
  if name == "cosine":
    return optax.warmup_cosine_decay_schedule(0.0, scale, warmup_steps, max(total_steps, warmup_steps + 1))
  raise ValueError(f"unknown schedule {name!r}; choose one of: {', '.join(SCHEDULES)}")


def adam(schedule: optax.Schedule, b1: float = 0.9, b2: float = 0.98, eps: float = 1e-9,
         grad_clip_norm: float = 0.0) -> optax.GradientTransformation:
  """Adam(0.9, 0.98, 1e-9) as in Vaswani et al. §5.3, with optional global-norm clipping."""
  tx = optax.adam(schedule, b1=b1, b2=b2, eps=eps)
  return optax.chain(optax.clip_by_global_norm(grad_clip_norm), tx) if grad_clip_norm > 0 else tx


def create_train_state(model: nn.Module, key, input_shape, target_shape,
                       tx: optax.GradientTransformation) -> train_state.TrainState:
  """Initialises parameters from `key` with dummy [B, S] / [B, T] batches."""
  inputs = jnp.ones(input_shape, jnp.int32)
  targets = jnp.ones(target_shape, jnp.int32)
  params = jax.jit(lambda k: model.init(k, inputs, targets)["params"])(key)
  return train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)


def parameter_count(params) -> int:
  return int(sum(x.size for x in jax.tree.leaves(params)))
