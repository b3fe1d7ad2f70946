"""Dataset registry and builders: Bible en-es, synthetic tasks, any TFDS translation dataset."""

import concurrent.futures
import re

import pytest
import tensorflow_datasets as tfds

from seq2seq_jax.data import datasets
from seq2seq_jax.data.datasets import bible
from seq2seq_jax.data.datasets import synthetic
from seq2seq_jax.errors import UsageError

SPLIT_SIZES = {"train": 29_077, "validation": 1_000, "test": 1_000}
needs_bibles = pytest.mark.skipif(
    not bible.installed_modules(bible.DEFAULT_SWORD_PATH) >= {t.module for t in bible.TEXTS.values()},
    reason="Debian packages sword-text-web and sword-text-sparv are not installed")


def _records(source) -> list[dict]:
  return list(source.__getitems__(range(len(source))))


def _text(value) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else value


def _by_reference(splits) -> dict[str, dict[str, tuple[str, str]]]:
  """{split: {reference: (source, target)}}."""
  return {split: {_text(r["reference"]): (_text(r["source"]), _text(r["target"])) for r in _records(source)}
          for split, source in splits.items()}


@pytest.fixture(scope="session")
def bible_splits(tmp_path_factory):
  """Both Bible directions prepared once: {"en_es"|"es_en": {split: {reference: (source, target)}}}."""
  path = str(tmp_path_factory.mktemp("bible"))
  return {direction: _by_reference(datasets.load(f"bible_{direction}", path)) for direction in ("en_es", "es_en")}


# --- Bible: cleaning (fast, no preparation) --------------------------------------------------------


def test_clean_osis_drops_notes_without_gluing_words():
  raw = ('<w lemma="strong:H0430">God</w><note placement="foot"><reference type="annotateRef">1:1 </reference>'
         'The Hebrew word rendered “God” is “אֱלֹהִ֑ים” (Elohim).</note><w lemma="strong:H1254">created</w> '
         '<w>it</w>,<note placement="foot">or, made</note><w>and</w> <w>rested</w>. <div eID="gen25" type="x-p"/>')
  assert bible.clean_osis(raw) == "God created it, and rested."


def test_clean_osis_titles_quotes_and_chapter_end():
  raw = ('<title type="section">Heading</title><title canonical="true" type="psalm">A Psalm by David.</title> '
         '<lg sID="g1"/> <l level="1" sID="g2"/>Yahweh, how <q who="Jesus">“many”</q> <w>are</w> ‘they’ !'
         '<l eID="g2" level="1"/> <chapter eID="Ps.3"/> <title type="main">Glossary</title> Abaddon')
  assert bible.clean_osis(raw) == "A Psalm by David. Yahweh, how “many” are ‘they’!"


def test_clean_osis_joins_spanish_enclitics_only_onto_verbs():
  raw = ('<w>y díjo</w><transChange type="added">le</transChange><w>Dios</w>: <w>Pide</w> <w>lo que</w>'
         '<transChange type="added">quisieres que</transChange><w>yo te dé</w>; '
         '<w>la cual Josué</w><transChange type="added">los</transChange><w>circuncidó</w>.')
  assert bible.clean_osis(raw) == "y díjole Dios: Pide lo que quisieres que yo te dé; la cual Josué los circuncidó."


def test_missing_bible_packages_name_the_apt_get_line(tmp_path, monkeypatch):
  monkeypatch.setenv(bible.SWORD_PATH_ENV, str(tmp_path / "empty_sword"))
  with pytest.raises(UsageError) as error:
    datasets.load("bible_en_es", str(tmp_path / "tfds"))
  message = str(error.value)
  assert "sword-text-web" in message and "sword-text-sparv" in message
  assert "apt-get install -y sword-text-web sword-text-sparv" in message
  assert "\n" not in message


# --- Bible: the prepared dataset ------------------------------------------------------------------


@needs_bibles
def test_bible_split_sizes_and_no_verse_in_two_splits(bible_splits):
  splits = bible_splits["en_es"]
  assert {split: len(pairs) for split, pairs in splits.items()} == SPLIT_SIZES
  references = [set(pairs) for pairs in splits.values()]
  assert len(set.union(*references)) == sum(SPLIT_SIZES.values()) == 31_077


@needs_bibles
def test_bible_known_verses_are_cleaned(bible_splits):
  verses = {ref: pair for pairs in bible_splits["en_es"].values() for ref, pair in pairs.items()}
  assert verses["Gen.1.1"] == ("In the beginning, God created the heavens and the earth.",
                               "EN el principio crió Dios los cielos y la tierra.")
  assert verses["Gen.4.1"][0] == ("The man knew Eve his wife. She conceived, and gave birth to Cain, "
                                  "and said, “I have gotten a man with Yahweh’s help.”")
  assert verses["1Kgs.3.5"][1] == ("Y aparecióse Jehová á Salomón en Gabaón una noche en sueños, "
                                   "y díjole Dios: Pide lo que quisieres que yo te dé.")
  assert verses["Ps.3.1"][0].startswith("A Psalm by David, when he fled from Absalom his son. Yahweh, how")
  for english, spanish in verses.values():
    for text in (english, spanish):
      assert not re.search(r"[<>&]|\s\s|\s[,.;:!?”’]|^\s|\s$", text), text
    assert not re.search(r"[a-z][A-Z]|[,;:!?][A-Za-z]", english), english


