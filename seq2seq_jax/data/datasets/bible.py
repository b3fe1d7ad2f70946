"""English-Spanish Bible verse pairs as a TFDS dataset (array_record, no TensorFlow, no download).

Source: two SWORD modules read with `pysword` from the Debian packages `sword-text-web`
(World English Bible 2015 with deuterocanon, `engWEB2015eb`, NRSVA versification) and
`sword-text-sparv` (Reina-Valera 1909, `spaRV1909eb`, KJV versification).

* A pair is one verse: the two texts with the same OSIS reference (book, chapter, verse), e.g.
  "Gen.1.1".  Verses empty in either text (deuterocanon, verses a versification leaves out) are
  skipped: 31,077 pairs remain.  Where the two modules number a chapter differently the pairs
  are shifted by a verse and kept all the same: whole chapters Num 13, 1 Sam 24, Jonah 2 (65
  verses) and parts of a few others (2 Chr 33, Job 39-41, 1 Kgs 22, 2 Cor 13, ...); the
  Reina-Valera also keeps the KJV subscriptions at the end of Paul's letters ("Fué escrita á los
  Hebreos desde Italia...") inside the last verse.
* Markup is removed from the raw OSIS (pysword's own `clean=True` glues words where a footnote
  stood): footnotes (`<note>`), non-canonical titles and speaker labels are dropped with their
  text; canonical psalm superscriptions are kept (the Reina-Valera has them inline); everything
  after a chapter's end marker (the WEB's glossary) is dropped; words the Reina-Valera's translators
  added (`<transChange>`, often written with no space around it) get a space at both ends, except
  an object pronoun written onto a verb ("díjo" + "le" -> "díjole"); entities are unescaped and
  white space is normalised, with no space before closing punctuation.  The text is otherwise left as
  printed (the Reina-Valera capitalises the first word of a chapter: "EN el principio").
* Split by verse (no verse is in two splits): the references, in canonical order, are permuted
  with `numpy.random.default_rng(SPLIT_SEED)`; the first 1,000 are `test`, the next 1,000
  `validation`, the rest (29,077) `train`.
* Configs: `en_es` (source English, target Spanish) and `es_en` (the same pairs reversed).
  Features: `source`, `target`, `reference`.
"""

import dataclasses
import functools
import html
import os
import re

import numpy as np
import tensorflow_datasets as tfds

from seq2seq_jax.errors import UsageError

SWORD_PATH_ENV = "SWORD_PATH"
DEFAULT_SWORD_PATH = "/usr/share/sword"
SPLIT_SEED = 2015
NUM_TEST = 1000
NUM_VALIDATION = 1000


@dataclasses.dataclass(frozen=True)
class SwordText:
  module: str  # SWORD module key
  package: str  # Debian package that installs it


TEXTS = {
    "en": SwordText("engWEB2015eb", "sword-text-web"),
    "es": SwordText("spaRV1909eb", "sword-text-sparv"),
}
INSTALL_COMMAND = "apt-get install -y sword-text-web sword-text-sparv"


def sword_path() -> str:
  """The SWORD library directory: $SWORD_PATH, else /usr/share/sword (where Debian installs)."""
  return os.environ.get(SWORD_PATH_ENV, DEFAULT_SWORD_PATH)


def installed_modules(path: str) -> set[str]:
  """Keys of the SWORD modules under `path` whose conf file and data directory are both there."""
  from pysword.modules import SwordModules  # pylint: disable=g-import-not-at-top
  if not os.path.isdir(os.path.join(path, "mods.d")):
    return set()
  confs = SwordModules(path).parse_modules()
  return {key for key, conf in confs.items() if os.path.isdir(os.path.join(path, conf.get("datapath", "")))}


def check_installed(path: str) -> None:
  """Raises UsageError naming the missing Debian packages (and the command that installs them)."""
  installed = installed_modules(path)
  missing = [text for text in TEXTS.values() if text.module not in installed]
  if missing:
    names = ", ".join(f"{t.package} ({t.module})" for t in missing)
    raise UsageError(f"Bible modules missing from {path}: {names}; `{INSTALL_COMMAND}` installs them")


# --- Reading -------------------------------------------------------------------------------------


def read_raw_verses(path: str, module: str) -> dict[str, str]:
  """OSIS reference ("Gen.1.1") -> raw OSIS text of that verse, for every verse of the module.

  pysword decompresses a whole book for every verse it reads; caching the decompressed blocks on
  this one module object (not on the class) turns ~35 s per Bible into well under a second.
  """
  from pysword.modules import SwordModules  # pylint: disable=g-import-not-at-top
  library = SwordModules(path)
  library.parse_modules()
  bible = library.get_bible_from_module(module)
  bible._decompressed_text = functools.lru_cache(maxsize=None)(bible._decompressed_text)  # pylint: disable=protected-access
  verses = {}
  for books in bible.get_structure().get_books().values():
    for book in books:
      for chapter in range(1, book.num_chapters + 1):
        texts = bible.get_iter(books=book.name, chapters=chapter, clean=False)
        for verse, text in enumerate(texts, start=1):
          verses[f"{book.osis_name}.{chapter}.{verse}"] = text
  return verses


# --- Cleaning ------------------------------------------------------------------------------------

_AFTER_CHAPTER_END = re.compile(r"<chapter\b[^>]*\beID=.*", re.S)
_DROPPED_WITH_TEXT = re.compile(
    r"<note\b[^>]*>.*?</note>"
    r"|<speaker\b[^>]*>.*?</speaker>"
    r'|<title\b(?![^>]*canonical="true")[^>]*>.*?</title>', re.S)
