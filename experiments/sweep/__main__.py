r"""Run a hyper-parameter sweep of experiments.train and tabulate and plot the results.

  # 3 x 2 grid, 3 seeds each (18 runs), two at a time:
  python -m experiments.sweep --base_flagfile=experiments/g2p_cmudict/transformer_1h.flags \
      --grid=num_heads=1,4,8 --grid=dropout=0.0,0.1 --seeds=3 --parallel=2 --out_dir=runs/sweep_heads

  # named runs (each sets its own flags; 'base:' sets none), with shorter training for all:
  python -m experiments.sweep --base_flagfile=base.flags --out_dir=runs/sizes \
      --runs=base: --runs=small:d_model=64,d_ff=256 --runs=deep:num_layers=4 \
      --extra_flags='--num_train_steps=300 --eval_every_steps=300'

  # the same, training flags passed through after `--` instead of --extra_flags:
  python -m experiments.sweep --base_flagfile=base.flags --out_dir=runs/sizes --runs=base: -- --num_train_steps=300

  # print the commands (shell-quoted, one per line) and run nothing:
  python -m experiments.sweep --base_flagfile=base.flags --grid=num_heads=1,4,8 --out_dir=runs/h --dry_run

What runs.  The configurations are the cross product of the --grid flags; with --runs, every named
run is combined with every grid point (runs x grid; runs only when there is no --grid); a flag may
be set by a run or by the grid, not both.  Each configuration runs once per seed: --seeds=N gives
seeds S..S+N-1, where S is the --seed of the base flags (flagfile and extra flags), 0 if they set
none.  Each run is one `python -m experiments.train` process (this interpreter):

  --flagfile=BASE  [extra flags]  [the run's flags, then the grid's]  --seed=S  --workdir=OUT_DIR/NAME

NAME is made from the run name, the varied flags sorted by name and the seed, e.g.
`dropout=0.1,num_heads=4,seed=0` or `small,d_ff=256,d_model=64,seed=0`; characters other than
letters, digits and `._+-` in values become `_`.  The run's stdout and stderr are appended to
OUT_DIR/NAME/log.txt and its exit is recorded in OUT_DIR/NAME/status.json.

Resuming.  Run the same command again: runs with a results.json are skipped; the others
(interrupted or failed) are launched again on their workdir, and experiments.train resumes from
the latest checkpoint.  OUT_DIR/sweep.json records the base and extra flags; a sweep with other
ones is refused (their results would mix).  Adding grid values or runs to a sweep is fine.

Results.  OUT_DIR/results.csv and OUT_DIR/results.md hold one row per configuration: its flags,
the parameter count, every numeric metric of the test evaluation (results.json's `eval`), the
final training loss and wall time, and the status (`ok`, `failed: <error>`, `partial` when some
seeds failed, `not run`).  With several seeds the cells are mean ± sample std over the seeds that
finished, and `n` counts them.  A failed run's error is the last `error: ...` line of its output
(else the last line).  OUT_DIR/plots/<axis>.png plots each metric against each grid flag (and
against the run name with --runs), one line per value of the other axes, error bars = std over
seeds.  The exit status is 1 if any run failed, 2 for a bad command line, 0 otherwise.

--parallel=N runs N processes at once; each one uses every CPU core it finds, so on a small machine
more than one at a time mostly trades speed per run for overlap of start-up and evaluation.

On SLURM (--launcher=slurm): the runs without results are submitted with sbatch as one job array,
one task per run (script: OUT_DIR/slurm/job_array.sbatch; --dry_run prints it and submits nothing),
each task asking for --slurm_partition, --slurm_time, --slurm_cpus_per_task, --slurm_gpus_per_task
and any --slurm_additional_parameters=NAME=VALUE (an sbatch option); --parallel, when given, caps
the tasks running at once.  A task writes the run's log.txt and status.json as a local run does;
SLURM's own output goes to OUT_DIR/slurm/JOB_TASK.out.  The command waits for the tasks to leave the
queue and writes the same results.csv, results.md and plots (--nowait: submit and return; Ctrl-C
stops waiting, not the tasks).  Run it again: runs with results are skipped, runs still queued are
waited for, the others (failed, cancelled, preempted, never run) are submitted again and resume
from their latest checkpoint.  SIGTERM (scancel, preemption, or 120 s before --slurm_time) makes
training save a checkpoint and stop.

  python -m experiments.sweep --launcher=slurm --slurm_partition=cpu --slurm_time=4:00:00 \
      --slurm_cpus_per_task=8 --base_flagfile=base.flags --grid=num_heads=1,4,8 --out_dir=runs/h
"""

