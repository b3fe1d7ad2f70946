"""experiments.sweep (plan, launch, report): grid expansion, tables, and a real two-run sweep.

The end-to-end tests share one sweep (module fixture): two tiny training runs and one with a bad
flag value.  experiments.train processes started by this file: 3 for the sweep (one fails at
once), 1 when the sweep is run again (the failed one), 1 replaying a dry-run command.
"""

import csv
import json
import os
import shlex
import subprocess
import sys

import pytest

from conftest import REPO, tiny_transformer_flagfile
from experiments.sweep import launch, plan, report
from seq2seq_jax.errors import UsageError

# a few seconds of training: the runs only have to finish
TINY_BASE = tiny_transformer_flagfile(num_train_steps=4, checkpoint_every_steps=4, log_every_steps=2)
ENV = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")


def sweep(*args, check_rc=None):
  proc = subprocess.run([sys.executable, "-m", "experiments.sweep", *args], cwd=REPO, env=ENV,
                        capture_output=True, text=True, timeout=900)
  if check_rc is not None and proc.returncode != check_rc:
    raise AssertionError(f"sweep exited {proc.returncode}, expected {check_rc}:\n{proc.stdout}\n{proc.stderr[-3000:]}")
  return proc


def read_csv(path):
  with open(path) as f:
    return list(csv.DictReader(f))


# ----------------------------------------------------------------------------- pure functions

def test_grid_is_the_cross_product_and_runs_combine_with_every_grid_point():
  grids = [plan.parse_grid("num_heads=1,4,8"), plan.parse_grid("--dropout=0.0, 0.1")]
  assert grids == [("num_heads", ("1", "4", "8")), ("dropout", ("0.0", "0.1"))]
  configurations = plan.expand(grids, [])
  assert [c.flags for c in configurations] == [
      (("num_heads", h), ("dropout", d)) for h in ("1", "4", "8") for d in ("0.0", "0.1")]
  assert all(c.label is None for c in configurations)

  named = [plan.parse_named_run("base:"), plan.parse_named_run("big:d_model=256,d_ff=1024")]
  assert named == [("base", ()), ("big", (("d_model", "256"), ("d_ff", "1024")))]
  assert [(c.label, c.flags) for c in plan.expand([], named)] == named  # runs only
  both = plan.expand(grids[1:], named)                                    # runs x grid
  assert [(c.label, c.flag_dict()) for c in both] == [
      ("base", {"dropout": "0.0"}), ("base", {"dropout": "0.1"}),
      ("big", {"d_model": "256", "d_ff": "1024", "dropout": "0.0"}),
      ("big", {"d_model": "256", "d_ff": "1024", "dropout": "0.1"})]
  assert plan.expand([], []) == [plan.Configuration(None, ())]         # just the base flags

  runs = plan.plan_runs(both, [0, 1])
  assert [r.name for r in runs[:3]] == ["base,dropout=0.0,seed=0", "base,dropout=0.0,seed=1",
                                        "base,dropout=0.1,seed=0"]
  assert runs[-1].name == "big,d_ff=1024,d_model=256,dropout=0.1,seed=1"  # flags sorted by name
  command = plan.train_command("python", "base.flags", ["--num_train_steps=10"], runs[-1], "out")
  assert command == ["python", "-m", "experiments.train", "--flagfile=base.flags", "--num_train_steps=10",
                     "--d_model=256", "--d_ff=1024", "--dropout=0.1", "--seed=1",
                     "--workdir=out/big,d_ff=1024,d_model=256,dropout=0.1,seed=1"]


def test_run_names_are_filesystem_safe_and_never_collide():
  odd = plan.Configuration(None, (("data_dir", "/a b/c"),))
  assert plan.run_name(odd, 3) == "data_dir=_a_b_c,seed=3"
  long = plan.Configuration("x", (("prefix", "y" * 400),))
  assert len(plan.run_name(long, 0)) <= 200
  with pytest.raises(UsageError, match="same directory"):
    plan.plan_runs(plan.expand([plan.parse_grid("prefix=a/b,a b")], []), [0])


