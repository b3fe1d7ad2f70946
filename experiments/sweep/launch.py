"""Launching a sweep's runs: one training process each, N at a time; log.txt and status.json per run."""

import dataclasses
import json
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from concurrent import futures
from typing import Callable, Optional

from experiments.sweep.plan import RESULTS_FILE, STATUS_FILE, LOG_FILE, Run
from seq2seq_jax.errors import UsageError


@dataclasses.dataclass(frozen=True)
class Outcome:
  """How one launched process ended."""
  run: Run
  returncode: int
  error: Optional[str]  # None when the run wrote its results.json
  elapsed_s: float


def is_done(out_dir: str, run: Run) -> bool:
  return os.path.exists(os.path.join(out_dir, run.name, RESULTS_FILE))


def error_from_log(text: str, returncode: int) -> str:
  """The line that says why a run failed: the last '... error: ...' line (experiments.train's
  usage errors, absl's flag-parsing errors), else the last non-empty line, else the exit status."""
  if returncode < 0:
    try:
      return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
      return f"killed by signal {-returncode}"
  lines = [line.strip() for line in re.split(r"[\r\n]+", text) if line.strip()]
  for line in reversed(lines):
    if re.search(r"(^|\s)error: ", line):
      return line[len("error: "):] if line.startswith("error: ") else line
  return lines[-1] if lines else f"exit status {returncode}"


def launch(command: list, workdir: str, processes: Optional[set] = None, lock=None) -> tuple:
  """Runs one command with stdout and stderr appended to workdir/log.txt and its exit recorded in
  workdir/status.json.  Returns (return code, error or None, seconds)."""
  os.makedirs(workdir, exist_ok=True)
  status_path = os.path.join(workdir, STATUS_FILE)
  if os.path.exists(status_path):
    os.remove(status_path)  # a stale failure must not outlive the run that replaces it
  log_path = os.path.join(workdir, LOG_FILE)
  start = time.time()
  with open(log_path, "ab") as log:
    offset = log.tell()
    log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(command)}\n".encode())
    log.flush()
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if processes is not None:
      with lock:
        processes.add(proc)
    try:
      returncode = proc.wait()
    finally:
      if processes is not None:
        with lock:
          processes.discard(proc)
  elapsed = time.time() - start
  error = None
  if not os.path.exists(os.path.join(workdir, RESULTS_FILE)):
    with open(log_path, "rb") as log:
      log.seek(offset)
      text = log.read().decode(errors="replace")
    error = (error_from_log(text, returncode) if returncode
             else "exited with status 0 but wrote no results.json")
  with open(status_path, "w") as f:
    json.dump({"returncode": returncode, "error": error, "elapsed_s": round(elapsed, 1),
               "command": command}, f, indent=1)
  return returncode, error, elapsed


def launch_all(runs: list, commands: dict, out_dir: str, parallel: int,
               report: Callable[[str], None] = print) -> list:
  """Launches every run's command, `parallel` at a time, each in its workdir; a failing run does
  not stop the others.  Ctrl-C terminates the running processes (their workdirs resume later).
  Returns the Outcomes in completion order."""
  if parallel < 1:
    raise UsageError(f"--parallel must be a positive integer, got {parallel}")
  processes, lock = set(), threading.Lock()
  total = len(runs)

  def one(run):
    returncode, error, elapsed = launch(commands[run.name], os.path.join(out_dir, run.name), processes, lock)
    return Outcome(run, returncode, error, elapsed)

  outcomes, pending = [], {}
  pool = futures.ThreadPoolExecutor(max_workers=parallel)
  try:
    pending = {pool.submit(one, run): run for run in runs}
    for i, future in enumerate(futures.as_completed(pending), 1):
      outcome = future.result()
      outcomes.append(outcome)
      state = "ok" if outcome.error is None else f"FAILED: {outcome.error}"
      report(f"[{i}/{total}] {outcome.run.name} ({outcome.elapsed_s:.0f} s): {state}")
  except BaseException:
    for future in pending:
      future.cancel()
    with lock:
      for proc in processes:
        proc.terminate()
    raise
  finally:
    pool.shutdown(wait=True)
  return outcomes
