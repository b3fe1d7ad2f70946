"""Sweep plans: expand a grid into runs, one `python -m experiments.train` command each.

  parse_grid / parse_named_run   'num_heads=1,4,8' / 'big:d_model=256,d_ff=1024' -> plain data
  expand                         named runs x grid -> [Configuration]  (one table row each)
  plan_runs                      configurations x seeds -> [Run]      (one process and workdir each)
  train_command                  Run -> argv of `python -m experiments.train`

`launch.py` runs the commands and `report.py` tabulates and plots what they left behind.

A run's workdir is `<out_dir>/<run name>`, the name made from the named run, the varied flags
(sorted by flag name) and the seed, e.g. `dropout=0.1,num_heads=4,seed=0` or
`big,dropout=0.1,seed=0`: the same configuration always maps to the same directory, so a sweep run
again skips the runs that have a results.json and re-launches the others on their own workdir
(experiments.train resumes from its latest checkpoint).
"""

import dataclasses
import hashlib
import json
import os
import re
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


def safe_name(text: str) -> str:
  return _UNSAFE_RE.sub("_", text)


def run_name(configuration: Configuration, seed: int) -> str:
  """Filesystem-safe directory name: 'label,flag=value,...,seed=s' with the flags sorted by name."""
  parts = [configuration.label] if configuration.label else []
  parts += [f"{flag}={safe_name(value)}" for flag, value in sorted(configuration.flags)]
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
