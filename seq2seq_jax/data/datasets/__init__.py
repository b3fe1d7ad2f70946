"""Dataset registry: name -> how to build it (TFDS, array_record) and read (source, references).

`load(name, data_dir, options)` prepares the dataset on first use and returns random-access
`tfds.data_source` splits named "train", "validation", "test".  `spec(name, options)` says how to
read a record (`to_example`), which tokenizer and metrics suit it.  Pass the same `options` to
both.  Each example becomes an `Example`: one source text and one or more reference target texts.

Names: cmudict_g2p, cmudict_g2p/g014b2b (the standard split of the G2P literature), bible_en_es, bible_es_en, copy, reverse, sort, addition,
speech_cmudict and speech_cmudict/phonemes (CMUdict words spoken by espeak-ng: int16 16 kHz audio
as the source, `max_examples` and `snr_db` options; `speech_cmudict.py`), any TFDS
translation dataset as "tfds:<name>/<config>" (e.g. tfds:wmt14_translate/de-en), and your own
parallel text as "files:PREFIX": PREFIX.{train,validation,test}.tsv (source<TAB>target per line)
or aligned PREFIX.<split>.src / .tgt files, validation optional (`parallel_files.py`).  Each side
of a files: dataset gets characters, whitespace-separated symbols or SentencePiece, chosen from
the training split unless the `source_tokenizer` / `target_tokenizer` options say.

Both directions (the `both_directions` option; Bible, tfds: and files: datasets): every pair is
read as source -> target and as target -> source, each example naming its `target_language`, so
one model with one vocabulary learns both (LASER, Artetxe & Schwenk 2019, trains one encoder on
many languages this way); the pipeline gives the decoder a target-language token
(`special_tokens.language_token`) before the output.  Language names: the Bible's en/es, a tfds:
dataset's fields, or a files: dataset's `source_lang` / `target_lang` options (default source/target).
See README.md in this directory for each dataset's splits and sizes.
"""

import contextlib
import dataclasses
import fcntl
import functools
import os
import re
from typing import Callable

import tensorflow_datasets as tfds

from seq2seq_jax.data.datasets import parallel_files
from seq2seq_jax.data.datasets import synthetic
from seq2seq_jax.data.datasets import tfds_translation
from seq2seq_jax.data.datasets.bible import Bible
from seq2seq_jax.data.datasets.cmudict_g2p import CmudictG2p, CmudictG2pG014b2b
from seq2seq_jax.data.datasets.speech_cmudict import SpeechCmudict, SpeechConfig
from seq2seq_jax.errors import UsageError

# Our split name -> the TFDS split names that may stand for it, first match wins.
SPLIT_ALIASES = {"train": ("train",), "validation": ("validation", "valid", "dev"), "test": ("test",)}


@dataclasses.dataclass(frozen=True)
class Example:
  source: str
  references: tuple[str, ...]
  target_language: str = ""  # set when a dataset is read in both directions: the token the decoder gets


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  builder: Callable[..., tfds.core.DatasetBuilder]  # builder(data_dir=..., file_format=...)
  to_example: Callable[[dict], Example]
  source_separator: str  # "" = characters (used by the "symbols" tokenizer)
  target_separator: str
  description: str
  tokenizer: str = "symbols"  # or "sentencepiece"; both sides unless set per side below
  default_vocab_size: int = 0  # sentencepiece: pieces per vocabulary when the run sets none
  metrics: tuple[str, ...] = ("wer", "per")  # or ("bleu", "chrf")
  source_tokenizer: str = ""  # "" = `tokenizer` (pipeline.side_tokenizers reads both)
  target_tokenizer: str = ""
  content_digest: str = ""  # files: a hash of the files' content (part of the vocabulary cache key)
  languages: tuple[str, ...] = ()  # (source, target) language names, when the dataset knows them
  both_directions: bool = False  # read every pair both ways (`in_both_directions`)
  target_symbols: tuple[str, ...] = ()  # symbols always in the target vocabulary (a closed alphabet)


