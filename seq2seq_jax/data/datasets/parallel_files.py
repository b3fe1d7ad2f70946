"""Your own parallel text as a TFDS dataset (array_record): `files:PREFIX`.

Layouts (one per prefix; finding both is an error):

* `PREFIX.<split>.tsv`: one `source<TAB>target` per line;
* `PREFIX.<split>.src` and `PREFIX.<split>.tgt`: aligned files, line i of one is the pair of line i
  of the other.

`<split>` is `train`, `validation` or `test`; train and test are required.  A relative PREFIX is
resolved against the current directory.  Files are UTF-8 (a byte-order mark is ignored); each side
is stripped and runs of whitespace become one space; empty lines at the end of a file are ignored.
Several lines with the same source in one split are one example with several references
(distinct, in file order).
Without a validation file, `VALIDATION_FRACTION` of the training sources (drawn with
`numpy.random.default_rng(VALIDATION_SEED)`, whole examples, so references stay together) become
the validation split, and the builder says so in one line when it loads.

Every error is one line, a `UsageError`; an error in a file names the file and line
(`data.train.tsv:7: no tab; ...`), a missing split the files looked for.

The prepared data is keyed by a SHA-256 of the files' content (`digest`): the TFDS config is named
`<prefix base name>-<digest[:16]>`, so the same files are prepared once and edited files get a
new preparation.  `choose_tokenizer` picks each side's vocabulary kind from the training split.
"""

import codecs
import dataclasses
import functools
import hashlib
import os
import re

import numpy as np
import tensorflow_datasets as tfds

from seq2seq_jax.errors import UsageError

SPLITS = ("train", "validation", "test")
REQUIRED_SPLITS = ("train", "test")
VALIDATION_FRACTION = 0.05
VALIDATION_SEED = 0
MAX_SYMBOLS = 500  # a side with more distinct whitespace tokens than this gets SentencePiece
TOKENIZERS = ("chars", "symbols", "sentencepiece")


@dataclasses.dataclass(frozen=True)
class Pair:
  """One line's pair, and where each side came from ("file:line")."""
  source: str
  target: str
  source_origin: str
  target_origin: str


@dataclasses.dataclass(frozen=True)
class ParallelText:
  """The parsed files of one prefix.

  `files`: split -> the paths read (as given: one .tsv, or .src and .tgt).  `pairs`: split -> Pair
  list in file order (a carved validation split holds the training lines it took).  `examples`:
  split -> [(source, references)] in order of first appearance.  `carved`: no validation file.
  """
  prefix: str
  files: dict
  digest: str
  pairs: dict
  examples: dict
  carved: bool


# --- Finding the files ---------------------------------------------------------------------------


def _path(root: str, path: str) -> str:
  """`path` (as given, `~` allowed) resolved against `root` when relative."""
  return os.path.join(root, os.path.expanduser(path))


def _exists(root: str, path: str) -> bool:
  return os.path.isfile(_path(root, path))


def find_files(prefix: str, root: str) -> dict[str, tuple[str, ...]]:
  """split -> (PREFIX.split.tsv,) or (PREFIX.split.src, PREFIX.split.tgt), for the splits present
  under `root` (the directory a relative prefix is resolved against).  UsageError for both layouts,
  a .src without its .tgt (or the reverse), or a missing train or test split."""
  if not prefix:
    raise UsageError("files: needs a path prefix, e.g. --dataset=files:data/mine for data/mine.train.tsv")
  tsv = {s: f"{prefix}.{s}.tsv" for s in SPLITS if _exists(root, f"{prefix}.{s}.tsv")}
  aligned = {s: (f"{prefix}.{s}.src", f"{prefix}.{s}.tgt") for s in SPLITS
             if _exists(root, f"{prefix}.{s}.src") or _exists(root, f"{prefix}.{s}.tgt")}
  if tsv and aligned:
    one_tsv = next(iter(tsv.values()))
    one_aligned = next(p for paths in aligned.values() for p in paths if _exists(root, p))
    raise UsageError(f"files:{prefix}: found both {one_tsv} and {one_aligned}; keep one layout per "
                     "prefix (.tsv files or .src/.tgt files)")
  for src, tgt in aligned.values():
    if not (_exists(root, src) and _exists(root, tgt)):
      have, lack = (src, tgt) if _exists(root, src) else (tgt, src)
      raise UsageError(f"{have} has no partner {lack} (aligned files come in pairs)")
  found = tsv or aligned
  for split in REQUIRED_SPLITS:
    if split not in found:
      raise UsageError(f"files:{prefix}: no {split} split; looked for {prefix}.{split}.tsv, or "
                       f"{prefix}.{split}.src and {prefix}.{split}.tgt")
  return {s: (found[s],) if s in tsv else found[s] for s in SPLITS if s in found}


