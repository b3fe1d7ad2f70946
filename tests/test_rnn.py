"""RNN encoder-decoder and attention RNNs: cached decoding, padding invariance, attention weights,
reversed sources, overfitting, and decoding through the same search as the Transformer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seq2seq_jax.decoding.task import DecodingOptions, DecodingTask, step_function
from seq2seq_jax.models import build_model, kv_cache
from seq2seq_jax.models.rnn import reverse_real_tokens
from seq2seq_jax.training import parallel, state as state_lib, step as step_lib

FAMILIES = [
    ("rnn_seq2seq", dict()),
    ("rnn_seq2seq", dict(rnn_cell="gru", bidirectional_encoder=True, reverse_source=True)),
    ("rnn_attention", dict(attention="bahdanau", bidirectional_encoder=True)),
    ("rnn_attention", dict(attention="luong_dot")),
    ("rnn_attention", dict(attention="luong_general", rnn_cell="gru")),
    ("rnn_attention", dict(attention="luong_concat")),
    ("rnn_attention", dict(attention="luong_general", input_feeding=False)),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for name, kw in FAMILIES]


def tiny(name, **kw):
  return build_model(name, source_vocab_size=20, target_vocab_size=15, hidden_size=24,
                     embedding_size=16, num_layers=2, dropout=0.0, **kw)[1]


def batch(seed=0):
  rng = np.random.default_rng(seed)
  x = rng.integers(3, 20, (3, 7)).astype(np.int32)
  x[1, 4:] = 0
  y = rng.integers(3, 15, (3, 6)).astype(np.int32)
  return x, y


@pytest.mark.parametrize("name, kw", FAMILIES, ids=IDS)
def test_cached_decoding_equals_teacher_forcing(name, kw):
  model = tiny(name, **kw)
  x, y = batch()
  params = model.init(jax.random.key(0), x, y)["params"]
  full = model.apply({"params": params}, x, y)
  tokens_to_logits, cache = step_function(model, params, jnp.asarray(x), 6)
  previous = jnp.full((3, 1), 1, jnp.int32)
  for t in range(6):
    logits, cache = tokens_to_logits(previous, cache)
    np.testing.assert_allclose(logits, full[:, t], atol=1e-5)
    previous = jnp.asarray(y[:, t:t + 1])


@pytest.mark.parametrize("name, kw", FAMILIES, ids=IDS)
def test_the_carry_is_the_per_row_state_of_the_cache(name, kw):
  """The cache contract: the decoder's carries are `PerRow` (beam search reorders them); the only
  other leaf is the scalar `started`."""
  model = tiny(name, **kw)
  x, y = batch()
  params = model.init(jax.random.key(0), x, y)["params"]
  _, cache = step_function(model, params, jnp.asarray(x), 6, repeat=2)
  state = cache["decoder"]["state"]
  assert jax.tree.leaves(state) and all(
      kv_cache.is_per_row(box) and box.value.shape[0] == 3 * 2
      for box in jax.tree.leaves(state, is_leaf=kv_cache.is_per_row))
  assert cache["decoder"]["started"].ndim == 0 and set(cache["decoder"]) == {"state", "started"}


@pytest.mark.parametrize("name, kw", FAMILIES, ids=IDS)
def test_padding_never_reaches_the_context_or_the_output(name, kw):
  model = tiny(name, **kw)
  x, y = batch(1)
  params = model.init(jax.random.key(0), x, y)["params"]
  wider = np.pad(x, ((0, 0), (0, 5)))
  enc = model.apply({"params": params}, x, method=model.encode)
  enc_wider = model.apply({"params": params}, wider, method=model.encode)
  for a, b in zip(jax.tree.leaves(enc["final"]), jax.tree.leaves(enc_wider["final"])):
    np.testing.assert_allclose(a, b, atol=1e-6)  # the context vector
  alone = model.apply({"params": params}, x[1:2, :4], method=model.encode)
  for a, b in zip(jax.tree.leaves(alone["final"]), jax.tree.leaves(enc["final"])):
    np.testing.assert_allclose(a[0], b[1], atol=1e-6)  # padded row == the same row unpadded
  np.testing.assert_allclose(model.apply({"params": params}, x, y),
                             model.apply({"params": params}, wider, y), atol=1e-5)


@pytest.mark.parametrize("name, kw", [f for f in FAMILIES if f[0] == "rnn_attention"],
                         ids=[i for i in IDS if i.startswith("rnn_attention")])
def test_attention_weights_are_zero_on_padding_and_sum_to_one(name, kw):
  model = tiny(name, **kw)
  x, y = batch(2)
  params = model.init(jax.random.key(0), x, y)["params"]
  _, inter = model.apply({"params": params}, x, y, mutable=["intermediates"])
  (weights,) = inter["intermediates"]["decoder"]["step"]["attention"]["attention_weights"]
  assert weights.shape == (3, 6, 7)  # [B, T, S]
  assert float(jnp.max(jnp.abs(weights[1, :, 4:]))) == 0.0
  np.testing.assert_allclose(jnp.sum(weights, -1), 1.0, atol=1e-5)


def test_reverse_source_reverses_only_real_tokens():
  tokens = jnp.array([[5, 6, 7, 0, 0], [3, 4, 5, 6, 7]])
  np.testing.assert_array_equal(reverse_real_tokens(tokens), [[7, 6, 5, 0, 0], [7, 6, 5, 4, 3]])


@pytest.mark.parametrize("name, kw", [FAMILIES[0], FAMILIES[2], FAMILIES[4]], ids=[IDS[0], IDS[2], IDS[4]])
def test_overfits_a_tiny_batch_and_decodes_it(name, kw):
  model = build_model(name, source_vocab_size=20, target_vocab_size=15, hidden_size=64,
                      embedding_size=32, num_layers=1, dropout=0.0, **kw)[1]
  rng = np.random.default_rng(4)
  inputs = rng.integers(3, 20, (8, 6)).astype(np.int32)
  targets = rng.integers(3, 15, (8, 5)).astype(np.int32)
  targets[:, -1] = 2
  mesh = parallel.make_mesh(jax.devices()[:1])
  tx = state_lib.adam(state_lib.learning_rate_schedule("constant", 64, 10, 1e-2, 400))
  state = parallel.replicate(state_lib.create_train_state(model, jax.random.key(0), inputs.shape,
                                                          targets.shape, tx), mesh)
  train = parallel.data_parallel(step_lib.train_step, mesh, batch_argnums=(1,), label_smoothing=0.0)
  for _ in range(400):
    state, sums = train(state, {"inputs": inputs, "targets": targets}, jax.random.key(0, impl="rbg"))
  assert step_lib.metrics_from_sums(sums)["accuracy"] == 1.0
  options = DecodingOptions(beam_size=2, max_len_a=0.0, max_len_b=5, compression_ratio_threshold=None,
                            logprob_threshold=None)
  task = DecodingTask(model, state.params, options, bos_id=1, eos_id=2, detokenize=str, model_max_length=128)
  assert [r.tokens for r in task.run(inputs)] == [tuple(t[:-1]) for t in targets.tolist()]
