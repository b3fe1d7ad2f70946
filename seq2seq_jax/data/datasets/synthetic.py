"""Synthetic sequence tasks as a TFDS dataset (array_record, no TensorFlow, generated, no download).

Tasks (every text is space-separated symbols, so the symbol vocabulary with separator " " reads it):

* `copy`:     "c a b" -> "c a b"     letters a-z; length = number of letters
* `reverse`:  "c a b" -> "b a c"
* `sort`:     "c a b" -> "a b c"     (alphabetical, repeats kept)
* `addition`: "1 2 + 3 4 5" -> "3 5 7"   as in Flax's seq2seq example; length = digits of each
  operand (drawn independently; no leading zero unless the operand has one digit)

Lengths are drawn uniformly from an inclusive range.  `train` and `validation` use
`train_lengths`; `test` uses `test_lengths`, so a test range beyond the training range measures
length generalisation (by default the two ranges are the same).  The validation split has as many
examples as the test split unless set on its own.  Each split is drawn with its own generator,
`numpy.random.default_rng([seed, task_index, split_index])` (task_index: position in TASKS), so
the data is a pure function of the config.  Examples are drawn independently: short sequences
can occur in more than one split.

Every combination of options is its own TFDS config whose name spells the options out
(e.g. `copy-train1_20-test1_20-n20000_1000_1000-seed0`), so it is prepared into its own directory
and nothing stale is ever reused.
"""

import dataclasses
import string

import numpy as np
import tensorflow_datasets as tfds

from seq2seq_jax.errors import UsageError

LETTERS = tuple(string.ascii_lowercase)
DIGITS = tuple(string.digits)
TASKS = ("copy", "reverse", "sort", "addition")
DEFAULT_LENGTHS = {"copy": (1, 20), "reverse": (1, 20), "sort": (1, 20), "addition": (1, 3)}
DEFAULT_NUM_TRAIN = 20_000
DEFAULT_NUM_TEST = 1_000
DEFAULT_SEED = 0
SPLIT_INDEX = {"train": 0, "validation": 1, "test": 2}


# --- Targets -------------------------------------------------------------------------------------


def target_symbols(task: str, source: list[str]) -> list[str]:
  """The correct output symbols for `source` symbols under `task`."""
  if task == "copy":
    return list(source)
  if task == "reverse":
    return source[::-1]
  if task == "sort":
    return sorted(source)
  if task == "addition":
    plus = source.index("+")
    total = int("".join(source[:plus])) + int("".join(source[plus + 1:]))
    return list(str(total))
  raise UsageError(f"unknown synthetic task {task!r}; choose one of: {', '.join(TASKS)}")


# --- Sources -------------------------------------------------------------------------------------


def _draw_number(rng: np.random.Generator, num_digits: int) -> list[str]:
  first = rng.integers(0 if num_digits == 1 else 1, 10)
  rest = rng.integers(0, 10, size=num_digits - 1)
  return [DIGITS[first]] + [DIGITS[d] for d in rest]


def draw_source(task: str, rng: np.random.Generator, lengths: tuple[int, int]) -> list[str]:
  """One random source (list of symbols) with its length(s) drawn uniformly from `lengths`."""
  low, high = lengths
  if task == "addition":
    left, right = rng.integers(low, high + 1, size=2)
    return _draw_number(rng, int(left)) + ["+"] + _draw_number(rng, int(right))
  length = int(rng.integers(low, high + 1))
  return [LETTERS[i] for i in rng.integers(0, len(LETTERS), size=length)]


def draw_examples(task: str, num: int, lengths: tuple[int, int], seed: int, split: str):
  """Yields `num` (source, target) text pairs for `split`; a pure function of its arguments."""
  rng = np.random.default_rng([seed, TASKS.index(task), SPLIT_INDEX[split]])
  for _ in range(num):
    source = draw_source(task, rng, lengths)
    yield " ".join(source), " ".join(target_symbols(task, source))


# --- Config --------------------------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class SyntheticConfig(tfds.core.BuilderConfig):
  task: str = "copy"
  train_lengths: tuple[int, int] = (1, 20)
  test_lengths: tuple[int, int] = (1, 20)
  num_train: int = DEFAULT_NUM_TRAIN
  num_validation: int = DEFAULT_NUM_TEST
  num_test: int = DEFAULT_NUM_TEST
  seed: int = DEFAULT_SEED


def _check_lengths(option: str, lengths) -> tuple[int, int]:
  low, high = (int(n) for n in lengths)
  if not 1 <= low <= high:
    raise UsageError(f"{option} must satisfy 1 <= min <= max, got {low}:{high}")
  return low, high


def _check_count(option: str, count: int) -> int:
  if int(count) < 1:
    raise UsageError(f"{option} must be at least 1, got {count}")
  return int(count)


def _given_or(value, default):
  return default if value is None else value


def synthetic_config(task: str, train_lengths=None, test_lengths=None, num_train=None,
                     num_validation=None, num_test=None, seed=DEFAULT_SEED) -> SyntheticConfig:
  """A validated config; None = the default (test lengths default to the train lengths,
  the validation size to the test size)."""
  if task not in TASKS:
    raise UsageError(f"unknown synthetic task {task!r}; choose one of: {', '.join(TASKS)}")
  train_lengths = _check_lengths("train_lengths", _given_or(train_lengths, DEFAULT_LENGTHS[task]))
  test_lengths = _check_lengths("test_lengths", _given_or(test_lengths, train_lengths))
  num_train = _check_count("num_train", _given_or(num_train, DEFAULT_NUM_TRAIN))
  num_test = _check_count("num_test", _given_or(num_test, DEFAULT_NUM_TEST))
  num_validation = _check_count("num_validation", _given_or(num_validation, num_test))
  name = (f"{task}-train{train_lengths[0]}_{train_lengths[1]}-test{test_lengths[0]}_{test_lengths[1]}"
          f"-n{num_train}_{num_validation}_{num_test}-seed{seed}")
  return SyntheticConfig(
      name=name, description=f"synthetic {task}", task=task, train_lengths=train_lengths,
      test_lengths=test_lengths, num_train=num_train, num_validation=num_validation,
      num_test=num_test, seed=int(seed))


# --- TFDS builder --------------------------------------------------------------------------------


class SyntheticSeq2seq(tfds.core.GeneratorBasedBuilder):
  """Copy / reverse / sort / addition; pass `config=synthetic_config(...)`."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "copy, reverse, sort (letters a-z), addition (digits)."}

  def __init__(self, *, config: SyntheticConfig | None = None, **kwargs):
    super().__init__(config=config or synthetic_config("copy"), **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "source": tfds.features.Text(),
            "target": tfds.features.Text(),
        }),
        supervised_keys=("source", "target"),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Generated.
    config = self.builder_config
    plan = {
        "train": (config.num_train, config.train_lengths),
        "validation": (config.num_validation, config.train_lengths),
        "test": (config.num_test, config.test_lengths),
    }
    return {split: self._generate_examples(split, num, lengths) for split, (num, lengths) in plan.items()}

  def _generate_examples(self, split, num, lengths):
    config = self.builder_config
    for i, (source, target) in enumerate(draw_examples(config.task, num, lengths, config.seed, split)):
      yield i, {"source": source, "target": target}