@needs_bibles
def test_bible_es_en_is_en_es_reversed(bible_splits):
  for split, pairs in bible_splits["en_es"].items():
    assert bible_splits["es_en"][split] == {ref: (target, source) for ref, (source, target) in pairs.items()}


@needs_bibles
def test_bible_spec_is_translation():
  bible_spec = datasets.spec("bible_en_es")
  assert (bible_spec.tokenizer, bible_spec.metrics) == ("sentencepiece", ("bleu", "chrf"))
  example = bible_spec.to_example({"source": b"In", "target": "EN", "reference": b"Gen.1.1"})
  assert example == datasets.Example("In", ("EN",))


# --- Synthetic tasks -------------------------------------------------------------------------------

OPTIONS = datasets.DatasetOptions(train_lengths=(2, 5), test_lengths=(7, 9), num_train=300, num_test=40)


def _pairs(source) -> list[tuple[str, str]]:
  return [(_text(r["source"]), _text(r["target"])) for r in _records(source)]


def _length(task: str, source: str) -> list[int]:
  """Lengths that must fall in the requested range: symbols, or digits of each operand."""
  return [len(operand.split()) for operand in source.split("+")] if task == "addition" else [len(source.split())]


@pytest.mark.parametrize("task", synthetic.TASKS)
def test_synthetic_counts_lengths_and_targets(task, tmp_path):
  splits = {split: _pairs(source) for split, source in datasets.load(task, str(tmp_path), OPTIONS).items()}
  assert {split: len(pairs) for split, pairs in splits.items()} == {"train": 300, "validation": 40, "test": 40}
  ranges = {"train": (2, 5), "validation": (2, 5), "test": (7, 9)}
  for split, pairs in splits.items():
    low, high = ranges[split]
    for source, target in pairs:
      assert all(low <= n <= high for n in _length(task, source)), (split, source)
      symbols = source.split()
      expected = {"copy": symbols, "reverse": symbols[::-1], "sort": sorted(symbols)}.get(task)
      if task == "addition":
        left, right = source.replace(" ", "").split("+")
        expected = list(str(int(left) + int(right)))
      assert target.split() == expected, (source, target)


def test_synthetic_is_deterministic_and_options_get_their_own_directory(tmp_path):
  first = _pairs(datasets.load("addition", str(tmp_path / "a"), OPTIONS)["test"])
  again = _pairs(datasets.load("addition", str(tmp_path / "b"), OPTIONS)["test"])
  assert first == again
  other_options = datasets.DatasetOptions(test_lengths=(3, 3), num_train=300, num_test=40)
  other = _pairs(datasets.load("addition", str(tmp_path / "a"), other_options)["test"])
  assert first != other and all(_length("addition", s) == [3, 3] for s, _ in other)
  reseeded = list(synthetic.draw_examples("addition", 40, (7, 9), seed=1, split="test"))
  assert sorted(reseeded) != sorted(first)


def test_processes_loading_one_dataset_at_once_prepare_it_once(tmp_path):
  # Two loads of a dataset not yet prepared, at once (as a sweep's runs or recipes trained side by
  # side start): without the lock the second to finish fails renaming its build over the first's.
  options = datasets.DatasetOptions(num_train=30000, num_test=40)
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    loaded = list(pool.map(lambda _: datasets.load("reverse", str(tmp_path), options), range(2)))
  assert [len(splits["train"]) for splits in loaded] == [30000, 30000]
  assert loaded[0]["train"][123] == loaded[1]["train"][123]


def test_synthetic_spec_uses_symbols_and_error_rates():
  copy_spec = datasets.spec("copy", OPTIONS)
  assert (copy_spec.tokenizer, copy_spec.metrics, copy_spec.source_separator) == ("symbols", ("wer", "per"), " ")
  assert copy_spec.to_example({"source": b"a b", "target": b"a b"}) == datasets.Example("a b", ("a b",))


# --- Options and names -----------------------------------------------------------------------------


def test_parse_lengths():
  assert datasets.parse_lengths("3:10") == (3, 10)
  for bad in ("10:3", "0:4", "3", "a:b", "", "1:2:3"):
    with pytest.raises(UsageError, match="MIN:MAX"):
      datasets.parse_lengths(bad)