@dataclasses.dataclass(frozen=True)
class DatasetOptions:
  """Choices a dataset may accept; None = the dataset's default.  A set option that the dataset
  does not accept is a UsageError."""
  train_lengths: tuple[int, int] | None = None  # synthetic: inclusive range for train/validation
  test_lengths: tuple[int, int] | None = None  # synthetic: inclusive range for test
  num_train: int | None = None  # synthetic
  num_test: int | None = None  # synthetic: test and validation size
  source_lang: str | None = None  # tfds:*: field of the source text; files:*: the source's language name
  target_lang: str | None = None  # tfds:*: field of the target text; files:*: the target's language name
  source_tokenizer: str | None = None  # files:*: chars, symbols or sentencepiece
  target_tokenizer: str | None = None  # files:*: chars, symbols or sentencepiece
  both_directions: bool | None = None  # Bible, tfds:*, files:*: source -> target and target -> source
  max_examples: int | None = None  # speech_cmudict: utterances in all splits together
  snr_db: float | None = None  # speech_cmudict: add white noise at this signal-to-noise ratio (dB)
  data_seed: int | None = None  # speech_cmudict: the seed of every draw (words, voices, noise)


def parse_lengths(text: str) -> tuple[int, int]:
  """'3:10' -> (3, 10); UsageError unless it is MIN:MAX with 1 <= MIN <= MAX."""
  match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", text or "")
  if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
    raise UsageError(f"lengths must be MIN:MAX with 1 <= MIN <= MAX (e.g. 1:20), got {text!r}")
  return int(match.group(1)), int(match.group(2))


def _text(value) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _pair_to_example(source_field: str, target_field: str, record: dict) -> Example:
  return Example(_text(record[source_field]), (_text(record[target_field]),))


def _translation_spec(builder, source_field: str, target_field: str, description: str,
                      languages: tuple[str, str] = ()) -> DatasetSpec:
  return DatasetSpec(
      builder=builder,
      to_example=functools.partial(_pair_to_example, source_field, target_field),
      source_separator=" ",
      target_separator=" ",
      description=description,
      tokenizer="sentencepiece",
      default_vocab_size=8000,
      metrics=("bleu", "chrf"),
      languages=languages,
  )


def _g2p_spec(builder, description: str) -> DatasetSpec:
  """Letters -> space-separated phonemes, every pronunciation a reference."""
  return DatasetSpec(
      builder=builder,
      to_example=lambda ex: Example(_text(ex["word"]), tuple(_text(p) for p in ex["pronunciations"])),
      source_separator="",
      target_separator=" ",
      description=description,
  )


FIXED_DATASETS = {
    "cmudict_g2p": _g2p_spec(
        CmudictG2p, "CMU Pronouncing Dictionary, letters -> stress-free ARPAbet (embedded, no download)"),
    "cmudict_g2p/g014b2b": _g2p_spec(
        CmudictG2pG014b2b, "CMUdict G2P, the standard g014b2b train/test split (embedded, no download)"),
    "bible_en_es": _translation_spec(
        functools.partial(Bible, config="en_es"), "source", "target",
        "Bible verses, World English Bible -> Reina-Valera 1909 (Debian sword-text-web, sword-text-sparv)",
        ("en", "es")),
    "bible_es_en": _translation_spec(
        functools.partial(Bible, config="es_en"), "source", "target",
        "Bible verses, Reina-Valera 1909 -> World English Bible (Debian sword-text-web, sword-text-sparv)",
        ("es", "en")),
}
SPEECH_OPTIONS = ("max_examples", "snr_db", "data_seed")
SPEECH_CONFIG_FIELDS = {"max_examples": "max_examples", "snr_db": "snr_db", "data_seed": "seed"}
SPEECH_DATASETS = {"speech_cmudict": "letters", "speech_cmudict/phonemes": "phonemes"}
SYNTHETIC_OPTIONS = ("train_lengths", "test_lengths", "num_train", "num_test")
TRANSLATION_OPTIONS = ("source_lang", "target_lang", "both_directions")
FILES_PREFIX = "files:"
FILES_OPTIONS = ("source_tokenizer", "target_tokenizer", "source_lang", "target_lang", "both_directions")
BIBLE_OPTIONS = ("both_directions",)


def _reject_options(name: str, options: DatasetOptions, accepted: tuple[str, ...]) -> None:
  for field in dataclasses.fields(options):
    if getattr(options, field.name) is not None and field.name not in accepted:
      allowed = ", ".join(accepted) or "none"
      raise UsageError(f"option {field.name} does not apply to dataset {name} (it accepts: {allowed})")


