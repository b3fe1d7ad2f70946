"""The generic train step: global-token normalisation, one device equal to two."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from seq2seq_jax.models import build_model
from seq2seq_jax.training import parallel, state as state_lib, step as step_lib


def batch_with_uneven_padding(seed, batch=8, length=10):
  """Rows with very different target lengths: a mean of per-device means would be wrong here."""
  rng = np.random.default_rng(seed)
  inputs = rng.integers(3, 30, (batch, length)).astype(np.int32)
  targets = rng.integers(3, 25, (batch, length)).astype(np.int32)
  for r in range(batch):
    targets[r, 1 + (r * 3) % length:] = 0
    inputs[r, 2 + (r * 5) % (length - 2):] = 0
  return {"inputs": inputs, "targets": targets}


def tiny_model(dropout=0.0, dtype="float32"):
  _, model = build_model("transformer", source_vocab_size=30, target_vocab_size=25, d_model=32,
                         num_heads=4, d_ff=64, num_encoder_layers=2, num_decoder_layers=2, dropout=dropout,
                         dtype=dtype)
  return model


def tiny_state(model, num_steps, optimizer="adam"):
  schedule = state_lib.learning_rate_schedule("inverse_sqrt", 32, 4, 1.0, num_steps)
  tx = state_lib.adam(schedule) if optimizer == "adam" else optax.sgd(0.5)
  return state_lib.create_train_state(model, jax.random.key(0), (8, 10), (8, 10), tx)


def run_steps(devices, num_steps=4, dropout=0.0, optimizer="adam", grad_accum_steps=1, batch_size=8,
              dtype="float32", batch_seeds=None):
  """Trains the tiny model on `devices` (batch i from seed batch_seeds[i], default i); returns
  (params, loss per step)."""
  model = tiny_model(dropout, dtype)
  mesh = parallel.make_mesh(devices)
  state = parallel.replicate(tiny_state(model, num_steps, optimizer), mesh)
  train = parallel.data_parallel(step_lib.train_step, mesh, batch_argnums=(1,), label_smoothing=0.1,
                                 grad_accum_steps=grad_accum_steps)
  key = parallel.replicate(jax.random.key(1, impl="rbg"), mesh)
  seeds = range(num_steps) if batch_seeds is None else batch_seeds
  losses = []
  for seed in seeds:
    batch = batch_with_uneven_padding(seed, batch=batch_size)
    state, sums = train(state, parallel.shard_batch(batch, mesh), key)
    losses.append(step_lib.metrics_from_sums(jax.device_get(sums))["loss"])
  return jax.device_get(state.params), losses


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_two_devices_equal_one(optimizer):
  """Same global batch on 1 and 2 devices: same losses and parameters after several steps.

  Adam's first steps move every parameter by about +-lr * sign(gradient), so an entry whose
  gradient is ~0 may flip with float summation order; parameters are compared at 1e-5 with SGD,
  which passes the gradient through unchanged (Adam: loss curves at 1e-5, parameters at 1e-4).
  """
  assert jax.device_count() >= 2, "conftest forces 2 host devices"
  params_1, losses_1 = run_steps(jax.devices()[:1], optimizer=optimizer)
  params_2, losses_2 = run_steps(jax.devices()[:2], optimizer=optimizer)
  np.testing.assert_allclose(losses_1, losses_2, rtol=1e-5)
  tolerance = 1e-5 if optimizer == "sgd" else 1e-4
  for a, b in zip(jax.tree.leaves(params_1), jax.tree.leaves(params_2)):
    np.testing.assert_allclose(a, b, atol=tolerance)


def test_dropout_differs_per_device_and_step_but_is_reproducible():
  params_a, _ = run_steps(jax.devices()[:2], num_steps=2, dropout=0.3)
  params_b, _ = run_steps(jax.devices()[:2], num_steps=2, dropout=0.3)
  params_c, _ = run_steps(jax.devices()[:2], num_steps=2, dropout=0.0)
  for a, b in zip(jax.tree.leaves(params_a), jax.tree.leaves(params_b)):
    np.testing.assert_array_equal(a, b)
  assert any(not np.allclose(a, c) for a, c in zip(jax.tree.leaves(params_a), jax.tree.leaves(params_c)))


def test_loss_is_normalised_by_global_token_count():
  """The step's loss equals the token-weighted mean over the whole batch, computed directly."""
  _, model = build_model("transformer", source_vocab_size=30, target_vocab_size=25, d_model=32,
                         num_heads=4, d_ff=64, num_encoder_layers=1, num_decoder_layers=1, dropout=0.0)
  batch = batch_with_uneven_padding(7)
  params = model.init(jax.random.key(0), batch["inputs"], batch["targets"])["params"]
  logits = model.apply({"params": params}, batch["inputs"], batch["targets"])
  smoothed, _ = step_lib.token_losses(logits, jnp.asarray(batch["targets"]), 0.1)
  weights = batch["targets"] != 0
  expected = float(jnp.sum(smoothed * weights) / weights.sum())
  mesh = parallel.make_mesh(jax.devices()[:2])
  evaluate = parallel.data_parallel(step_lib.eval_step, mesh, batch_argnums=(1,), apply_fn=model.apply,
                                    label_smoothing=0.1)
  got = step_lib.metrics_from_sums(evaluate(parallel.replicate(params, mesh), parallel.shard_batch(batch, mesh)))
  assert got["tokens"] == int(weights.sum())
  assert got["loss"] == pytest.approx(expected, rel=1e-5)


def test_label_smoothing_minimum_is_zero():
  targets = jnp.array([[3, 4]])
  vocab = 6
  eps = 0.1
  soft = jax.nn.one_hot(targets, vocab) * (1 - eps - eps / (vocab - 1)) + eps / (vocab - 1)
  smoothed, _ = step_lib.token_losses(jnp.log(soft), targets, eps)
  np.testing.assert_allclose(smoothed, 0.0, atol=1e-5)


def test_hash_dropout_bits_are_uniform_keyed_and_reproducible():
  """Dropout masks from `HASH_PRNG`: the keep rate matches, a folded key gives independent masks
  (agreement p^2 + (1-p)^2), the same key the same mask, and neighbouring words are uncorrelated."""
  key = jax.random.key(3, impl=step_lib.HASH_PRNG)
  keep = np.asarray(jax.random.bernoulli(key, 0.9, (200_000,)))
  assert abs(keep.mean() - 0.9) < 0.003
  np.testing.assert_array_equal(keep, jax.random.bernoulli(key, 0.9, (200_000,)))
  other = np.asarray(jax.random.bernoulli(jax.random.fold_in(key, 1), 0.9, (200_000,)))
  assert abs((keep == other).mean() - 0.82) < 0.005
  u = np.asarray(jax.random.uniform(key, (400, 500)))
  assert abs(u.mean() - 0.5) < 0.003 and abs(u.var() - 1 / 12) < 0.002
  assert abs(np.corrcoef(u[:, :-1].ravel(), u[:, 1:].ravel())[0, 1]) < 0.01
  assert abs(np.corrcoef(u[:-1].ravel(), u[1:].ravel())[0, 1]) < 0.01
