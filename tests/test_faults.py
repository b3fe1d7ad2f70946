"""Nothing lost when things go wrong: each fault is injected and its outcome checked.

- a workdir lock held by a live and by a dead process;
- SIGINT mid-run on one device and SIGTERM on two: a checkpoint is saved, exit 75, and the run
  resumed ends exactly where an uninterrupted run ends, on two devices even after its newest
  checkpoint lost its data files and the one before was truncated (both moved aside; resumed from
  the next older one);
- decode on a damaged checkpoint, a truncated config.json and a truncated vocabulary: one line,
  even when the reads a failed restore abandoned are collected after it;
- a learning rate that diverges: exit 3 naming the step, the good checkpoint kept, no results.json.
"""

import asyncio
import gc
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import REPO
from seq2seq_jax import workdir
from seq2seq_jax.config import TrainConfig
from seq2seq_jax.errors import UsageError

TINY = ["--d_model=32", "--num_heads=2", "--d_ff=64", "--num_layers=1", "--batch_size=32",
        "--eval_batch_size=64", "--max_eval_examples=32", "--max_test_examples=64", "--log_every_steps=1",
        "--warmup_steps=10", "--length_buckets=32", "--eval_every_steps=1000", "--checkpoint_every_steps=10",
        "--keep_checkpoints=3"]


def command(module, *flags):
  return [sys.executable, "-m", f"experiments.{module}", *flags]


def environment(devices: int) -> dict:
  return dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")


def run(module, *flags, devices=1):
  return subprocess.run(command(module, *flags), cwd=REPO, capture_output=True, text=True,
                        env=environment(devices), timeout=600)


def last_line(proc) -> str:
  return proc.stderr.strip().splitlines()[-1]


def results(path):
  with open(os.path.join(path, "results.json")) as f:
    r = json.load(f)
  r.pop("wall_s")
  return r


def logged_steps(path) -> int:
  try:
    with open(os.path.join(path, "metrics.jsonl")) as f:
      return max((json.loads(line)["step"] for line in f if "train/loss" in line), default=0)
  except (OSError, ValueError):
    return 0


def test_a_lock_held_by_a_live_process_refuses_and_a_dead_ones_is_taken_over(tmp_path):
  path = str(tmp_path / "w")
  with workdir.TrainingLock(path):
    with pytest.raises(UsageError, match=rf"is in use by process {os.getpid()} on {socket.gethostname()}"):
      with workdir.TrainingLock(path):
        pass
  assert not os.path.exists(os.path.join(path, "train.lock"))  # released on exit

  gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
  stale = {"pid": int(gone.stdout), "host": socket.gethostname(), "started": "2026-01-01T00:00:00+00:00"}
  with open(os.path.join(path, "train.lock"), "w") as f:
    json.dump(stale, f)
  with workdir.TrainingLock(path) as lock:
    assert lock.took_over == stale
    with open(os.path.join(path, "train.lock")) as f:
      assert json.load(f)["pid"] == os.getpid()

  with open(os.path.join(path, "train.lock"), "w") as f:  # another host: cannot be checked, refused
    json.dump({**stale, "host": "another-host"}, f)
  with pytest.raises(UsageError, match="another-host.*delete .*train.lock"):
    with workdir.TrainingLock(path):
      pass


def test_a_second_trainer_on_a_workdir_is_refused_with_one_line(tmp_path, data_dir):
  path = tmp_path / "w"
  os.makedirs(path)
  holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
  try:
    (path / "train.lock").write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(),
                                                 "started": "2026-01-01T00:00:00+00:00"}))
    proc = run("train", f"--workdir={path}", f"--data_dir={data_dir}", "--num_train_steps=2", *TINY)
  finally:
    holder.kill()
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert last_line(proc).startswith(f"error: workdir {path} is in use by process {holder.pid}")
  assert sorted(os.listdir(path)) == ["train.lock"]  # nothing written