_WORD_TAG = re.compile(r"</?w\b[^>]*>")
_ADDED_WORDS = re.compile(r"(\w*)<transChange\b[^>]*>(.*?)</transChange>", re.S)
_LAYOUT_TAG = re.compile(r"</?(?:l|lg|lb|p|div|chapter|list|item|title|milestone)\b[^>]*>")
_ANY_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
_SPACE_BEFORE_CLOSING = re.compile(r" (?=[,.;:!?)\]»”’])")
_SPACE_AFTER_OPENING = re.compile(r"(?<=[(\[«¿¡“‘]) ")
# Spanish object pronouns that the Reina-Valera attaches to a verb ("díjo" + "le" = "díjole").
_ENCLITICS = frozenset({"lo", "la", "los", "las", "le", "les", "me", "te", "se", "nos", "os"})
_NOT_VERBS = frozenset({"y", "no", "que", "como", "cuánto", "os", "nos", "ellos", "gentes"})


def _attaches_to(word: str, added: str, sentence_start: bool) -> bool:
  """Whether the added (italic) text `added` is an enclitic pronoun written onto the verb `word`.

  Capitalised words inside a sentence are names ("Josué los circuncidó"), not verbs.
  """
  if added not in _ENCLITICS or not word[-1:].isalpha() or word.lower() in _NOT_VERBS:
    return False
  return sentence_start or not word[0].isupper()


def _join_added_words(text: str) -> str:
  """Removes <transChange> (words the translators added) with a space at both ends, except an
  enclitic pronoun, which joins the verb before it; the markup often has no space there."""
  def replace(match):
    word, added = match.group(1), match.group(2)
    before = text[:match.start()].rstrip(" ¿¡“‘(")
    sentence_start = not before or before[-1] in ".:;?!"
    glue = "" if _attaches_to(word, added, sentence_start) else " "
    return f"{word}{glue}{added} "
  return _ADDED_WORDS.sub(replace, text)


def clean_osis(raw: str) -> str:
  """Raw OSIS verse -> plain text with single spaces and no markup."""
  text = _AFTER_CHAPTER_END.sub("", raw)
  text = _DROPPED_WITH_TEXT.sub(" ", text)
  text = _LAYOUT_TAG.sub(" ", _WORD_TAG.sub("", text))
  text = _ANY_TAG.sub(" ", _join_added_words(text))
  text = _SPACE.sub(" ", html.unescape(text)).strip()
  text = _SPACE_BEFORE_CLOSING.sub("", text)
  return _SPACE_AFTER_OPENING.sub("", text)


@functools.lru_cache(maxsize=1)  # Both configs read the same pairs.
def read_verse_pairs(path: str) -> tuple[tuple[str, str, str], ...]:
  """((reference, English, Spanish), ...) for every verse non-empty in both, in English canonical order."""
  check_installed(path)
  english = read_raw_verses(path, TEXTS["en"].module)
  spanish = read_raw_verses(path, TEXTS["es"].module)
  pairs = []
  for reference, raw_english in english.items():
    if reference not in spanish:
      continue
    en, es = clean_osis(raw_english), clean_osis(spanish[reference])
    if en and es:
      pairs.append((reference, en, es))
  return tuple(pairs)


def split_references(references: list[str]) -> dict[str, list[str]]:
  """Deterministic split by verse: {'train', 'validation', 'test'} -> references (input order kept)."""
  order = np.random.default_rng(SPLIT_SEED).permutation(len(references))
  test = set(order[:NUM_TEST].tolist())
  validation = set(order[NUM_TEST:NUM_TEST + NUM_VALIDATION].tolist())
  splits = {"train": [], "validation": [], "test": []}
  for i, reference in enumerate(references):
    split = "test" if i in test else "validation" if i in validation else "train"
    splits[split].append(reference)
  return splits


# --- TFDS builder --------------------------------------------------------------------------------


@dataclasses.dataclass
class BibleConfig(tfds.core.BuilderConfig):
  source_language: str = "en"
  target_language: str = "es"


class Bible(tfds.core.GeneratorBasedBuilder):
  """World English Bible <-> Reina-Valera 1909, one example per verse."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "31,077 verse pairs; split by verse 29,077/1,000/1,000 (seed 2015)."}
  BUILDER_CONFIGS = [
      BibleConfig(name="en_es", description="English -> Spanish", source_language="en", target_language="es"),
      BibleConfig(name="es_en", description="Spanish -> English", source_language="es", target_language="en"),
  ]

  def __init__(self, *, sword_path: str | None = None, **kwargs):  # pylint: disable=redefined-outer-name
    self._sword_path = sword_path
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "source": tfds.features.Text(),
            "target": tfds.features.Text(),
            "reference": tfds.features.Text(),
        }),
        supervised_keys=("source", "target"),
        homepage="https://ebible.org",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # The texts come from the Debian packages.
    pairs = read_verse_pairs(self._sword_path or sword_path())
    by_reference = {ref: {"en": en, "es": es} for ref, en, es in pairs}
    splits = split_references([ref for ref, _, _ in pairs])
    return {name: self._generate_examples(refs, by_reference) for name, refs in splits.items()}

  def _generate_examples(self, references, by_reference):
    config = self.builder_config
    for reference in references:
      texts = by_reference[reference]
      yield reference, {
          "source": texts[config.source_language],
          "target": texts[config.target_language],
          "reference": reference,
      }
