"""Transformer: masks proven by perturbation, cached decoding equal to full recomputation, overfitting."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seq2seq_jax.decoding.task import DecodingOptions, DecodingTask, initial_cache, step_function
from seq2seq_jax.models import build_model
from seq2seq_jax.training import parallel, state as state_lib, step as step_lib

SRC_V, TGT_V = 20, 17


def tiny(**kw):
  hp = dict(d_model=32, num_heads=4, d_ff=64, num_encoder_layers=2, num_decoder_layers=2, dropout=0.0)
  hp.update(kw)
  return build_model("transformer", source_vocab_size=SRC_V, target_vocab_size=TGT_V, **hp)[1]


def random_batch(seed, batch=3, src_len=7, tgt_len=6):
  rng = np.random.default_rng(seed)
  inputs = rng.integers(3, SRC_V, (batch, src_len)).astype(np.int32)
  targets = rng.integers(3, TGT_V, (batch, tgt_len)).astype(np.int32)
  inputs[1, 4:] = 0  # row 1: 4 real source tokens
  targets[1, 3:] = 0  # row 1: 3 real target tokens
  return jnp.asarray(inputs), jnp.asarray(targets)


def init(model, inputs, targets):
  return model.init(jax.random.key(0), inputs, targets)["params"]


@pytest.mark.parametrize("pre_ln", [False, True])
def test_source_padding_is_invisible(pre_ln):
  """Extra pad columns change neither the encoder states of real tokens nor the decoder logits."""
  model = tiny(pre_ln=pre_ln)
  inputs, targets = random_batch(0)
  params = init(model, inputs, targets)
  wider = jnp.pad(inputs, ((0, 0), (0, 5)))
  enc = model.apply({"params": params}, inputs, method=model.encode)
  enc_wider = model.apply({"params": params}, wider, method=model.encode)
  np.testing.assert_allclose(enc[1, :4], enc_wider[1, :4], atol=1e-5)
  np.testing.assert_allclose(enc[0], enc_wider[0, :7], atol=1e-5)
  logits = model.apply({"params": params}, inputs, targets)
  logits_wider = model.apply({"params": params}, wider, targets)
  np.testing.assert_allclose(logits, logits_wider, atol=1e-5)


def test_padding_mask_blocks_attention_to_pad_keys():
  """Perturb the *values* behind masked keys: encoder states of real tokens must not change."""
  from seq2seq_jax.models.attention import MultiHeadAttention, padding_mask
  attn = MultiHeadAttention(num_heads=2)
  x = jax.random.normal(jax.random.key(1), (2, 6, 8))
  tokens = jnp.array([[5, 6, 7, 0, 0, 0], [5, 6, 7, 8, 9, 4]])
  mask = padding_mask(tokens, tokens)
  params = attn.init(jax.random.key(2), x, x, mask)
  out, inter = attn.apply(params, x, x, mask, mutable=["intermediates"])
  x2 = x.at[0, 3:].set(100.0)  # garbage where row 0 is padded
  out2 = attn.apply(params, x2, x2, mask)
  np.testing.assert_allclose(out[0, :3], out2[0, :3], atol=1e-6)
  np.testing.assert_allclose(out[1], out2[1], atol=1e-6)
  weights = inter["intermediates"]["attention_weights"][0]  # [B, H, Tq, Tk]
  assert float(jnp.max(jnp.abs(weights[0, :, :3, 3:]))) == 0.0  # exactly zero on pad keys
  np.testing.assert_allclose(jnp.sum(weights[0, :, :3, :], -1), 1.0, atol=1e-6)


@pytest.mark.parametrize("pre_ln", [False, True])
def test_causal_mask_hides_future_targets(pre_ln):
  model = tiny(pre_ln=pre_ln)
  inputs, targets = random_batch(1)
  params = init(model, inputs, targets)
  logits = model.apply({"params": params}, inputs, targets)
  # Decoder input at position t is target t-1; changing targets at positions >= 3 changes decoder
  # inputs at positions >= 4, so logits at positions 0..3 must not move.
  changed = targets.at[0, 3:].set(5)
  logits2 = model.apply({"params": params}, inputs, changed)
  np.testing.assert_allclose(logits[0, :4], logits2[0, :4], atol=1e-5)
  assert float(jnp.max(jnp.abs(logits[0, 4:] - logits2[0, 4:]))) > 1e-4  # and later ones do


def assert_cached_decoding_equals_full_recomputation(model, params, inputs, targets, tolerance=1e-5):
  """Feeding targets [B, T] one step at a time through the cache gives the teacher-forced logits."""
  full = model.apply({"params": params}, inputs, targets)  # [B, T, V], decoder input = BOS + y[:-1]
  tokens_to_logits, cache = step_function(model, params, inputs, max_decode_length=targets.shape[1])
  tokens_to_logits = jax.jit(tokens_to_logits)  # one compile instead of one per op and step
  previous = jnp.full((targets.shape[0], 1), 1, jnp.int32)
  for t in range(targets.shape[1]):
    logits, cache = tokens_to_logits(previous, cache)
    np.testing.assert_allclose(logits, full[:, t], atol=tolerance, rtol=tolerance)
    previous = targets[:, t:t + 1]
  return full


@pytest.mark.parametrize("kw", [dict(), dict(pre_ln=True), dict(positional="learned"),
                                dict(share_target_embedding=False)])
def test_cached_decoding_equals_full_recomputation(kw):
  model = tiny(**kw)
  inputs, _ = random_batch(2)
  targets = jnp.asarray(np.random.default_rng(3).integers(3, TGT_V, (3, 8)), jnp.int32)
  assert_cached_decoding_equals_full_recomputation(model, init(model, inputs, targets), inputs, targets)


def test_bfloat16_cached_decoding_equals_full_recomputation():
  """In bfloat16 the caches hold bfloat16 keys and values (stored as their uint16 bits) and the
  logits are float32.  Both paths round the same activations to bfloat16, but the full and the
  incremental attention sum in different orders, which can move a value by one bfloat16 step
  (2**-8 relative) on the way; the tolerance allows a few of those."""
  model = tiny(dtype="bfloat16")
  inputs, _ = random_batch(2)
  targets = jnp.asarray(np.random.default_rng(3).integers(3, TGT_V, (3, 8)), jnp.int32)
  params = init(model, inputs, targets)
  full = assert_cached_decoding_equals_full_recomputation(model, params, inputs, targets, tolerance=3e-2)
  assert full.dtype == jnp.float32
  _, cache = step_function(model, params, inputs, max_decode_length=targets.shape[1])
  stored = {str(x.dtype) for path, x in jax.tree_util.tree_leaves_with_path(cache)
            if jax.tree_util.keystr(path).endswith(("['key_slots']", "['value_slots']"))}
  assert stored == {"uint16"}


def test_float32_sum_dot_general_rounds_once():
  """bfloat16 operands: the products are summed in float32 and the result rounded to bfloat16 once
  (a bfloat16 running sum of 4096 terms of 1 + 2**-7 would stall far below the true 4128)."""
  from seq2seq_jax.models.layers import float32_sum_dot_general
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((8, 512)), jnp.bfloat16)
  y = jnp.asarray(rng.standard_normal((512, 16)), jnp.bfloat16)
  out = float32_sum_dot_general(x, y, (((1,), (0,)), ((), ())))
  assert out.dtype == jnp.bfloat16
  exact = np.asarray(x, np.float64) @ np.asarray(y, np.float64)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(jnp.asarray(exact, jnp.float32).astype(jnp.bfloat16)))
  ones = jnp.full((1, 4096), 1 + 2**-7, jnp.bfloat16)
  total = float32_sum_dot_general(ones, jnp.ones((4096, 1), jnp.bfloat16), (((1,), (0,)), ((), ())),
                                  preferred_element_type=jnp.float32)
  assert total.dtype == jnp.float32 and float(total[0, 0]) == 4128.0
  x32 = jnp.asarray(rng.standard_normal((4, 8)), jnp.float32)
  np.testing.assert_array_equal(float32_sum_dot_general(x32, x32.T, (((1,), (0,)), ((), ()))), x32 @ x32.T)


def test_cross_attention_keys_values_are_projected_once_when_the_cache_is_created():
  """Encoder-decoder attention keeps K = E W^K and V = E W^V [B, H, S, Dh] in the cache, filled by
  `initial_cache`: decoding steps read them from there, so an encoding passed later changes nothing."""
  model = tiny()
  inputs, targets = random_batch(4)
  params = init(model, inputs, targets)
  encoded = model.apply({"params": params}, inputs, method=model.encode)
  cache = initial_cache(model, params, encoded, inputs, max_decode_length=5)
  cross = cache["decoder_0"]["cross_attention"]
  kernel = params["decoder_0"]["cross_attention"]["key"]["kernel"]  # [D, H, Dh]
  np.testing.assert_allclose(cross["source_key"].value, jnp.einsum("bsd,dhk->bhsk", encoded, kernel), atol=1e-5)
  assert not np.any(np.asarray(cache["decoder_0"]["self_attention"]["key_slots"]))
  step = jax.jit(lambda enc, tokens, cache: model.apply(
      {"params": params, "cache": cache}, enc, inputs, tokens, decode=True, method=model.decode,
      mutable=["cache"])[0])
  bos = jnp.ones((3, 1), jnp.int32)
  np.testing.assert_array_equal(step(encoded, bos, cache), step(encoded * 0.0 + 5.0, bos, cache))


def test_overfits_a_tiny_batch_and_greedy_reproduces_it():
  model = tiny(d_model=64, d_ff=128)
  rng = np.random.default_rng(4)
  inputs = rng.integers(3, SRC_V, (8, 6)).astype(np.int32)
  targets = rng.integers(3, TGT_V, (8, 6)).astype(np.int32)
  targets[:, -1] = 2  # EOS
  mesh = parallel.make_mesh(jax.devices()[:1])
  tx = state_lib.adam(state_lib.learning_rate_schedule("constant", 64, 10, 3e-3, 300))
  state = parallel.replicate(state_lib.create_train_state(model, jax.random.key(0), inputs.shape,
                                                          targets.shape, tx), mesh)
  train = parallel.data_parallel(step_lib.train_step, mesh, batch_argnums=(1,), label_smoothing=0.0)
  batch = {"inputs": inputs, "targets": targets}
  key = jax.random.key(0, impl="rbg")
  for _ in range(300):
    state, sums = train(state, batch, key)
  metrics = step_lib.metrics_from_sums(sums)
  assert metrics["nll"] < 0.02 and metrics["accuracy"] == 1.0, metrics
  greedy = DecodingOptions(max_len_a=0.0, max_len_b=6, compression_ratio_threshold=None,
                           logprob_threshold=None)
  task = DecodingTask(model, state.params, greedy, bos_id=1, eos_id=2, detokenize=str, model_max_length=128)
  assert [r.tokens for r in task.run(inputs)] == [tuple(t[:-1]) for t in targets.tolist()]


def test_key_size_sets_the_per_head_projection_width():
  """Vaswani et al. Table 3 row (B): d_k = d_v chosen apart from d_model / h."""
  from seq2seq_jax import models
  _, model = models.build_model("transformer", source_vocab_size=20, target_vocab_size=20, d_model=32,
                                num_heads=8, key_size=16, d_ff=64, num_encoder_layers=1,
                                num_decoder_layers=1, dropout=0.0)
  x = jnp.ones((2, 5), jnp.int32)
  params = model.init(jax.random.key(0), x, x)["params"]
  assert params["decoder_0"]["cross_attention"]["query"]["kernel"].shape == (32, 8, 16)
  assert params["decoder_0"]["cross_attention"]["out"]["kernel"].shape == (8, 16, 32)
  assert model.apply({"params": params}, x, x).shape == (2, 5, 20)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_tied_logits_gradients_equal_plain_autodiff(dtype):
  """The custom VJP of the tied output projection (dE = (x^T g)^T) gives autodiff's gradients."""
  from seq2seq_jax.models.layers import tied_logits
  kx, kt, kw = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, (2, 3, 8)).astype(dtype)
  table = jax.random.normal(kt, (5, 8))
  weights = jax.random.normal(kw, (2, 3, 5))
  loss = lambda f: lambda x, t: jnp.sum(f(x, t.astype(dtype)).astype(jnp.float32) * weights)
  plain = lambda x, t: jnp.einsum("...d,vd->...v", x, t)
  got = jax.grad(loss(tied_logits), argnums=(0, 1))(x, table)
  want = jax.grad(loss(plain), argnums=(0, 1))(x, table)
  tol = 1e-5 if dtype == jnp.float32 else 2e-2
  for g, w in zip(got, want):
    assert g.dtype == w.dtype and g.shape == w.shape
    np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(w, np.float32), rtol=tol, atol=tol)