def _damage_and_check_decode(stopped):
  """Deletes the data files of the newest checkpoint and truncates one of the one before; decode
  then names the damage in one line."""
  steps = sorted(int(s) for s in os.listdir(os.path.join(stopped, "checkpoints")) if s.isdigit())
  assert len(steps) == 3, steps
  newest, before, oldest = steps[-1], steps[-2], steps[0]
  for data in glob.glob(os.path.join(stopped, "checkpoints", str(newest), "state", "ocdbt.process_0", "d", "*")):
    os.remove(data)
  data = glob.glob(os.path.join(stopped, "checkpoints", str(before), "state", "ocdbt.process_0", "d", "*"))
  biggest = max(data, key=os.path.getsize)
  with open(biggest, "r+b") as f:
    f.truncate(os.path.getsize(biggest) // 2)
  proc = run("decode", f"--workdir={stopped}", "--inputs=hello")
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  line = last_line(proc)
  assert line.startswith(f"error: {stopped}: checkpoint {newest} is damaged (") and f"intact steps: {oldest};" in line
  return newest, before, oldest


def _abandon_future(error: Exception) -> None:
  """A future holding `error` that nobody retrieves, collected after its loop closed: how a failed
  checkpoint read leaves tensorstore's other reads behind."""
  loop = asyncio.new_event_loop()
  future = loop.create_future()
  future.set_exception(error)
  loop.close()
  del future
  gc.collect()


def test_checkpoint_reads_abandoned_as_bare_futures_are_silent_after_a_failed_restore(caplog):
  workdir._silence_abandoned_reads()  # what a failed restore installs
  _abandon_future(ValueError('OUT_OF_RANGE: Error reading "params/1.0.0" in OCDBT database at local file '
                             '"/w/checkpoints/20/state/": Requested byte range is not valid'))
  assert not caplog.records  # nothing printed after the one-line error
  _abandon_future(ValueError("a failure of something else"))  # still reported
  assert [r.getMessage().splitlines()[0] for r in caplog.records] == ["Future exception was never retrieved"]


def train_and_stop(workdir, flags, devices, after_step, signum=signal.SIGTERM) -> int:
  """Starts experiments.train, sends `signum` once it has logged `after_step`, checks the exit
  (75, a checkpoint of the step it stopped after, no results.json) and returns that step."""
  proc = subprocess.Popen(command("train", f"--workdir={workdir}", *flags), cwd=REPO, env=environment(devices),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 300
  while logged_steps(workdir) < after_step and proc.poll() is None and time.time() < deadline:
    time.sleep(0.02)
  proc.send_signal(signum)
  _, stderr = proc.communicate(timeout=300)
  assert proc.returncode == 75, stderr[-3000:]
  name = signal.Signals(signum).name
  stopped_at = int(stderr.strip().splitlines()[-1].split(f"stopped by {name} after step ")[1].split(";")[0])
  assert after_step <= stopped_at and not os.path.exists(os.path.join(workdir, "results.json"))
  assert os.path.isdir(os.path.join(workdir, "checkpoints", str(stopped_at)))
  return stopped_at


@pytest.mark.slow
def test_sigint_on_one_device_saves_and_the_resumed_run_ends_as_an_uninterrupted_one(tmp_path, data_dir):
  flags = [f"--data_dir={data_dir}", "--num_train_steps=80", *TINY]
  straight, stopped = str(tmp_path / "straight"), str(tmp_path / "stopped")
  assert run("train", f"--workdir={straight}", *flags).returncode == 0
  stopped_at = train_and_stop(stopped, flags, devices=1, after_step=13, signum=signal.SIGINT)
  resumed = run("train", f"--workdir={stopped}", *flags)
  assert resumed.returncode == 0 and f"resuming at step {stopped_at}" in resumed.stdout
  assert results(stopped) == results(straight)


def test_sigterm_saves_and_a_resume_past_damaged_checkpoints_ends_as_an_uninterrupted_run(tmp_path, data_dir):
  flags = [f"--data_dir={data_dir}", "--num_train_steps=100", *TINY]
  straight, stopped = str(tmp_path / "straight"), str(tmp_path / "stopped")
  reference = run("train", f"--workdir={straight}", *flags, devices=2)
  assert reference.returncode == 0, reference.stderr[-3000:]
  stopped_at = train_and_stop(stopped, flags, devices=2, after_step=22)

  newest, before, oldest = _damage_and_check_decode(stopped)
  assert newest == stopped_at
  resumed = run("train", f"--workdir={stopped}", *flags, devices=2)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  for step in (newest, before):
    assert f"checkpoint {step} is damaged" in resumed.stdout
    assert os.path.isdir(os.path.join(stopped, "checkpoints", f"{step}.damaged"))
  assert f"resuming at step {oldest}" in resumed.stdout
  assert results(stopped) == results(straight)
  for proc in (reference, resumed):  # normal use prints no library warnings
    assert "WARNING" not in proc.stderr, proc.stderr[-2000:]

  # Damaged workdir files: one line naming the file (decode), the same error from the library (train).
  decoded = run("decode", f"--workdir={stopped}", "--inputs=hello")
  assert decoded.returncode == 0 and not decoded.stderr.strip(), decoded.stderr[-2000:]
  damaged = str(tmp_path / "damaged")
  shutil.copytree(stopped, damaged)
  with open(os.path.join(damaged, "vocab_target.json"), "r+") as f:
    f.truncate(10)
  proc = run("decode", f"--workdir={damaged}", "--inputs=hello")
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert last_line(proc).startswith(f"error: {damaged}/vocab_target.json is damaged")
  recorded, source_vocab, target_vocab = workdir.load(stopped)
  same_run = TrainConfig(**{**recorded["full_config"], "workdir": damaged})
  with pytest.raises(UsageError, match=f"^{damaged}/vocab_target.json is damaged"):
    workdir.prepare(same_run, (source_vocab, target_vocab))
  with open(os.path.join(damaged, "config.json"), "w") as f:
    f.write('{"model": "transf')
  with pytest.raises(UsageError, match=f"^{damaged}/config.json is damaged"):
    workdir.load(damaged)


def test_a_diverging_run_stops_at_the_step_keeps_the_good_checkpoint_and_writes_no_results(tmp_path, data_dir):
  path = str(tmp_path / "w")
  flags = [f"--workdir={path}", f"--data_dir={data_dir}", *TINY]
  assert run("train", *flags, "--num_train_steps=10").returncode == 0
  proc = run("train", *flags, "--num_train_steps=30", "--schedule=constant", "--learning_rate=1e30")
  assert proc.returncode == 3 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
  line = last_line(proc)
  assert line.startswith("error: the loss became non-finite at step ") and "(checkpoint 10 is the last good one)" in line
  assert 10 < int(line.split("at step ")[1].split()[0]) <= 30
  assert sorted(os.listdir(os.path.join(path, "checkpoints"))) == ["10"]
  assert not os.path.exists(os.path.join(path, "results.json"))
