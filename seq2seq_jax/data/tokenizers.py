"""Vocabularies: characters (graphemes), whitespace-separated symbols (phonemes, synthetic tasks)
and SentencePiece subwords (natural language, Kudo & Richardson 2018).

Ids 0, 1, 2 are reserved in every vocabulary: PAD=0, BOS=1, EOS=2.  A vocabulary is saved as JSON
next to every checkpoint (`to_json` / `vocabulary_from_json`) so that decoding uses exactly the ids
the model was trained with and never retrains a SentencePiece model.
"""

import base64
import dataclasses
import functools
import io
import json

import numpy as np

from seq2seq_jax.errors import UsageError
from seq2seq_jax.special_tokens import BOS_ID, EOS_ID, LANGUAGE_TOKEN, PAD_ID

SPECIALS = ("<pad>", "<s>", "</s>")


def content_ids(ids) -> list[int]:
  """The ids before the first EOS, without PAD/BOS."""
  out = []
  for i in map(int, ids):
    if i == EOS_ID:
      break
    if i >= len(SPECIALS):
      out.append(i)
  return out


class OutOfVocabularyError(UsageError):
  """A text holds a symbol the vocabulary does not know."""


@dataclasses.dataclass(frozen=True)
class Vocabulary:
  """symbols: the non-special symbols in id order (ids start at 3).  separator "" = characters."""
  symbols: tuple[str, ...]
  separator: str = ""

  @classmethod
  def from_texts(cls, texts, separator: str = "") -> "Vocabulary":
    seen = set()
    for text in texts:
      seen.update(cls._split(text, separator))
    return cls(tuple(sorted(seen)), separator)

  @staticmethod
  def _split(text: str, separator: str) -> list[str]:
    if separator == "":
      return list(text)
    return text.split(separator) if text else []

  @property
  def size(self) -> int:
    return len(SPECIALS) + len(self.symbols)

  @functools.cached_property
  def _ids(self) -> dict[str, int]:
    return {s: i + len(SPECIALS) for i, s in enumerate(self.symbols)}

  def encode(self, text: str, add_eos: bool = False) -> list[int]:
    """text -> ids (no BOS); raises OutOfVocabularyError naming the unknown symbols."""
    table = self._ids
    unknown = sorted({s for s in self._split(text, self.separator) if s not in table})
    if unknown:
      raise OutOfVocabularyError(
          f"{text!r} contains symbols outside the vocabulary: {' '.join(map(repr, unknown))}")
    ids = [table[s] for s in self._split(text, self.separator)]
    return ids + [EOS_ID] if add_eos else ids

  def decode(self, ids) -> str:
    """ids -> text, stopping at the first EOS and skipping PAD/BOS."""
    out = [self.symbols[i - len(SPECIALS)] for i in content_ids(ids)]
    return self.separator.join(out)

  def token_id(self, token: str) -> int:
    """The id of one whole symbol (e.g. a language token); UsageError if the vocabulary lacks it."""
    if token not in self._ids:
      raise UsageError(f"the vocabulary has no token {token!r}")
    return self._ids[token]

  def language_token_ids(self) -> tuple[int, ...]:
    """Ids of the target-language tokens (`special_tokens.language_token`) in this vocabulary."""
    return tuple(i for s, i in self._ids.items() if LANGUAGE_TOKEN.fullmatch(s))

  def with_tokens(self, tokens) -> "Vocabulary":
    """This vocabulary with `tokens` added as whole symbols (ids in sorted order with the rest)."""
    return Vocabulary(tuple(sorted(set(self.symbols) | set(tokens))), self.separator)

  def to_json(self) -> str:
    return json.dumps({"type": "symbols", "symbols": list(self.symbols), "separator": self.separator,
                       "specials": list(SPECIALS)}, ensure_ascii=False, indent=1)

  @classmethod
  def from_json(cls, text: str) -> "Vocabulary":
    d = json.loads(text)
    return cls(tuple(d["symbols"]), d["separator"])


