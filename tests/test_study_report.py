"""The study reports read a sweep directory the same way: finished runs grouped by label."""

import json
import os

import pytest

from experiments import study_report
from experiments.luong2015_attention import report as luong_report
from experiments.vaswani2017_table3 import g2p_report


def write_finished_run(out_dir: str, name: str, steps: int = 100, score: float = 0.5) -> None:
  """A run directory as training leaves it: validation NLL every 20 steps, then results.json; plus
  the averaged-checkpoint evaluation the Table 3 sweep writes."""
  run_dir = os.path.join(out_dir, name)
  os.makedirs(run_dir)
  with open(os.path.join(run_dir, "metrics.jsonl"), "w") as f:
    for step in range(20, steps + 1, 20):
      f.write(json.dumps({"step": step, "validation/nll": 3.0 + score - step / 1000}) + "\n")
  results = {"dataset": "toy", "step": steps, "params": 1_000_000, "wall_s": 600.0,
             "eval": {"bleu": 10 * score, "chrf": 20 * score, "perplexity": 5 + score, "wer": score / 2}}
  with open(os.path.join(run_dir, "results.json"), "w") as f:
    json.dump(results, f)
  os.makedirs(os.path.join(out_dir, "averaged"), exist_ok=True)
  with open(os.path.join(out_dir, "averaged", f"{name}.test.json"), "w") as f:
    json.dump({"wer": score / 3, "per": score / 10}, f)


def fake_load_run(out_dir: str, name: str) -> dict | None:
  path = os.path.join(out_dir, name, "results.json")
  return {"name": name} if os.path.exists(path) else None


def test_runs_are_grouped_by_label_and_unfinished_ones_left_out(tmp_path):
  for name in ["base,seed=0", "base,seed=1", "A-h1,num_heads=1,seed=0"]:
    write_finished_run(str(tmp_path), name)
  os.makedirs(tmp_path / "B-dk16,key_size=16,seed=0")  # started, no results.json yet
  (tmp_path / "results.csv").write_text("not a run\n")
  by_label = study_report.finished_runs_by_label(str(tmp_path), fake_load_run, rerun="sweep.sh")
  assert by_label == {"base": [{"name": "base,seed=0"}, {"name": "base,seed=1"}],
                      "A-h1": [{"name": "A-h1,num_heads=1,seed=0"}]}


def test_a_missing_or_empty_sweep_directory_names_the_command_that_fills_it(tmp_path):
  with pytest.raises(SystemExit, match=r"no such sweep directory; run sweep\.sh"):
    study_report.finished_runs_by_label(str(tmp_path / "absent"), fake_load_run, rerun="sweep.sh")
  os.makedirs(tmp_path / "base,seed=0")
  with pytest.raises(SystemExit, match=r"no finished run .*; run sweep\.sh"):
    study_report.finished_runs_by_label(str(tmp_path), fake_load_run, rerun="sweep.sh")


def test_both_reports_read_the_same_sweep_directory_and_average_seeds(tmp_path):
  write_finished_run(str(tmp_path), "general,attention=luong_general,seed=0", score=0.4)
  write_finished_run(str(tmp_path), "dot,attention=luong_dot,seed=0", score=0.6)
  write_finished_run(str(tmp_path), "dot,attention=luong_dot,seed=1", score=0.8)
  by_label = luong_report.runs_by_label(str(tmp_path))
  assert sorted(by_label) == ["dot", "general"]
  assert [run["bleu"] for run in by_label["dot"]] == pytest.approx([6.0, 8.0])
  luong_table = luong_report.table(by_label)
  assert "| dot | dot: h_t^T h_s | yes | 2 | 7.0 ± 1.4 |" in luong_table
  assert "| general | general: h_t^T W_a h_s | yes | 1 | 4.0 |" in luong_table
  assert "| concat | concat: v_a^T tanh(W_a [h_t; h_s]) | yes | 0 | not run |" in luong_table
  write_finished_run(str(tmp_path), "base,seed=0", score=0.3)
  write_finished_run(str(tmp_path), "base,seed=1", score=0.9)
  by_label = g2p_report.runs_by_label(str(tmp_path))
  assert [run["wer_avg"] for run in by_label["base"]] == pytest.approx([10.0, 30.0])
  assert "| base | " in g2p_report.table(by_label) and "20.00 ± 14.14" in g2p_report.table(by_label)
  luong_report.plot(luong_report.runs_by_label(str(tmp_path)), str(tmp_path / "luong.png"))
  assert (tmp_path / "luong.png").stat().st_size > 10_000


def test_the_line_under_a_table_names_the_machine_of_each_run():
  xeon = {"hardware": "cpu: Intel(R) Xeon(R) Processor (AVX512-BF16, AMX), 2 cores", "finished": "2026-12-02"}
  by_label = {"base": [dict(xeon, name="base,seed=0"), {"hardware": None, "name": "base,seed=1"}],
              "A-h4": [dict(xeon, name="A-h4,num_heads=4,seed=0")], "A-h1": [{"name": "A-h1,num_heads=1,seed=0"}],
              "C-N4": [dict(xeon, name="C-N4,num_layers=4,seed=0"), dict(xeon, name="C-N4,num_layers=4,seed=1")]}
  assert study_report.machines(by_label, ["base", "A-h1", "A-h4", "B-dk8", "C-N4"]) == (
      "Machines: cpu: Intel(R) Xeon(R) Processor (AVX512-BF16, AMX), 2 cores, finished 2026-12-02: base (seed 0), "
      "A-h4, C-N4 (2 seeds); not recorded in results.json (see the provenance table): base (seed 1), A-h1.\n")


def test_the_table3_figure_takes_more_runs_than_its_colour_map_has_colours(tmp_path):
  # 17 variations and the base, five of them with two seeds: 23 curves, tab20 has 20 colours.
  labels = [label for label, *_ in g2p_report.ROWS if label]
  for i, label in enumerate(labels):
    for seed in range(2 if i < 5 else 1):
      write_finished_run(str(tmp_path), f"{label},x={i},seed={seed}", score=0.3 + 0.01 * i + 0.001 * seed)
  by_label = g2p_report.runs_by_label(str(tmp_path))
  assert sum(len(runs) for runs in by_label.values()) > 20
  g2p_report.plot(by_label, str(tmp_path / "g2p.png"))
  assert (tmp_path / "g2p.png").stat().st_size > 10_000
