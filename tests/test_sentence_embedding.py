"""Sentence embeddings: padding and batch composition never change a vector."""

import jax
import numpy as np
import pytest

from seq2seq_jax.models import build_model
from seq2seq_jax.sentence_embedding import embed

MODELS = [("transformer", dict(d_model=32, num_heads=2, d_ff=64, num_encoder_layers=1, num_decoder_layers=1)),
          ("rnn_seq2seq", dict(hidden_size=16, embedding_size=8, bidirectional_encoder=True)),
          ("rnn_attention", dict(hidden_size=16, embedding_size=8))]


@pytest.mark.parametrize("name, kw", MODELS, ids=[m[0] for m in MODELS])
@pytest.mark.parametrize("pooling", ["mean", "max", "final"])
def test_vectors_do_not_depend_on_padding_or_batch(name, kw, pooling):
  model = build_model(name, source_vocab_size=20, target_vocab_size=15, dropout=0.0, **kw)[1]
  rng = np.random.default_rng(0)
  inputs = rng.integers(3, 20, (4, 6)).astype(np.int32)
  inputs[1, 3:] = 0
  inputs[3, 2:] = 0
  params = model.init(jax.random.key(0), inputs, inputs)["params"]
  together = np.asarray(embed(model, params, inputs, pooling))
  for i in range(4):
    length = int((inputs[i] != 0).sum())
    for width in (length, 9):
      alone = np.zeros((1, width), np.int32)
      alone[0, :length] = inputs[i, :length]
      np.testing.assert_allclose(np.asarray(embed(model, params, alone, pooling))[0], together[i], atol=1e-5)
