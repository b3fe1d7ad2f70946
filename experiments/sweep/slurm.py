"""A sweep's runs as one SLURM job array (plain `sbatch`), and what the queue says about them.

  job_script      runs to submit -> the text of one sbatch script (array task i trains run i)
  submit          sbatch the script -> job id
  queued          squeue -> {array task id "JOB_INDEX": state} of the jobs still queued or running
  ended_without_result   a run whose job left the queue without results.json or status.json:
                         the status.json the sweep writes for it (from the job's SLURM output file)

Array task i runs `python -m experiments.sweep.task <workdir> -- <the run's training command>`,
which appends the run's output to <workdir>/log.txt and records its exit in <workdir>/status.json,
as the local launcher does.  SLURM's own output of a task goes to <out_dir>/slurm/<job>_<i>.out.
`<out_dir>/slurm/jobs.json` maps each submitted run to its array task, so the sweep, run again,
waits for runs still queued instead of submitting them twice.

Preemption and time limits: the script asks SLURM to send SIGTERM to the task `SIGNAL_SECONDS`
before the time limit (`--signal=B:TERM@...`); `scancel` sends SIGTERM too.  The training process
saves a checkpoint and exits 75; running the sweep again submits the run again and it resumes from
that checkpoint.
"""

import dataclasses
import json
import os
import re
import shlex
import shutil
import subprocess
from typing import Optional

from experiments.sweep.plan import RESULTS_FILE, STATUS_FILE
from seq2seq_jax.errors import UsageError

JOBS_FILE = "jobs.json"          # in <out_dir>/slurm: {run name: "JOB_INDEX"}
SCRIPT_FILE = "job_array.sbatch"  # in <out_dir>/slurm: the script submitted last
SIGNAL_SECONDS = 120              # SIGTERM this long before the time limit: time to save a checkpoint
_PARAMETER_RE = re.compile(r"^[a-z][a-z0-9-]*(=[^\n]+)?$")


@dataclasses.dataclass(frozen=True)
class SlurmOptions:
  """What each array task asks SLURM for; empty or 0 = the cluster's default."""
  partition: str = ""
  time: str = ""                 # SLURM's format: MINUTES, H:MM:SS, D-HH:MM:SS
  cpus_per_task: int = 0
  gpus_per_task: int = 0
  additional_parameters: tuple = ()  # ("mem=16G", "exclusive", ...): each becomes #SBATCH --<it>
  max_running: int = 0           # at most this many array tasks at once (--array=...%N); 0 = no limit

  def check(self) -> None:
    """UsageError for a value SLURM cannot take as an #SBATCH line."""
    for name in ("cpus_per_task", "gpus_per_task", "max_running"):
      if getattr(self, name) < 0:
        raise UsageError(f"--slurm_{name} must be 0 (the cluster's default) or positive, got {getattr(self, name)}")
    for text, flag in ((self.partition, "--slurm_partition"), (self.time, "--slurm_time")):
      if any(c.isspace() for c in text):
        raise UsageError(f"{flag}={text!r}: no spaces allowed")
    for parameter in self.additional_parameters:
      if not _PARAMETER_RE.match(parameter.lstrip("-")):
        raise UsageError(f"--slurm_additional_parameters={parameter!r}: expected NAME=VALUE or NAME, "
                         "an sbatch option without its dashes (e.g. mem=16G, exclusive)")


def sbatch_lines(options: SlurmOptions, job_name: str, indices: list, output: str) -> list:
  """The #SBATCH lines of a job array over `indices` (positions in the sweep's run list)."""
  array = ",".join(map(str, indices)) + (f"%{options.max_running}" if options.max_running else "")
  lines = [f"--job-name={job_name}", f"--array={array}", f"--output={output}", "--open-mode=append",
           "--ntasks=1", f"--signal=B:TERM@{SIGNAL_SECONDS}"]
  if options.partition:
    lines.append(f"--partition={options.partition}")
  if options.time:
    lines.append(f"--time={options.time}")
  if options.cpus_per_task:
    lines.append(f"--cpus-per-task={options.cpus_per_task}")
  if options.gpus_per_task:
    lines.append(f"--gpus-per-task={options.gpus_per_task}")
  lines += ["--" + p.lstrip("-") for p in options.additional_parameters]
  return [f"#SBATCH {line}" for line in lines]


