"""experiments/g2p_cmudict/run.sh restarts a two-device recipe after an XLA abort (exit 134), and only then."""

import os
import stat
import subprocess

from conftest import REPO


def fake_python(tmp_path, statuses):
  """A `python` on PATH that records its arguments and exits with the next of `statuses`."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  script = bin_dir / "python"
  script.write_text(
      "#!/bin/bash\n"
      f"n=$(wc -l < {tmp_path}/calls 2>/dev/null || echo 0)\n"
      f"echo \"$*\" >> {tmp_path}/calls\n"
      f"statuses=({' '.join(map(str, statuses))})\n"
      "exit ${statuses[$n]}\n")
  script.chmod(script.stat().st_mode | stat.S_IEXEC)
  return dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")


def run(tmp_path, statuses, recipe="transformer_1h_2dev"):
  env = fake_python(tmp_path, statuses)
  proc = subprocess.run(["bash", "experiments/g2p_cmudict/run.sh", recipe, "w"], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=60)
  calls = (tmp_path / "calls").read_text().splitlines()
  return proc.returncode, calls


def test_restarts_after_aborts_with_the_same_arguments(tmp_path):
  status, calls = run(tmp_path, [134, 134, 0])
  command = "-m experiments.train --flagfile=experiments/g2p_cmudict/transformer_1h_2dev.flags --workdir=w"
  assert status == 0 and calls == [command] * 3


def test_other_failures_are_not_retried(tmp_path):
  status, calls = run(tmp_path, [2, 0])
  assert status == 2 and len(calls) == 1


def test_gives_up_after_six_aborts(tmp_path):
  status, calls = run(tmp_path, [134] * 8)
  assert status == 134 and len(calls) == 6


def test_one_device_recipes_are_not_retried(tmp_path):
  status, calls = run(tmp_path, [134, 0], recipe="transformer_1h")
  assert status == 134 and len(calls) == 1