@pytest.mark.parametrize("parse, spec, message", [
    (plan.parse_grid, "num_heads", "expected FLAG=V1,V2"),
    (plan.parse_grid, "num_heads=", "empty value"),
    (plan.parse_grid, "num_heads=1,,2", "empty value"),
    (plan.parse_grid, "num_heads=1,1", "listed twice"),
    (plan.parse_grid, "num heads=1", "expected FLAG=V1,V2"),
    (plan.parse_named_run, "big", "expected NAME:FLAG=V"),
    (plan.parse_named_run, "b/g:d_model=1", "expected NAME:FLAG=V"),
    (plan.parse_named_run, "big:d_model", "'d_model' is not FLAG=VALUE"),
    (plan.parse_named_run, "big:d_model=1,d_model=2", "set twice"),
])
def test_bad_specs_are_usage_errors(parse, spec, message):
  with pytest.raises(UsageError, match=message):
    parse(spec)


def test_conflicts_and_reserved_flags_are_usage_errors():
  grid = [plan.parse_grid("num_heads=1,2")]
  with pytest.raises(UsageError, match="--grid sets --num_heads twice"):
    plan.expand(grid + grid, [])
  with pytest.raises(UsageError, match="both set --num_heads"):
    plan.expand(grid, [("a", (("num_heads", "4"),))])
  with pytest.raises(UsageError, match="names 'a' twice"):
    plan.expand([], [("a", ()), ("a", ())])
  for flag in ("seed", "workdir", "flagfile"):
    with pytest.raises(UsageError, match=f"--{flag} cannot be varied"):
      plan.check_flags([(flag, "1")], lambda *_: None)


def test_seeds_start_at_the_base_seed():
  assert plan.seed_values([], 3) == [0, 1, 2]
  assert plan.seed_values(["--seed=5", "--d_model=8", "--seed=7"], 2) == [7, 8]
  with pytest.raises(UsageError, match="--seeds must be a positive integer"):
    plan.seed_values([], 0)


def test_an_out_dir_refuses_other_base_flags(tmp_path):
  record = {"base_flags": ["--num_train_steps=4"], "extra_flags": []}
  plan.check_sweep_record(str(tmp_path), record, write=False)
  assert not (tmp_path / plan.SWEEP_FILE).exists()
  plan.check_sweep_record(str(tmp_path), record)
  plan.check_sweep_record(str(tmp_path), record)  # the same flags: fine
  with pytest.raises(UsageError, match=r"other flags \(base_flags: --num_train_steps=4 -> --num_train_steps=8\)"):
    plan.check_sweep_record(str(tmp_path), {**record, "base_flags": ["--num_train_steps=8"]})


def test_error_is_the_last_error_line_else_the_last_line():
  assert launch.error_from_log("step 1\nerror: --num_train_steps must be positive\n", 2) == \
      "--num_train_steps must be positive"
  absl = "FATAL Flags parsing error: flag --num_heads=x: invalid literal\nPass --helpshort or --helpfull to see help on flags.\n"
  assert launch.error_from_log(absl, 1) == "FATAL Flags parsing error: flag --num_heads=x: invalid literal"
  assert launch.error_from_log("train: 50%\rTraceback ...\n  x\nValueError: bad shape\n\n", 1) == "ValueError: bad shape"
  assert launch.error_from_log("", 3) == "exit status 3"
  assert launch.error_from_log("anything", -9) == "killed by SIGKILL"


def _fake_run(out_dir, run, eval_metrics=None, error=None):
  """A run directory as experiments.train (results.json) or the sweep (status.json) leaves it."""
  workdir = os.path.join(out_dir, run.name)
  os.makedirs(workdir)
  if eval_metrics is not None:
    results = {"step": 4, "train_loss": 2.0, "wall_s": 10.0, "params": 1000, "model": "transformer",
               "eval": {**eval_metrics, "examples": 8, "tokens": 59}}
    with open(os.path.join(workdir, plan.RESULTS_FILE), "w") as f:
      json.dump(results, f)
  if error is not None:
    with open(os.path.join(workdir, plan.STATUS_FILE), "w") as f:
      json.dump({"returncode": 2, "error": error}, f)


