"""speech_transformer: cached decoding equals teacher forcing over audio, padding changes no
output (encoder, logits, greedy, beam, sampling), one train step through the generic step."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seq2seq_jax.decoding.task import DecodingOptions, DecodingTask, step_function
from seq2seq_jax.errors import UsageError
from seq2seq_jax.models import audio, build_model
from seq2seq_jax.training import parallel, state as state_lib, step as step_lib

TGT_V = 13
FRONTENDS = {"conv": dict(frontend="conv"),
             "res2net": dict(frontend="res2net", res2net_blocks=1, res2net_scale=4, squeeze_excitation=True,
                             se_bottleneck=8)}


def tiny(**kw):
  hp = dict(d_model=32, num_heads=4, d_ff=64, num_encoder_layers=1, num_decoder_layers=1, dropout=0.0,
            n_mels=24, max_len=16)
  hp.update(kw)
  return build_model("speech_transformer", source_vocab_size=0, target_vocab_size=TGT_V, **hp)[1]


def utterances(lengths, seed=0):
  """Random 16-bit 'audio' of the given lengths (ending in a non-zero sample), one row each."""
  rng = np.random.default_rng(seed)
  rows = []
  for n in lengths:
    x = (3000 * rng.standard_normal(n)).astype(np.int16)
    x[-1] = 77
    rows.append(x)
  return rows


def pad(rows, width=None):
  width = width or max(len(r) for r in rows)
  out = np.zeros((len(rows), width), np.int16)
  for i, r in enumerate(rows):
    out[i, :len(r)] = r
  return out


def targets_for(batch, length=6, seed=1):
  t = np.random.default_rng(seed).integers(3, TGT_V, (batch, length)).astype(np.int32)
  t[:, -1] = 2
  return jnp.asarray(t)


@functools.cache
def initialised(frontend: str):
  """(model, params) of the tiny model with this front end, initialised once per test process."""
  model = tiny(**FRONTENDS[frontend])
  inputs = jnp.asarray(pad(utterances([2400, 1700, 2100])))
  return model, jax.jit(model.init)(jax.random.key(0), inputs, targets_for(3))["params"]


# The Res2Net front end runs the conv stem too: the default suite checks it, the slow one both.
@pytest.fixture(params=["res2net", pytest.param("conv", marks=pytest.mark.slow)])
def speech_model(request):
  return initialised(request.param)


def test_cached_decoding_equals_teacher_forcing(speech_model):
  """Feeding the targets one step at a time through the cache (`step_function`, as the search
  does) gives the teacher-forced logits of every step; both compiled once, as whole programs."""
  model, params = speech_model
  inputs = jnp.asarray(pad(utterances([2400, 1700, 2100], seed=2)))
  targets = targets_for(3, 7, seed=3)

  def cached(inputs, targets):
    step, cache = step_function(model, params, inputs, max_decode_length=targets.shape[1])
    previous, logits = jnp.full((targets.shape[0], 1), 1, jnp.int32), []
    for t in range(targets.shape[1]):
      step_logits, cache = step(previous, cache)
      logits.append(step_logits)
      previous = targets[:, t:t + 1]
    return jnp.stack(logits, axis=1)

  full = jax.jit(lambda x, y: model.apply({"params": params}, x, y))(inputs, targets)
  np.testing.assert_allclose(jax.jit(cached)(inputs, targets), full, atol=2e-5, rtol=2e-5)


def test_encoded_frames_and_logits_do_not_see_padding(speech_model):
  model, params = speech_model
  encode = jax.jit(lambda x: model.apply({"params": params}, x, method=model.encode))
  teacher_forced = jax.jit(lambda x, y: model.apply({"params": params}, x, y))
  rows = utterances([2400, 1700], seed=4)
  batch = pad(rows, 3000)
  targets = targets_for(2)
  encoded, logits = encode(batch), teacher_forced(batch, targets)
  for i, row in enumerate(rows):
    frames = audio.conv_output_length(len(row) // audio.HOP_LENGTH)
    alone = encode(row[None])
    assert alone.shape[1] == frames
    np.testing.assert_allclose(encoded[i, :frames], alone[0], atol=2e-5)
    assert not np.any(np.asarray(encoded[i, frames:]))
    np.testing.assert_allclose(logits[i], teacher_forced(row[None], targets[i:i + 1])[0], atol=2e-5)


DECODING = {"greedy": dict(), "beam": dict(beam_size=3), "sampling": dict(temperature=0.8, best_of=2)}


@pytest.mark.parametrize("frontend,options", [
    ("res2net", "beam"), pytest.param("conv", "greedy", marks=pytest.mark.slow),
    pytest.param("conv", "beam", marks=pytest.mark.slow), pytest.param("res2net", "greedy", marks=pytest.mark.slow),
    pytest.param("conv", "sampling", marks=pytest.mark.slow),
    pytest.param("res2net", "sampling", marks=pytest.mark.slow)])
def test_one_padded_batch_decodes_exactly_as_each_utterance_alone(frontend, options):
  model, params = initialised(frontend)
  rows = utterances([2400, 900], seed=5)
  settings = dict(max_len_a=0.0, max_len_b=8, compression_ratio_threshold=None, logprob_threshold=None)
  task = DecodingTask(model, params, DecodingOptions(**settings, **DECODING[options]), bos_id=1, eos_id=2,
                      detokenize=lambda ids: " ".join(map(str, ids)), model_max_length=16)
  together = task.run(pad(rows, 2600))
  for i, row in enumerate(rows):
    alone = task._attempt(row[None], np.asarray([i]), jax.random.fold_in(jax.random.key(0), 0),
                          task.options.temperatures[0])[0]
    assert alone.tokens == together[i].tokens
    assert alone.sum_logprob == pytest.approx(together[i].sum_logprob, abs=1e-4)


def test_trailing_silence_is_padding():
  """An utterance's audio ends at its last non-zero sample: exact zeros after it are padding."""
  assert int(audio.sample_lengths(jnp.asarray(pad(utterances([500]), 900)))[0]) == 500


