"""One source of configuration: the command line's defaults are the dataclasses', typos and
hyperparameters a model does not have are refused with one line, a workdir records only the chosen
model's hyperparameters, and inference imports no training code."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO
from seq2seq_jax import models, workdir
from seq2seq_jax.config import TrainConfig
from seq2seq_jax.data import datasets, pipeline
from seq2seq_jax.data.datasets import Example
from seq2seq_jax.data.tokenizers import Vocabulary
from seq2seq_jax.errors import UsageError
from seq2seq_jax.training import loop


def python(code: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)


def train(*flags) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "experiments.train", *flags], cwd=REPO, capture_output=True,
                        text=True, timeout=300)


def test_command_line_defaults_are_the_dataclass_defaults():
  proc = python("from experiments import train\n"
                "train.FLAGS(['train'])\n"
                "from seq2seq_jax.config import TrainConfig\n"
                "config = train.config_from_flags()\n"
                "assert config == TrainConfig(), (config, TrainConfig())\n"
                "print('same')")
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.strip() == "same"


def test_the_default_model_is_the_main_jobs_small_transformer():
  hparams = models.resolve_hyperparameters(TrainConfig().model, TrainConfig().model_hparams)
  assert (hparams["d_model"], hparams["num_heads"], hparams["d_ff"]) == (128, 4, 512)
  assert (hparams["num_encoder_layers"], hparams["num_decoder_layers"]) == (2, 2)


def test_model_flags_set_only_what_is_given_and_num_layers_sets_both_transformer_stacks():
  proc = python("import json\n"
                "from experiments import train\n"
                "train.FLAGS(['train', '--d_model=64', '--num_layers=3', '--num_decoder_layers=1'])\n"
                "print(json.dumps(train.config_from_flags().model_hparams, sort_keys=True))")
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert json.loads(proc.stdout) == {"d_model": 64, "num_encoder_layers": 3, "num_decoder_layers": 1}


@pytest.mark.parametrize("flag, message", [
    ("--d_modle=64", "error: unknown flag --d_modle (did you mean --d_model?)"),
    ("--model=rnn_seq2seq --d_model=64", "error: --d_model does not apply to --model=rnn_seq2seq"),
    ("--num_train_steps=many", "error: flag --num_train_steps=many"),
    ("stray_argument", "error: unexpected arguments: stray_argument"),
])
def test_typos_and_flags_the_model_does_not_have_are_refused_with_one_line(tmp_path, flag, message):
  workdir_path = tmp_path / "w"
  proc = train(f"--workdir={workdir_path}", "--data_dir=/nonexistent", *flag.split())
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [proc.stderr.strip().splitlines()[-1]]  # one line
  assert proc.stderr.startswith(message), proc.stderr
  assert not workdir_path.exists()


def test_unknown_model_hyperparameters_are_refused_by_the_library():
  with pytest.raises(UsageError, match="model 'transformer' has no hyperparameter 'd_modle'"):
    models.build_model("transformer", source_vocab_size=5, target_vocab_size=5, d_modle=64)
  with pytest.raises(UsageError, match="has no hyperparameter 'hidden_size'"):
    loop.validate(TrainConfig(model_hparams={"hidden_size": 64}))
  with pytest.raises(UsageError, match="is set by the run"):
    loop.validate(TrainConfig(model_hparams={"source_vocab_size": 64}))


def test_config_json_records_every_hyperparameter_of_the_chosen_model_and_no_other(tmp_path):
  vocab = Vocabulary.from_texts(["ab"], "")
  config = TrainConfig(workdir=str(tmp_path / "w"), model="rnn_attention", model_hparams={"hidden_size": 32})
  workdir.prepare(config, (vocab, vocab))
  with open(tmp_path / "w" / "config.json") as f:
    recorded = json.load(f)["model_hparams"]
  assert set(recorded) == models.hyperparameter_names("rnn_attention") - set(models.FILLED_BY_RUN)
  assert recorded["hidden_size"] == 32 and recorded["embedding_size"] == 256
  # The same run with its default spelled out resumes; another hidden size is refused.
  workdir.prepare(TrainConfig(workdir=config.workdir, model="rnn_attention",
                              model_hparams={"hidden_size": 32, "embedding_size": 256}), (vocab, vocab))
  with pytest.raises(UsageError, match="different settings"):
    workdir.prepare(TrainConfig(workdir=config.workdir, model="rnn_attention"), (vocab, vocab))


def test_a_workdir_that_recorded_every_models_flags_loads_with_its_own_model(tmp_path):
  """Workdirs written when config.json held every model flag (rnn_cell for a Transformer)."""
  vocab = Vocabulary.from_texts(["ab"], "")
  path = tmp_path / "old"
  os.makedirs(path)
  for side in ("source", "target"):
    (path / f"vocab_{side}.json").write_text(vocab.to_json())
  old = {"model": "transformer", "dataset": "cmudict_g2p", "dataset_options": {}, "buckets": [8, 12, 16, 32],
         "max_source_length": 32, "max_target_length": 32, "vocab_size": 0, "shared_vocab": False,
         "model_hparams": {"d_model": 64, "num_layers": 2, "rnn_cell": "lstm", "hidden_size": 256,
                           "num_encoder_layers": 2, "num_decoder_layers": 2},
         "full_config": {"data_dir": "~/tensorflow_datasets"}}
  (path / "config.json").write_text(json.dumps(old))
  config, _, _ = workdir.load(str(path))
  assert config["model_hparams"]["d_model"] == 64 and "rnn_cell" not in config["model_hparams"]
  models.build_model("transformer", source_vocab_size=5, target_vocab_size=5, **config["model_hparams"])
  workdir.prepare(TrainConfig(workdir=str(path), model_hparams={"d_model": 64, "num_encoder_layers": 2,
                                                                 "num_decoder_layers": 2}), (vocab, vocab))


def test_every_sentencepiece_dataset_has_a_default_vocabulary_size():
  for name in datasets.DATASETS:
    spec = datasets.spec(name)
    assert spec.tokenizer == "symbols" or spec.default_vocab_size > 0, name
  spec = datasets.DatasetSpec(builder=None, to_example=None, source_separator=" ", target_separator=" ",
                              description="", tokenizer="sentencepiece", default_vocab_size=30)
  words = "the cat sat on a mat and the dog ran to a red barn by the old mill near the river bank".split()
  examples = [Example(" ".join(words[i:i + 6]), (" ".join(words[i + 1:i + 7]),)) for i in range(len(words) - 7)] * 20
  source, target = pipeline.build_vocabularies(examples, spec, vocab_size=0)
  assert source.size == target.size == 30


def test_inference_imports_no_training_code():
  proc = python("import seq2seq_jax.translator, seq2seq_jax.evaluation, seq2seq_jax.attention_maps, sys\n"
                "import seq2seq_jax.sentence_encoder, seq2seq_jax.retrieval\n"
                "bad = [m for m in sys.modules if m.startswith('seq2seq_jax.training')]\n"
                "assert not bad, bad")
  assert proc.returncode == 0, proc.stderr[-2000:]
