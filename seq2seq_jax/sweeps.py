"""Hyper-parameter sweeps: expand a grid, launch one training process per run, tabulate and plot.

The library half of `experiments/sweep.py` (which owns the flags).  The pieces, in the order a
sweep uses them:

  parse_grid / parse_named_run   'num_heads=1,4,8' / 'big:d_model=256,d_ff=1024' -> plain data
  expand                         named runs x grid -> [Configuration]  (one table row each)
  plan_runs                      configurations x seeds -> [Run]      (one process and workdir each)
  train_command                  Run -> argv of `python -m experiments.train`
  launch_all                     runs the commands, N at a time; log.txt and status.json per run
  collect / summarize            results.json (or the recorded error) per run -> rows, mean/std over seeds
  write_csv / write_markdown / write_plots

A run's workdir is `<out_dir>/<run name>`, the name made from the named run, the varied flags
(sorted by flag name) and the seed, e.g. `dropout=0.1,num_heads=4,seed=0` or
`big,dropout=0.1,seed=0`: the same configuration always maps to the same directory, so a sweep run
again skips the runs that have a results.json and re-launches the others on their own workdir
(experiments.train resumes from its latest checkpoint).
"""

import csv
import dataclasses
import hashlib
import json
import math
import os
import re
import shlex
import signal
import statistics
import subprocess
import threading
import time
from concurrent import futures
from typing import Callable, Iterable, Optional

from seq2seq_jax.errors import UsageError

RESULTS_FILE = "results.json"   # written by experiments.train at the very end of a run
STATUS_FILE = "status.json"     # written by the sweep when a run's process exits
LOG_FILE = "log.txt"            # the run's stdout and stderr, appended at every launch
SWEEP_FILE = "sweep.json"       # the base flags an out_dir was made with

# Flags a grid or a named run may not set: the sweep sets them itself.
RESERVED_FLAGS = {
    "workdir": "each run's --workdir is chosen by the sweep (<out_dir>/<run name>)",
    "flagfile": "the base flags come from --base_flagfile",
    "seed": "seeds come from --seeds=N (base seed .. base seed + N - 1)",
}
# Numeric entries of results.json["eval"] that count the evaluation data rather than measure the
# model; every other numeric entry (loss, wer, bleu, ...) is a metric.
NOT_METRICS = ("examples", "tokens", "truncated_sources")
# Metrics shown first, in this order; any other numeric eval key follows alphabetically.
METRIC_ORDER = ("loss", "nll", "perplexity", "accuracy", "wer", "per", "bleu", "chrf")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_FLAG_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_UNSAFE_RE = re.compile(r"[^A-Za-z0-9._+-]")
_MAX_NAME = 200  # bytes; most file systems allow 255


# ----------------------------------------------------------------------------- grid and runs

@dataclasses.dataclass(frozen=True)
class Configuration:
  """One row of the results table: an optional named run and the flag values it varies."""
  label: Optional[str]  # the --runs name, None for a grid-only sweep
  flags: tuple          # ((flag, value string), ...): the run's own flags, then the grid's

  def flag_dict(self) -> dict:
    return dict(self.flags)


@dataclasses.dataclass(frozen=True)
class Run:
  """One training process: a configuration at one seed, in its own workdir under the sweep dir."""
  configuration: Configuration
  seed: int
  name: str  # directory name under the sweep's out_dir


def parse_grid(spec: str) -> tuple:
  """'num_heads=1,4,8' -> ('num_heads', ('1', '4', '8')).  Raises UsageError naming the problem."""
  flag, sep, values = spec.partition("=")
  flag = flag.strip().lstrip("-")
  if not sep or not _FLAG_RE.match(flag):
    raise UsageError(f"bad --grid={spec!r}: expected FLAG=V1,V2,... (e.g. --grid=num_heads=1,4,8)")
  parsed = tuple(v.strip() for v in values.split(","))
  if not values.strip() or any(not v for v in parsed):
    raise UsageError(f"bad --grid={spec!r}: empty value in {values!r}; expected FLAG=V1,V2,...")
  if len(set(parsed)) != len(parsed):
    raise UsageError(f"bad --grid={spec!r}: a value is listed twice")
  return flag, parsed


