"""Symbol vocabularies: characters (graphemes) and whitespace-separated symbols (phonemes).

Ids 0, 1, 2 are reserved in every vocabulary: PAD=0, BOS=1, EOS=2.  A vocabulary is saved as JSON
next to every checkpoint so that decoding uses exactly the ids the model was trained with.
"""

import dataclasses
import functools
import json

from seq2seq_jax.errors import UsageError

PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
SPECIALS = ("<pad>", "<s>", "</s>")


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
    out = []
    for i in ids:
      i = int(i)
      if i == EOS_ID:
        break
      if i >= len(SPECIALS):
        out.append(self.symbols[i - len(SPECIALS)])
    return self.separator.join(out)

  def to_json(self) -> str:
    return json.dumps({"symbols": list(self.symbols), "separator": self.separator,
                       "specials": list(SPECIALS)}, ensure_ascii=False, indent=1)

  @classmethod
  def from_json(cls, text: str) -> "Vocabulary":
    d = json.loads(text)
    return cls(tuple(d["symbols"]), d["separator"])
