"""Train state, optimizers, learning-rate schedules (optax) and the parameters' moving average."""

import math
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

SCHEDULES = ("inverse_sqrt", "constant", "cosine")
OPTIMIZERS = ("adam", "adamw", "adafactor")


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
  return optimizer("adam", schedule, b1=b1, b2=b2, eps=eps, grad_clip_norm=grad_clip_norm)


def optimizer(name: str, schedule: optax.Schedule, b1: float = 0.9, b2: float = 0.98, eps: float = 1e-9,
              weight_decay: float = 0.0, grad_clip_norm: float = 0.0) -> optax.GradientTransformation:
  """The optimizer `name`, stepping by `schedule`, after optional global-norm clipping.

  adam: Kingma & Ba (2015) with (b1, b2, eps); no weight decay (use adamw).
  adamw: Adam with decoupled weight decay `weight_decay` x lr x param (Loshchilov & Hutter 2019).
  adafactor: Shazeer & Stern (2018), factored second moments, optax's defaults; `weight_decay`
  as its decoupled weight-decay rate; b1, b2, eps do not apply.
  """
  if name == "adam":
    if weight_decay:
      raise ValueError("adam takes no weight decay; use adamw (decoupled weight decay)")
    tx = optax.adam(schedule, b1=b1, b2=b2, eps=eps)
  elif name == "adamw":
    tx = optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)
  elif name == "adafactor":
    tx = optax.adafactor(schedule, weight_decay_rate=weight_decay or None)
  else:
    raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
  return optax.chain(optax.clip_by_global_norm(grad_clip_norm), tx) if grad_clip_norm > 0 else tx


class EmaTrainState(train_state.TrainState):
  """A TrainState that also keeps an exponential moving average of the parameters,
  ema <- decay * ema + (1 - decay) * params after every update (fairseq's --ema-decay; Polyak &
  Juditsky 1992), starting from the initial parameters.  `ema_params` is saved and restored with
  the rest of the state, so a resumed run's average equals an uninterrupted run's."""
  ema_params: Any = None
  ema_decay: float = flax.struct.field(pytree_node=False, default=0.999)

  def apply_gradients(self, *, grads, **kwargs):
    new = super().apply_gradients(grads=grads, **kwargs)
    decay = self.ema_decay
    ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, self.ema_params, new.params)
    return new.replace(ema_params=ema)


def moving_average_note(decay: float, steps: int, most: float = 0.05) -> str | None:
  """A line for the user when the moving average `steps` updates long still holds more than `most`
  of the starting parameters (their weight in it is decay ** steps), else None.  A recipe's decay
  run for fewer steps (a shorter budget, a smoke test) is evaluated nearly as initialised."""
  if not decay or decay ** steps <= most:
    return None
  enough = math.floor(most ** (1 / steps) * 1e4) / 1e4  # rounded down, so that it does leave less
  return (f"note: with --ema_decay={decay} the moving average that validation and test use still holds "
          f"{decay ** steps:.0%} of the initial parameters after {steps} steps; --ema_decay="
          f"{enough} or lower leaves under {most:.0%}")


def evaluation_params(state):
  """The parameters to validate and test with: the moving average when the state keeps one."""
  return state.ema_params if getattr(state, "ema_params", None) is not None else state.params


def create_train_state(model: nn.Module, key, input_shape, target_shape,
                       tx: optax.GradientTransformation, ema_decay: float = 0.0,
                       params=None) -> train_state.TrainState:
  """Initialises parameters from `key` with dummy [B, S] / [B, T] batches (or takes `params`, e.g.
  a trained model's for fine-tuning).  With 0 < ema_decay < 1 the state keeps a moving average."""
  inputs = jnp.ones(input_shape, jnp.int32)
  targets = jnp.ones(target_shape, jnp.int32)
  if params is None:
    params = jax.jit(lambda k: model.init(k, inputs, targets)["params"])(key)
  if ema_decay:
    if not 0.0 < ema_decay < 1.0:
      raise ValueError(f"ema_decay must be in (0, 1), got {ema_decay}")
    return EmaTrainState.create(apply_fn=model.apply, params=params, tx=tx,
                                ema_params=jax.tree.map(jnp.copy, params), ema_decay=ema_decay)
  return train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)


def parameter_count(params) -> int:
  return int(sum(x.size for x in jax.tree.leaves(params)))
