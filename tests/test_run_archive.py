"""A study's finished runs survive the loss of runs/: archived, restored, reported the same."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from experiments import run_archive
from seq2seq_jax import workdir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_run(out_dir, name, wer, finished=True):
  run = out_dir / name
  run.mkdir(parents=True)
  with open(run / "metrics.jsonl", "w") as f:
    for step in (50, 100, 150, 200):
      f.write(json.dumps({"step": step, "train/loss": 1.0 / step}) + "\n")
      if step % 100 == 0:
        f.write(json.dumps({"step": step, "validation/nll": 2.0 / step, "validation/accuracy": 0.5}) + "\n")
  if finished:
    (run / "results.json").write_text(json.dumps({"step": 200, "eval": {"wer": wer}}))
    (out_dir / "averaged").mkdir(exist_ok=True)
    (out_dir / "averaged" / f"{name}.test.json").write_text(json.dumps({"wer": wer / 2}))


def test_restored_runs_read_as_the_originals(tmp_path):
  original, archive = tmp_path / "sweep", str(tmp_path / "runs.json")
  make_run(original, "base,seed=0", 0.3)
  make_run(original, "A-h1,num_heads=1,seed=0", 0.4)
  make_run(original, "A-h4,num_heads=4,seed=0", 0.5, finished=False)
  assert run_archive.save(str(original), archive, ["validation/nll"], ["averaged/{name}.test.json"]) == [
      "A-h1,num_heads=1,seed=0", "base,seed=0"]

  restored = tmp_path / "elsewhere"
  assert run_archive.restore(archive, str(restored)) == ["A-h1,num_heads=1,seed=0", "base,seed=0"]
  for name in ("base,seed=0", "A-h1,num_heads=1,seed=0"):
    assert (json.loads((restored / name / "results.json").read_text())
            == json.loads((original / name / "results.json").read_text()))
    assert (workdir.metric_history(str(restored / name), "validation/nll")
            == workdir.metric_history(str(original / name), "validation/nll") == {100: 0.02, 200: 0.01})
    assert workdir.metric_history(str(restored / name), "train/loss") == {}  # only the kept metrics
    assert (json.loads((restored / "averaged" / f"{name}.test.json").read_text())
            == json.loads((original / "averaged" / f"{name}.test.json").read_text()))
  assert not (restored / "A-h4,num_heads=4,seed=0").exists()  # unfinished runs are not archived
  assert sorted(os.listdir(restored)) == ["A-h1,num_heads=1,seed=0", "averaged", "base,seed=0"]  # no staging left


def test_save_adds_and_replaces_runs_and_keeps_the_others(tmp_path):
  archive = str(tmp_path / "runs.json")
  make_run(tmp_path / "machine1", "base,seed=0", 0.3)
  make_run(tmp_path / "machine1", "C-N1,num_layers=1,seed=0", 0.6)
  run_archive.save(str(tmp_path / "machine1"), archive, ["validation/nll"], [])
  make_run(tmp_path / "machine2", "base,seed=0", 0.25)  # trained again
  make_run(tmp_path / "machine2", "A-h4,num_heads=4,seed=0", 0.5)
  run_archive.save(str(tmp_path / "machine2"), archive, ["validation/nll"], [])
  runs = run_archive.load(archive)
  assert sorted(runs) == ["A-h4,num_heads=4,seed=0", "C-N1,num_layers=1,seed=0", "base,seed=0"]
  assert runs["base,seed=0"]["base,seed=0/results.json"]["eval"]["wer"] == 0.25


def test_restore_leaves_existing_runs_and_files_alone(tmp_path):
  archive = str(tmp_path / "runs.json")
  make_run(tmp_path / "old", "base,seed=0", 0.3)
  make_run(tmp_path / "old", "A-h1,num_heads=1,seed=0", 0.4)
  run_archive.save(str(tmp_path / "old"), archive, ["validation/nll"], ["averaged/{name}.test.json"])
  out = tmp_path / "new"
  make_run(out, "base,seed=0", 0.1)  # finished here with other figures
  (out / "A-h1,num_heads=1,seed=0").mkdir()  # being trained again here (no results yet)
  (out / "A-h1,num_heads=1,seed=0" / "metrics.jsonl").write_text("")
  assert run_archive.restore(archive, str(out)) == []
  assert json.loads((out / "base,seed=0" / "results.json").read_text())["eval"]["wer"] == 0.1
  assert json.loads((out / "averaged" / "base,seed=0.test.json").read_text())["wer"] == 0.05
  assert not (out / "A-h1,num_heads=1,seed=0" / "results.json").exists()
  assert not (out / "averaged" / "A-h1,num_heads=1,seed=0.test.json").exists()


def test_a_damaged_archive_stops_with_one_line_and_writes_nothing(tmp_path):
  archive = tmp_path / "runs.json"
  archive.write_text('{"base,seed=0": {')
  proc = subprocess.run([sys.executable, "-m", "experiments.run_archive", "restore", f"--archive={archive}",
                         f"--out_dir={tmp_path / 'out'}"], cwd=REPO, capture_output=True, text=True, timeout=60)
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "not a run archive" in proc.stderr
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("study", ["vaswani2017_table3/g2p_runs.json", "luong2015_attention/runs.json"])
def test_the_committed_archives_restore_finished_runs(tmp_path, study):
  names = run_archive.restore(os.path.join(REPO, "experiments", study), str(tmp_path))
  assert names and all("seed=" in name for name in names)
  for name in names:
    assert json.loads((tmp_path / name / "results.json").read_text())["step"] > 0
    assert len(workdir.metric_history(str(tmp_path / name), "validation/nll")) >= 2


@pytest.mark.parametrize("script, archive, table", [
    ("vaswani2017_table3/g2p_sweep.sh", "vaswani2017_table3/g2p_runs.json", "vaswani2017_table3/g2p_results.md"),
    ("luong2015_attention/sweep.sh", "luong2015_attention/runs.json", "luong2015_attention/results.md")])
def test_the_committed_table_is_what_the_committed_archive_gives(tmp_path, script, archive, table):
  """TRAIN=0 on an empty sweep directory: the archived runs restored, nothing trained, the table written."""
  shutil.copy(os.path.join(REPO, "experiments", archive), tmp_path / "runs.json")
  env = dict(os.environ, TRAIN="0", OUT=str(tmp_path / "sweep"), ARCHIVE=str(tmp_path / "runs.json"),
             TABLE=str(tmp_path / "table.md"), PLOT=str(tmp_path / "figure.png"))
  proc = subprocess.run(["bash", os.path.join("experiments", script)], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(os.path.join(REPO, "experiments", table)) as f:
    assert (tmp_path / "table.md").read_text() == f.read()
  assert run_archive.load(str(tmp_path / "runs.json")) == run_archive.load(os.path.join(REPO, "experiments", archive))
  assert not any(name.startswith(".restoring-") for name in os.listdir(tmp_path / "sweep"))