def test_attention_dropout_sets_the_rate_of_the_attention_weights():
  """--attention_dropout reaches the attention weights: with the same dropout key, a training pass
  with attention_dropout 0.5 differs from one with 0 (residual dropout 0.1 in both), evaluation
  passes are equal; unset it follows --dropout, and `dropout=0` still turns every dropout off."""
  from seq2seq_jax.errors import UsageError  # pylint: disable=g-import-not-at-top
  inputs, targets = random_batch(0)
  models = [tiny(dropout=0.1, attention_dropout=rate) for rate in (0.0, 0.5)]
  params = init(models[0], inputs, targets)
  run = lambda m, train: m.apply({"params": params}, inputs, targets, train=train,
                                 rngs={"dropout": jax.random.key(1)})
  assert not np.allclose(run(models[0], True), run(models[1], True), atol=1e-3)
  np.testing.assert_array_equal(run(models[0], False), run(models[1], False))
  config = lambda **kw: build_model("transformer", source_vocab_size=5, target_vocab_size=5, **kw)[0]
  assert config(dropout=0.1).attention_weight_dropout == 0.1
  assert config(dropout=0.1, attention_dropout=0.0).attention_weight_dropout == 0.0
  assert config(dropout=0.0, attention_dropout=0.3).attention_weight_dropout == 0.0
  with pytest.raises(UsageError, match="attention_dropout"):
    config(attention_dropout=1.0)