# --- Reading -------------------------------------------------------------------------------------


def normalise(text: str) -> str:
  """Strips `text` and turns each run of whitespace into one space."""
  return " ".join(text.split())


def decode_lines(data: bytes, path: str) -> list[str]:
  """The lines of a UTF-8 file's bytes (no line ends or byte-order mark; empty lines at the end
  dropped); UsageError `path:line: not valid UTF-8` for a line that does not decode."""
  lines = data.removeprefix(codecs.BOM_UTF8).split(b"\n")
  while lines and not lines[-1].strip():
    lines.pop()
  out = []
  for number, raw in enumerate(lines, 1):
    try:
      out.append(raw.decode("utf-8").rstrip("\r"))
    except UnicodeDecodeError as e:
      raise UsageError(f"{path}:{number}: not valid UTF-8 ({e.reason} at byte {e.start} of the line)") from None
  return out


def _pair(source: str, target: str, source_origin: str, target_origin: str) -> Pair:
  source, target = normalise(source), normalise(target)
  if not source:
    raise UsageError(f"{source_origin}: empty source")
  if not target:
    raise UsageError(f"{target_origin}: empty target")
  return Pair(source, target, source_origin, target_origin)


def tsv_pairs(lines: list[str], path: str) -> list[Pair]:
  """`source<TAB>target` lines -> Pairs; UsageError `path:line: ...` for a line without exactly
  one tab or with an empty side."""
  pairs = []
  for number, line in enumerate(lines, 1):
    origin = f"{path}:{number}"
    fields = line.split("\t")
    if len(fields) == 1:
      raise UsageError(f"{origin}: no tab; each line must be source<TAB>target")
    if len(fields) > 2:
      raise UsageError(f"{origin}: {len(fields) - 1} tabs; each line must be source<TAB>target (one tab)")
    pairs.append(_pair(*fields, origin, origin))
  return pairs


def aligned_pairs(sources: list[str], targets: list[str], source_path: str, target_path: str) -> list[Pair]:
  """Line i of the .src file with line i of the .tgt file; UsageError for different line counts
  (naming the first line that has no partner) or an empty side."""
  if len(sources) != len(targets):
    longer = source_path if len(sources) > len(targets) else target_path
    raise UsageError(f"{longer}:{min(len(sources), len(targets)) + 1}: {source_path} has {len(sources)} lines "
                     f"but {target_path} has {len(targets)}; aligned files need the same number of lines")
  return [_pair(s, t, f"{source_path}:{n}", f"{target_path}:{n}")
          for n, (s, t) in enumerate(zip(sources, targets), 1)]


def group_references(pairs: list[Pair]) -> list[tuple[str, tuple[str, ...]]]:
  """[(source, distinct references)] in order of each source's first line."""
  grouped: dict[str, list[str]] = {}
  for pair in pairs:
    refs = grouped.setdefault(pair.source, [])
    if pair.target not in refs:
      refs.append(pair.target)
  return [(source, tuple(refs)) for source, refs in grouped.items()]


