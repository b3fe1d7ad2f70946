"""Translation path: SentencePiece vocabularies, token-budget batches, length limits, BLEU/chrF,
and a standard TFDS translation dataset (mocked: no download here) trained for a few steps."""

import json
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from seq2seq_jax import evaluation
from seq2seq_jax.data import datasets, pipeline, tokenizers
from seq2seq_jax.errors import UsageError

SENTENCES = [
    "In the beginning, God created the heavens and the earth.",
    "The earth was formless and empty.",
    "Darkness was on the surface of the deep, and God's Spirit was hovering over the waters.",
    "God said, \u201cLet there be light,\u201d and there was light.",
    "En el principio cri\u00f3 Dios los cielos y la tierra.",
] * 40


def _examples(n=200):
  return [datasets.Example(SENTENCES[i % len(SENTENCES)], (SENTENCES[(i + 1) % len(SENTENCES)],))
          for i in range(n)]


SPEC = datasets.DatasetSpec(builder=None, to_example=None, source_separator=" ", target_separator=" ",
                            description="test", tokenizer="sentencepiece", metrics=("bleu", "chrf"))


def test_sentencepiece_round_trips_text_and_json():
  vocab = tokenizers.train_sentencepiece(SENTENCES, vocab_size=60)
  for text in SENTENCES[:5]:
    ids = vocab.encode(text, add_eos=True)
    assert ids[-1] == tokenizers.EOS_ID and min(ids[:-1]) > tokenizers.EOS_ID
    assert vocab.decode(ids + [7, 8]) == text  # stops at EOS
  again = tokenizers.vocabulary_from_json(vocab.to_json())
  assert again == vocab and again.encode(SENTENCES[2]) == vocab.encode(SENTENCES[2])


def test_sentencepiece_vocabularies_are_cached_by_settings(tmp_path):
  train = _examples()
  key = {"dataset": "toy", "options": {}}
  first = pipeline.build_vocabularies(train, SPEC, 60, shared=False, cache_dir=str(tmp_path), cache_key=key)
  files = os.listdir(tmp_path / "seq2seq_jax_vocabularies")
  assert len(files) == 1
  # A second call reads the cache: even with no training data it returns the same vocabularies.
  assert pipeline.build_vocabularies([], SPEC, 60, cache_dir=str(tmp_path), cache_key=key) == first
  shared = pipeline.build_vocabularies(train, SPEC, 60, shared=True, cache_dir=str(tmp_path), cache_key=key)
  assert shared[0] is shared[1]
  assert len(os.listdir(tmp_path / "seq2seq_jax_vocabularies")) == 2
  with pytest.raises(UsageError, match="vocab_size"):
    pipeline.build_vocabularies(train, SPEC, 0)
  with pytest.raises(UsageError, match="Vocabulary size too high"):
    pipeline.build_vocabularies(train, SPEC, 100000)


def test_symbol_datasets_refuse_sentencepiece_settings():
  with pytest.raises(UsageError, match="symbol vocabularies"):
    pipeline.build_vocabularies(_examples(), datasets.spec("cmudict_g2p"), vocab_size=100)


@pytest.mark.parametrize("max_tokens", [64, 100, 257])
def test_token_budget_batches_never_exceed_the_budget(max_tokens):
  rng = np.random.default_rng(0)
  lengths = rng.integers(1, 33, size=(500, 2))
  pairs = pipeline.EncodedPairs([np.ones(a, np.int32) for a, _ in lengths],
                                [np.ones(b, np.int32) for _, b in lengths], np.arange(500), 0)
  batches = pipeline.TrainBatches(pairs, batch_size=999, boundaries=(8, 16, 32), max_tokens=max_tokens,
                                  multiple_of=2)
  seen = 0
  for step in range(batches.steps_per_epoch):
    batch = batches[step]
    rows, length = batch["inputs"].shape
    assert rows * length <= max_tokens and rows % 2 == 0 and rows > 0
    assert batch["targets"].shape == (rows, length)
    seen += int(np.sum(np.any(batch["inputs"] != 0, axis=1)))
  assert seen > 0.8 * 500  # most pairs appear in an epoch (bucket remainders wait for the next)
  with pytest.raises(UsageError, match="--max_tokens=40 cannot hold 2 row"):
    pipeline.TrainBatches(pairs, 999, (8, 16, 32), max_tokens=40, multiple_of=2)


