"""Dataset registry: name -> how to build it (TFDS, array_record) and read (source, references).

`load(name, data_dir)` prepares the dataset on first use (no download for the embedded ones) and
returns random-access `tfds.data_source` splits.  Each example becomes an `Example`: one source
text and one or more reference target texts.
"""

import dataclasses
import os
from typing import Callable

import tensorflow_datasets as tfds

from seq2seq_jax.data.datasets.cmudict_g2p import CmudictG2p
from seq2seq_jax.errors import UsageError


@dataclasses.dataclass(frozen=True)
class Example:
  source: str
  references: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  builder: type
  to_example: Callable[[dict], Example]
  source_separator: str  # "" = characters
  target_separator: str
  description: str


def _text(value) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


DATASETS = {
    "cmudict_g2p": DatasetSpec(
        builder=CmudictG2p,
        to_example=lambda ex: Example(_text(ex["word"]), tuple(_text(p) for p in ex["pronunciations"])),
        source_separator="",
        target_separator=" ",
        description="CMU Pronouncing Dictionary, letters -> stress-free ARPAbet (embedded, no download)",
    ),
}


def spec(name: str) -> DatasetSpec:
  if name not in DATASETS:
    raise UsageError(f"unknown dataset {name!r}; choose one of: {', '.join(sorted(DATASETS))}")
  return DATASETS[name]


def load(name: str, data_dir: str) -> dict[str, "tfds.data_source"]:
  """Prepares `name` under `data_dir` if needed; returns {split: random-access data source}."""
  builder = spec(name).builder(data_dir=os.path.expanduser(data_dir), file_format="array_record")
  builder.download_and_prepare()
  return builder.as_data_source()
