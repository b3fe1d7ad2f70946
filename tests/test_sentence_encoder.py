"""SentenceEncoder: vectors that depend on neither padding nor batch; its checks of the inputs."""

import jax
import numpy as np
import pytest

from seq2seq_jax.data.tokenizers import Vocabulary
from seq2seq_jax.errors import UsageError
from seq2seq_jax.models import build_model
from seq2seq_jax.sentence_encoder import SentenceEncoder, embed, source_embedding_table
from seq2seq_jax.translator import Translator

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
  assert together.dtype == np.float32
  for i in range(4):
    length = int((inputs[i] != 0).sum())
    for width in (length, 9):
      alone = np.zeros((1, width), np.int32)
      alone[0, :length] = inputs[i, :length]
      np.testing.assert_allclose(np.asarray(embed(model, params, alone, pooling))[0], together[i], atol=1e-5)


def tiny_translator(name="transformer", kw=MODELS[0][1], max_source_length=8) -> Translator:
  """A Translator over an untrained tiny model with a character vocabulary (no workdir needed)."""
  vocab = Vocabulary.from_texts(["abcdefgh ijklmnop"])
  model_config, model = build_model(name, source_vocab_size=vocab.size, target_vocab_size=vocab.size,
                                    dropout=0.0, **kw)
  x = np.ones((1, 4), np.int32)
  params = model.init(jax.random.key(1), x, x)["params"]
  return Translator(model, model_config, params, vocab, vocab, (4, 8, 16), 0, max_source_length)


def test_sentence_encoder_gives_each_text_the_same_vector_in_any_batch():
  texts = ["abc", "a", "hello", "pig fed", "ab cd", "mop", "fig", "bed"]
  encoder = SentenceEncoder(tiny_translator(), pooling="max")
  together = encoder.encode(texts, batch_size=8)
  assert together.shape == (8, 32) and together.dtype == np.float32
  np.testing.assert_allclose(encoder.encode(texts, batch_size=1), together, atol=1e-5)
  np.testing.assert_allclose(encoder.encode(texts[::-1], batch_size=3), together[::-1], atol=1e-5)


@pytest.mark.parametrize("name, kw", MODELS + [("transformer", dict(MODELS[0][1], share_embeddings=True))],
                         ids=[m[0] for m in MODELS] + ["transformer-shared"])
def test_the_source_embedding_table_is_found_in_every_model(name, kw):
  vocab_size = 20
  model = build_model(name, source_vocab_size=vocab_size, target_vocab_size=vocab_size, **kw)[1]
  x = np.ones((1, 4), np.int32)
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), x, x)["params"])
  params = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), params)
  table = source_embedding_table(params)
  assert table.shape[0] == vocab_size and table.dtype == np.float32
  assert source_embedding_table({"member_0": params}) is None


def test_sentence_encoder_refuses_what_it_cannot_embed():
  encoder = SentenceEncoder(tiny_translator(max_source_length=4))
  with pytest.raises(UsageError, match="input 2 is empty"):
    encoder.encode(["abc", ""])
  with pytest.raises(UsageError, match="has 6 tokens; this model takes at most 4"):
    encoder.encode(["abc", "abcdef"])
  cut = encoder.encode(["abcdef", "abcd"], truncate=True)  # the first 4 tokens
  np.testing.assert_allclose(cut[0], cut[1], atol=1e-6)
  with pytest.raises(UsageError, match="symbols outside the vocabulary"):
    encoder.encode(["xyz"])
  with pytest.raises(UsageError, match="pooling must be one of"):
    SentenceEncoder(encoder.translator, pooling="sum")