import difflib
import json
import os
import shlex
import sys
import time

from absl import app, flags

from experiments.sweep import launch, plan, report, slurm
from seq2seq_jax.errors import UsageError

FLAGS = flags.FLAGS

flags.DEFINE_string("base_flagfile", None, "Flagfile of experiments.train shared by every run.")
flags.DEFINE_multi_string("grid", [], "FLAG=V1,V2,...: one axis of the grid (repeatable).")
flags.DEFINE_multi_string("runs", [], "NAME:FLAG=V,FLAG=V: a named run (repeatable); combined with "
                          "every grid point.")
flags.DEFINE_integer("seeds", 1, "Seeds per configuration (S..S+N-1, S = the base --seed or 0).")
flags.DEFINE_multi_string("seeds_for", [], "NAME:N: the named run NAME gets N seeds instead of --seeds "
                          "(repeatable), e.g. --seeds_for=base:3 to show the noise level of the base row.")
flags.DEFINE_string("out_dir", None, "Sweep directory: one workdir per run, results.csv/.md, plots/.")
flags.DEFINE_integer("parallel", 1, "Training processes at once.")
flags.DEFINE_bool("dry_run", False, "Print the commands, one per line, and run nothing.")
flags.DEFINE_enum("launcher", "local", ["local", "slurm"], "local: training processes on this machine "
                  "(--parallel at a time); slurm: one SLURM job array, one task per run (sbatch).")
flags.DEFINE_string("slurm_partition", "", "--launcher=slurm: the partition (default: the cluster's).")
flags.DEFINE_string("slurm_time", "", "--launcher=slurm: each task's time limit, e.g. 4:00:00; SIGTERM "
                    f"comes {slurm.SIGNAL_SECONDS} s before it (a checkpoint is saved; run the sweep again).")
flags.DEFINE_integer("slurm_cpus_per_task", 0, "--launcher=slurm: CPUs per task (0: the cluster's default).")
flags.DEFINE_integer("slurm_gpus_per_task", 0, "--launcher=slurm: GPUs per task (0: none asked for).")
flags.DEFINE_multi_string("slurm_additional_parameters", [], "--launcher=slurm: another sbatch option, "
                          "NAME=VALUE or NAME without dashes, e.g. mem=16G or exclusive (repeatable).")
flags.DEFINE_bool("wait", True, "--launcher=slurm: wait for the job array to end, then write the tables; "
                  "--nowait submits and returns (run the same command again to collect).")
flags.DEFINE_string("extra_flags", "", "Training flags added to every run after the base flagfile "
                    "(shell syntax, e.g. '--num_train_steps=10 --eval_every_steps=10'); flags "
                    "after `--` on the command line are added too.")

SWEEP_FLAGS = ("base_flagfile", "grid", "runs", "seeds", "seeds_for", "out_dir", "parallel", "dry_run", "extra_flags",
               "launcher", "slurm_partition", "slurm_time", "slurm_cpus_per_task", "slurm_gpus_per_task",
               "slurm_additional_parameters", "wait")
SLURM_FLAGS = ("slurm_partition", "slurm_time", "slurm_cpus_per_task", "slurm_gpus_per_task",
               "slurm_additional_parameters", "wait")


