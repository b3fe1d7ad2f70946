"""Each study's one command still runs end to end (a few steps, a few examples): its pipeline
from training to the committed table and figure stays runnable."""

import os
import subprocess

import pytest

from conftest import REPO


@pytest.mark.slow
def test_bahdanau2015_length_study_runs_end_to_end(tmp_path, data_dir):
  out = tmp_path / "reverse"
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
  proc = subprocess.run(
      ["bash", "experiments/bahdanau2015_length/run.sh", "reverse", str(out), f"--data_dir={data_dir}",
       "--num_train_steps=4", "--eval_every_steps=2", "--num_train_examples=200", "--num_test_examples=41",
       "--length_buckets=48"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert (out / "by_length.png").stat().st_size > 10_000
  table = (out / "by_length.md").read_text().splitlines()
  assert table[0].split(" | ")[2:] == ["LSTM encoder-decoder (no attention)", "LSTM + additive attention",
                                       "Transformer |"]
  lengths = [int(row.split(" | ")[0].strip("| ")) for row in table[3:]]
  assert lengths and max(lengths) > 20  # tested beyond the longest training length
