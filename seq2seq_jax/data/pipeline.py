"""Input pipeline: read a TFDS data source with grain, tokenize, bucket by length, pad.

Training batches are a pure function of (seed, step): each epoch's order is a seeded permutation,
examples are grouped into length buckets, cut into full batches and the batches shuffled.  The
iterator position is therefore just the step number, which makes resuming exact.  A batch holds
either a fixed number of rows (`batch_size`) or as many rows as fit a token budget (`max_tokens`,
as fairseq: rows x bucket length <= max_tokens, padding included, on each side).

Batch contract: {"inputs": int32 [B, S], "targets": int32 [B, T]}, pad 0, targets end with EOS.
S and T are padded up to the same bucket boundary so that each bucket compiles once.  Audio
sources (a source vocabulary with a `unit`, `tokenizers.AudioInput`) are int samples: their
lengths count `unit` samples (10 ms hops), S is the bucket boundary in samples, and T is the
longest target of the data, the same for every bucket.
"""

import dataclasses
import hashlib
import json
import os

import grain
import numpy as np

from seq2seq_jax.data.datasets import DatasetSpec, Example, in_both_directions
from seq2seq_jax.data.tokenizers import AudioInput, Vocabulary, train_sentencepiece, vocabulary_from_json
from seq2seq_jax.errors import UsageError
from seq2seq_jax.special_tokens import language_token

DEFAULT_BUCKETS = (8, 12, 16, 32)


def read_examples(data_source, spec: DatasetSpec, chunk: int = 8192) -> list[Example]:
  """All examples of one split, in the data source's order (each pair both ways when the spec says
  `both_directions`).  Records are read in chunks through the data source's batched
  `__getitems__` (the grain protocol): one read per record is ~15x slower."""
  records = []
  for start in range(0, len(data_source), chunk):
    keys = list(range(start, min(start + chunk, len(data_source))))
    try:
      records.extend(data_source.__getitems__(keys))
    except TypeError:  # tfds.testing.mock_data's sources lack the batched read
      records.extend(data_source[k] for k in keys)
  examples = [spec.to_example(r) for r in records]
  if getattr(spec, "both_directions", False):
    examples = in_both_directions(examples, spec.languages)
  return examples


def side_tokenizers(spec) -> tuple[str, str]:
  """(source, target) tokenizer of a dataset spec: "symbols" or "sentencepiece"."""
  default = getattr(spec, "tokenizer", "symbols")
  return getattr(spec, "source_tokenizer", "") or default, getattr(spec, "target_tokenizer", "") or default


def _vocabulary_cache_path(cache_dir: str, key: dict) -> str:
  digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
  return os.path.join(os.path.expanduser(cache_dir), "seq2seq_jax_vocabularies", digest + ".json")


def build_vocabularies(train_examples: list[Example], spec: DatasetSpec, vocab_size: int = 0,
                       shared: bool = False, cache_dir: str | None = None, cache_key: dict | None = None):
  """Source and target vocabularies from the training split only, each side by its tokenizer
  (`side_tokenizers`).

  Symbols: the exact symbol set (characters / space-separated symbols, by the side's separator).
  SentencePiece: a unigram model of `vocab_size` pieces (0: the dataset's `default_vocab_size`),
  one per side or one `shared` by both (both sides SentencePiece).  With a SentencePiece side the
  pair is cached as JSON under `cache_dir`, keyed by `cache_key` (dataset, options), the
  vocabulary settings and the spec's `content_digest` when it has one.

  Examples that name a `target_language` add its token (`special_tokens.language_token`) to the
  target vocabulary as one symbol (SentencePiece: a user-defined piece).  A dataset read in both
  directions gets one SentencePiece model shared by both sides.
  """
  kinds = side_tokenizers(spec)
  sources = [e.source for e in train_examples]
  targets = [r for e in train_examples for r in e.references]
  tokens = tuple(sorted({language_token(e.target_language) for e in train_examples if e.target_language}))
  if kinds[0] == "audio":
    if vocab_size or shared:
      raise UsageError("--vocab_size/--shared_vocab apply to SentencePiece datasets; this one is audio -> symbols")
    alphabet = spec.target_separator.join(getattr(spec, "target_symbols", ()))
    return AudioInput(), Vocabulary.from_texts(targets + [alphabet], spec.target_separator)
  if "sentencepiece" not in kinds:
    if vocab_size or shared:
      raise UsageError("this dataset uses exact symbol vocabularies; --vocab_size/--shared_vocab apply "
                       "to SentencePiece (natural-language) datasets")
    return (Vocabulary.from_texts(sources, spec.source_separator),
            Vocabulary.from_texts(targets, spec.target_separator).with_tokens(tokens))
  shared = shared or getattr(spec, "both_directions", False)
  if shared and kinds != ("sentencepiece", "sentencepiece"):
    raise UsageError(f"--shared_vocab needs SentencePiece on both sides; this dataset's source uses "
                     f"{kinds[0]}, its target {kinds[1]}")
  vocab_size = vocab_size or spec.default_vocab_size
  if vocab_size <= 0:
    raise UsageError(f"--vocab_size must be a positive integer for SentencePiece datasets, got {vocab_size}")
  path = key = None
  if cache_dir:
    key = {**(cache_key or {}), "vocab_size": vocab_size, "shared": shared}
    if tokens:
      key["language_tokens"] = list(tokens)
    if getattr(spec, "content_digest", ""):
      key.update(data=spec.content_digest, tokenizers=list(kinds),
                 separators=[spec.source_separator, spec.target_separator])
    path = _vocabulary_cache_path(cache_dir, key)
    if os.path.exists(path):
      with open(path) as f:
        saved = json.load(f)
      return vocabulary_from_json(saved["source"]), vocabulary_from_json(saved["target"])
  if shared:
    texts = sources + targets
    if getattr(spec, "both_directions", False):  # each text is once a source and once a target
      texts = list(dict.fromkeys(texts))
    source = target = train_sentencepiece(texts, vocab_size, user_defined_symbols=tokens)
  else:
    source, target = (train_sentencepiece(texts, vocab_size, user_defined_symbols=symbols) if kind == "sentencepiece"
                      else Vocabulary.from_texts(texts, separator)
                      for kind, texts, separator, symbols in zip(kinds, (sources, targets),
                                                                 (spec.source_separator, spec.target_separator),
                                                                 ((), tokens)))
    if tokens and isinstance(target, Vocabulary):
      target = target.with_tokens(tokens)
  if path:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"  # processes building one vocabulary at once each write their own
    with open(tmp, "w") as f:
      json.dump({"key": key, "source": source.to_json(), "target": target.to_json()}, f)
    os.replace(tmp, path)
  return source, target


