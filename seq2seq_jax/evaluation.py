"""Sequence metrics against one or more references per example.

- G2P and synthetic tasks: word (sequence) error rate and phoneme (symbol) error rate.  A hypothesis
  is a sequence of symbols (a string split by the vocabulary's separator); an example may have
  several acceptable references (CMUdict words with several pronunciations).
- Translation: detokenised corpus BLEU and chrF from sacrebleu (Post 2018), with their signature
  strings, and BLEU by source-length bucket (Bahdanau et al. 2015, Fig. 2).

`decode_and_score` is the one evaluation of a model's outputs: the training loop (validation and
test) and `experiments.evaluate` both call it.
"""

import editdistance
import numpy as np

from seq2seq_jax.models.audio import SAMPLE_RATE
from seq2seq_jax.translator import decode_all, options_for_language


def word_error_rate(hypotheses: list[str], references: list[tuple[str, ...]]) -> float:
  """Fraction of examples whose hypothesis equals none of its references."""
  wrong = sum(h not in refs for h, refs in zip(hypotheses, references, strict=True))
  return wrong / max(len(hypotheses), 1)


def symbol_error_rate(hypotheses: list[str], references: list[tuple[str, ...]], separator: str = " ") -> float:
  """Corpus-level edit distance to the closest reference divided by that reference's length:
  sum_i min_r d(h_i, r) / sum_i len(r*_i), with symbols split by `separator` ("" = characters)."""
  split = _split(separator)
  edits = length = 0
  for hyp, refs in zip(hypotheses, references, strict=True):
    h = split(hyp)
    distance, ref_len = min((editdistance.eval(h, split(r)), len(split(r))) for r in refs)
    edits += distance
    length += ref_len
  return edits / max(length, 1)


def _split(separator: str):
  return (lambda s: list(s)) if separator == "" else (lambda s: s.split(separator) if s else [])


def error_profile(hypotheses: list[str], references: list[tuple[str, ...]], source_lengths: list[int],
                  separator: str = " ") -> dict:
  """Where the wrong outputs are: WER per source length (tokens), and the wrong outputs counted
  by edit distance to their closest reference (1, 2, 3+) and by whether they have its length.
  {"wer_by_source_length": [{"source_length", "examples", "wer"}, ...], "wrong",
   "wrong_same_length", "wrong_by_distance": {"1", "2", "3+"}}."""
  split = _split(separator)
  by_length: dict[int, list[bool]] = {}
  wrong = same_length = 0
  distances = {"1": 0, "2": 0, "3+": 0}
  for hyp, refs, n in zip(hypotheses, references, source_lengths, strict=True):
    right = hyp in refs
    by_length.setdefault(n, []).append(right)
    if right:
      continue
    h = split(hyp)
    distance, closest = min((editdistance.eval(h, split(r)), split(r)) for r in refs)
    wrong += 1
    same_length += len(h) == len(closest)
    distances[str(distance) if distance < 3 else "3+"] += 1
  return {"wer_by_source_length": [{"source_length": n, "examples": len(v), "wer": 1 - sum(v) / len(v)}
                                   for n, v in sorted(by_length.items())],
          "wrong": wrong, "wrong_same_length": same_length, "wrong_by_distance": distances}


def error_rates(hypotheses: list[str], references: list[tuple[str, ...]], separator: str = " ") -> dict:
  """{"wer", "per"} of hypotheses against their references."""
  return {"wer": word_error_rate(hypotheses, references),
          "per": symbol_error_rate(hypotheses, references, separator)}


def _reference_streams(references: list[tuple[str, ...]]) -> list[list[str]]:
  """sacrebleu's layout: one stream per reference index.  Examples with different numbers of
  references use their first reference only."""
  counts = {len(r) for r in references}
  n = counts.pop() if len(counts) == 1 else 1
  return [[r[i] for r in references] for i in range(n)]


def translation_scores(hypotheses: list[str], references: list[tuple[str, ...]]) -> dict:
  """{"bleu", "chrf", "bleu_signature", "chrf_signature"}: sacrebleu's defaults (13a tokenizer,
  mixed case) on detokenised text."""
  from sacrebleu.metrics import BLEU, CHRF  # pylint: disable=g-import-not-at-top
  streams = _reference_streams(references)
  bleu, chrf = BLEU(), CHRF()
  return {"bleu": bleu.corpus_score(hypotheses, streams).score,
          "chrf": chrf.corpus_score(hypotheses, streams).score,
          "bleu_signature": str(bleu.get_signature()), "chrf_signature": str(chrf.get_signature())}