def test_length_limits_drop_pairs_and_count_them():
  vocab = tokenizers.Vocabulary.from_texts(["a b c d e f"], " ")
  examples = [datasets.Example("a b c", ("a b",)), datasets.Example("a b c d e f", ("a",)),
              datasets.Example("a", ("a b c d e f",))]
  pairs = pipeline.encode_pairs(examples, vocab, vocab, max_source_length=4, max_target_length=3)
  assert pairs.dropped == 2 and list(pairs.example_index) == [0]


def test_bleu_chrf_and_length_buckets():
  refs = [(s,) for s in SENTENCES[:5]]
  perfect = evaluation.sequence_metrics(("bleu", "chrf"), list(SENTENCES[:5]), refs, list(SENTENCES[:5]))
  assert perfect["bleu"] == pytest.approx(100.0) and perfect["chrf"] == pytest.approx(100.0)
  assert perfect["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
  assert "chrf_signature" in perfect
  buckets = perfect["bleu_by_source_length"]
  assert sum(b["examples"] for b in buckets) == 5
  assert [(b["min_words"], b["max_words"]) for b in buckets] == [(1, 10), (11, 20)]
  worse = evaluation.sequence_metrics(("bleu", "chrf"), ["the"] * 5, refs, list(SENTENCES[:5]))
  assert worse["bleu"] < 5 and worse["chrf"] < perfect["chrf"]


@pytest.mark.slow
def test_mock_tfds_translation_dataset_trains_and_reports_bleu(tmp_path):
  """The path a user with a network takes (--dataset=tfds:ted_hrlr_translate/pt_to_en), with TFDS's
  mock data standing in for the download."""
  from seq2seq_jax.decoding.task import DecodingOptions
  from seq2seq_jax.training.loop import TrainConfig, train_and_evaluate
  config = TrainConfig(
      workdir=str(tmp_path / "run"), dataset="tfds:ted_hrlr_translate/pt_to_en", data_dir=str(tmp_path / "tfds"),
      vocab_size=40, shared_vocab=True, max_tokens=128, batch_size=8,
      model_hparams={"d_model": 16, "num_heads": 2, "d_ff": 32, "num_encoder_layers": 1,
                     "num_decoder_layers": 1, "dropout": 0.0},
      num_train_steps=3, eval_every_steps=3, checkpoint_every_steps=3, log_every_steps=1,
      max_source_length=32, max_target_length=32, buckets=(16, 32), eval_batch_size=8,
      max_test_examples=4, decoding=DecodingOptions())
  with tfds.testing.mock_data(num_examples=24):
    results = train_and_evaluate(config)
  ev = results["eval"]
  assert results["step"] == 3 and ev["examples"] == 4
  assert 0.0 <= ev["bleu"] <= 100.0 and ev["bleu_signature"].startswith("nrefs:1")
  assert np.isfinite(ev["loss"]) and ev["perplexity"] > 1.0
  with open(tmp_path / "run" / "vocab_source.json") as f:
    assert json.load(f)["type"] == "sentencepiece"
  assert os.listdir(tmp_path / "tfds" / "seq2seq_jax_vocabularies")


def test_decoding_merges_length_buckets_that_grow_by_less_than_half():
  """Decoding batches by fewer, coarser buckets (each compiles once); padding does not change a
  result (`tests/test_decoding.py::test_result_does_not_depend_on_the_batch`)."""
  assert pipeline.coarser_buckets((6, 7, 8, 9, 10, 11, 12, 14, 16, 20, 32)) == (6, 9, 14, 32)
  assert pipeline.coarser_buckets((8, 12, 16, 32)) == (8, 12, 32)
  assert pipeline.coarser_buckets((16, 24, 32, 40, 48, 64, 80, 96)) == (16, 24, 40, 64, 96)
  assert pipeline.coarser_buckets((32,)) == (32,)
  assert pipeline.coarser_buckets((4, 5), growth=1.0) == (4, 5)