def train_flag_checker():
  """check_value(flag, value) for experiments.train's flags: UsageError for an unknown flag or a
  value the flag's own parser refuses (range checks are left to experiments.train)."""
  import experiments.train  # pylint: disable=g-import-not-at-top,unused-import  (defines its flags)
  known = sorted(set(FLAGS) - set(SWEEP_FLAGS))

  def check_value(flag, value):
    if flag not in known:
      close = difflib.get_close_matches(flag, known, n=1)
      hint = f" (did you mean --{close[0]}?)" if close else ""
      raise UsageError(f"unknown flag --{flag}: experiments.train has no such flag{hint}")
    if value is None:
      if not FLAGS[flag].boolean:
        raise UsageError(f"write --{flag}=VALUE: a training flag takes its value after '='")
      return
    try:
      FLAGS[flag].parser.parse(value)
    except ValueError as e:
      raise UsageError(f"--{flag}={value}: {e}") from e

  return check_value


def split_flag(arg):
  """'--num_heads=4' -> ('num_heads', '4'); '--pre_ln' -> ('pre_ln', None); '--nopre_ln' -> ('pre_ln', None)."""
  name = plan.flag_name(arg)
  if name is None:
    raise UsageError(f"{arg!r} is not a training flag (expected --FLAG=VALUE)")
  if "=" in arg:
    return name, arg.split("=", 1)[1]
  if name.startswith("no") and name[2:] in FLAGS and FLAGS[name[2:]].boolean:
    return name[2:], None
  return name, None


def base_and_extra_flags(check_value, passthrough):
  """(expanded base flagfile lines, extra flags), every flag checked against experiments.train."""
  if not FLAGS.base_flagfile:
    raise UsageError("--base_flagfile is required: the experiments.train flagfile every run starts from")
  if not os.path.isfile(FLAGS.base_flagfile):
    raise UsageError(f"--base_flagfile={FLAGS.base_flagfile}: no such file")
  try:
    base = FLAGS.read_flags_from_files([f"--flagfile={FLAGS.base_flagfile}"], force_gnu=True)
    extra = shlex.split(FLAGS.extra_flags) + list(passthrough)
    extra = FLAGS.read_flags_from_files(extra, force_gnu=True)
  except (ValueError, flags.Error) as e:
    raise UsageError(f"cannot read the base or extra flags: {e}") from e
  for where, args in (("--base_flagfile", base), ("--extra_flags", extra)):
    for arg in args:
      try:
        name, value = split_flag(arg)
        if name == "workdir" and where == "--extra_flags":
          raise UsageError(f"--workdir cannot be set: {plan.RESERVED_FLAGS['workdir']}")
        check_value(name, value)
      except UsageError as e:
        raise UsageError(f"{where}: {e}") from e
  return base, extra


def plan_sweep(check_value, passthrough):
  """(runs, commands by run name, sweep record) from the flags; UsageError for any bad input."""
  if not FLAGS.out_dir:
    raise UsageError("--out_dir is required: the directory that holds the sweep's runs and tables")
  base, extra = base_and_extra_flags(check_value, passthrough)
  grids = [plan.parse_grid(spec) for spec in FLAGS.grid]
  named = [plan.parse_named_run(spec) for spec in FLAGS.runs]
  for flag, values in grids:
    plan.check_flags([(flag, v) for v in values], check_value)
  for _, pairs in named:
    plan.check_flags(pairs, check_value)
  extra_names = {split_flag(arg)[0] for arg in extra}
  for flag, _ in grids + [p for _, pairs in named for p in pairs]:
    if flag in extra_names:
      raise UsageError(f"--{flag} is set by the extra flags and varied by --grid/--runs; set it in one place")
  configurations = plan.expand(grids, named)
  seeds = plan.seed_values(base + extra, FLAGS.seeds)
  seed_counts = {}
  for spec in FLAGS.seeds_for:
    name, _, count = spec.partition(":")
    if not count.isdigit() or int(count) < 1:
      raise UsageError(f"bad --seeds_for={spec!r}: expected NAME:N with N a positive integer")
    seed_counts[name] = int(count)
  runs = plan.plan_runs(configurations, seeds, seed_counts)
  commands = {run.name: plan.train_command(sys.executable, FLAGS.base_flagfile, extra, run, FLAGS.out_dir)
              for run in runs}
  return runs, commands, {"base_flags": base, "extra_flags": extra}, [flag for flag, _ in grids]