def test_table_shows_mean_std_over_seeds_failures_and_plots_each_grid_flag(tmp_path):
  out = str(tmp_path)
  grids = [plan.parse_grid("num_heads=1,2"), plan.parse_grid("dropout=0,0.1")]
  runs = plan.plan_runs(plan.expand(grids, []), [0, 1, 2])
  for run in runs:
    flags = run.configuration.flag_dict()
    if flags == {"num_heads": "2", "dropout": "0.1"}:
      _fake_run(out, run, error="--num_heads=2 is out of memory")      # every seed fails
    elif flags == {"num_heads": "1", "dropout": "0.1"} and run.seed == 2:
      pass                                                               # not run (interrupted)
    else:  # any numeric eval key is a metric, e.g. a translation's bleu
      _fake_run(out, run, {"loss": 1.0 + run.seed, "wer": 0.5, "bleu": 20.0 + int(flags["num_heads"])})

  rows = report.summarize(report.collect(runs, out))
  assert [(r.configuration.flag_dict(), r.n, r.status) for r in rows] == [
      ({"num_heads": "1", "dropout": "0"}, 3, "ok"),
      ({"num_heads": "1", "dropout": "0.1"}, 2, "partial"),
      ({"num_heads": "2", "dropout": "0"}, 3, "ok"),
      ({"num_heads": "2", "dropout": "0.1"}, 0, "failed")]
  assert rows[0].mean["loss"] == 2.0 and rows[0].std["loss"] == 1.0
  assert "examples" not in rows[0].mean and "tokens" not in rows[0].mean
  assert rows[3].error == "seeds 0, 1, 2: --num_heads=2 is out of memory"

  report.write_csv(rows, str(tmp_path / "results.csv"))
  table = read_csv(tmp_path / "results.csv")
  assert [t["status"] for t in table] == ["ok", "partial", "ok", "failed"]
  assert float(table[2]["bleu"]) == 22.0 and float(table[0]["loss_std"]) == 1.0
  assert table[3]["error"].endswith("out of memory") and table[3]["loss"] == ""

  report.write_markdown(rows, str(tmp_path / "results.md"), "test")
  md = (tmp_path / "results.md").read_text().splitlines()
  header = [c.strip() for c in md[4].strip("|").split("|")]
  assert header == ["num_heads", "dropout", "n", "params", "loss", "wer", "bleu", "train_loss", "wall_s", "status"]
  assert "| 1 | 0 | 3/3 | 1,000 | 2 ± 1 | 0.5 ± 0 | 21 ± 0 |" in md[6]
  assert md[-1].endswith("| 2 | 0.1 | 0/3 |  |  |  |  |  |  | failed: seeds 0, 1, 2: --num_heads=2 is out of memory |")

  paths = report.write_plots(rows, ["num_heads", "dropout"], str(tmp_path / "plots"))
  assert sorted(os.path.basename(p) for p in paths) == ["dropout.png", "num_heads.png"]
  assert all(os.path.getsize(p) > 1000 for p in paths)


# ----------------------------------------------------------------------------- the command line

@pytest.mark.parametrize("args, message", [
    (["--grid=num_heads"], "bad --grid='num_heads': expected FLAG=V1,V2"),
    (["--grid=num_head=1,2"], "unknown flag --num_head: experiments.train has no such flag (did you mean --num_heads?)"),
    (["--grid=num_heads=one,2"], "--num_heads=one: invalid literal"),
    (["--grid=seed=1,2"], "--seed cannot be varied"),
    (["--runs=big:d_modle=8"], "unknown flag --d_modle"),
    (["--num_heads=2"], "Unknown command line flag 'num_heads'; training flags go in --extra_flags"),
    (["--extra_flags=--workdir=x"], "--workdir cannot be set"),
    (["--grid=num_heads=1,2", "--", "--num_heads=4"], "--num_heads is set by the extra flags and varied"),
])
def test_bad_command_line_is_one_error_line_and_exit_2(tmp_path, args, message):
  base = tmp_path / "base.flags"
  base.write_text(TINY_BASE)
  out = tmp_path / "out"
  proc = sweep(f"--base_flagfile={base}", f"--out_dir={out}", *args)
  assert proc.returncode == 2
  assert "Traceback" not in proc.stderr
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
  assert not out.exists()


def test_dry_run_prints_one_command_per_run_and_runs_nothing(tmp_path):
  base = tmp_path / "base.flags"
  base.write_text(TINY_BASE + "--seed=3\n")
  out = tmp_path / "out"
  proc = sweep(f"--base_flagfile={base}", f"--out_dir={out}", "--grid=num_heads=1,2", "--runs=a:",
               "--runs=b:d_model=32", "--seeds=2", "--dry_run", "--extra_flags=--num_train_steps=8",
               check_rc=0)
  commands = [shlex.split(line) for line in proc.stdout.splitlines()]
  assert len(commands) == 2 * 2 * 2
  assert commands[0] == [sys.executable, "-m", "experiments.train", f"--flagfile={base}",
                         "--num_train_steps=8", "--num_heads=1", "--seed=3",
                         f"--workdir={out}/a,num_heads=1,seed=3"]
  assert commands[-1][-1] == f"--workdir={out}/b,d_model=32,num_heads=2,seed=4"
  assert not out.exists()


# ----------------------------------------------------------------------------- a real sweep