def test_options_that_do_not_apply_are_refused():
  with pytest.raises(UsageError, match="option train_lengths does not apply to dataset cmudict_g2p"):
    datasets.spec("cmudict_g2p", datasets.DatasetOptions(train_lengths=(1, 2)))
  with pytest.raises(UsageError, match="option source_lang does not apply to dataset copy"):
    datasets.spec("copy", datasets.DatasetOptions(source_lang="en"))
  with pytest.raises(UsageError, match="option num_train does not apply to dataset tfds:wmt14_translate/de-en"):
    datasets.spec("tfds:wmt14_translate/de-en", datasets.DatasetOptions(num_train=5))
  with pytest.raises(UsageError, match="num_train must be at least 1"):
    datasets.spec("sort", datasets.DatasetOptions(num_train=0))


def test_unknown_dataset_lists_the_choices():
  with pytest.raises(UsageError, match="unknown dataset 'nope'; choose one of: addition, bible_en_es"):
    datasets.spec("nope")
  with pytest.raises(UsageError, match="TFDS has no dataset 'nope'"):
    datasets.spec("tfds:nope/x-y")


def test_cmudict_spec_is_unchanged(data_dir):
  cmudict_spec = datasets.spec("cmudict_g2p")
  assert (cmudict_spec.tokenizer, cmudict_spec.metrics, cmudict_spec.source_separator) == ("symbols", ("wer", "per"), "")
  assert set(datasets.load("cmudict_g2p", data_dir)) == {"train", "validation", "test"}


# --- Any TFDS translation dataset (mocked: no download here) ---------------------------------------


def test_tfds_translation_through_load_with_mock_data(tmp_path):
  name = "tfds:ted_hrlr_translate/pt_to_en"
  with tfds.testing.mock_data(num_examples=3):
    splits = datasets.load(name, str(tmp_path))
    assert {split: len(source) for split, source in splits.items()} == {"train": 3, "validation": 3, "test": 3}
    record = splits["train"][0]
    example = datasets.spec(name).to_example(record)
    assert example == datasets.Example(record["pt"], (record["en"],))
    reverse = datasets.spec(name, datasets.DatasetOptions(source_lang="en")).to_example(record)
    assert reverse == datasets.Example(record["en"], (record["pt"],))
  assert datasets.spec(name).metrics == ("bleu", "chrf")


def test_tfds_missing_language_field_names_the_fields():
  with pytest.raises(UsageError, match="source_lang='fr' is not a text field .*choose from: de, en"):
    datasets.spec("tfds:wmt14_translate/de-en", datasets.DatasetOptions(source_lang="fr"))
  assert datasets.spec("tfds:wmt14_translate/de-en").description.endswith("de -> en")


def test_error_rates_and_error_profile_by_hand():
  """Two references for the first word: an output equal to either is right; PER and the profile
  use the closest reference."""
  from seq2seq_jax import evaluation  # pylint: disable=g-import-not-at-top
  hyps = ["K AA T", "D AO", "B EH D", "F IH SH"]
  refs = [("K AE T", "K AA T"), ("D AO G",), ("B ER D",), ("F IH SH",)]
  rates = evaluation.error_rates(hyps, refs)
  assert rates["wer"] == 0.5 and rates["per"] == 2 / 12  # a deletion and a substitution over 4 x 3
  profile = evaluation.error_profile(hyps, refs, source_lengths=[3, 3, 4, 4])
  assert profile["wer_by_source_length"] == [{"source_length": 3, "examples": 2, "wer": 0.5},
                                             {"source_length": 4, "examples": 2, "wer": 0.5}]
  assert profile["wrong"] == 2 and profile["wrong_same_length"] == 1
  assert profile["wrong_by_distance"] == {"1": 2, "2": 0, "3+": 0}


def test_the_standard_g014b2b_split_is_read_as_published():
  """g014b2b: 106,837 training words (5% of them, seeded, for validation) and 12,000 test words,
  disjoint, lower case, every test symbol seen in training."""
  import os  # pylint: disable=g-import-not-at-top
  from seq2seq_jax.data.datasets import cmudict_g2p  # pylint: disable=g-import-not-at-top
  train = cmudict_g2p.read_g014b2b(os.path.join(cmudict_g2p.G014B2B_DIR, "g014b2b.train"))
  test = cmudict_g2p.read_g014b2b(os.path.join(cmudict_g2p.G014B2B_DIR, "g014b2b.test"))
  assert (len(train), len(test)) == (106_837, 12_000)
  assert sum(map(len, train.values())) == 113_438 and sum(map(len, test.values())) == 12_753
  splits = cmudict_g2p.split_validation(list(train))
  assert (len(splits["train"]), len(splits["validation"])) == (101_495, 5_342)
  assert not set(splits["train"]) & set(splits["validation"]) and not set(train) & set(test)
  assert set("".join(test)) <= set("".join(train)) and all(w == w.lower() for w in test)
  phonemes = {p for prons in train.values() for pron in prons for p in pron.split()}
  assert len(phonemes) == 39 and {p for prons in test.values() for pron in prons for p in pron.split()} <= phonemes
