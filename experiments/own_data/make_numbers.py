r"""Writes the example parallel text for `--dataset=files:experiments/own_data/numbers`.

  python experiments/own_data/make_numbers.py      # numbers.{train,validation,test}.tsv here

English number names -> digits, one `source<TAB>target` per line (`three hundred and five<TAB>305`),
British style ("and" after the hundreds, hyphenated tens).  The numbers are 0-999 and 2,600 of
1,000-9,999 (so shorter numbers are not rare), drawn and shuffled with
`numpy.random.default_rng(SEED)` and split 3,000 / 300 / 300, so the files are the same on every
run.  0-19 are all in train, so every word of the validation and test sources occurs in training.  The source side has spaces and few distinct words (the "symbols" vocabulary), the
target none (characters).
"""

import os

import numpy as np

SEED = 0
SIZES = {"train": 3000, "validation": 300, "test": 300}
ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen").split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def below_hundred(n: int) -> str:
  """0 <= n < 100 in words: 'forty-two'."""
  if n < 20:
    return ONES[n]
  tens, ones = divmod(n, 10)
  return TENS[tens] + (f"-{ONES[ones]}" if ones else "")


def number_name(n: int) -> str:
  """0 <= n < 10,000 in words: 'two thousand three hundred and five'."""
  thousands, rest = divmod(n, 1000)
  hundreds, below = divmod(rest, 100)
  words = []
  if thousands:
    words.append(f"{ONES[thousands]} thousand")
  if hundreds:
    words.append(f"{ONES[hundreds]} hundred")
  if below or not words:
    words.append(("and " if words else "") + below_hundred(below))
  return " ".join(words)


def splits(seed: int = SEED) -> dict[str, list[int]]:
  """split -> numbers: 0-999 and the rest from 1,000-9,999, no repeats, shuffled; 0-19 in train."""
  rng = np.random.default_rng(seed)
  large = rng.choice(np.arange(1000, 10_000), sum(SIZES.values()) - 1000, replace=False)
  drawn = list(range(20)) + rng.permutation(np.concatenate([np.arange(20, 1000), large])).tolist()
  out, start = {}, 0
  for split, size in SIZES.items():
    out[split], start = drawn[start:start + size], start + size
  out["train"] = [out["train"][i] for i in rng.permutation(SIZES["train"])]
  return out


def main() -> None:
  here = os.path.dirname(os.path.abspath(__file__))
  for split, numbers in splits().items():
    with open(os.path.join(here, f"numbers.{split}.tsv"), "w", encoding="utf-8") as f:
      f.writelines(f"{number_name(n)}\t{n}\n" for n in numbers)


if __name__ == "__main__":
  main()