@dataclasses.dataclass(frozen=True)
class EncodedPairs:
  """Token-id pairs, one per (source, reference); `example_index` maps a pair to its example."""
  sources: list[np.ndarray]
  targets: list[np.ndarray]
  example_index: np.ndarray
  dropped: int  # pairs longer than the longest bucket
  source_unit: int = 1  # samples per source length unit (audio: a 10 ms hop; text: 1 token)


def encode_pairs(examples: list[Example], source_vocab, target_vocab, max_source_length: int,
                 max_target_length: int | None = None, all_references: bool = True) -> EncodedPairs:
  """Tokenizes every (source, reference) pair (targets end with EOS); drops pairs whose source is
  longer than `max_source_length` or target longer than `max_target_length` (default: the same).
  `all_references=False` keeps only each example's first reference.  An example with a
  `target_language` gets its token first in the target: [<2xx>, y_1, ..., EOS], so the decoder
  reads BOS, <2xx>, y_1, ... (at decoding the token is the prompt, `DecodingOptions.prompt`)."""
  max_target_length = max_target_length or max_source_length
  unit = getattr(source_vocab, "unit", 1)
  sources, targets, index, dropped = [], [], [], 0
  for i, ex in enumerate(examples):
    src = np.asarray(source_vocab.encode(ex.source), np.int32)
    start = [target_vocab.token_id(language_token(ex.target_language))] if ex.target_language else []
    for ref in ex.references if all_references else ex.references[:1]:
      tgt = np.asarray(start + target_vocab.encode(ref, add_eos=True), np.int32)
      if source_length(src, unit) > max_source_length or len(tgt) > max_target_length:
        dropped += 1
        continue
      sources.append(src)
      targets.append(tgt)
      index.append(i)
  return EncodedPairs(sources, targets, np.asarray(index, np.int64), dropped, unit)


