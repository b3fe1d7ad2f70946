"""`--dataset=files:PREFIX`: your own parallel text, trained and decoded with no code.

Layouts (TSV, aligned .src/.tgt), references grouped by source, a validation split taken from
train when there is none, the vocabulary kind chosen per side, the content-hash cache, and one
`file:line` error per kind of bad file from `python -m experiments.train`."""

import json
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO
from seq2seq_jax.data import datasets, pipeline
from seq2seq_jax.data.datasets import parallel_files
from seq2seq_jax.errors import UsageError

NUMBERS = "files:experiments/own_data/numbers"
TINY = ["--d_model=32", "--num_heads=2", "--d_ff=64", "--num_layers=1", "--num_train_steps=20",
        "--batch_size=16", "--eval_batch_size=16", "--max_eval_examples=8", "--max_test_examples=8",
        "--eval_every_steps=1000", "--checkpoint_every_steps=1000", "--warmup_steps=10",
        "--length_buckets=16", "--max_source_length=16", "--max_target_length=16", "--beam_size=0"]
WORDS = "red blue green cat dog bird big small old new".split()


def command(module: str, *flags) -> list[str]:
  return [sys.executable, "-m", f"experiments.{module}", *flags]


def start(module: str, *flags) -> subprocess.Popen:
  """experiments.<module> on one host device, from the repository root."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
  return subprocess.Popen(command(module, *flags), cwd=REPO, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen, check: bool = True) -> tuple[int, str, str]:
  out, err = proc.communicate(timeout=300)
  if check and proc.returncode:
    raise AssertionError(f"{proc.args} failed ({proc.returncode}):\n{err[-3000:]}")
  return proc.returncode, out, err


def write(path, text) -> str:
  """Writes `text` (str, or bytes as they are) to `path`; returns the path."""
  mode = "wb" if isinstance(text, bytes) else "w"
  with open(path, mode, **({} if isinstance(text, bytes) else {"encoding": "utf-8"})) as f:
    f.write(text)
  return str(path)


def phrase(i: int) -> tuple[str, str]:
  """A source of three words and its target: the words reversed, each capitalised."""
  words = [WORDS[i % 10], WORDS[(i // 10) % 10], WORDS[(i // 100) % 10]]
  return " ".join(words), " ".join(w.capitalize() for w in reversed(words))


def aligned_dataset(prefix) -> str:
  """PREFIX.{train,test}.src/.tgt (no validation): 300 / 20 phrases; one source twice in train
  with a second reference.  Returns the prefix."""
  train = [phrase(i) for i in range(300)] + [(phrase(7)[0], "Another One")]
  test = [phrase(i) for i in range(300, 320)]
  for split, pairs in (("train", train), ("test", test)):
    write(f"{prefix}.{split}.src", "".join(s + "\n" for s, _ in pairs))
    write(f"{prefix}.{split}.tgt", "".join(t + "\n" for _, t in pairs))
  return str(prefix)


# --- Train and decode ----------------------------------------------------------------------------


def test_tsv_and_aligned_files_train_end_to_end_and_decode(tmp_path):
  """The committed numbers TSV (symbols -> chars, WER/PER) and aligned .src/.tgt files with a
  SentencePiece target (BLEU/chrF) each train, test and decode; both runs go side by side."""
  data_dir = str(tmp_path / "tfds")
  prefix = aligned_dataset(tmp_path / "phrases")
  runs = {
      "numbers": start("train", f"--dataset={NUMBERS}", f"--workdir={tmp_path / 'numbers'}",
                       f"--data_dir={data_dir}", *TINY),
      "phrases": start("train", f"--dataset=files:{prefix}", f"--workdir={tmp_path / 'phrases_run'}",
                       f"--data_dir={data_dir}", "--target_tokenizer=sentencepiece", "--vocab_size=32", *TINY),
  }
  outputs = {name: finish(proc)[1] for name, proc in runs.items()}
  assert "no " + prefix + ".validation.src/.tgt; validation = 15 examples" in outputs["phrases"]
  numbers = json.load(open(tmp_path / "numbers" / "results.json"))
  phrases = json.load(open(tmp_path / "phrases_run" / "results.json"))
  assert {"wer", "per"} <= set(numbers["eval"]) and {"bleu", "chrf"} <= set(phrases["eval"])
  assert numbers["hardware"].startswith("cpu: ") and numbers["hardware"].endswith(" cores")  # provenance
  assert re.fullmatch(r"\d{4}-\d\d-\d\d", numbers["finished"])

  decoded = {
      "numbers": start("decode", f"--workdir={tmp_path / 'numbers'}", "--inputs=three hundred and five,forty-two"),
      "phrases": start("decode", f"--workdir={tmp_path / 'phrases_run'}", "--inputs=red cat big"),
  }
  lines = {name: finish(proc)[1].splitlines() for name, proc in decoded.items()}
  assert [line.split("\t")[0] for line in lines["numbers"]] == ["three hundred and five", "forty-two"]
  assert [line.split("\t")[0] for line in lines["phrases"]] == ["red cat big"]


# --- Reading, grouping, splitting ----------------------------------------------------------------


def test_references_are_grouped_and_a_missing_validation_split_is_taken_from_train(tmp_path, capsys):
  train = "\ufeff" + "".join(f"w{i}\tt{i}\n" for i in range(40)) + "w3\tt3bis\r\nw3 \t t3\nw5\tother\n\n"
  write(tmp_path / "d.train.tsv", train)
  write(tmp_path / "d.test.tsv", "w1\tt1\nw1\tt1b\n")
  name = f"files:{tmp_path / 'd'}"
  spec = datasets.spec(name)
  splits = {k: pipeline.read_examples(v, spec) for k, v in datasets.load(name, str(tmp_path / "tfds")).items()}
  note = capsys.readouterr().out.strip().splitlines()[-1]
  assert note == (f"{name}: no {tmp_path / 'd'}.validation.tsv; validation = 2 examples (5% of the "
                  f"sources of {tmp_path / 'd'}.train.tsv, seed 0), train keeps 38")
  refs = {ex.source: ex.references for split in splits.values() for ex in split}
  assert refs["w3"] == ("t3", "t3bis") and refs["w5"] == ("t5", "other")  # distinct, in file order
  assert "w0" in refs  # the byte-order mark is not text
  assert [ex.references for ex in splits["test"]] == [("t1", "t1b")]
  assert {len(v) for v in splits.values()} == {38, 2, 1}
  assert not {ex.source for ex in splits["validation"]} & {ex.source for ex in splits["train"]}


def test_the_vocabulary_kind_is_chosen_per_side_from_the_training_split(tmp_path):
  assert parallel_files.choose_tokenizer(["abc", "de"]) == "chars"
  assert parallel_files.choose_tokenizer(["HH AH L OW", "W ER L D"]) == "symbols"
  assert parallel_files.choose_tokenizer([f"word{i} x" for i in range(500)]) == "sentencepiece"
  assert parallel_files.choose_tokenizer([f"word{i}" for i in range(498)] + ["a b"]) == "symbols"

  # Source: many distinct words -> SentencePiece; target: no spaces -> characters.
  write(tmp_path / "m.train.tsv", "".join(f"word{i} and more\t{i}\n" for i in range(600)))
  write(tmp_path / "m.validation.tsv", "word2 and more\t2\n")
  write(tmp_path / "m.test.tsv", "word1 and more\t1\n")
  spec = datasets.spec(f"files:{tmp_path / 'm'}")
  assert pipeline.side_tokenizers(spec) == ("sentencepiece", "symbols")
  assert (spec.source_separator, spec.target_separator, spec.metrics) == (" ", "", ("wer", "per"))
  forced = datasets.spec(f"files:{tmp_path / 'm'}", datasets.DatasetOptions(
      source_tokenizer="symbols", target_tokenizer="sentencepiece"))
  assert pipeline.side_tokenizers(forced) == ("symbols", "sentencepiece") and forced.metrics == ("bleu", "chrf")
  source, target = pipeline.build_vocabularies(
      [datasets.Example(f"word{i} and more", (str(i),)) for i in range(600)], forced, vocab_size=20)
  assert source.size == 3 + 602 and target.size == 20

  with pytest.raises(UsageError, match="option source_tokenizer does not apply to dataset copy"):
    datasets.spec("copy", datasets.DatasetOptions(source_tokenizer="chars"))
  with pytest.raises(UsageError, match="option num_train does not apply to dataset files:"):
    datasets.spec(f"files:{tmp_path / 'm'}", datasets.DatasetOptions(num_train=5))
  with pytest.raises(UsageError, match="--shared_vocab needs SentencePiece on both sides"):
    pipeline.build_vocabularies([datasets.Example("a", ("b",))], spec, shared=True)


def test_the_same_files_are_prepared_once_and_edited_files_again(tmp_path):
  data_dir = str(tmp_path / "tfds")
  write(tmp_path / "c.train.tsv", "a b\tx\nb a\ty\n")
  write(tmp_path / "c.validation.tsv", "a\tx\n")
  write(tmp_path / "c.test.tsv", "a\tx\n")
  name = f"files:{tmp_path / 'c'}"

  def prepared() -> tuple[str, list[str]]:
    config = datasets.spec(name).builder(data_dir=data_dir, file_format="array_record").builder_config.name
    datasets.load(name, data_dir)
    return config, sorted(os.listdir(os.path.join(data_dir, "parallel_text_files")))

  first, dirs = prepared()
  stamp = os.stat(os.path.join(data_dir, "parallel_text_files", first)).st_mtime_ns
  assert prepared() == (first, dirs) == (first, [first])
  assert os.stat(os.path.join(data_dir, "parallel_text_files", first)).st_mtime_ns == stamp
  write(tmp_path / "c.test.tsv", "b\ty\n")
  second, dirs = prepared()
  assert second != first and first.startswith("c-") and dirs == sorted([first, second])
  assert [e.source for e in pipeline.read_examples(datasets.load(name, data_dir)["test"], datasets.spec(name))] == ["b"]


# --- Bad files -----------------------------------------------------------------------------------

BAD_FILES = {  # case -> ({file suffix: content}, the error line after "error: ", {p} = the prefix)
    "no tab": ({".train.tsv": "a\tb\nc d\n", ".test.tsv": "a\tb\n"}, "{p}.train.tsv:2: no tab"),
    "empty side": ({".train.tsv": "a\tb\n", ".test.tsv": "a\tb\n \t b\n"}, "{p}.test.tsv:2: empty source"),
    "bad UTF-8": ({".train.tsv": b"a\tb\n\xffa\tb\n", ".test.tsv": "a\tb\n"}, "{p}.train.tsv:2: not valid UTF-8"),
    "counts differ": ({".train.src": "a\nb\nc\n", ".train.tgt": "x\ny\n", ".test.src": "a\n", ".test.tgt": "x\n"},
                      "{p}.train.src:3: {p}.train.src has 3 lines but {p}.train.tgt has 2"),
    "empty target line": ({".train.src": "a\nb\nc\n", ".train.tgt": "x\n\ny\n", ".test.src": "a\n",
                           ".test.tgt": "x\n"}, "{p}.train.tgt:2: empty target"),
    "no train split": ({".test.tsv": "a\tb\n"},
                       "files:{p}: no train split; looked for {p}.train.tsv, or {p}.train.src and {p}.train.tgt"),
    "no test split": ({".train.tsv": "a\tb\n"},
                      "files:{p}: no test split; looked for {p}.test.tsv, or {p}.test.src and {p}.test.tgt"),
    "src without tgt": ({".train.src": "a\n", ".test.src": "a\n", ".test.tgt": "x\n"},
                        "{p}.train.src has no partner {p}.train.tgt"),
    "two layouts": ({".train.tsv": "a\tb\n", ".test.tsv": "a\tb\n", ".train.src": "a\n"},
                    "files:{p}: found both {p}.train.tsv and {p}.train.src"),
    "unseen test symbol": ({".train.tsv": "ab\tx\nb\tx\n", ".validation.tsv": "a\tx\n", ".test.tsv": "ac\tx\n"},
                           "{p}.test.tsv:1: source characters 'c' never occur in the training split"),
}


def _bad_prefix(tmp_path, case: str) -> str:
  """Writes the files of BAD_FILES[case] under `tmp_path`; returns their prefix."""
  prefix = str(tmp_path / f"bad{list(BAD_FILES).index(case)}")
  for suffix, content in BAD_FILES[case][0].items():
    write(prefix + suffix, content)
  return prefix


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_each_bad_file_is_refused_naming_file_and_line(tmp_path, case):
  """The check runs in `datasets.spec`, which experiments.train calls before it touches the workdir."""
  prefix = _bad_prefix(tmp_path, case)
  with pytest.raises(UsageError) as error:
    datasets.spec(f"files:{prefix}")
  assert str(error.value).startswith(BAD_FILES[case][1].format(p=prefix)) and "\n" not in str(error.value)


def test_experiments_train_says_a_bad_file_in_one_line_and_writes_no_workdir(tmp_path):
  """Three of the cases through the command line, side by side (each process takes ~2 s to start)."""
  procs = {}
  for case in ("no tab", "counts differ", "no test split"):
    prefix = _bad_prefix(tmp_path, case)
    procs[case] = (prefix, start("train", f"--dataset=files:{prefix}", f"--workdir={prefix}_run",
                                 f"--data_dir={tmp_path / 'tfds'}", *TINY))
  for case, (prefix, proc) in procs.items():
    code, _, err = finish(proc, check=False)
    assert code == 2 and err.strip().splitlines() == [err.strip()], (case, err)
    assert err.startswith("error: " + BAD_FILES[case][1].format(p=prefix)), (case, err)
    assert not os.path.exists(prefix + "_run") and not os.path.exists(tmp_path / "tfds"), case
  with pytest.raises(UsageError, match="files: needs a path prefix"):
    datasets.spec("files:")


def test_a_workdir_refuses_to_resume_on_edited_files(tmp_path):
  from seq2seq_jax import workdir  # pylint: disable=g-import-not-at-top
  from seq2seq_jax.config import TrainConfig  # pylint: disable=g-import-not-at-top
  from seq2seq_jax.data.tokenizers import Vocabulary  # pylint: disable=g-import-not-at-top
  config = TrainConfig(workdir=str(tmp_path / "w"), dataset="files:my/data")
  vocabs = (Vocabulary(("a", "b")), Vocabulary(("x",)))
  workdir.prepare(config, vocabs, data_digest="0123")
  workdir.prepare(config, vocabs, data_digest="0123")  # the same files: resumes
  with pytest.raises(UsageError, match="the files changed"):
    workdir.prepare(config, vocabs, data_digest="4567")
