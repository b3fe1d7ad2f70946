"""experiments.train / experiments.decode end to end: resume after SIGKILL, decoding, bad inputs."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO

TINY = ["--d_model=32", "--num_heads=2", "--d_ff=64", "--num_layers=1", "--batch_size=64",
        "--eval_batch_size=256", "--max_eval_examples=64", "--max_test_examples=256",
        "--log_every_steps=5", "--warmup_steps=10",
        "--length_buckets=32"]  # one bucket: one compile of each step


def command(module, *flags):
  return [sys.executable, "-m", f"experiments.{module}", *flags]


def run(module, *flags, check=True, devices=1):
  """Runs experiments.<module> on `devices` host devices (None: the entry point's own default)."""
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
  if devices is None:
    env.pop("XLA_FLAGS")
  proc = subprocess.run(command(module, *flags), cwd=REPO, capture_output=True, text=True, env=env,
                        timeout=600)
  if check and proc.returncode:
    raise AssertionError(f"{module} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
  return proc


def train_flags(workdir, data_dir, steps=40, **extra):
  flags = [f"--workdir={workdir}", f"--data_dir={data_dir}", f"--num_train_steps={steps}",
           "--checkpoint_every_steps=10", "--eval_every_steps=20", *TINY]
  return flags + [f"--{k}={v}" for k, v in extra.items()]


def results(workdir):
  with open(os.path.join(workdir, "results.json")) as f:
    r = json.load(f)
  r.pop("wall_s")
  return r


def test_sigkill_and_resume_equals_uninterrupted(tmp_path, data_dir):
  """Also with a moving average of the parameters and a best checkpoint kept: both resume exactly."""
  straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
  kept = {"ema_decay": 0.95, "best_metric": "wer"}
  run("train", *train_flags(straight, data_dir, **kept))

  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
  proc = subprocess.Popen(command("train", *train_flags(killed, data_dir, **kept)), cwd=REPO, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  checkpoint_20 = os.path.join(killed, "checkpoints", "20")
  deadline = time.time() + 300
  while not os.path.isdir(checkpoint_20) and proc.poll() is None and time.time() < deadline:
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not os.path.exists(os.path.join(killed, "results.json")), "killed too late to test resuming"

  out = run("train", *train_flags(killed, data_dir, **kept))
  assert "resuming at step" in out.stdout
  assert results(killed) == results(straight)
  assert results(killed)["evaluated_params"].startswith("moving average")
  with open(os.path.join(killed, "metrics.jsonl")) as f:
    steps = [json.loads(line)["step"] for line in f if "train/loss" in line]
  assert steps == sorted(set(steps)), "metrics after the last checkpoint must not be logged twice"

  # Decoding from the workdir: one output line per input line, and stdout for --inputs.
  words = tmp_path / "words.txt"
  words.write_text("hello\nworld\nabc\n")
  run("decode", f"--workdir={killed}", f"--input_file={words}", f"--output_file={tmp_path / 'out.txt'}")
  assert len((tmp_path / "out.txt").read_text().splitlines()) == 3
  printed = run("decode", f"--workdir={killed}", "--inputs=hello,world").stdout.splitlines()
  assert [line.split("\t")[0] for line in printed] == ["hello", "world"]

  # --score_file scores what beam search returned with the score beam search gave it.
  pairs = tmp_path / "pairs.tsv"
  pairs.write_text("".join(f"{line.split(chr(9))[0]}\t{line.split(chr(9))[1]}\n" for line in printed))
  scored = run("decode", f"--workdir={killed}", f"--score_file={pairs}").stdout.splitlines()
  for beam_line, score_line in zip(printed, scored):
    assert abs(float(beam_line.split("\t")[2]) - float(score_line.split("\t")[2])) < 1e-4


@pytest.mark.slow
def test_evaluate_embed_and_bad_inputs_on_a_workdir(tmp_path, data_dir):
  """The other tools on a trained workdir (slow: eight processes; about 40 s)."""
  killed = str(tmp_path / "w")
  run("train", *train_flags(killed, data_dir))
  words = tmp_path / "words.txt"
  words.write_text("hello\nworld\nabc\n")

  # experiments.evaluate of an earlier saved checkpoint; a step that was not kept is named as such.
  evaluated = json.loads(run("evaluate", f"--workdir={killed}", "--checkpoint=30", "--max_examples=16",
                             "--beam_size=0").stdout.splitlines()[-1])
  assert evaluated["step"] == 30 and evaluated["examples"] == 16 and evaluated["dtype"] == "float32"
  in_bfloat16 = json.loads(run("evaluate", f"--workdir={killed}", "--max_examples=16", "--beam_size=0",
                               "--dtype=bfloat16").stdout.splitlines()[-1])
  assert in_bfloat16["dtype"] == "bfloat16" and abs(in_bfloat16["wer"] - evaluated["wer"]) <= 0.25
  missing = run("evaluate", f"--workdir={killed}", "--checkpoint=7", "--max_examples=16", check=False)
  assert missing.returncode != 0 and "Traceback" not in missing.stderr
  assert "no checkpoint of step 7; saved steps: 30, 40" in missing.stderr.strip().splitlines()[-1]

  # Sentence embeddings: one vector per line, the same whatever the batch size.
  for batch_size in (1, 256):
    run("embed", f"--workdir={killed}", f"--input_file={words}", f"--output={tmp_path / f'e{batch_size}.npy'}",
        "--pooling=max", f"--batch_size={batch_size}")
  e1, e256 = np.load(tmp_path / "e1.npy"), np.load(tmp_path / "e256.npy")
  assert e1.shape == (3, 32)
  np.testing.assert_allclose(e1, e256, atol=1e-5)

  # Bad input to decode: a character outside the vocabulary; nothing is written.
  bad = run("decode", f"--workdir={killed}", "--inputs=hello,wor1d", check=False)
  assert bad.returncode != 0 and "Traceback" not in bad.stderr
  assert "'1'" in bad.stderr.strip().splitlines()[-1]
  out_file = tmp_path / "none.txt"
  words.write_text("ok\nb@d\n")
  bad = run("decode", f"--workdir={killed}", f"--input_file={words}", f"--output_file={out_file}", check=False)
  assert bad.returncode != 0 and not out_file.exists()

  # A workdir made with other model flags is refused and left untouched.
  before = open(os.path.join(killed, "config.json")).read()
  bad = run("train", *train_flags(killed, data_dir), "--d_model=64", check=False)
  assert bad.returncode != 0 and "Traceback" not in bad.stderr
  assert "d_model" in bad.stderr.strip().splitlines()[-1]
  assert open(os.path.join(killed, "config.json")).read() == before


@pytest.mark.slow
def test_a_run_on_two_devices_decodes_on_one(tmp_path, data_dir):
  """A workdir trained on two devices (its checkpoint saved sharded over both) is decoded by
  experiments.decode on one device and, data-parallel, on two and on its default (one host
  device per core), with the same outputs."""
  workdir = tmp_path / "two"
  run("train", *train_flags(workdir, data_dir, steps=10), "--max_test_examples=32", devices=2)
  on_one = run("decode", f"--workdir={workdir}", "--inputs=hello,world,abc", devices=1).stdout
  on_two = run("decode", f"--workdir={workdir}", "--inputs=hello,world,abc", devices=2).stdout
  by_default = run("decode", f"--workdir={workdir}", "--inputs=hello,world,abc", devices=None).stdout
  assert len(on_one.splitlines()) == 3 and on_one == on_two
  # The default runs each device's ops on one thread, which may sum in another order (scores 1e-6).
  for line, other in zip(on_one.splitlines(), by_default.splitlines()):
    line, other = line.split("\t"), other.split("\t")  # source, output, score, log-probability
    assert line[:2] == other[:2]
    np.testing.assert_allclose([float(x) for x in line[2:]], [float(x) for x in other[2:]], atol=1e-5)
  # The float32-trained model decoded in bfloat16: where it finds the same output, its score is
  # that of float32 to bfloat16's precision.
  in_bfloat16 = run("decode", f"--workdir={workdir}", "--inputs=hello,world,abc", "--dtype=bfloat16").stdout
  assert len(in_bfloat16.splitlines()) == 3
  for line, other in zip(on_one.splitlines(), in_bfloat16.splitlines()):
    line, other = line.split("\t"), other.split("\t")
    assert line[0] == other[0]
    if line[1] == other[1]:
      np.testing.assert_allclose(float(line[2]), float(other[2]), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("flag, message", [
    ("--model=lstm9000", "unknown model 'lstm9000'"),
    ("--dataset=nope", "unknown dataset 'nope'"),
    ("--num_train_steps=0", "--num_train_steps must be a positive integer"),
    ("--num_train_steps=-5", "--num_train_steps must be a positive integer"),
    ("--keep_checkpoints=0", "--keep_checkpoints must be a positive integer"),
    ("--num_heads=3", "d_model=32 must be divisible by num_heads=3"),
    ("--share_embeddings", "--share_embeddings ties source and target tokens with the same id: it needs"),
])
def test_bad_flags_give_one_clear_line(tmp_path, flag, message):
  workdir = tmp_path / "w"
  proc = run("train", f"--workdir={workdir}", "--data_dir=/nonexistent", *TINY, flag, check=False)
  assert proc.returncode != 0
  assert "Traceback" not in proc.stderr
  assert message in proc.stderr.strip().splitlines()[-1]
  assert not workdir.exists()


def test_decoding_xla_flags_split_the_cpu_and_drop_the_concurrency_scheduler_unless_told_otherwise():
  from experiments.decoding_xla_flags import SCHEDULER_FLAG, decoding_xla_flags  # pylint: disable=g-import-not-at-top
  split = "--xla_force_host_platform_device_count=4 --xla_cpu_multi_thread_eigen=false"
  assert decoding_xla_flags("", cores=4) == f"{split} {SCHEDULER_FLAG}"
  assert decoding_xla_flags("--xla_dump_to=d", cores=4) == f"--xla_dump_to=d {split} {SCHEDULER_FLAG}"
  mine = "--xla_force_host_platform_device_count=1"  # the user's device count: threads left alone too
  assert decoding_xla_flags(mine, cores=4) == f"{mine} {SCHEDULER_FLAG}"
  mine = "--xla_cpu_multi_thread_eigen=true --xla_cpu_enable_concurrency_optimized_scheduler=true"
  assert decoding_xla_flags(mine, cores=2) == f"{mine} --xla_force_host_platform_device_count=2"
  mine = f"--xla_force_host_platform_device_count=2 {SCHEDULER_FLAG}"
  assert decoding_xla_flags(mine, cores=8) == mine