def carve_validation(pairs: list[Pair], path: str, fraction: float = VALIDATION_FRACTION,
                     seed: int = VALIDATION_SEED) -> tuple[list[Pair], list[Pair]]:
  """(train, validation) pairs: `fraction` of the distinct sources (at least one, at most all
  but one), drawn with default_rng(seed), go to validation with all their lines."""
  sources = list(dict.fromkeys(p.source for p in pairs))
  if len(sources) < 2:
    raise UsageError(f"{path}: {len(sources)} distinct source(s) are too few to take a validation split "
                     "from; add a validation file")
  count = min(max(1, round(fraction * len(sources))), len(sources) - 1)
  chosen = {sources[i] for i in np.random.default_rng(seed).permutation(len(sources))[:count]}
  return [p for p in pairs if p.source not in chosen], [p for p in pairs if p.source in chosen]


def _read_bytes(root: str, path: str) -> bytes:
  with open(_path(root, path), "rb") as f:
    return f.read()


def digest(contents: dict[str, tuple[bytes, ...]]) -> str:
  """SHA-256 (hex) of the layout and bytes of every split's files."""
  h = hashlib.sha256()
  for split in SPLITS:
    for i, data in enumerate(contents.get(split, ())):
      h.update(f"{split}:{i}:{len(data)}\n".encode())
      h.update(data)
  return h.hexdigest()


def _split_pairs(paths: tuple[str, ...], contents: tuple[bytes, ...]) -> list[Pair]:
  lines = [decode_lines(data, path) for path, data in zip(paths, contents)]
  return tsv_pairs(lines[0], paths[0]) if len(paths) == 1 else aligned_pairs(*lines, *paths)


def _stamp(root: str, files: dict) -> tuple:
  """What changes when a file is replaced or edited: its inode, size and times."""
  stats = [os.stat(_path(root, p)) for paths in files.values() for p in paths]
  return tuple((s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns) for s in stats)


def read(prefix: str, root: str | None = None) -> ParallelText:
  """Finds, checks and parses the files of `prefix` (relative to `root`, default the current
  directory).  Within a process the result is reused while the files' sizes and times stay."""
  root = os.path.abspath(root or os.getcwd())
  files = find_files(prefix, root)
  return _read(prefix, root, tuple(files.items()), _stamp(root, files))


@functools.lru_cache(maxsize=4)
def _read(prefix: str, root: str, files: tuple, stamp: tuple) -> ParallelText:
  del stamp  # part of the cache key only
  files = dict(files)
  contents = {split: tuple(_read_bytes(root, p) for p in paths) for split, paths in files.items()}
  pairs = {split: _split_pairs(files[split], contents[split]) for split in files}
  carved = "validation" not in files
  if carved:
    pairs["train"], pairs["validation"] = carve_validation(pairs["train"], files["train"][0])
  examples = {split: group_references(pairs[split]) for split in SPLITS}
  return ParallelText(prefix, files, digest(contents), pairs, examples, carved)


# --- Vocabulary kinds ----------------------------------------------------------------------------


def choose_tokenizer(texts: list[str], max_symbols: int = MAX_SYMBOLS) -> str:
  """"chars" when no text has a space; "symbols" when the texts hold at most `max_symbols`
  distinct space-separated tokens; else "sentencepiece"."""
  if not any(" " in t for t in texts):
    return "chars"
  tokens = set()
  for text in texts:
    tokens.update(text.split(" "))
    if len(tokens) > max_symbols:
      return "sentencepiece"
  return "symbols"


def side_texts(data: ParallelText, split: str, side: str) -> list[str]:
  """The source texts, or every reference, of one split."""
  if side == "source":
    return [source for source, _ in data.examples[split]]
  return [ref for _, refs in data.examples[split] for ref in refs]


def tokenizers(data: ParallelText, source: str | None = None, target: str | None = None) -> tuple[str, str]:
  """(source, target) vocabulary kinds: the given ones, else `choose_tokenizer` on the training
  split; UsageError for a kind not in TOKENIZERS."""
  chosen = []
  for side, given in (("source", source), ("target", target)):
    if given is not None and given not in TOKENIZERS:
      raise UsageError(f"{side}_tokenizer must be one of {', '.join(TOKENIZERS)}, got {given!r}")
    chosen.append(given or choose_tokenizer(side_texts(data, "train", side)))
  return tuple(chosen)


