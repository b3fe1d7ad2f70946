"""One model over both directions of a parallel dataset (LASER): the examples, the target-language
token in the vocabulary, the targets and the decoding prompt."""

import json
import os

import numpy as np
import pytest

from seq2seq_jax.data import datasets, pipeline
from seq2seq_jax.decoding.task import DecodingOptions
from seq2seq_jax.errors import UsageError
from seq2seq_jax.special_tokens import EOS_ID, language_token
from seq2seq_jax.translator import options_for_language

BOTH = datasets.DatasetOptions(both_directions=True)
VERSES = [("In the beginning God created the heavens and the earth.",
           "En el principio crió Dios los cielos y la tierra."),
          ("And God said, Let there be light.", "Y dijo Dios: Sea la luz: y fué la luz."),
          ("Jesus wept.", "Y lloró Jesús.")]


class Records:
  """A random-access data source of Bible-like records (the grain protocol's batched read)."""

  def __init__(self, pairs):
    self.records = [{"source": s.encode(), "target": t.encode(), "reference": b"x"} for s, t in pairs]

  def __len__(self):
    return len(self.records)

  def __getitems__(self, keys):
    return [self.records[k] for k in keys]


def test_the_bible_in_both_directions_yields_each_verse_both_ways_with_its_target_language():
  spec = datasets.spec("bible_en_es", BOTH)
  assert spec.both_directions and spec.languages == ("en", "es") and "both directions" in spec.description
  assert datasets.spec("bible_es_en", BOTH).languages == ("es", "en")
  assert not datasets.spec("bible_en_es").both_directions
  examples = pipeline.read_examples(Records(VERSES), spec)
  assert len(examples) == 6
  for (en, es), forward, backward in zip(VERSES, examples[0::2], examples[1::2]):
    assert forward == datasets.Example(en, (es,), "es")
    assert backward == datasets.Example(es, (en,), "en")
  assert all(e.target_language == "" for e in pipeline.read_examples(Records(VERSES), datasets.spec("bible_en_es")))


def test_one_shared_sentencepiece_vocabulary_holds_both_language_tokens_and_targets_start_with_one():
  spec = datasets.spec("bible_en_es", BOTH)
  examples = pipeline.read_examples(Records(VERSES * 3), spec)
  source, target = pipeline.build_vocabularies(examples, spec, vocab_size=60)
  assert source == target  # shared, though --shared_vocab was not given
  es, en = target.token_id(language_token("es")), target.token_id(language_token("en"))
  assert {es, en} == {4, 5}  # user-defined pieces, right after UNK
  with pytest.raises(UsageError, match="no token '<2fr>'"):
    target.token_id(language_token("fr"))
  pairs = pipeline.encode_pairs(examples[:2], source, target, 64)
  assert pairs.targets[0][0] == es and pairs.targets[1][0] == en
  np.testing.assert_array_equal(pairs.targets[0][1:], target.encode(VERSES[0][1], add_eos=True))
  assert pairs.targets[0][-1] == EOS_ID and es not in pairs.sources[0] and en not in pairs.sources[1]
  # The encoder never sees a language token; the decoder is prompted with it, as in training.
  options = options_for_language(DecodingOptions(beam_size=4, prompt=(7,), suppress_tokens=(9,)), target, "es")
  assert options.prompt == (es, 7) and options.suppress_tokens == tuple(sorted({es, en, 9}))
  with pytest.raises(UsageError, match="no target-language token <2fr>: it was not trained to translate into 'fr'"):
    options_for_language(options, target, "fr")


def test_a_files_dataset_in_both_directions_names_its_languages(tmp_path):
  for split in ("train", "validation", "test"):
    (tmp_path / f"w.{split}.tsv").write_text("abc\tcba\nxyz\tzyx\n")
  name = f"files:{tmp_path / 'w'}"
  spec = datasets.spec(name, datasets.DatasetOptions(both_directions=True, source_lang="fwd", target_lang="rev"))
  assert spec.languages == ("fwd", "rev") and pipeline.side_tokenizers(spec) == ("symbols", "symbols")
  assert datasets.spec(name, BOTH).languages == ("source", "target")
  examples = [datasets.Example("abc", ("cba",)), datasets.Example("xyz", ("zyx",))]
  examples = datasets.in_both_directions(examples, spec.languages)
  source, target = pipeline.build_vocabularies(examples, spec)
  assert set(source.symbols) == set("abcxyz")
  assert set(target.symbols) == set("abcxyz") | {"<2fwd>", "<2rev>"}
  pairs = pipeline.encode_pairs(examples, source, target, 8)
  assert [t[0] for t in pairs.targets] == [target.token_id("<2rev>"), target.token_id("<2fwd>")] * 2
  assert target.decode(pairs.targets[0][1:]) == "cba"
  assert sorted(target.language_token_ids()) == sorted([target.token_id("<2rev>"), target.token_id("<2fwd>")])


