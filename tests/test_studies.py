"""Each study's one command still runs end to end (a few steps, a few examples): its pipeline
from training to the committed table and figure stays runnable."""

import json
import os
import shutil
import subprocess

import pytest

from conftest import REPO
from experiments import run_archive


MODEL_COLUMNS = ["LSTM encoder-decoder (no attention)", "LSTM + additive attention", "Transformer |"]


def run_study(script: str, task: str, out, data_dir, flags: list[str], eval_max_examples: str = "0",
              side_by_side: str = "0"):
  """Runs a study's run.sh on one XLA device and fails the test with its stderr if it fails."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", EVAL_MAX_EXAMPLES=eval_max_examples,
             SIDE_BY_SIDE=side_by_side)
  proc = subprocess.run(["bash", script, task, str(out), f"--data_dir={data_dir}", *flags],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
  assert proc.returncode == 0, proc.stderr[-3000:]


def by_length_table(out) -> list[str]:
  """The lines of the study's table by length (the first table of by_length.md), after checking
  that its figure was drawn and that the validation-loss table follows it."""
  assert (out / "by_length.png").stat().st_size > 10_000
  text = (out / "by_length.md").read_text()
  table, losses = text.split("\n\n")
  table = table.splitlines()
  assert table[0].split(" | ")[2:] == MODEL_COLUMNS
  assert losses.startswith("| validation NLL per token, step |") and "| test, end of training |" in losses
  return table


@pytest.mark.slow
def test_bahdanau2015_length_study_runs_end_to_end(tmp_path, data_dir):
  out = tmp_path / "reverse"
  run_study("experiments/bahdanau2015_length/run.sh", "reverse", out, data_dir,
            ["--num_train_steps=4", "--eval_every_steps=2", "--num_train_examples=200", "--num_test_examples=41",
             "--length_buckets=48"])
  lengths = [int(row.split(" | ")[0].strip("| ")) for row in by_length_table(out)[3:]]
  assert lengths and max(lengths) > 20  # tested beyond the longest training length


@pytest.mark.slow
def test_bahdanau2015_length_bible_study_runs_end_to_end(tmp_path, data_dir):
  out = tmp_path / "bible"
  run_study("experiments/bahdanau2015_length/run.sh", "bible", out, data_dir,
            ["--num_train_steps=2", "--vocab_size=300", "--num_layers=1", "--max_tokens=512", "--length_buckets=96",
             "--max_test_examples=8", "--max_eval_examples=8"], eval_max_examples="24", side_by_side="2")
  table = by_length_table(out)
  assert "BLEU" in table[2] and table[0].startswith("| source length (words) |")
  assert table[3].startswith("| 1-10 |")  # BLEU by source-length bucket in words
  assert len((out / "wall.txt").read_text().splitlines()) == 3 and all((out / f"{m}.log").exists() for m in
                                                                        ("rnn_seq2seq", "rnn_attention", "transformer"))
  verse = (out / "long_verse.txt").read_text().strip()
  assert 20 <= len(verse.split()) <= 50
  heatmaps = list((out / "heatmap").glob("*.png"))
  assert len(heatmaps) == 1 and heatmaps[0].stat().st_size > 10_000


def test_run_recipes_refuses_a_bad_side_by_side_before_writing(tmp_path):
  proc = subprocess.run(["bash", "experiments/run_recipes.sh", "experiments/bahdanau2015_length", "bible",
                         str(tmp_path / "out")], cwd=REPO, env=dict(os.environ, SIDE_BY_SIDE="two"),
                        capture_output=True, text=True, timeout=60)
  assert proc.returncode == 2 and "SIDE_BY_SIDE=two: expected 0, 1 or a number of runs at a time" in proc.stderr
  assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_luong2015_attention_sweep_runs_end_to_end(tmp_path, data_dir):
  out, table_path, plot_path = tmp_path / "sweep", tmp_path / "results.md", tmp_path / "results.png"
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", OUT=str(out), TABLE=str(table_path),
             PLOT=str(plot_path), ARCHIVE=str(tmp_path / "runs.json"))
  tiny = (f"--data_dir={data_dir} --num_train_steps=6 --eval_every_steps=1 --vocab_size=300 --num_layers=1 "
          "--hidden_size=16 --embedding_size=8 --max_tokens=512 --length_buckets=96 --max_eval_examples=4 "
          "--max_test_examples=4")
  proc = subprocess.run(["bash", "experiments/luong2015_attention/sweep.sh", f"--extra_flags={tiny}"], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=1800)
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in table_path.read_text().splitlines()[2:]
          if line.startswith("|")}
  assert list(rows) == ["general", "general-nofeed", "dot", "concat", "dot-nofeed", "concat-nofeed", "additive"]
  assert [cells[3] for cells in rows.values()] == ["2", "1", "1", "1", "1", "1", "1"]  # seeds
  for cells in rows.values():
    bleu, perplexity = float(cells[4].split(" ± ")[0]), float(cells[6].split(" ± ")[0])
    assert 0 <= bleu <= 100 and perplexity > 1
  assert " ± " in rows["general"][4]
  assert plot_path.stat().st_size > 10_000
  assert len(run_archive.load(str(tmp_path / "runs.json"))) == 8  # every finished run archived
  assert table_path.read_text().splitlines()[-1].startswith("Machines: cpu: ")  # where the rows ran


@pytest.mark.slow
def test_sutskever2014_reverse_study_runs_end_to_end(tmp_path, data_dir):
  out = tmp_path / "g2p"
  run_study("experiments/sutskever2014_reverse/run.sh", "g2p", out, data_dir,
            ["--num_train_steps=2", "--hidden_size=16", "--embedding_size=8", "--batch_size=16", "--length_buckets=32",
             "--max_test_examples=16", "--max_eval_examples=16"], eval_max_examples="16")
  table = (out / "table.md").read_text().splitlines()
  assert [line.split(" | ")[0] for line in table[2:4]] == ["| forward", "| reversed"]
  assert "test WER" in table[0]
  assert table[-1].startswith("| 2 | ")  # the validation at the last step


def test_sutskever2014_reverse_report_tables_bleu_by_length_and_validation_loss(tmp_path):
  buckets = [(1, 10, 61), (11, None, 939)]
  for name, bleus, losses in (("forward", (9.0, 4.0), (4.2, 3.9)), ("reversed", (10.0, 6.0), (4.1, 3.7))):
    evaluation = {"bleu": 5.0, "chrf": 20.0, "bleu_by_source_length": [
        {"min_words": lo, "max_words": hi, "examples": n, "bleu": b} for (lo, hi, n), b in zip(buckets, bleus)]}
    (tmp_path / f"{name}.test.json").write_text(json.dumps(evaluation))
    (tmp_path / name).mkdir()
    (tmp_path / name / "results.json").write_text(json.dumps({"eval": {"perplexity": 40.0}, "step": 800,
                                                              "wall_s": 600.0}))
    (tmp_path / name / "metrics.jsonl").write_text("".join(
        json.dumps({"step": step, "validation/nll": loss}) + "\n" for step, loss in zip((400, 800), losses)))
  proc = subprocess.run(["python", "-m", "experiments.sutskever2014_reverse.report", f"--out_dir={tmp_path}"],
                        cwd=REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  table = (tmp_path / "table.md").read_text().splitlines()
  assert table[2].startswith("| forward | 40.00 | 5.0 | 20.0 | 800 | 10.0 min |")
  assert "| test BLEU by source length (words) | 1-10 (61) | 11+ (939) |" in table
  assert "| reversed | 10.0 | 6.0 |" in table
  assert table[-3:] == ["| --- | --- | --- |", "| 400 | 4.200 | 4.100 |", "| 800 | 3.900 | 3.700 |"]


def test_sutskever2014_reverse_report_gives_a_row_per_seed_and_their_mean(tmp_path):
  for seed, (wer_forward, wer_reversed) in enumerate(((0.26, 0.24), (0.28, 0.25))):
    for name, wer, perplexity in (("forward", wer_forward, 1.32), ("reversed", wer_reversed, 1.30 + seed / 100)):
      run_dir = tmp_path / f"seed{seed}" / name
      run_dir.mkdir(parents=True)
      (run_dir.parent / f"{name}.test.json").write_text(json.dumps({"wer": wer, "per": wer / 4}))
      (run_dir / "results.json").write_text(json.dumps({"eval": {"perplexity": perplexity}, "step": 10,
                                                        "wall_s": 60.0}))
      (run_dir / "config.json").write_text(json.dumps({"full_config": {"seed": seed}}))
      (run_dir / "metrics.jsonl").write_text(json.dumps({"step": 10, "validation/nll": perplexity}) + "\n")
  proc = subprocess.run(["python", "-m", "experiments.sutskever2014_reverse.report",
                         f"--out_dir={tmp_path / 'seed0'}", f"--out_dir={tmp_path / 'seed1'}"],
                        cwd=REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  table = (tmp_path / "seed0" / "table.md").read_text().splitlines()
  assert [line.split(" | ")[0] for line in table[2:8]] == [
      "| forward", "| reversed", "| forward, seed 1", "| reversed, seed 1", "| **forward, 2 seeds**",
      "| **reversed, 2 seeds**"]
  assert table[2].endswith("| 26.0% | 6.5% | 10 | 1.0 min | test perplexity 5.8, BLEU 25.9 |")
  assert table[4].endswith("| 1.0 min |  |")  # the paper's figures once, beside seed 0
  assert table[6] == "| **forward, 2 seeds** | 1.32 ± 0.00 | **27.00 ± 1.41%** | 6.75 ± 0.35% | | | |"
  assert table[7].startswith("| **reversed, 2 seeds** | 1.31 ± 0.01 | **24.50 ± 0.71%** |")
  assert table[-3:] == ["| validation NLL per token, step | forward | reversed | forward, seed 1 | reversed, seed 1 |",
                        "| --- | --- | --- | --- | --- |", "| 10 | 1.320 | 1.300 | 1.320 | 1.310 |"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (apt-get install espeak-ng)")
def test_speech_cmudict_study_runs_end_to_end(tmp_path):
  runs, out = tmp_path / "runs", tmp_path / "out"
  proc = subprocess.run(
      ["bash", "experiments/speech_cmudict/run.sh", str(runs), str(out), f"--data_dir={tmp_path / 'tfds'}",
       "--max_examples=60", "--data_seed=1", "--num_train_steps=2", "--eval_every_steps=2",
       "--checkpoint_every_steps=2", "--batch_size=4", "--d_model=32", "--num_heads=2", "--d_ff=64",
       "--res2net_blocks=1", "--se_bottleneck=8", "--max_eval_examples=4", "--max_test_examples=4"],
      cwd=REPO, capture_output=True, text=True, timeout=1200)
  assert proc.returncode == 0, proc.stderr[-3000:]
  for frontend in ("conv", "res2net"):
    assert {"wer", "cer"} <= set(json.loads((out / f"{frontend}_1h_results.json").read_text())["eval"])
    words = json.loads((out / f"{frontend}_1h_words.json").read_text())
    assert len(words["voices"]) == 4 and set(words["error_percent"]["mean"]) == {"cosine", "margin"}
    assert (out / f"attention_{frontend}.png").stat().st_size > 10_000


@pytest.mark.slow
def test_vaswani2017_table3_g2p_sweep_runs_end_to_end(tmp_path, data_dir):
  out, table_path, plot_path = tmp_path / "sweep", tmp_path / "g2p_results.md", tmp_path / "g2p_results.png"
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", OUT=str(out), TABLE=str(table_path),
             PLOT=str(plot_path), EVAL_MAX_EXAMPLES="8", ARCHIVE=str(tmp_path / "runs.json"))
  tiny = (f"--data_dir={data_dir} --num_train_steps=7 --checkpoint_every_steps=1 --eval_every_steps=2 "
          "--length_buckets=32 --max_eval_examples=8 --max_test_examples=8")
  proc = subprocess.run(["bash", "experiments/vaswani2017_table3/g2p_sweep.sh", f"--extra_flags={tiny}"], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=1800)
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in table_path.read_text().splitlines()[2:]
          if line.startswith("|")}
  two_seeds = {"base", "A-h16", "A-h32", "D-ls0", "D-ls0.2"}  # base, and rows close to it: mean ± std
  for label in two_seeds:
    assert rows[label][2] == "2" and " ± " in rows[label][3] and "%" not in rows[label][3], rows[label]
  variations = [label for label in rows if label not in ("base", "")]
  assert len(variations) == 17  # every variation of the paper's rows A-E that has a counterpart at N=2
  for label in set(variations) - two_seeds:
    assert rows[label][2] == "1", rows[label]
    assert 0 <= float(rows[label][3]) <= 100  # WER of the averaged checkpoints
  archived = run_archive.load(str(tmp_path / "runs.json"))
  assert len(archived) == 23 and all(f"averaged/{name}.test.json" in files for name, files in archived.items())
  assert table_path.read_text().splitlines()[-1].startswith("Machines: cpu: ")  # where the rows ran
  assert plot_path.stat().st_size > 10_000
  averaged = json.loads((out / "averaged" / "base,seed=0.test.json").read_text())
  assert averaged["step"] == 7 and averaged["examples"] == 8