def _randomize_relative_bias(params, seed=7):
  """The relative-position tables start at 0; give them values so that the tests see them."""
  leaves = iter(jax.random.split(jax.random.key(seed), 64))
  return jax.tree_util.tree_map_with_path(
      lambda path, x: jax.random.normal(next(leaves), x.shape) if "relative_bias" in str(path[-1]) else x,
      params)


def test_relative_position_bias_is_a_function_of_the_clipped_offset():
  """With all-zero inputs the logits are the bias alone: weights = softmax_j(b[h, clip(j - i, K)])."""
  from seq2seq_jax.models.attention import MultiHeadAttention, relative_position_buckets
  buckets = relative_position_buckets(jnp.arange(4), jnp.arange(6), 2)
  np.testing.assert_array_equal(buckets[1], [1, 2, 3, 4, 4, 4])     # offsets -1, 0, 1, 2, 3, 4 clipped to 2
  np.testing.assert_array_equal(buckets[3], [0, 0, 1, 2, 3, 4])
  attn = MultiHeadAttention(num_heads=2, relative_positions=2)
  x = jnp.zeros((1, 6, 8))
  params = _randomize_relative_bias(attn.init(jax.random.key(0), x, x))
  table = params["params"]["relative_bias"]  # [2K + 1, H]
  assert table.shape == (5, 2)
  _, inter = attn.apply(params, x, x, mutable=["intermediates"])
  weights = inter["intermediates"]["attention_weights"][0][0]  # [H, Tq, Tk]
  buckets = relative_position_buckets(jnp.arange(6), jnp.arange(6), 2)
  np.testing.assert_allclose(weights, jax.nn.softmax(jnp.transpose(table[buckets], (2, 0, 1)), -1), atol=1e-6)
  from seq2seq_jax.errors import UsageError  # pylint: disable=g-import-not-at-top
  with pytest.raises(UsageError, match="relative_positions"):
    build_model("transformer", source_vocab_size=5, target_vocab_size=5, relative_positions=-1)