def job_script(tasks: dict, options: SlurmOptions, job_name: str, out_dir: str, cwd: str, python: str) -> str:
  """The sbatch script of a job array.  tasks: {array index: (workdir, training argv)}."""
  out_dir = os.path.abspath(out_dir)
  output = os.path.join(out_dir, "slurm", "%A_%a.out")
  lines = ["#!/bin/bash",
           "# A sweep's runs as one SLURM job array (written by experiments.sweep): array task i trains",
           "# run i in its workdir, appending its output to <workdir>/log.txt and its exit to",
           "# <workdir>/status.json.  Run the sweep command again to collect the results and resubmit",
           "# the runs that failed or were stopped; each resumes from its latest checkpoint.",
           *sbatch_lines(options, job_name, sorted(tasks), output),
           f"cd {shlex.quote(cwd)}",
           'case "$SLURM_ARRAY_TASK_ID" in']
  for index in sorted(tasks):
    workdir, command = tasks[index]
    task = [python, "-m", "experiments.sweep.task", os.path.abspath(workdir), "--", *command]
    lines.append(f"  {index}) exec {shlex.join(task)} ;;")
  lines += ['  *) echo "no run for array task $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;', "esac", ""]
  return "\n".join(lines)


def require_commands(*names: str) -> None:
  """UsageError when a SLURM command is not on PATH."""
  for name in names:
    if shutil.which(name) is None:
      raise UsageError(f"{name} not found: --launcher=slurm runs on a machine with SLURM's commands "
                       "(sbatch, squeue) on PATH")


def submit(script_path: str) -> str:
  """sbatch the script; returns the job id.  UsageError with sbatch's message when it refuses."""
  require_commands("sbatch")
  proc = subprocess.run(["sbatch", "--parsable", script_path], capture_output=True, text=True)
  if proc.returncode:
    message = " ".join(proc.stderr.split()) or f"exit status {proc.returncode}"
    raise UsageError(f"sbatch refused {script_path}: {message}")
  return proc.stdout.strip().split(";")[0]


def parse_squeue(text: str) -> dict:
  """'123_0 RUNNING\\n123_1 PENDING' (squeue -h -r -o '%i %T') -> {'123_0': 'RUNNING', ...}."""
  states = {}
  for line in text.splitlines():
    parts = line.split()
    if len(parts) >= 2:
      states[parts[0]] = parts[1]
  return states


def queued() -> dict:
  """{array task id: state} of every job in the queue (pending, running, completing)."""
  require_commands("squeue")
  proc = subprocess.run(["squeue", "-h", "-r", "-o", "%i %T"], capture_output=True, text=True)
  if proc.returncode:
    raise UsageError(f"squeue failed: {' '.join(proc.stderr.split()) or proc.returncode}")
  return parse_squeue(proc.stdout)


def read_jobs(out_dir: str) -> dict:
  path = os.path.join(out_dir, "slurm", JOBS_FILE)
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def record_jobs(out_dir: str, jobs: dict) -> None:
  """Adds {run name: array task id} to <out_dir>/slurm/jobs.json (a later submission wins)."""
  merged = {**read_jobs(out_dir), **jobs}
  path = os.path.join(out_dir, "slurm", JOBS_FILE)
  with open(path + ".tmp", "w") as f:
    json.dump(merged, f, indent=1)
  os.replace(path + ".tmp", path)


def slurm_output(out_dir: str, task_id: str) -> str:
  """SLURM's output file of array task 'JOB_INDEX'."""
  return os.path.join(out_dir, "slurm", f"{task_id}.out")


def ended_without_result(workdir: str, task_id: str, output_text: str) -> Optional[dict]:
  """The status.json to write for a run whose job left the queue, or None when the run recorded
  its own end (results.json or status.json): a task killed before it could, or never started."""
  if os.path.exists(os.path.join(workdir, RESULTS_FILE)) or os.path.exists(os.path.join(workdir, STATUS_FILE)):
    return None
  lines = [line.strip() for line in output_text.splitlines() if line.strip()]
  said = f": {lines[-1]}" if lines else ""
  return {"returncode": None, "elapsed_s": None, "command": None,
          "error": f"SLURM job {task_id} ended without a result{said}"}
