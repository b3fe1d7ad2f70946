"""SLURM: a sweep as one job array, and training with two processes under srun, preempted and requeued.

The tests without a mark check the job script and the sweep's SLURM flags without a cluster.  The
tests marked `slurm` submit to a real cluster: `.ci/run` starts a one-node one with
`experiments/slurm/local_cluster.sh run python -m pytest -q -m slurm`; with no cluster they are
skipped, saying why.  experiments.train processes they start (tiny Transformer, 200 steps, one CPU
device each): 2 for the local reference sweep, 2 for the SLURM sweep, 3 for the sweep with a
cancelled run, 1 + 2 x 2 for the srun test.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from conftest import REPO, tiny_transformer_flagfile
from experiments.sweep import plan, slurm
from seq2seq_jax import workdir as workdir_lib
from seq2seq_jax.errors import UsageError
from seq2seq_jax.training import parallel

# 200 quick steps: long enough to be cancelled between its first checkpoint and its end
TINY_BASE = tiny_transformer_flagfile(num_train_steps=200, checkpoint_every_steps=10, log_every_steps=10)
LOCAL_CONF = "/tmp/seq2seq_jax_slurm/slurm.conf"  # where experiments/slurm/local_cluster.sh writes it
SWEEP_RUNS = ["--runs=h1:num_heads=1", "--runs=h2:num_heads=2"]
H1 = "h1,num_heads=1,seed=0"


def environment(devices=1):
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
  if "SLURM_CONF" not in env and os.path.exists(LOCAL_CONF):
    env["SLURM_CONF"] = LOCAL_CONF
  return env


def sweep(*args, env=None, check_rc=None, **popen):
  proc = subprocess.run([sys.executable, "-m", "experiments.sweep", *args], cwd=REPO, env=env or environment(),
                        capture_output=True, text=True, timeout=600, **popen)
  if check_rc is not None and proc.returncode != check_rc:
    raise AssertionError(f"sweep exited {proc.returncode}, expected {check_rc}:\n{proc.stdout}\n{proc.stderr[-3000:]}")
  return proc


def results_without_times(path):
  """results.csv as rows of {column: cell} without the wall-clock columns."""
  with open(path) as f:
    return [{k: v for k, v in row.items() if not k.startswith("wall_s")} for row in csv.DictReader(f)]


def wait_until(condition, timeout_s, what):
  start = time.time()
  while not condition():
    if time.time() - start > timeout_s:
      raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
    time.sleep(0.1)


def has_checkpoint(workdir):
  directory = os.path.join(workdir, "checkpoints")
  return os.path.isdir(directory) and any(name.isdigit() for name in os.listdir(directory))


def in_queue(job, env):
  proc = subprocess.run(["squeue", "-h", "-j", str(job), "-o", "%T"], env=env, capture_output=True, text=True)
  return proc.returncode == 0 and proc.stdout.strip() != ""


# ----------------------------------------------------------------------------- without a cluster

def test_job_script_is_one_array_over_the_runs_with_the_sbatch_options():
  options = slurm.SlurmOptions(partition="cpu", time="4:00:00", cpus_per_task=2, gpus_per_task=1,
                               additional_parameters=("mem=16G", "exclusive"), max_running=3)
  tasks = {0: ("out/a b", ["python", "-m", "experiments.train", "--workdir=out/a b"]),
           3: ("out/c", ["python", "-m", "experiments.train", "--workdir=out/c"])}
  script = slurm.job_script(tasks, options, "sweep:out", "out", "/repo", "python").splitlines()
  assert script[0] == "#!/bin/bash"
  sbatch = [line for line in script if line.startswith("#SBATCH ")]
  out = os.path.abspath("out")
  assert sbatch == ["#SBATCH --job-name=sweep:out", "#SBATCH --array=0,3%3", f"#SBATCH --output={out}/slurm/%A_%a.out",
                    "#SBATCH --open-mode=append", "#SBATCH --ntasks=1", "#SBATCH --signal=B:TERM@120",
                    "#SBATCH --partition=cpu", "#SBATCH --time=4:00:00", "#SBATCH --cpus-per-task=2",
                    "#SBATCH --gpus-per-task=1", "#SBATCH --mem=16G", "#SBATCH --exclusive"]
  assert script.index(sbatch[-1]) < script.index("cd /repo")  # sbatch reads options before the first command
  assert f"  0) exec python -m experiments.sweep.task '{out}/a b' -- python -m experiments.train '--workdir=out/a b' ;;" in script
  assert any(line.startswith("  3) exec python -m experiments.sweep.task") for line in script)
  assert not any(line.startswith("  1)") for line in script)
  assert sum(line.startswith("#SBATCH") for line in slurm.job_script(tasks, slurm.SlurmOptions(), "s", "out", "/r", "p")
             .splitlines()) == 6  # cluster defaults: no partition, time, CPUs or GPUs asked for


@pytest.mark.parametrize("options, message", [
    (slurm.SlurmOptions(additional_parameters=("mem 16G",)), "expected NAME=VALUE or NAME"),
    (slurm.SlurmOptions(additional_parameters=("mem=1\n#SBATCH --x",)), "expected NAME=VALUE or NAME"),
    (slurm.SlurmOptions(cpus_per_task=-1), "--slurm_cpus_per_task must be 0"),
    (slurm.SlurmOptions(time="4 h"), "--slurm_time='4 h': no spaces"),
])
def test_bad_slurm_options_are_usage_errors(options, message):
  with pytest.raises(UsageError, match=message):
    options.check()


def test_squeue_lines_and_runs_that_ended_without_a_result(tmp_path):
  assert slurm.parse_squeue("12_0 RUNNING\n12_1 PENDING\n\n13 COMPLETING\n") == {
      "12_0": "RUNNING", "12_1": "PENDING", "13": "COMPLETING"}
  status = slurm.ended_without_result(str(tmp_path), "12_1", "start\nslurmstepd: error: *** JOB 12 CANCELLED ***\n")
  assert status["error"] == "SLURM job 12_1 ended without a result: slurmstepd: error: *** JOB 12 CANCELLED ***"
  (tmp_path / plan.STATUS_FILE).write_text("{}")
  assert slurm.ended_without_result(str(tmp_path), "12_1", "") is None  # the run recorded its own end


def test_dry_run_prints_the_job_script_and_submits_nothing(tmp_path):
  base = tmp_path / "base.flags"
  base.write_text(TINY_BASE)
  out = tmp_path / "out"
  proc = sweep(f"--base_flagfile={base}", f"--out_dir={out}", *SWEEP_RUNS, "--launcher=slurm",
               "--slurm_time=30", "--slurm_additional_parameters=mem=2G", "--dry_run", check_rc=0)
  script = proc.stdout.splitlines()
  assert script[0] == "#!/bin/bash" and "#SBATCH --array=0,1" in script and "#SBATCH --time=30" in script
  assert "#SBATCH --mem=2G" in script
  assert any(f"--workdir={out}/{H1}" in line and "experiments.sweep.task" in line for line in script)
  assert "2 would be submitted as one job array" in proc.stderr
  assert not out.exists()


def test_slurm_flags_with_the_local_launcher_are_refused(tmp_path):
  base = tmp_path / "base.flags"
  base.write_text(TINY_BASE)
  proc = sweep(f"--base_flagfile={base}", f"--out_dir={tmp_path / 'out'}", "--slurm_time=10", check_rc=2)
  assert proc.stderr.strip() == "error: --slurm_time applies to --launcher=slurm only"


def test_only_srun_tasks_start_jax_distributed():
  """The SLURM variables of a batch script (sbatch -n2) and of a task of `srun -n2` in it, as the
  one-node cluster sets them: only the srun task is one of several processes."""
  batch = {"SLURM_JOB_ID": "18", "SLURM_LOCALID": "0", "SLURM_NTASKS": "2", "SLURM_PROCID": "0"}
  task = {**batch, "SLURM_STEP_ID": "0", "SLURM_STEP_NODELIST": "vm", "SLURM_STEP_NUM_TASKS": "2"}
  assert parallel.cluster_from_environment(batch) is None
  assert parallel.cluster_from_environment(task) == "slurm"


def test_chief_first_with_one_process_just_calls():
  calls = []
  assert parallel.chief_first("prepare", lambda: calls.append(1) or "ready") == "ready"
  parallel.wait_for_processes("nothing_to_wait_for")
  assert calls == [1]


# ----------------------------------------------------------------------------- on a real cluster

@pytest.fixture(scope="module")
def cluster():
  """The environment to reach a running SLURM cluster with; skips the test when there is none."""
  env = environment()
  if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
    pytest.skip("SLURM's commands are not installed (Debian slurm-wlm); experiments/slurm/local_cluster.sh "
                "start installs and starts a one-node cluster (root)")
  try:
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True, timeout=30)
  except subprocess.TimeoutExpired:
    pytest.skip("no SLURM cluster answered sinfo within 30 s; start one with experiments/slurm/local_cluster.sh start")
  if proc.returncode or not {"idle", "mixed", "allocated"} & set(proc.stdout.split()):
    said = " ".join((proc.stderr or proc.stdout).split()) or f"exit status {proc.returncode}"
    pytest.skip(f"no SLURM node to run on (sinfo: {said}); start a one-node cluster with "
                "experiments/slurm/local_cluster.sh start (root)")
  return env


@pytest.fixture(scope="module")
def base_flags(tmp_path_factory, data_dir):
  path = tmp_path_factory.mktemp("slurm") / "base.flags"
  path.write_text(TINY_BASE + f"--data_dir={data_dir}\n")
  return path


@pytest.fixture(scope="module")
def local_results(cluster, base_flags, tmp_path_factory):
  """results.csv of the two-run sweep with the local launcher (the reference)."""
  out = tmp_path_factory.mktemp("local") / "out"
  sweep(f"--base_flagfile={base_flags}", f"--out_dir={out}", *SWEEP_RUNS, "--parallel=2", env=cluster, check_rc=0)
  return results_without_times(out / "results.csv")


@pytest.mark.slurm
def test_sweep_as_a_job_array_ends_with_the_local_launchers_results(cluster, base_flags, local_results, tmp_path):
  out = tmp_path / "out"
  proc = sweep(f"--base_flagfile={base_flags}", f"--out_dir={out}", *SWEEP_RUNS, "--launcher=slurm",
               "--slurm_cpus_per_task=1", env=cluster, check_rc=0)
  assert "submitted 2 as SLURM job array" in proc.stdout
  assert results_without_times(out / "results.csv") == local_results
  assert (out / "results.md").exists() and (out / "plots" / "run.png").exists()
  jobs = slurm.read_jobs(str(out))
  assert sorted(jobs) == [H1, "h2,num_heads=2,seed=0"]
  for name, task in jobs.items():
    assert (out / name / "log.txt").read_text().count("=== ") == 1
    assert json.loads((out / name / "status.json").read_text())["returncode"] == 0
    assert os.path.exists(slurm.slurm_output(str(out), task))
  again = sweep(f"--base_flagfile={base_flags}", f"--out_dir={out}", *SWEEP_RUNS, "--launcher=slurm",
                env=cluster, check_rc=0)
  assert "submitted 0" in again.stdout and again.stdout.count("results.json exists") == 2


@pytest.mark.slurm
def test_run_cancelled_by_scancel_is_resubmitted_and_ends_as_an_uninterrupted_one(cluster, base_flags,
                                                                                  local_results, tmp_path):
  out = tmp_path / "out"
  args = [f"--base_flagfile={base_flags}", f"--out_dir={out}", *SWEEP_RUNS, "--launcher=slurm"]
  first = subprocess.Popen([sys.executable, "-m", "experiments.sweep", *args], cwd=REPO, env=cluster,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  try:
    wait_until(lambda: has_checkpoint(out / H1), 300, f"a checkpoint of {H1}")
    subprocess.run(["scancel", slurm.read_jobs(str(out))[H1]], env=cluster, check=True)
    output, _ = first.communicate(timeout=300)
  finally:
    first.kill()
  assert first.returncode == 1, output  # a run failed
  status = json.loads((out / H1 / "status.json").read_text())
  assert "SIGTERM" in status["error"], status  # "stopped by SIGTERM after step N; checkpoint N saved; ..."
  assert not (out / H1 / "results.json").exists()

  second = sweep(*args, env=cluster, check_rc=0)
  assert "skip h2,num_heads=2,seed=0: results.json exists" in second.stdout and "submitted 1 as" in second.stdout
  log = (out / H1 / "log.txt").read_text()
  assert log.count("=== ") == 2
  if status["returncode"] == 75:  # stopped after a checkpoint (not while starting up): it resumed from it
    assert "resuming at step" in log
  assert results_without_times(out / "results.csv") == local_results


@pytest.mark.slurm
def test_srun_two_processes_preempted_and_requeued_end_with_one_processs_parameters(cluster, base_flags, tmp_path):
  """experiments/slurm/train.sbatch on one node with two tasks (one CPU device each, finding each
  other from SLURM's environment; a data_dir of their own, which process 0 prepares while the other
  waits), sent SIGTERM after its first checkpoint: it saves, requeues itself, resumes, and ends
  with the parameters of one process with two devices (atol 1e-5, as tests/test_scale.py's two
  processes on localhost)."""
  one = subprocess.Popen([sys.executable, "-m", "experiments.train", f"--flagfile={base_flags}",
                          f"--workdir={tmp_path / 'one'}"], cwd=REPO, env=environment(devices=2),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  output = tmp_path / "slurm.out"
  submitted = subprocess.run(["sbatch", "--parsable", "--nodes=1", "--ntasks-per-node=2", "--time=15",
                              f"--output={output}", "experiments/slurm/train.sbatch", f"--flagfile={base_flags}",
                              f"--workdir={tmp_path / 'srun'}", f"--data_dir={tmp_path / 'data'}"],
                             cwd=REPO, env=cluster, capture_output=True,
                             text=True, check=True)
  job = submitted.stdout.strip().split(";")[0]
  try:
    wait_until(lambda: has_checkpoint(tmp_path / "srun"), 300, "the first checkpoint under srun")
    subprocess.run(["scancel", "--signal=TERM", job], env=cluster, check=True)  # as a preemption does
    wait_until(lambda: not in_queue(job, cluster), 400, f"job {job} to finish after its requeue")
    log, _ = one.communicate(timeout=300)
  finally:
    subprocess.run(["scancel", job], env=cluster)
    one.kill()
  text = output.read_text()
  assert one.returncode == 0, log[-3000:]
  assert "2 processes" in text and "devices: 2; starting" in text, text[-3000:]
  assert "stopped by SIGTERM after step" in text and "requeueing job" in text, text[-3000:]
  assert "(restart 1)" in text and "devices: 2; resuming at step" in text, text[-3000:]
  assert (tmp_path / "srun" / "results.json").exists(), text[-3000:]
  assert text.count("Downloading and preparing dataset") == 1, text[-3000:]  # by process 0 alone

  def params(w):
    manager, step = workdir_lib.select_checkpoint(str(w), "latest")
    assert step == 200
    return {jax.tree_util.keystr(k): np.asarray(v) for k, v in
            jax.tree_util.tree_flatten_with_path(workdir_lib.restore_params(manager, step, use_ema=False))[0]}

  expected, got = params(tmp_path / "one"), params(tmp_path / "srun")
  assert got.keys() == expected.keys()
  for name, value in expected.items():
    np.testing.assert_allclose(got[name], value, atol=1e-5, err_msg=name)
