"""Sequence metrics: word error rate and phoneme (symbol) error rate against several references.

A hypothesis is a sequence of symbols (a string split by the vocabulary's separator); each example
may have several acceptable references (CMUdict words with several pronunciations).
"""

import editdistance


def word_error_rate(hypotheses: list[str], references: list[tuple[str, ...]]) -> float:
  """Fraction of examples whose hypothesis equals none of its references."""
  wrong = sum(h not in refs for h, refs in zip(hypotheses, references, strict=True))
  return wrong / max(len(hypotheses), 1)


def symbol_error_rate(hypotheses: list[str], references: list[tuple[str, ...]], separator: str = " ") -> float:
  """Corpus-level edit distance to the closest reference divided by that reference's length:
  sum_i min_r d(h_i, r) / sum_i len(r*_i), with symbols split by `separator` ("" = characters)."""
  split = (lambda s: list(s)) if separator == "" else (lambda s: s.split(separator) if s else [])
  edits = length = 0
  for hyp, refs in zip(hypotheses, references, strict=True):
    h = split(hyp)
    distance, ref_len = min((editdistance.eval(h, split(r)), len(split(r))) for r in refs)
    edits += distance
    length += ref_len
  return edits / max(length, 1)


def error_rates(hypotheses: list[str], references: list[tuple[str, ...]], separator: str = " ") -> dict:
  """{"wer", "per"} of hypotheses against their references."""
  return {"wer": word_error_rate(hypotheses, references),
          "per": symbol_error_rate(hypotheses, references, separator)}