def test_one_train_step_through_the_generic_step():
  model = tiny(frontend="res2net", res2net_blocks=1, dropout=0.1)
  inputs = pad(utterances([1600, 1200]))
  targets = np.asarray(targets_for(2))
  mesh = parallel.make_mesh(jax.devices()[:1])
  tx = state_lib.adam(state_lib.learning_rate_schedule("constant", 32, 1, 1e-3, 10))
  state = parallel.replicate(state_lib.create_train_state(model, jax.random.key(0), inputs.shape,
                                                          targets.shape, tx), mesh)
  train = parallel.data_parallel(step_lib.train_step, mesh, batch_argnums=(1,), label_smoothing=0.1)
  # create_train_state initialises from int32 zeros: the parameters do not depend on the input dtype.
  state, sums = train(state, {"inputs": inputs.astype(np.int32), "targets": targets}, jax.random.key(0, impl="rbg"))
  assert np.isfinite(step_lib.metrics_from_sums(sums)["loss"])


def test_configuration_errors_are_usage_errors():
  with pytest.raises(UsageError, match="frontend"):
    tiny(frontend="mfcc")
  with pytest.raises(UsageError, match="res2net_scale"):
    tiny(frontend="res2net", res2net_scale=5)


def test_utterance_vectors_do_not_depend_on_padding():
  """The sentence encoder over a speech model: [mean; std] of the real frames, [B, 2D]."""
  from seq2seq_jax.sentence_encoder import embed  # pylint: disable=import-outside-toplevel
  model, params = initialised("res2net")
  rows = utterances([2400, 1000], seed=6)
  together = np.asarray(embed(model, params, jnp.asarray(pad(rows, 2600)), "stats"))
  assert together.shape == (2, 64)
  for i, row in enumerate(rows):
    np.testing.assert_allclose(together[i], np.asarray(embed(model, params, jnp.asarray(row[None]), "stats"))[0],
                               atol=2e-5)