def _symbols(text: str, kind: str) -> list[str]:
  return list(text) if kind == "chars" else text.split(" ")


def check_symbols_covered(data: ParallelText, kinds: tuple[str, str]) -> None:
  """UsageError `file:line: ...` for a validation or test line holding a character or symbol that
  the training split lacks, on a side whose vocabulary is exact (chars or symbols)."""
  for i, (side, kind) in enumerate(zip(("source", "target"), kinds)):
    if kind == "sentencepiece":
      continue
    known = {s for text in side_texts(data, "train", side) for s in _symbols(text, kind)}
    for split in ("validation", "test"):
      for pair in data.pairs[split]:
        text, origin = (pair.source, pair.source_origin) if i == 0 else (pair.target, pair.target_origin)
        unknown = sorted(set(_symbols(text, kind)) - known)
        if unknown:
          carved = split == "validation" and data.carved
          carved = " (a line taken for validation: add a validation file)" if carved else ""
          raise UsageError(f"{origin}: {side} {'characters' if kind == 'chars' else 'symbols'} "
                           f"{' '.join(map(repr, unknown))} never occur in the training split{carved}; "
                           f"the {kind} vocabulary comes from it: add them to training lines or "
                           f"use --{side}_tokenizer=sentencepiece")


# --- TFDS builder --------------------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class FilesConfig(tfds.core.BuilderConfig):
  prefix: str = ""  # as given
  root: str = ""  # the directory a relative prefix is resolved against
  digest: str = ""


def builder_config(data: ParallelText, root: str | None = None) -> FilesConfig:
  """The TFDS config of parsed files: named `<base name>-<digest[:16]>`."""
  base = re.sub(r"[^\w.-]+", "_", os.path.basename(data.prefix)).strip("._-") or "files"
  return FilesConfig(name=f"{base}-{data.digest[:16]}", description=f"files:{data.prefix}",
                     prefix=data.prefix, root=os.path.abspath(root or os.getcwd()), digest=data.digest)


def carved_note(data: ParallelText, sizes: dict[str, int]) -> str:
  """The one line that says the validation split was taken from the training file."""
  wanted = f"{data.prefix}.validation." + ("tsv" if len(data.files["train"]) == 1 else "src/.tgt")
  return (f"files:{data.prefix}: no {wanted}; validation = "
          f"{sizes['validation']} examples ({VALIDATION_FRACTION:.0%} of the sources of "
          f"{data.files['train'][0]}, seed {VALIDATION_SEED}), train keeps {sizes['train']}")


class ParallelTextFiles(tfds.core.GeneratorBasedBuilder):
  """`files:PREFIX`; pass `config=builder_config(read(prefix))`."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "TSV or .src/.tgt files, references grouped by source, 5% validation if none."}

  def __init__(self, *, config: FilesConfig, **kwargs):
    super().__init__(config=config, **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "source": tfds.features.Text(),
            "references": tfds.features.Sequence(tfds.features.Text()),
        }),
        supervised_keys=None,
    )

  def _data(self) -> ParallelText:
    config = self.builder_config
    data = read(config.prefix, config.root)
    if data.digest != config.digest:
      raise UsageError(f"files:{config.prefix} changed while being prepared; run again")
    return data

  def _split_generators(self, dl_manager):
    del dl_manager  # Local files.
    data = self._data()
    return {split: self._generate_examples(data.examples[split]) for split in SPLITS}

  def _generate_examples(self, examples):
    for i, (source, references) in enumerate(examples):
      yield i, {"source": source, "references": list(references)}

  def download_and_prepare(self, *args, **kwargs):
    """Prepares the files once per content; says so when validation came from the training file."""
    super().download_and_prepare(*args, **kwargs)
    data = self._data()
    if data.carved:
      print(carved_note(data, {split: len(data.examples[split]) for split in SPLITS}), flush=True)
