"""Any TFDS translation dataset by name: `tfds:wmt14_translate/de-en`, `tfds:ted_hrlr_translate/pt_to_en`.

The dataset is prepared by TFDS itself (`tfds.builder(name, data_dir=..., file_format="array_record")`,
`download_and_prepare()`, `as_data_source(split)`), which downloads the raw data on first use.
An example is a dict with one text field per language; `source_lang` / `target_lang` choose the
fields, by default the dataset's own `supervised_keys` (e.g. ("de", "en") for wmt14 de-en).
"""

import importlib

import tensorflow_datasets as tfds

from seq2seq_jax.errors import UsageError

PREFIX = "tfds:"
# Packages whose builders TFDS registers only once imported (TFDS imports them lazily).
_LAZY_BUILDER_PACKAGES = ("tensorflow_datasets.translate", "tensorflow_datasets.text")


def tfds_name(name: str) -> str:
  """'tfds:wmt14_translate/de-en' -> 'wmt14_translate/de-en'."""
  if not name.startswith(PREFIX) or len(name) == len(PREFIX):
    raise UsageError(f"a TFDS dataset is named {PREFIX}<name>[/<config>], got {name!r}")
  return name[len(PREFIX):]


def make_builder(name: str, data_dir: str | None = None,
                 file_format: str = "array_record") -> tfds.core.DatasetBuilder:
  """The TFDS builder for `name` ('wmt14_translate/de-en'); UsageError if TFDS has no such dataset."""
  for package in (None,) + _LAZY_BUILDER_PACKAGES:
    if package:
      importlib.import_module(package)
    try:
      return tfds.builder(name, data_dir=data_dir, file_format=file_format)
    except tfds.core.registered.DatasetNotFoundError:
      continue
    except ValueError as error:  # An unknown config of a known dataset.
      raise UsageError(f"TFDS cannot build {name!r}: {str(error).splitlines()[0]}") from error
  raise UsageError(f"TFDS has no dataset {name.split('/')[0]!r} (from {PREFIX}{name})")


def text_fields(builder: tfds.core.DatasetBuilder) -> list[str]:
  """The example's text field names, e.g. ['de', 'en']."""
  features = builder.info.features
  return [name for name in features.keys() if isinstance(features[name], tfds.features.Text)]


def _default_pair(supervised_keys, source_lang: str | None, target_lang: str | None) -> tuple:
  """The supervised_keys, turned around when only the other side's language is given."""
  default_source, default_target = supervised_keys or (None, None)
  if source_lang and not target_lang and source_lang == default_target:
    return source_lang, default_source
  if target_lang and not source_lang and target_lang == default_source:
    return default_target, target_lang
  return source_lang or default_source, target_lang or default_target


def language_fields(builder: tfds.core.DatasetBuilder, source_lang: str | None,
                    target_lang: str | None) -> tuple[str, str]:
  """(source field, target field): the given ones, else the dataset's supervised_keys."""
  fields = _default_pair(builder.info.supervised_keys, source_lang, target_lang)
  available = text_fields(builder)
  for option, field in zip(("source_lang", "target_lang"), fields):
    if field not in available:
      raise UsageError(f"{option}={field!r} is not a text field of TFDS {builder.info.full_name}; "
                       f"choose from: {', '.join(available) or '(none)'}")
  if fields[0] == fields[1]:
    raise UsageError(f"source_lang and target_lang are both {fields[0]!r}")
  return fields