def _synthetic_spec(task: str, options: DatasetOptions) -> DatasetSpec:
  config = synthetic.synthetic_config(
      task, train_lengths=options.train_lengths, test_lengths=options.test_lengths,
      num_train=options.num_train, num_test=options.num_test)
  return DatasetSpec(
      builder=functools.partial(synthetic.SyntheticSeq2seq, config=config),
      to_example=functools.partial(_pair_to_example, "source", "target"),
      source_separator=" ",
      target_separator=" ",
      description=f"synthetic {task} ({config.name})",
  )


def _tfds_spec(name: str, options: DatasetOptions) -> DatasetSpec:
  full_name = tfds_translation.tfds_name(name)
  source, target = tfds_translation.language_fields(
      tfds_translation.make_builder(full_name), options.source_lang, options.target_lang)
  return _translation_spec(
      functools.partial(tfds_translation.make_builder, full_name), source, target,
      f"TFDS {full_name}, {source} -> {target}", (source, target))


# A files: side's vocabulary kind -> (DatasetSpec tokenizer, separator).
FILES_TOKENIZERS = {"chars": ("symbols", ""), "symbols": ("symbols", " "), "sentencepiece": ("sentencepiece", " ")}


def _references_to_example(record: dict) -> Example:
  return Example(_text(record["source"]), tuple(_text(r) for r in record["references"]))


def _files_spec(name: str, options: DatasetOptions) -> DatasetSpec:
  """files:PREFIX: reads and checks the files now, so a bad line fails before a run starts."""
  data = parallel_files.read(name[len(FILES_PREFIX):])
  kinds = parallel_files.tokenizers(data, options.source_tokenizer, options.target_tokenizer)
  parallel_files.check_symbols_covered(data, kinds)
  (source_tokenizer, source_separator), (target_tokenizer, target_separator) = (FILES_TOKENIZERS[k] for k in kinds)
  return DatasetSpec(
      builder=functools.partial(parallel_files.ParallelTextFiles, config=parallel_files.builder_config(data)),
      to_example=_references_to_example,
      source_separator=source_separator,
      target_separator=target_separator,
      description=f"{name} ({', '.join(p for paths in data.files.values() for p in paths)}), "
                  f"{kinds[0]} -> {kinds[1]}",
      tokenizer="sentencepiece" if "sentencepiece" in kinds else "symbols",
      default_vocab_size=8000,
      metrics=("bleu", "chrf") if kinds[1] == "sentencepiece" else ("wer", "per"),
      source_tokenizer=source_tokenizer,
      target_tokenizer=target_tokenizer,
      content_digest=data.digest,
      languages=(options.source_lang or "source", options.target_lang or "target"),
  )


def _audio_to_example(target: str, record: dict) -> Example:
  """An utterance: its int16 samples as the source; the word, or its pronunciations, as references."""
  references = ((_text(record["word"]),) if target == "letters"
                else tuple(_text(p) for p in record["pronunciations"]))
  return Example(record["audio"], references)


LETTERS = tuple("'abcdefghijklmnopqrstuvwxyz")
ARPABET = tuple("AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y "
                "Z ZH".split())


def _speech_spec(name: str, options: DatasetOptions) -> DatasetSpec:
  target = SPEECH_DATASETS[name]
  config = SpeechConfig(target=target, **{field: getattr(options, option)
                                          for option, field in SPEECH_CONFIG_FIELDS.items()
                                          if getattr(options, option) is not None})
  return DatasetSpec(
      builder=functools.partial(SpeechCmudict, config=config),
      to_example=functools.partial(_audio_to_example, target),
      source_separator="",
      target_separator="" if target == "letters" else " ",
      description=f"CMUdict words spoken by espeak-ng, audio -> {target} ({config.name})",
      metrics=("wer", "cer") if target == "letters" else ("wer", "per"),
      source_tokenizer="audio",
      target_symbols=LETTERS if target == "letters" else ARPABET,
  )


DATASETS = {**FIXED_DATASETS, **{task: _synthetic_spec(task, DatasetOptions()) for task in synthetic.TASKS},
            **{name: _speech_spec(name, DatasetOptions()) for name in SPEECH_DATASETS}}


_LANGUAGE_NAME = re.compile(r"[A-Za-z0-9_-]+")


