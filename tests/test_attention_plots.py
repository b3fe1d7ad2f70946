"""Cross-attention maps and heatmaps: shapes, rows summing to 1, no padding, the same weights as
during incremental decoding, and `experiments.decode --plot_attention` end to end."""

import os
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import plots
from seq2seq_jax import attention_maps
from seq2seq_jax.data.tokenizers import Vocabulary
from seq2seq_jax.decoding.task import initial_cache
from seq2seq_jax.errors import UsageError
from seq2seq_jax.models import build_model

from conftest import REPO
from test_train_entry_point import command, run

FAMILIES = {
    "transformer": dict(d_model=16, num_heads=2, d_ff=32, num_encoder_layers=1, num_decoder_layers=2),
    "rnn_attention-bahdanau": dict(hidden_size=12, embedding_size=8, num_layers=1, attention="bahdanau",
                                   bidirectional_encoder=True),
    "rnn_attention-luong_general": dict(hidden_size=12, embedding_size=8, num_layers=1,
                                        attention="luong_general", rnn_cell="gru"),
}
SOURCES = [[5, 6, 7, 8, 9, 10, 11], [12, 4], [3, 9, 9, 4, 17]]
OUTPUTS = [[4, 5, 6], [7, 8, 9, 10, 11, 12], []]


def tiny(family, **extra):
  """(model, random params) of a tiny model of `family` ("name" or "name-variant")."""
  model = build_model(family.split("-")[0], source_vocab_size=20, target_vocab_size=15, dropout=0.0,
                      **{**FAMILIES.get(family, {}), **extra})[1]
  x, y = attention_maps.pad_rows(SOURCES), attention_maps.pad_rows([o + [2] for o in OUTPUTS])
  return model, model.init(jax.random.key(0), x, y)["params"]


def layers_and_heads(family):
  return (2, 2) if family == "transformer" else (1, 1)


@pytest.mark.parametrize("family", FAMILIES)
def test_maps_are_cropped_rows_sum_to_one_and_padding_changes_nothing(family):
  model, params = tiny(family)
  maps = attention_maps.attention_weights(model, params, SOURCES, OUTPUTS)
  for weights, source, output in zip(maps, SOURCES, OUTPUTS):
    assert weights.shape == (*layers_and_heads(family), len(output) + 1, len(source))
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
  # The most padded pair alone, with no padding at all, has the same map.
  (alone,) = attention_maps.attention_weights(model, params, [SOURCES[1]], [OUTPUTS[1]])
  np.testing.assert_allclose(maps[1], alone, atol=1e-5)
  # Before cropping: exactly zero weight on padded source positions.
  batch = attention_maps.cross_attention(model, params, attention_maps.pad_rows(SOURCES),
                                         attention_maps.pad_rows([o + [2] for o in OUTPUTS]))
  assert batch.shape[:3] == (3, *layers_and_heads(family))
  for row, source in enumerate(SOURCES):
    assert not np.any(np.asarray(batch[row, ..., len(source):]))


@pytest.mark.parametrize("family", FAMILIES)
def test_teacher_forced_weights_are_the_weights_of_incremental_decoding(family):
  model, params = tiny(family)
  x, y = attention_maps.pad_rows(SOURCES), attention_maps.pad_rows([o + [2] for o in OUTPUTS])
  forced = attention_maps.cross_attention(model, params, x, y)   # [B, layers, heads, T, S]
  encoded = model.apply({"params": params}, x, method=model.encode)
  cache = initial_cache(model, params, encoded, x, y.shape[1])
  previous = jnp.ones((x.shape[0], 1), jnp.int32)   # BOS
  for t in range(y.shape[1]):
    _, variables = model.apply({"params": params, "cache": cache}, encoded, x, previous, decode=True,
                               method=model.decode, mutable=["cache", "intermediates"])
    cache = variables["cache"]
    step = attention_maps.cross_attention_from_intermediates(model, variables["intermediates"])
    for row, output in enumerate(OUTPUTS):
      if t <= len(output):   # real output positions (EOS included)
        np.testing.assert_allclose(step[row, :, :, 0], forced[row, :, :, t], atol=1e-5)
    previous = jnp.asarray(y[:, t:t + 1])


def test_prompt_rows_are_fed_but_not_returned():
  model, params = tiny("transformer")
  prompt = [9, 3]
  with_prompt = attention_maps.attention_weights(model, params, SOURCES, OUTPUTS, prompt=prompt)
  longer = attention_maps.attention_weights(model, params, SOURCES, [prompt + o for o in OUTPUTS])
  for a, b in zip(with_prompt, longer):
    np.testing.assert_allclose(a, b[:, :, len(prompt):], atol=1e-6)