def write_tables(runs, grid_flags):
  """results.csv, results.md and plots/ in --out_dir; prints the table.  Returns the rows."""
  rows = report.summarize(report.collect(runs, FLAGS.out_dir))
  report.write_csv(rows, os.path.join(FLAGS.out_dir, "results.csv"))
  title = f"Sweep of {FLAGS.base_flagfile} ({len(runs)} runs)"
  md = os.path.join(FLAGS.out_dir, "results.md")
  report.write_markdown(rows, md, title)
  plots = report.write_plots(rows, grid_flags, os.path.join(FLAGS.out_dir, "plots"))
  with open(md) as f:
    print(f.read(), end="")
  print(f"-> {md}, {os.path.join(FLAGS.out_dir, 'results.csv')}"
        + (f", {len(plots)} plot(s) in {os.path.join(FLAGS.out_dir, 'plots')}" if plots else ""))
  return rows


def slurm_options() -> slurm.SlurmOptions:
  """SlurmOptions from the --slurm_* flags (--parallel, when given, caps the tasks running at once);
  UsageError for a --slurm_* flag given with --launcher=local."""
  if FLAGS.launcher != "slurm":
    given = [name for name in SLURM_FLAGS if FLAGS[name].present]
    if given:
      raise UsageError(f"--{given[0]} applies to --launcher=slurm only")
    return slurm.SlurmOptions()
  options = slurm.SlurmOptions(
      partition=FLAGS.slurm_partition, time=FLAGS.slurm_time, cpus_per_task=FLAGS.slurm_cpus_per_task,
      gpus_per_task=FLAGS.slurm_gpus_per_task, additional_parameters=tuple(FLAGS.slurm_additional_parameters),
      max_running=FLAGS.parallel if FLAGS["parallel"].present else 0)
  options.check()
  return options


def wait_for_tasks(task_ids: list, poll_s: float = 2.0) -> None:
  """Polls squeue until none of the array tasks `task_ids` is queued, printing each change of counts."""
  last = None
  while True:
    states = slurm.queued()
    mine = [states[t] for t in task_ids if t in states]
    if not mine:
      return
    summary = ", ".join(f"{mine.count(state)} {state.lower()}" for state in sorted(set(mine)))
    if summary != last:
      print(f"slurm: {summary}", flush=True)
      last = summary
    time.sleep(poll_s)