def _in_both_directions(name: str, spec_: DatasetSpec) -> DatasetSpec:
  """`spec_` read in both directions; UsageError unless both sides use one kind of vocabulary and
  the two language names are distinct words (they become the tokens <2xx>)."""
  from seq2seq_jax.data.pipeline import side_tokenizers  # pylint: disable=g-import-not-at-top
  source, target = side_tokenizers(spec_)
  if (source, spec_.source_separator) != (target, spec_.target_separator):
    raise UsageError(f"both_directions needs one kind of vocabulary on both sides; {name} has "
                     f"{source} (separator {spec_.source_separator!r}) -> {target} (separator "
                     f"{spec_.target_separator!r}); set --source_tokenizer and --target_tokenizer alike")
  languages = tuple(spec_.languages)
  if len(set(languages)) != 2 or not all(_LANGUAGE_NAME.fullmatch(lang) for lang in languages):
    raise UsageError(f"both_directions needs two distinct language names of letters, digits, _ or -; "
                     f"got {languages} (files: datasets: --source_lang, --target_lang)")
  return dataclasses.replace(spec_, both_directions=True,
                             description=f"{spec_.description}, in both directions ({languages[0]} <-> {languages[1]})")


def in_both_directions(examples: list[Example], languages: tuple[str, str]) -> list[Example]:
  """Each example as source -> reference (target_language = languages[1]) followed by, for each
  reference, reference -> source (target_language = languages[0]): LASER's one model over both.
  Reversed examples are not regrouped: two sources with one reference make two reversed examples."""
  out = []
  for e in examples:
    out.append(dataclasses.replace(e, target_language=languages[1]))
    out.extend(Example(ref, (e.source,), languages[0]) for ref in e.references)
  return out


def spec(name: str, options: DatasetOptions = DatasetOptions()) -> DatasetSpec:
  """How to build and read dataset `name` with `options`; UsageError for an unknown name or an
  option the dataset does not accept."""
  out = _spec_one_way(name, options)
  return _in_both_directions(name, out) if options.both_directions else out


def _spec_one_way(name: str, options: DatasetOptions) -> DatasetSpec:
  if name.startswith(FILES_PREFIX):
    _reject_options(name, options, FILES_OPTIONS)
    return _files_spec(name, options)
  if name.startswith(tfds_translation.PREFIX):
    _reject_options(name, options, TRANSLATION_OPTIONS)
    return _tfds_spec(name, options)
  if name in synthetic.TASKS:
    _reject_options(name, options, SYNTHETIC_OPTIONS)
    return _synthetic_spec(name, options)
  if name in SPEECH_DATASETS:
    _reject_options(name, options, SPEECH_OPTIONS)
    return _speech_spec(name, options)
  if name in FIXED_DATASETS:
    _reject_options(name, options, BIBLE_OPTIONS if name.startswith("bible_") else ())
    return FIXED_DATASETS[name]
  raise UsageError(f"unknown dataset {name!r}; choose one of: {', '.join(sorted(DATASETS))}, "
                   f"{tfds_translation.PREFIX}<tfds name>/<config>, {FILES_PREFIX}<path prefix>")


def split_names(known: list[str]) -> dict[str, str]:
  """Our split name -> the TFDS split name, for the splits a dataset has.

  `known` empty (a builder that does not know its splits, e.g. under `tfds.testing.mock_data`)
  -> the standard names.
  """
  if not known:
    return {split: split for split in SPLIT_ALIASES}
  names = {}
  for split, aliases in SPLIT_ALIASES.items():
    found = [alias for alias in aliases if alias in known]
    if found:
      names[split] = found[0]
  return names


@contextlib.contextmanager
def _exclusively(lock_path: str):
  """An exclusive advisory lock (flock) on `lock_path` for the `with` block; waits for it."""
  os.makedirs(os.path.dirname(lock_path), exist_ok=True)
  with open(lock_path, "a") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def load(name: str, data_dir: str, options: DatasetOptions = DatasetOptions()) -> dict[str, "tfds.data_source"]:
  """Prepares `name` under `data_dir` if needed; returns {"train"|"validation"|"test": random-access
  data source} for the splits the dataset has.  Processes that load one dataset at once (a sweep's
  runs, recipes trained side by side) prepare it once: one holds a lock beside its directory while
  it prepares it, the others wait and then read it."""
  make = lambda: spec(name, options).builder(data_dir=os.path.expanduser(data_dir), file_format="array_record")
  versioned_dir = make().data_dir
  with _exclusively(os.path.join(os.path.dirname(versioned_dir), f".{os.path.basename(versioned_dir)}.lock")):
    builder = make()  # made under the lock: it sees a dataset another process finished meanwhile
    builder.download_and_prepare()
  names = split_names(list(builder.info.splits))
  return {split: builder.as_data_source(split=tfds_split) for split, tfds_split in names.items()}