def test_both_directions_is_refused_where_it_cannot_work(tmp_path):
  with pytest.raises(UsageError, match="option both_directions does not apply to dataset cmudict_g2p"):
    datasets.spec("cmudict_g2p", BOTH)
  for split in ("train", "validation", "test"):
    (tmp_path / f"m.{split}.tsv").write_text("abc\tHH AH L OW\n")
  with pytest.raises(UsageError, match="both_directions needs one kind of vocabulary on both sides"):
    datasets.spec(f"files:{tmp_path / 'm'}", BOTH)
  with pytest.raises(UsageError, match="two distinct language names"):
    datasets.spec(f"files:{tmp_path / 'm'}", datasets.DatasetOptions(
        both_directions=True, source_lang="x", target_lang="x", source_tokenizer="chars", target_tokenizer="chars"))


@pytest.mark.slow
def test_train_decode_evaluate_and_embed_a_files_dataset_in_both_directions(tmp_path):
  """experiments.train --both_directions, then decode and evaluate in a chosen direction, embed and
  evaluate_embeddings (slow: seven processes; about 1 min on 2 busy cores)."""
  from test_own_data import TINY, aligned_dataset, finish, start  # pylint: disable=g-import-not-at-top
  prefix, work, data_dir = aligned_dataset(tmp_path / "ph"), str(tmp_path / "w"), str(tmp_path / "tfds")
  finish(start("train", f"--dataset=files:{prefix}", "--both_directions", "--source_lang=en", "--target_lang=xx",
               f"--workdir={work}", f"--data_dir={data_dir}", *TINY, "--num_train_steps=3"))
  with open(os.path.join(work, "results.json")) as f:
    test = json.load(f)["eval"]
  assert set(test["by_target_language"]) == {"en", "xx"}

  decoded = finish(start("decode", f"--workdir={work}", "--inputs=red blue cat", "--target_language=xx"))[1]
  assert decoded.startswith("red blue cat\t") and "<2" not in decoded  # the token is not in the output
  rc, _, err = finish(start("decode", f"--workdir={work}", "--inputs=red blue cat"), check=False)
  assert rc == 2 and "trained in both directions; say which language" in err.strip().splitlines()[-1]
  rc, _, err = finish(start("decode", f"--workdir={work}", "--inputs=a", "--target_language=fr"), check=False)
  assert rc == 2 and "no target-language token <2fr>" in err.strip().splitlines()[-1]
  evaluated = json.loads(finish(start("evaluate", f"--workdir={work}", "--target_language=en",
                                      "--beam_size=0"))[1].splitlines()[-1])
  assert evaluated["target_language"] == "en" and evaluated["examples"] == 20
  assert all(s["source"][0].isupper() for s in evaluated["samples"])  # xx (capitalised) -> en

  inputs = tmp_path / "in.txt"
  inputs.write_text("red blue cat\nCat Blue Red\nbig dog\n")
  for fmt in ("npy", "tsv"):
    finish(start("embed", f"--workdir={work}", f"--input_file={inputs}", f"--output={tmp_path / ('e.' + fmt)}",
                 f"--format={fmt}", "--pooling=max"))
  vectors = np.load(tmp_path / "e.npy")
  assert vectors.shape == (3, 32) and vectors.dtype == np.float32
  np.testing.assert_allclose(np.loadtxt(tmp_path / "e.tsv", delimiter="\t"), vectors, rtol=1e-6, atol=1e-6)
  from seq2seq_jax.sentence_encoder import SentenceEncoder  # pylint: disable=g-import-not-at-top
  in_process = SentenceEncoder.from_workdir(work, pooling="max").encode(inputs.read_text().splitlines())
  np.testing.assert_allclose(in_process, vectors, atol=1e-5)
  inputs.write_text("red blue cat\nred purple cat\n")  # "purple" is outside the vocabulary
  rc, _, err = finish(start("embed", f"--workdir={work}", f"--input_file={inputs}",
                            f"--output={tmp_path / 'bad.npy'}"), check=False)
  assert rc == 2 and "'purple'" in err.strip().splitlines()[-1] and not (tmp_path / "bad.npy").exists()

  out = tmp_path / "xsim.json"
  printed = json.loads(finish(start("evaluate_embeddings", f"--workdir={work}", f"--output={out}"))[1].splitlines()[-1])
  with open(out) as f:
    assert json.load(f) == printed
  assert printed["examples"] == 20 and printed["dim"] == 32 and printed["margin_k"] == 4
  for refused, said in ((f"--ensemble={work}", "give only --workdir"), ("--margin_k=0", "margin_k")):
    rc, _, err = finish(start("evaluate_embeddings", f"--workdir={work}", refused, f"--output={tmp_path / 'no.json'}"),
                        check=False)
    assert rc == 2 and said in err.strip().splitlines()[-1] and not (tmp_path / "no.json").exists()
  for key in ("error_percent", "baseline_error_percent", "input_embeddings_error_percent"):
    for errors in printed[key].values():
      assert set(errors) == {"en_to_xx", "xx_to_en"} and all(0 <= e <= 100 for e in errors.values())
