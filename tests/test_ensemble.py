"""An ensemble decodes through the same search as one model: cached steps equal teacher forcing,
an ensemble of one is that model, and greedy picks the argmax of the members' mean log-probs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seq2seq_jax.decoding.task import DecodingOptions, DecodingTask, step_function
from seq2seq_jax.models import build_model
from seq2seq_jax.models.ensemble import Ensemble, ensemble_params

BOS, EOS = 1, 2
VOCAB_IN, VOCAB_OUT = 17, 13


def members():
  """A Transformer and an attention RNN over the same vocabularies, with their parameters."""
  x = jnp.ones((2, 5), jnp.int32)
  built = [build_model("transformer", source_vocab_size=VOCAB_IN, target_vocab_size=VOCAB_OUT, d_model=16,
                       num_heads=2, d_ff=32, num_encoder_layers=1, num_decoder_layers=1, dropout=0.0)[1],
           build_model("rnn_attention", source_vocab_size=VOCAB_IN, target_vocab_size=VOCAB_OUT, hidden_size=16,
                       embedding_size=8, num_layers=1, dropout=0.0)[1]]
  params = [m.init(jax.random.key(i), x, x)["params"] for i, m in enumerate(built)]
  return built, params


def inputs():
  x = np.random.default_rng(0).integers(3, VOCAB_IN, (3, 6)).astype(np.int32)
  x[1, 4:] = 0
  return x


def task(model, params, **options):
  return DecodingTask(model, params, DecodingOptions(**options), bos_id=BOS, eos_id=EOS,
                      detokenize=lambda ids: " ".join(map(str, ids)), model_max_length=12)


def test_cached_ensemble_steps_equal_the_mean_of_the_members_teacher_forced_log_probs():
  models, params = members()
  ensemble = Ensemble(tuple(models), bos_id=BOS)
  x = inputs()
  y = np.random.default_rng(1).integers(3, VOCAB_OUT, (3, 5)).astype(np.int32)
  mean = sum(jax.nn.log_softmax(m.apply({"params": p}, x, y)) for m, p in zip(models, params)) / 2
  tokens_to_logits, cache = step_function(ensemble, ensemble_params(params), jnp.asarray(x), 5)
  previous = jnp.full((3, 1), BOS, jnp.int32)
  for t in range(5):
    logits, cache = tokens_to_logits(previous, cache)
    np.testing.assert_allclose(logits, mean[:, t], atol=1e-5)
    previous = jnp.asarray(y[:, t:t + 1])


def test_an_ensemble_of_one_decodes_as_the_model_alone():
  models, params = members()
  x = inputs()
  for model, p in zip(models, params):
    alone = task(model, p, beam_size=3, nbest=2).run(x)
    ensembled = task(Ensemble((model,), bos_id=BOS), ensemble_params([p]), beam_size=3, nbest=2).run(x)
    assert [r.tokens for r in alone] == [r.tokens for r in ensembled]
    np.testing.assert_allclose([r.score for r in alone], [r.score for r in ensembled], atol=1e-5)


@pytest.mark.slow
def test_greedy_ensemble_takes_the_argmax_of_the_mean_log_probs_at_every_step():
  models, params = members()
  ensemble = Ensemble(tuple(models), bos_id=BOS)
  x = inputs()
  results = task(ensemble, ensemble_params(params), beam_size=None, suppress_blank=False).run(x)
  for row, result in enumerate(results):
    out = np.asarray([list(result.tokens) + [EOS]], np.int32)
    mean = ensemble.apply({"params": ensemble_params(params)}, x[row:row + 1], out)[0]
    mean = np.asarray(mean).copy()
    mean[:, [0, BOS]] = -np.inf  # PAD and BOS are never output
    n = len(result.tokens)  # the final EOS may be forced by the length limit: compare the choices before it
    assert n > 0 and list(np.argmax(mean, axis=-1)[:n]) == list(result.tokens)