@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory, data_dir):
  """Two tiny runs and one with a bad --num_train_steps, two processes at a time."""
  root = tmp_path_factory.mktemp("sweep")
  base = root / "base.flags"
  base.write_text(TINY_BASE + f"--data_dir={data_dir}\n")
  args = [f"--base_flagfile={base}", "--runs=h1:num_heads=1", "--runs=h2:num_heads=2",
          "--runs=bad:num_train_steps=-1", "--parallel=2"]
  out = root / "out"
  proc = sweep(*args, f"--out_dir={out}", check_rc=1)  # 1: a run failed
  return {"args": args, "out": out, "root": root, "first": proc}


@pytest.mark.slow  # five experiments.train processes: about 2 minutes
def test_sweep_writes_a_row_per_run_and_the_failure_with_its_error(tiny_sweep):
  out = tiny_sweep["out"]
  rows = {row["run"]: row for row in read_csv(out / "results.csv")}
  assert list(rows) == ["h1", "h2", "bad"]
  for name, heads in (("h1", "1"), ("h2", "2")):
    assert rows[name]["status"] == "ok" and rows[name]["num_heads"] == heads
    assert int(float(rows[name]["params"])) > 0 and 0 <= float(rows[name]["wer"]) and float(rows[name]["loss"]) > 0
  assert rows["bad"]["status"] == "failed"
  assert rows["bad"]["error"] == "--num_train_steps must be a positive integer, got -1"
  assert "failed: --num_train_steps must be a positive integer" in (out / "results.md").read_text()
  assert (out / "plots" / "run.png").exists()
  assert (out / "h1,num_heads=1,seed=0" / "log.txt").read_text().count("\n") > 2


@pytest.mark.slow  # five experiments.train processes: about 2 minutes
def test_sweep_again_skips_finished_runs_and_retries_failed_ones(tiny_sweep):
  out = tiny_sweep["out"]
  finished = [out / "h1,num_heads=1,seed=0", out / "h2,num_heads=2,seed=0"]
  mtimes = [os.path.getmtime(d / "results.json") for d in finished]
  proc = sweep(*tiny_sweep["args"], f"--out_dir={out}", check_rc=1)
  for d in finished:
    assert f"skip {d.name}: results.json exists" in proc.stdout
    assert (d / "log.txt").read_text().count("=== ") == 1  # launched once
  assert [os.path.getmtime(d / "results.json") for d in finished] == mtimes
  assert "launching 1 " in proc.stdout
  assert (out / "bad,num_train_steps=-1,seed=0" / "log.txt").read_text().count("=== ") == 2


@pytest.mark.slow  # five experiments.train processes: about 2 minutes
def test_dry_run_commands_are_the_sweeps_and_reproduce_its_results(tiny_sweep):
  out = tiny_sweep["out"]
  printed = sweep(*tiny_sweep["args"], f"--out_dir={out}", "--dry_run", check_rc=0).stdout.splitlines()
  recorded = []
  for name in ("h1,num_heads=1,seed=0", "h2,num_heads=2,seed=0", "bad,num_train_steps=-1,seed=0"):
    with open(out / name / "status.json") as f:
      recorded.append(shlex.join(json.load(f)["command"]))
  assert printed == recorded

  # By hand, into another directory: the same results as the sweep's run.
  other = tiny_sweep["root"] / "by_hand"
  line = sweep(*tiny_sweep["args"], f"--out_dir={other}", "--dry_run", check_rc=0).stdout.splitlines()[0]
  subprocess.run(shlex.split(line), cwd=REPO, env=ENV, check=True, capture_output=True, timeout=600)
  with open(other / "h1,num_heads=1,seed=0" / "results.json") as f:
    by_hand = json.load(f)
  with open(out / "h1,num_heads=1,seed=0" / "results.json") as f:
    swept = json.load(f)
  assert by_hand["eval"] == pytest.approx(swept["eval"])
  assert by_hand["params"] == swept["params"] and by_hand["train_loss"] == pytest.approx(swept["train_loss"])


def test_seed_counts_give_one_named_run_more_seeds():
  named = [plan.parse_named_run("base:"), plan.parse_named_run("small:d_model=64")]
  runs = plan.plan_runs(plan.expand([], named), [0], {"base": 3})
  assert [(r.configuration.label, r.seed) for r in runs] == [("base", 0), ("base", 1), ("base", 2), ("small", 0)]
  with pytest.raises(UsageError, match="not a --runs name"):
    plan.plan_runs(plan.expand([], named), [0], {"nope": 2})