def source_length(source: np.ndarray, unit: int = 1) -> int:
  """A source's length in units of `unit` samples (audio: 10 ms hops), rounded up; tokens for text."""
  return -(-len(source) // unit)


def bucket_of(length: int, boundaries) -> int:
  """Index of the smallest boundary >= length."""
  return int(np.searchsorted(np.asarray(boundaries), length, side="left"))


def coarser_buckets(boundaries, growth: float = 1.5) -> tuple[int, ...]:
  """The boundaries from the first on, each kept one at least `growth` x the previous kept one,
  and always the last: (6, 7, 8, 9, 10, 11, 12, 14, 16, 20, 32) -> (6, 9, 14, 32).  Fine buckets
  save padding in training steps; a search loop compiles per shape for seconds and ends with its
  rows whatever the padding, so decoding batches by the coarser set."""
  kept = [boundaries[0]]
  for b in boundaries[1:-1]:
    if b >= growth * kept[-1]:
      kept.append(b)
  if boundaries[-1] != kept[-1]:
    kept.append(boundaries[-1])
  return tuple(kept)


def pad_batch(rows: list[np.ndarray], length: int, num_rows: int) -> np.ndarray:
  """Right-pads each row with 0 to `length` and the batch with all-pad rows to `num_rows`."""
  out = np.zeros((num_rows, length), np.int32)
  for r, row in enumerate(rows):
    out[r, : len(row)] = row
  return out


def rows_per_bucket(boundaries, batch_size: int, max_tokens: int = 0, multiple_of: int = 1) -> tuple[int, ...]:
  """Rows of a batch in each length bucket: `batch_size`, or with a token budget the most rows with
  rows x length <= max_tokens, rounded down to a multiple of `multiple_of` (the device count)."""
  if not max_tokens:
    return tuple(batch_size for _ in boundaries)
  rows = tuple((max_tokens // length) // multiple_of * multiple_of for length in boundaries)
  if min(rows) == 0:
    raise UsageError(f"--max_tokens={max_tokens} cannot hold {multiple_of} row(s) of the longest bucket "
                     f"({max(boundaries)} tokens); raise it to at least {multiple_of * max(boundaries)}")
  return rows


class TrainBatches:
  """Random access to training batches by step: `batches[step]` -> batch dict.

  Every epoch uses the same buckets and batch count; only the order changes (seeded by
  (seed, epoch)).  Incomplete batches at the end of a bucket are left for the next epoch's shuffle.
  With `max_tokens`, each bucket's batches have `rows_per_bucket` rows instead of `batch_size`.
  """

  def __init__(self, pairs: EncodedPairs, batch_size: int, boundaries=DEFAULT_BUCKETS, seed: int = 0,
               max_tokens: int = 0, multiple_of: int = 1):
    self.pairs, self.boundaries, self.seed = pairs, tuple(boundaries), seed
    self.rows = rows_per_bucket(self.boundaries, batch_size, max_tokens, multiple_of)
    self.unit = pairs.source_unit
    lengths = [source_length(s, self.unit) if self.unit > 1 else max(len(s), len(t))
               for s, t in zip(pairs.sources, pairs.targets)]
    self.target_length = max((len(t) for t in pairs.targets), default=1)
    self.bucket = np.asarray([bucket_of(n, self.boundaries) for n in lengths])
    self.steps_per_epoch = sum(int(np.sum(self.bucket == b)) // self.rows[b] for b in range(len(self.boundaries)))
    if self.steps_per_epoch == 0:
      raise UsageError(f"the batch ({batch_size} rows or {max_tokens} tokens) is larger than every length "
                       f"bucket of the training set ({len(lengths)} pairs); use a smaller batch")
    self._epoch, self._plan = None, None

  def epoch_plan(self, epoch: int) -> grain.MapDataset:
    """The epoch's batches as a grain MapDataset of (bucket, indices) -> padded batch dicts."""
    rng = np.random.default_rng([self.seed, epoch])
    order = rng.permutation(len(self.bucket))
    plan = []
    for b in range(len(self.boundaries)):
      members = order[self.bucket[order] == b]
      rows = self.rows[b]
      for start in range(0, len(members) - rows + 1, rows):
        plan.append((b, members[start:start + rows]))
    plan = [plan[i] for i in rng.permutation(len(plan))]
    return grain.MapDataset.source(plan).map(self._collate)

  def _collate(self, item) -> dict:
    bucket, idx = item
    rows = self.rows[bucket]
    source_len, target_len = self.boundaries[bucket], self.boundaries[bucket]
    if self.unit > 1:  # audio: sources in samples, targets to the longest target of the data
      source_len, target_len = source_len * self.unit, self.target_length
    return {
        "inputs": pad_batch([self.pairs.sources[i] for i in idx], source_len, rows),
        "targets": pad_batch([self.pairs.targets[i] for i in idx], target_len, rows),
    }

  def __getitem__(self, step: int) -> dict:
    epoch, position = divmod(step, self.steps_per_epoch)
    if epoch != self._epoch:
      self._epoch, self._plan = epoch, self.epoch_plan(epoch)
    return self._plan[position]

  def position(self, step: int) -> dict:
    """The data-iterator position reached after `step` batches (saved in checkpoints)."""
    epoch, batch = divmod(step, self.steps_per_epoch)
    return {"seed": self.seed, "epoch": epoch, "batch_in_epoch": batch, "steps_per_epoch": self.steps_per_epoch}


def eval_batches(sources: list[np.ndarray], targets: list[np.ndarray] | None, batch_size: int,
                 boundaries=DEFAULT_BUCKETS, source_unit: int = 1):
  """Yields (row_indices, batch) covering every row once, grouped by bucket, padded with all-pad
  rows to `batch_size` (so each bucket compiles once).  `targets=None` gives inputs only.
  source_unit > 1 (audio): sources are bucketed by their length in units of that many samples and
  padded to the bucket in samples; targets are padded to the longest target."""
  if source_unit > 1:
    lengths = [source_length(s, source_unit) for s in sources]
  else:
    lengths = [max(len(s), len(t) if targets else 0) for s, t in
               zip(sources, targets if targets else sources)]
  target_length = max((len(t) for t in targets), default=1) if targets else 0
  buckets = np.asarray([bucket_of(n, boundaries) for n in lengths])
  for b in range(len(boundaries)):
    members = np.flatnonzero(buckets == b)
    for start in range(0, len(members), batch_size):
      idx = members[start:start + batch_size]
      batch = {"inputs": pad_batch([sources[i] for i in idx], boundaries[b] * source_unit, batch_size)}
      if targets:
        batch["targets"] = pad_batch([targets[i] for i in idx],
                                     target_length if source_unit > 1 else boundaries[b], batch_size)
      yield idx, batch