@dataclasses.dataclass(frozen=True)
class SentencePieceVocabulary:
  """A SentencePiece model (serialized proto) with PAD=0, BOS=1, EOS=2 and UNK=3.

  `separator` is " ": decoded text is detokenised words, so symbol error rates count words.
  """
  model_proto: bytes
  separator: str = " "

  @functools.cached_property
  def _processor(self):
    import sentencepiece as spm  # pylint: disable=g-import-not-at-top
    return spm.SentencePieceProcessor(model_proto=self.model_proto)

  @property
  def size(self) -> int:
    return self._processor.get_piece_size()

  def encode(self, text: str, add_eos: bool = False) -> list[int]:
    """text -> subword ids (no BOS); unknown characters map to UNK (id 3)."""
    ids = self._processor.encode(text)
    return ids + [EOS_ID] if add_eos else ids

  def decode(self, ids) -> str:
    """ids -> detokenised text, stopping at the first EOS and skipping PAD/BOS."""
    return self._processor.decode(content_ids(ids))

  def token_id(self, token: str) -> int:
    """The id of one whole piece (e.g. a language token trained as a user-defined symbol);
    UsageError if the model lacks it."""
    i = self._processor.piece_to_id(token)
    if i == len(SPECIALS) and token != self._processor.id_to_piece(i):  # unknown pieces map to UNK
      raise UsageError(f"the vocabulary has no token {token!r}")
    return i

  def language_token_ids(self) -> tuple[int, ...]:
    """Ids of the target-language tokens (`special_tokens.language_token`) in this vocabulary."""
    p = self._processor
    return tuple(i for i in range(p.get_piece_size()) if LANGUAGE_TOKEN.fullmatch(p.id_to_piece(i)))

  def pieces(self, ids) -> list[str]:
    """Subword strings of `ids` (for attention plots and debugging)."""
    return [self._processor.id_to_piece(int(i)) for i in ids]

  def to_json(self) -> str:
    return json.dumps({"type": "sentencepiece", "model": base64.b64encode(self.model_proto).decode("ascii"),
                       "specials": list(SPECIALS)}, indent=1)

  def __eq__(self, other):
    return isinstance(other, SentencePieceVocabulary) and self.model_proto == other.model_proto

  def __hash__(self):
    return hash(self.model_proto)


def train_sentencepiece(texts, vocab_size: int, model_type: str = "unigram",
                        user_defined_symbols: tuple[str, ...] = ()) -> SentencePieceVocabulary:
  """Trains a SentencePiece model on `texts` (an iterable of str) with our special-token ids;
  `user_defined_symbols` (e.g. language tokens) become pieces of their own, right after UNK."""
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top
  texts = [t for t in texts if t]
  if not texts:
    raise UsageError("cannot train a SentencePiece vocabulary on an empty training split")
  model = io.BytesIO()
  try:
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size, model_type=model_type,
        pad_id=PAD_ID, bos_id=BOS_ID, eos_id=EOS_ID, unk_id=len(SPECIALS), character_coverage=1.0,
        num_threads=1, minloglevel=2, input_sentence_size=0, shuffle_input_sentence=False,
        **({"user_defined_symbols": list(user_defined_symbols)} if user_defined_symbols else {}))
  except RuntimeError as e:  # e.g. vocab_size larger than the corpus allows
    raise UsageError(f"SentencePiece training failed for --vocab_size={vocab_size}: {str(e).splitlines()[-1].split('] ')[-1]}") from e
  return SentencePieceVocabulary(model.getvalue())


@dataclasses.dataclass(frozen=True)
class AudioInput:
  """The source side of a speech dataset: int16 samples at `sample_rate`, passed through as they
  are (the model computes its own features).  Lengths are counted in `unit` samples (a 10 ms hop),
  so length buckets and --max_source_length are in hops.  No ids: `size` is 1 (PAD only)."""
  sample_rate: int = 16000
  unit: int = 160
  separator = ""

  @property
  def size(self) -> int:
    return 1

  def encode(self, audio, add_eos: bool = False) -> np.ndarray:
    del add_eos
    return np.asarray(audio, np.int16)

  def to_json(self) -> str:
    return json.dumps({"type": "audio", "sample_rate": self.sample_rate, "unit": self.unit})


def vocabulary_from_json(text: str):
  """Any vocabulary kind from its `to_json` text."""
  d = json.loads(text)
  if d.get("type") == "audio":
    return AudioInput(d["sample_rate"], d["unit"])
  if d.get("type") == "sentencepiece":
    return SentencePieceVocabulary(base64.b64decode(d["model"]))
  return Vocabulary.from_json(text)