def bleu_by_source_length(hypotheses: list[str], references: list[tuple[str, ...]], sources: list[str],
                          edges=(10, 20, 30, 40, 50)) -> list[dict]:
  """Corpus BLEU of the examples grouped by source length in words (whitespace tokens):
  [{"min_words", "max_words" (None = open), "examples", "bleu"}, ...] for the non-empty buckets."""
  from sacrebleu.metrics import BLEU  # pylint: disable=g-import-not-at-top
  bounds = [0, *edges, None]
  rows = []
  for low, high in zip(bounds[:-1], bounds[1:]):
    idx = [i for i, s in enumerate(sources) if len(s.split()) > low and (high is None or len(s.split()) <= high)]
    if idx:
      score = BLEU().corpus_score([hypotheses[i] for i in idx],
                                  _reference_streams([references[i] for i in idx])).score
      rows.append({"min_words": low + 1, "max_words": high, "examples": len(idx), "bleu": score})
  return rows


def describe_source(source) -> str:
  """A source as text for results: itself, or for audio samples their duration."""
  if isinstance(source, str):
    return source
  return f"<audio {len(source) / SAMPLE_RATE:.2f} s>"


def sequence_metrics(names: tuple[str, ...], hypotheses: list[str], references: list[tuple[str, ...]],
                     sources: list[str], separator: str = " ") -> dict:
  """The metrics a dataset asks for: ("wer", "per"), ("wer", "cer") and/or ("bleu", "chrf").
  CER is the symbol error rate of a character-level target (its `separator` is "")."""
  out = {}
  if {"wer", "per", "cer"} & set(names):
    out.update(error_rates(hypotheses, references, separator))
    if "cer" in names:
      out["cer"] = out.pop("per")
  if {"bleu", "chrf"} & set(names):
    out.update(translation_scores(hypotheses, references))
    out["bleu_by_source_length"] = bleu_by_source_length(hypotheses, references, sources)
  return out


def decode_and_score(task, examples, source_vocab, target_vocab, metric_names: tuple[str, ...],
                     max_source_length: int, batch_size: int, buckets, with_error_profile: bool = False) -> dict:
  """Decodes every example's source with `task` (a DecodingTask) and scores the outputs against
  the references with `metric_names` (the dataset's: ("wer", "per") or ("bleu", "chrf")).

  A source longer than `max_source_length` tokens is decoded from its first `max_source_length`
  tokens and counted in `truncated_sources`.  `with_error_profile`: WER by source length and the
  wrong outputs by edit distance (`error_profile`).  `samples` holds the first three outputs.
  Examples that name a `target_language` are decoded with its token as the first prompt token
  (`translator.options_for_language`); with several languages the metrics of each are also given, under
  `by_target_language`.
  """
  unit = getattr(source_vocab, "unit", 1)   # samples per length unit (audio: a 10 ms hop)
  encoded = [np.asarray(source_vocab.encode(e.source), np.int32) for e in examples]
  sources = [s[:max_source_length * unit] for s in encoded]
  by_language = {}  # target language ("" when the dataset has one direction) -> example indices
  for i, e in enumerate(examples):
    by_language.setdefault(e.target_language, []).append(i)
  hypotheses = [None] * len(examples)
  for language, idx in sorted(by_language.items()):
    language_task = task.with_options(options_for_language(task.options, target_vocab, language)) if language else task
    for i, result in zip(idx, decode_all(language_task, [sources[i] for i in idx], batch_size, buckets, unit)):
      hypotheses[i] = result.text
  references = [e.references for e in examples]
  metrics = {"examples": len(examples), "truncated_sources": sum(len(s) > max_source_length * unit for s in encoded)}
  metrics.update(sequence_metrics(metric_names, hypotheses, references, [describe_source(e.source) for e in examples],
                                  target_vocab.separator))
  if len(by_language) > 1:
    metrics["by_target_language"] = {}
    for language, idx in sorted(by_language.items()):
      part = sequence_metrics(metric_names, [hypotheses[i] for i in idx], [references[i] for i in idx],
                              [describe_source(examples[i].source) for i in idx], target_vocab.separator)
      part.pop("bleu_by_source_length", None)
      metrics["by_target_language"][language or "none"] = {"examples": len(idx), **part}
  if with_error_profile:
    metrics.update(error_profile(hypotheses, references, [-(-len(s) // unit) for s in sources], target_vocab.separator))
  metrics["samples"] = [{"source": describe_source(e.source), "output": h, "references": list(e.references)}
                        for e, h in list(zip(examples, hypotheses))[:3]]
  return metrics