def run_on_slurm(runs, commands, grid_flags, options) -> int:
  """Submits the runs without results that are not queued already as one job array, waits for the
  sweep's tasks to leave the queue (unless --nowait) and writes the tables.  Returns the exit status."""
  out_dir = FLAGS.out_dir
  jobs = slurm.read_jobs(out_dir)
  in_queue = slurm.queued() if jobs else {}
  done = [run for run in runs if launch.is_done(out_dir, run)]
  waiting = [run for run in runs if run not in done and jobs.get(run.name) in in_queue]
  todo = [run for run in runs if run not in done and run not in waiting]
  tasks = {i: (os.path.join(out_dir, run.name), commands[run.name]) for i, run in enumerate(runs) if run in todo}
  job_name = f"sweep:{os.path.basename(os.path.abspath(out_dir))}"
  script = slurm.job_script(tasks, options, job_name, out_dir, os.getcwd(), sys.executable)
  if FLAGS.dry_run:
    print(script if todo else "# nothing to submit", end="")
    print(f"# {len(runs)} runs; {len(done)} have results.json, {len(waiting)} are queued; "
          f"{len(todo)} would be submitted as one job array", file=sys.stderr)
    return 0
  for run in done:
    print(f"skip {run.name}: results.json exists")
  for run in waiting:
    print(f"wait {run.name}: SLURM task {jobs[run.name]} is {in_queue[jobs[run.name]].lower()}")
  submitted = {}
  if todo:
    os.makedirs(os.path.join(out_dir, "slurm"), exist_ok=True)
    path = os.path.join(out_dir, "slurm", slurm.SCRIPT_FILE)
    with open(path, "w") as f:
      f.write(script)
    job = slurm.submit(path)
    submitted = {run.name: f"{job}_{i}" for i, run in enumerate(runs) if run in todo}
    slurm.record_jobs(out_dir, submitted)
  print(f"sweep: {len(runs)} runs, {len(done)} done, {len(waiting)} queued, submitted {len(todo)}"
        + (f" as SLURM job array {job} ({path})" if todo else "")
        + f"; logs in {out_dir}/<run>/log.txt", flush=True)
  every_task = {**jobs, **submitted}
  pending = {run.name: every_task[run.name] for run in todo + waiting}
  if not FLAGS.wait:
    print("--nowait: run the same command again to collect the results")
    return 0
  try:
    wait_for_tasks(list(pending.values()))
  except KeyboardInterrupt:
    print("\nstopped waiting; the SLURM tasks go on: run the same command again to collect the results")
    return 130
  for name, task in pending.items():
    output = slurm.slurm_output(out_dir, task)
    text = open(output, errors="replace").read() if os.path.exists(output) else ""
    status = slurm.ended_without_result(os.path.join(out_dir, name), task, text)
    if status is not None:
      os.makedirs(os.path.join(out_dir, name), exist_ok=True)
      with open(os.path.join(out_dir, name, plan.STATUS_FILE), "w") as f:
        json.dump(status, f, indent=1)
  rows = write_tables(runs, grid_flags)
  return 1 if any(row.status in ("failed", "partial") for row in rows) else 0


def main(argv):
  try:
    runs, commands, record, grid_flags = plan_sweep(train_flag_checker(), argv[1:])
    plan.check_sweep_record(FLAGS.out_dir, record, write=not FLAGS.dry_run)
    if FLAGS.parallel < 1:
      raise UsageError(f"--parallel must be a positive integer, got {FLAGS.parallel}")
    options = slurm_options()
    if FLAGS.launcher == "slurm":
      sys.exit(run_on_slurm(runs, commands, grid_flags, options))
  except UsageError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  done = [run for run in runs if launch.is_done(FLAGS.out_dir, run)]
  todo = [run for run in runs if run not in done]
  if FLAGS.dry_run:
    for run in runs:
      print(shlex.join(commands[run.name]))
    print(f"# {len(runs)} runs; {len(done)} already have results.json and would be skipped", file=sys.stderr)
    return
  for run in done:
    print(f"skip {run.name}: results.json exists")
  print(f"sweep: {len(runs)} runs, {len(done)} done, launching {len(todo)} ({FLAGS.parallel} at a time); "
        f"logs in {FLAGS.out_dir}/<run>/log.txt", flush=True)
  launch.launch_all(todo, commands, FLAGS.out_dir, FLAGS.parallel, report=lambda line: print(line, flush=True))
  rows = write_tables(runs, grid_flags)
  if any(row.status in ("failed", "partial") for row in rows):
    sys.exit(1)


def parse_flags(argv):
  """absl parsing, with a flag the sweep does not know reported as one line (exit 2)."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    print(f"error: {e}; training flags go in --extra_flags='...' or after `--`", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