def parse_named_run(spec: str) -> tuple:
  """'big:d_model=256,d_ff=1024' -> ('big', (('d_model', '256'), ('d_ff', '1024'))); 'base:' sets nothing."""
  name, sep, body = spec.partition(":")
  name = name.strip()
  if not sep or not _NAME_RE.match(name):
    raise UsageError(f"bad --runs={spec!r}: expected NAME:FLAG=V,FLAG=V (NAME of letters, digits, "
                     "'.', '_', '-'; e.g. --runs=big:d_model=256,d_ff=1024, or --runs=base: for the base flags)")
  pairs = []
  for item in filter(None, (s.strip() for s in body.split(","))):
    flag, eq, value = item.partition("=")
    flag = flag.strip().lstrip("-")
    if not eq or not _FLAG_RE.match(flag) or not value.strip():
      raise UsageError(f"bad --runs={spec!r}: {item!r} is not FLAG=VALUE")
    if flag in dict(pairs):
      raise UsageError(f"bad --runs={spec!r}: --{flag} is set twice")
    pairs.append((flag, value.strip()))
  return name, tuple(pairs)


def check_flags(pairs: Iterable[tuple], check_value: Callable[[str, str], None]) -> None:
  """Refuses reserved flags, then lets `check_value(flag, value)` (the entry point's knowledge of
  experiments.train's flags) raise UsageError for an unknown flag or an unparsable value."""
  for flag, value in pairs:
    if flag in RESERVED_FLAGS:
      raise UsageError(f"--{flag} cannot be varied: {RESERVED_FLAGS[flag]}")
    check_value(flag, value)


def expand(grids: list, named_runs: list) -> list:
  """Configurations of a sweep, in a stable order.

  grids: [(flag, values)] from parse_grid; named_runs: [(name, pairs)] from parse_named_run.
  With both, every named run is combined with every grid point (runs x grid); a flag may not be
  set by both.  With neither, the single configuration is the base flags.  The last grid varies
  fastest, as in itertools.product.
  """
  grid_flags = [flag for flag, _ in grids]
  for flag in set(grid_flags):
    if grid_flags.count(flag) > 1:
      raise UsageError(f"--grid sets --{flag} twice; list all its values in one --grid={flag}=V1,V2,...")
  names = [name for name, _ in named_runs]
  for name in set(names):
    if names.count(name) > 1:
      raise UsageError(f"--runs names {name!r} twice; run names must be unique")
  for name, pairs in named_runs:
    both = sorted(set(dict(pairs)) & set(grid_flags))
    if both:
      raise UsageError(f"--runs={name}:... and --grid both set --{both[0]}; set it in one of them")
  points = [()]
  for flag, values in grids:
    points = [point + ((flag, value),) for point in points for value in values]
  runs = named_runs or [(None, ())]
  return [Configuration(label, pairs + point) for label, pairs in runs for point in points]


def _safe(text: str) -> str:
  return _UNSAFE_RE.sub("_", text)


def run_name(configuration: Configuration, seed: int) -> str:
  """Filesystem-safe directory name: 'label,flag=value,...,seed=s' with the flags sorted by name."""
  parts = [configuration.label] if configuration.label else []
  parts += [f"{flag}={_safe(value)}" for flag, value in sorted(configuration.flags)]
  name = ",".join(parts + [f"seed={seed}"])
  if len(name.encode()) > _MAX_NAME:
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    name = name[: _MAX_NAME - 11] + "-" + digest
  return name


def plan_runs(configurations: list, seeds: list, seed_counts: Optional[dict] = None) -> list:
  """Every configuration at every seed, configuration-major; `seed_counts` {run name: N} gives a
  named run its own number of seeds (the first N from seeds[0] on), e.g. 3 for the base row only.
  Raises UsageError if two runs would share a directory (values that differ only in characters
  replaced by '_')."""
  seed_counts = seed_counts or {}
  unknown = sorted(set(seed_counts) - {c.label for c in configurations})
  if unknown:
    raise UsageError(f"--seeds_for names {unknown[0]!r}, which is not a --runs name")
  def seeds_of(c):
    return list(range(seeds[0], seeds[0] + seed_counts[c.label])) if c.label in seed_counts else seeds
  runs = [Run(c, seed, run_name(c, seed)) for c in configurations for seed in seeds_of(c)]
  seen = {}
  for run in runs:
    if run.name in seen:
      raise UsageError(f"two runs map to the same directory {run.name!r} ({seen[run.name].flags} and "
                       f"{run.configuration.flags}); make the values differ in letters or digits")
    seen[run.name] = run.configuration
  return runs