@pytest.mark.parametrize("kw", [dict(relative_positions=2), dict(cross_relative_positions=2)])
def test_relative_positions_cached_decoding_equals_full_recomputation(kw):
  """Decoding steps place their query at the cache index (self-attention) or at a position counted
  in the cache (encoder-decoder attention), so the bias matches teacher forcing."""
  model = tiny(pre_ln=True, **kw)
  inputs, _ = random_batch(2)
  targets = jnp.asarray(np.random.default_rng(3).integers(3, TGT_V, (3, 8)), jnp.int32)
  params = _randomize_relative_bias(init(model, inputs, targets))
  assert sum("relative_bias" in str(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)) == (
      4 if "relative_positions" in kw else 2)
  full = assert_cached_decoding_equals_full_recomputation(model, params, inputs, targets)
  zeroed = jax.tree_util.tree_map_with_path(
      lambda path, x: jnp.zeros_like(x) if "relative_bias" in str(path[-1]) else x, params)
  assert not np.allclose(full, model.apply({"params": zeroed}, inputs, targets), atol=1e-3)  # the bias counts


@pytest.mark.slow
def test_share_embeddings_uses_one_table_for_source_target_and_output():
  """`share_embeddings` (§3.4): the encoder embeds the source with the target table, the logits are
  y E^T of the same table, and its gradient gathers contributions from both sides."""
  from seq2seq_jax.errors import UsageError  # pylint: disable=g-import-not-at-top
  _, model = build_model("transformer", source_vocab_size=TGT_V, target_vocab_size=TGT_V, d_model=32,
                         num_heads=4, d_ff=64, num_encoder_layers=1, num_decoder_layers=1, dropout=0.0,
                         share_embeddings=True)
  inputs, targets = random_batch(5)
  inputs = jnp.minimum(inputs, TGT_V - 1)
  params = init(model, inputs, targets)
  assert "source_embedding" not in params
  table = params["target_embedding"]["table"]["embedding"]
  encoded = model.apply({"params": params}, inputs, method=model.encode)
  changed = jax.tree.map(lambda x: x, params)
  changed["target_embedding"]["table"]["embedding"] = table.at[int(inputs[0, 0])].add(1.0)
  assert not np.allclose(encoded[0], model.apply({"params": changed}, inputs, method=model.encode)[0])
  # A token that occurs only in the source still gets a gradient through the shared table.
  only_source = 3
  targets = jnp.where(targets == only_source, 4, targets)
  inputs = inputs.at[0, 0].set(only_source)
  loss = lambda p: jnp.sum(model.apply({"params": p}, inputs, targets)[..., 5])  # logit 5 only
  grad = jax.grad(loss)(params)["target_embedding"]["table"]["embedding"]
  assert np.any(np.asarray(grad[only_source]) != 0)
  unpadded = jnp.asarray(np.random.default_rng(3).integers(3, TGT_V, (3, 8)), jnp.int32)
  assert_cached_decoding_equals_full_recomputation(model, params, inputs, unpadded)
  with pytest.raises(UsageError, match="share_embeddings needs one vocabulary"):
    build_model("transformer", source_vocab_size=SRC_V, target_vocab_size=TGT_V, share_embeddings=True)