def test_columns_follow_the_source_when_the_model_reads_it_reversed():
  forward, params = tiny("rnn_attention-bahdanau")
  backward, _ = tiny("rnn_attention-bahdanau", reverse_source=True)   # same parameters
  maps = attention_maps.attention_weights(backward, params, SOURCES, OUTPUTS)
  reversed_sources = [s[::-1] for s in SOURCES]
  expected = attention_maps.attention_weights(forward, params, reversed_sources, OUTPUTS)
  for got, want in zip(maps, expected):
    np.testing.assert_allclose(got, want[..., ::-1], atol=1e-6)


def test_rnn_seq2seq_has_no_attention():
  model, params = tiny("rnn_seq2seq", hidden_size=12, embedding_size=8, num_layers=1)
  with pytest.raises(UsageError, match="rnn_seq2seq has no attention"):
    attention_maps.attention_weights(model, params, SOURCES, OUTPUTS)


def test_labels_are_the_vocabulary_symbols_with_specials_named():
  assert attention_maps.symbols(Vocabulary(("AY", "N", "T")), [4, 3, 5, 2]) == ("N", "AY", "T", "</s>")

  class Subwords:
    def pieces(self, ids):
      return [f"piece{i}" for i in ids]
  assert attention_maps.symbols(Subwords(), [7, 2]) == ("piece7", "</s>")


def test_file_names_are_safe():
  assert plots.file_name(1, "knight") == "001_knight.png"
  assert plots.file_name(12, "../a b/c") == "012_a_b_c.png"
  assert plots.file_name(3, "..") == "003_input.png"
  assert plots.file_name(4, "naïve") == "004_na_ve.png"
  assert len(plots.file_name(5, "x" * 500)) < 60


@pytest.mark.parametrize("per_head", [False, True])
def test_plot_writes_a_png(tmp_path, per_head):
  weights = np.random.default_rng(0).dirichlet(np.ones(4), size=(3, 2, 5))   # [layers, heads, T, S]
  attention = attention_maps.AttentionMap(("k", "n", "i", "t"), ("N", "AY", "T", "OW", "</s>"), weights, "test")
  grid, titles, _ = plots.panels(attention, per_head)
  assert grid.shape == ((3, 2, 5, 4) if per_head else (1, 3, 5, 4)) and len(titles) == grid.shape[0] * grid.shape[1]
  np.testing.assert_allclose(grid.sum(-1), 1.0)
  path = plots.plot(attention, str(tmp_path / "a.png"), per_head)
  assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


TINY_TRAIN = ["--num_train_steps=2", "--checkpoint_every_steps=2", "--eval_every_steps=100",
              "--batch_size=32", "--eval_batch_size=64", "--max_eval_examples=4", "--max_test_examples=4",
              "--warmup_steps=1", "--num_layers=2", "--dropout=0"]
TRAIN_FLAGS = {
    "transformer": ["--model=transformer", "--d_model=16", "--num_heads=2", "--d_ff=32"],
    "rnn_attention": ["--model=rnn_attention", "--hidden_size=16", "--embedding_size=8", "--reverse_source"],
}


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory, data_dir):
  """Tiny trained workdirs, trained side by side (two steps: the weights need not be good, only real)."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
  paths = {name: str(tmp_path_factory.mktemp(name)) for name in TRAIN_FLAGS}
  procs = {name: subprocess.Popen(command("train", f"--workdir={paths[name]}", f"--data_dir={data_dir}",
                                          *TINY_TRAIN, *flags), cwd=REPO, env=env, text=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
           for name, flags in TRAIN_FLAGS.items()}
  for name, proc in procs.items():
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"training {name} failed:\n{stderr[-3000:]}"
  return paths


@pytest.mark.slow  # trains two tiny workdirs and runs experiments.decode
@pytest.mark.parametrize("name, per_head", [("transformer", True), ("rnn_attention", False)])
def test_decode_saves_one_heatmap_per_input(tmp_path, workdirs, name, per_head):
  outdir = tmp_path / "plots"
  flags = ["--plot_attention_per_head"] if per_head else []
  printed = run("decode", f"--workdir={workdirs[name]}", "--inputs=knight,photo", "--beam_size=2",
                f"--plot_attention={outdir}", *flags).stdout.splitlines()
  assert [line.split("\t")[0] for line in printed] == ["knight", "photo"]   # stdout as before
  assert sorted(p.name for p in outdir.iterdir()) == ["001_knight.png", "002_photo.png"]
  assert all(p.read_bytes()[:4] == b"\x89PNG" for p in outdir.iterdir())


@pytest.mark.slow
def test_decode_refuses_plots_with_score_file(tmp_path, workdirs):
  pairs = tmp_path / "pairs.tsv"
  pairs.write_text("knight\tN AY T\n")
  bad = run("decode", f"--workdir={workdirs['transformer']}", f"--score_file={pairs}",
            f"--plot_attention={tmp_path / 'plots'}", check=False)
  assert bad.returncode != 0 and "Traceback" not in bad.stderr
  assert "--inputs or --input_file" in bad.stderr.strip().splitlines()[-1]
  assert not (tmp_path / "plots").exists()