def seed_values(base_args: list, count: int) -> list:
  """count seeds starting at the base flags' --seed (the last one given), or at 0."""
  if count < 1:
    raise UsageError(f"--seeds must be a positive integer, got {count}")
  first = 0
  for arg in base_args:
    if arg.startswith("--seed="):
      try:
        first = int(arg.split("=", 1)[1])
      except ValueError as e:
        raise UsageError(f"the base flags set {arg!r}: not an integer") from e
  return list(range(first, first + count))


def train_command(python: str, base_flagfile: str, extra_flags: list, run: Run, out_dir: str) -> list:
  """argv of one run: the base flagfile first, then the extra flags, the varied flags, the seed
  and the workdir (later flags override earlier ones)."""
  return [python, "-m", "experiments.train", f"--flagfile={base_flagfile}", *extra_flags,
          *(f"--{flag}={value}" for flag, value in run.configuration.flags),
          f"--seed={run.seed}", f"--workdir={os.path.join(out_dir, run.name)}"]


def flag_name(arg: str) -> Optional[str]:
  """'--num_heads=4' -> 'num_heads'; '--nopre_ln' -> 'nopre_ln'; not a flag -> None."""
  if not arg.startswith("-") or arg in ("-", "--"):
    return None
  return arg.lstrip("-").split("=", 1)[0]


# ----------------------------------------------------------------------------- the out_dir record

def check_sweep_record(out_dir: str, record: dict, write: bool = True) -> None:
  """Refuses (UsageError) an out_dir whose runs were made with other base flags (their results
  would silently mix with the new ones); otherwise writes out_dir/sweep.json if `write`."""
  path = os.path.join(out_dir, SWEEP_FILE)
  if os.path.exists(path):
    with open(path) as f:
      saved = json.load(f)
    if saved != record:
      changes = []
      for key in sorted(set(saved) | set(record)):
        before, now = saved.get(key) or [], record.get(key) or []
        gone, new = [x for x in before if x not in now], [x for x in now if x not in before]
        if gone or new or before != now:
          changes.append(f"{key}: {' '.join(gone) or '-'} -> {' '.join(new) or '-'}")
      raise UsageError(f"{out_dir} holds a sweep made with other flags ({'; '.join(changes)}); use a "
                       f"new --out_dir, or delete {path} to reuse its runs anyway")
    return
  if write:
    os.makedirs(out_dir, exist_ok=True)
    with open(path, "w") as f:
      json.dump(record, f, indent=1)


# ----------------------------------------------------------------------------- launching

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


# ----------------------------------------------------------------------------- results

@dataclasses.dataclass(frozen=True)
class RunResult:
  """What one run left behind: its numbers (results.json) or why there are none."""
  run: Run
  status: str            # 'ok', 'failed' or 'not run'
  error: Optional[str]
  values: dict           # params, wall_s, train_loss and every numeric eval metric