def test_a_dtype_for_a_float32_only_model_is_refused(monkeypatch):
  """`Translator.from_workdir(dtype=...)` (the decode/evaluate `--dtype` flag) names the model when it
  has no compute dtype, before any checkpoint is read."""
  from seq2seq_jax import translator as translator_lib  # pylint: disable=g-import-not-at-top
  from seq2seq_jax.errors import UsageError  # pylint: disable=g-import-not-at-top

  class Vocabulary:
    size = 10
  monkeypatch.setattr(translator_lib.workdir_lib, "load",
                      lambda workdir: ({"model": "rnn_attention", "model_hparams": {}}, Vocabulary(), Vocabulary()))
  with pytest.raises(UsageError, match="model 'rnn_attention' computes in float32 only; drop --dtype"):
    translator_lib.Translator.from_workdir("unused", dtype="bfloat16")


@pytest.mark.parametrize("x_shape, w_shape, axes", [((3, 5, 8), (8, 6), 1), ((3, 5, 4, 2), (4, 2, 7), 2),
                                                    ((2, 8), (8, 3, 4), 1)])
def test_float32_sum_dot_general_gradients_are_the_float32_gradients(x_shape, w_shape, axes):
  """The layer products' own VJP (bfloat16 operands, float32 sums): the gradients of a Dense, a
  DenseGeneral over two axes and one into [H, Dh] equal float32's to bfloat16 precision."""
  from jax import lax  # pylint: disable=g-import-not-at-top
  from seq2seq_jax.models.layers import float32_sum_dot_general  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal(x_shape), jnp.bfloat16)
  w = jnp.asarray(rng.standard_normal(w_shape), jnp.bfloat16)
  dims = ((tuple(range(len(x_shape) - axes, len(x_shape))), tuple(range(axes))), ((), ()))
  g = jnp.asarray(rng.standard_normal(x_shape[:-axes] + w_shape[axes:]), jnp.float32)
  ours = jax.grad(lambda x, w: jnp.sum(float32_sum_dot_general(x, w, dims) * g), argnums=(0, 1))(x, w)
  exact = jax.grad(lambda x, w: jnp.sum(lax.dot_general(x, w, dims) * g), argnums=(0, 1))(
      x.astype(jnp.float32), w.astype(jnp.float32))
  for a, b in zip(ours, exact):
    assert a.dtype == jnp.bfloat16 and a.shape == b.shape
    np.testing.assert_allclose(np.asarray(a, np.float32), b, rtol=2e-2, atol=2e-2 * float(jnp.max(jnp.abs(b))))