def _numeric(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def values_from_results(results: dict) -> dict:
  """params, wall_s, train_loss and every numeric entry of results['eval'] (except NOT_METRICS)."""
  values = {k: results[k] for k in ("params", "wall_s", "train_loss") if _numeric(results.get(k))}
  for key, value in results.get("eval", {}).items():
    if key not in NOT_METRICS and _numeric(value):
      values[key] = value
  return values


def collect(runs: list, out_dir: str) -> list:
  """A RunResult per run, from its results.json, else its status.json, else 'not run'."""
  collected = []
  for run in runs:
    workdir = os.path.join(out_dir, run.name)
    results_path, status_path = os.path.join(workdir, RESULTS_FILE), os.path.join(workdir, STATUS_FILE)
    if os.path.exists(results_path):
      with open(results_path) as f:
        collected.append(RunResult(run, "ok", None, values_from_results(json.load(f))))
    elif os.path.exists(status_path):
      with open(status_path) as f:
        status = json.load(f)
      collected.append(RunResult(run, "failed", status.get("error") or "failed", {}))
    else:
      collected.append(RunResult(run, "not run", None, {}))
  return collected


@dataclasses.dataclass(frozen=True)
class Row:
  """One configuration over its seeds: mean and sample standard deviation of each value."""
  configuration: Configuration
  seeds: tuple
  n: int                 # runs with results
  status: str            # 'ok', 'failed', 'partial' (some seeds failed) or 'not run'
  error: Optional[str]
  mean: dict
  std: dict              # None where n < 2


def metric_names(rows: list) -> list:
  """Every value name found in the rows: params, metrics (METRIC_ORDER first), train_loss, wall_s."""
  found = set().union(*(row.mean for row in rows)) if rows else set()
  head = [k for k in ("params",) if k in found]
  tail = [k for k in ("train_loss", "wall_s") if k in found]
  middle = sorted(found - set(head) - set(tail), key=lambda k: (k not in METRIC_ORDER,
                                                                METRIC_ORDER.index(k) if k in METRIC_ORDER else 0, k))
  return head + middle + tail


def summarize(results: list) -> list:
  """Groups RunResults by configuration (in first-seen order) into Rows."""
  groups = {}
  for result in results:
    groups.setdefault(result.run.configuration, []).append(result)
  rows = []
  for configuration, group in groups.items():
    ok = [r for r in group if r.status == "ok"]
    failed = [r for r in group if r.status == "failed"]
    names = sorted(set().union(*(r.values for r in ok))) if ok else []
    mean, std = {}, {}
    for name in names:
      xs = [r.values[name] for r in ok if name in r.values]
      mean[name] = statistics.fmean(xs)
      std[name] = statistics.stdev(xs) if len(xs) > 1 else None
    if failed:
      status = "partial" if ok else "failed"
    else:
      status = "ok" if len(ok) == len(group) else ("not run" if not ok else "partial")
    error = _seed_errors(failed, several_seeds=len(group) > 1)
    rows.append(Row(configuration, tuple(r.run.seed for r in group), len(ok), status, error, mean, std))
  return rows


def _seed_errors(failed: list, several_seeds: bool) -> Optional[str]:
  """'msg' for one seed; 'seeds 0, 2: msg' per distinct message when a configuration has several."""
  by_error = {}
  for result in failed:
    by_error.setdefault(result.error, []).append(str(result.run.seed))
  if not several_seeds:
    return next(iter(by_error), None)
  return "; ".join(f"seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)}: {error}"
                   for error, seeds in by_error.items()) or None


def varied_flags(rows: list) -> list:
  """The flags any row sets, in first-seen order (the table's flag columns)."""
  seen = []
  for row in rows:
    for flag, _ in row.configuration.flags:
      if flag not in seen:
        seen.append(flag)
  return seen


def _has_labels(rows: list) -> bool:
  return any(row.configuration.label for row in rows)


def _fmt(name: str, value, digits: int = 4) -> str:
  """Table cell: parameter counts with thousands separators, seconds whole, others `digits` significant."""
  if value is None:
    return ""
  if name == "params":
    return f"{value:,.0f}"
  if name == "wall_s":
    return f"{value:.0f}"
  return f"{value:.{digits}g}"


def table(rows: list) -> tuple:
  """(header, cells): one list of strings per row; with several seeds per row, 'mean ± std' and n."""
  flags_ = varied_flags(rows)
  names = metric_names(rows)
  many_seeds = any(len(row.seeds) > 1 for row in rows)
  header = (["run"] if _has_labels(rows) else []) + flags_ + (["n"] if many_seeds else []) + names + ["status"]
  cells = []
  for row in rows:
    d = row.configuration.flag_dict()
    line = ([row.configuration.label or ""] if _has_labels(rows) else []) + [d.get(f, "") for f in flags_]
    if many_seeds:
      line.append(f"{row.n}/{len(row.seeds)}")
    for name in names:
      text = _fmt(name, row.mean.get(name))
      if row.std.get(name) is not None and name != "params":
        text += f" ± {_fmt(name, row.std[name], digits=2)}"
      line.append(text)
    line.append(row.status if row.error is None else f"{row.status}: {row.error}")
    cells.append(line)
  return header, cells


def write_csv(rows: list, path: str) -> None:
  """One line per configuration: run, flags, seeds, n, status, error, each value and its std."""
  flags_ = varied_flags(rows)
  names = metric_names(rows)
  header = (["run"] if _has_labels(rows) else []) + flags_ + ["seeds", "n", "status", "error"]
  header += [x for name in names for x in (name, f"{name}_std")]
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(header)
    for row in rows:
      d = row.configuration.flag_dict()
      line = ([row.configuration.label or ""] if _has_labels(rows) else []) + [d.get(f, "") for f in flags_]
      line += [" ".join(map(str, row.seeds)), row.n, row.status, row.error or ""]
      for name in names:
        line += [_raw(row.mean.get(name)), _raw(row.std.get(name))]
      writer.writerow(line)


def _raw(value) -> str:
  return "" if value is None else repr(value)


def write_markdown(rows: list, path: str, title: str) -> None:
  """A markdown table of `table(rows)` under a heading and a line saying what the cells mean."""
  header, cells = table(rows)
  escape = lambda s: s.replace("|", "\\|")
  lines = [f"# {title}", ""]
  if any(len(row.seeds) > 1 for row in rows):
    lines += ["Cells are mean ± sample standard deviation over the seeds that finished (n of seeds run); "
              "metrics are the test-split evaluation of results.json.", ""]
  lines.append("| " + " | ".join(header) + " |")
  lines.append("|" + "|".join("---" for _ in header) + "|")
  lines += ["| " + " | ".join(escape(c) for c in line) + " |" for line in cells]
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")


# ----------------------------------------------------------------------------- plots

def plot_axes(rows: list, grid_flags: list) -> list:
  """The axes a sweep is plotted along: 'run' (the named runs) when there are several, and every
  grid flag with more than one value."""
  axes = ["run"] if len({row.configuration.label for row in rows}) > 1 else []
  for flag in grid_flags:
    if len({row.configuration.flag_dict().get(flag) for row in rows}) > 1:
      axes.append(flag)
  return axes


def _axis_value(row: Row, axis: str) -> str:
  return row.configuration.label if axis == "run" else row.configuration.flag_dict()[axis]


def _as_numbers(values: list) -> Optional[list]:
  try:
    return [float(v) for v in values]
  except ValueError:
    return None


def write_plots(rows: list, grid_flags: list, plot_dir: str) -> list:
  """One PNG per plot axis (see plot_axes): each metric against the axis' values, one line per
  combination of the other axes, error bars = sample std over seeds.  Returns the paths written."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  done = [row for row in rows if row.n]
  names = [n for n in metric_names(done) if n not in ("params", "wall_s")]
  axes_ = plot_axes(rows, grid_flags)
  if not done or not names or not axes_:
    return []
  os.makedirs(plot_dir, exist_ok=True)
  paths = []
  for axis in axes_:
    others = [a for a in axes_ if a != axis]
    x_values = list(dict.fromkeys(_axis_value(row, axis) for row in done))
    numbers = _as_numbers(x_values) if axis != "run" else None
    position = dict(zip(x_values, numbers if numbers is not None else range(len(x_values))))
    lines = {}
    for row in done:
      key = ", ".join(f"{a}={_axis_value(row, a)}" for a in others)
      lines.setdefault(key, []).append(row)
    cols = min(len(names), 4)
    nrows = math.ceil(len(names) / cols)
    fig, grid = plt.subplots(nrows, cols, figsize=(4 * cols, 3.2 * nrows), squeeze=False)
    for ax, name in zip(grid.flat, names):
      for key, line_rows in lines.items():
        pts = sorted((position[_axis_value(r, axis)], r.mean[name], r.std.get(name) or 0.0)
                     for r in line_rows if name in r.mean)
        if pts:
          xs, ys, es = zip(*pts)
          ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=key or None,
                      linestyle="-" if numbers is not None else "none")
      ax.set_title(name)
      ax.set_xlabel(axis)
      if numbers is None:
        ax.set_xticks(range(len(x_values)), x_values, rotation=30 if len(x_values) > 4 else 0)
      else:
        if min(numbers) > 0 and max(numbers) >= 10 * min(numbers):
          ax.set_xscale("log")  # e.g. heads 1..32, learning rates
        ax.set_xticks(numbers, x_values)
        ax.minorticks_off()
      ax.grid(alpha=0.3)
    for ax in list(grid.flat)[len(names):]:
      ax.set_visible(False)
    handles, labels = grid.flat[0].get_legend_handles_labels()
    if labels:
      fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize="small")
    fig.suptitle(f"metrics vs {axis} (error bars: std over seeds)")
    fig.tight_layout(rect=(0, 0.1 if labels else 0, 1, 0.95))
    path = os.path.join(plot_dir, f"{_safe(axis)}.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    paths.append(path)
  return paths
