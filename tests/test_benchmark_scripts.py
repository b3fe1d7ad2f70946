"""The benchmark scripts' plumbing (no timing): the table from tagged JSON lines, and gpu.sh's one
line where there is no GPU."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO


def test_table_gives_medians_ranges_and_per_round_ratios(tmp_path):
  lines = [{"bench": "train", "group": "train", "row": row, "round": r, "target_tokens_per_s": v}
           for r, ours, peer in ((1, 3000.0, 2000.0), (2, 3300.0, 3000.0), (3, 2700.0, 1800.0))
           for row, v in (("ours, default command", ours), ("eager PyTorch", peer))]
  lines.append({"bench": "decode", "group": "beam 4", "row": "CTranslate2 bfloat16", "round": 1, "error": "unsupported"})
  path = tmp_path / "results.jsonl"
  path.write_text("".join(json.dumps(d) + "\n" for d in lines))
  out = subprocess.run([sys.executable, "experiments/benchmarks/table.py", str(path)], cwd=REPO,
                       capture_output=True, text=True, check=True).stdout
  assert "| ours, default command | 3,000 [2,700-3,300] | 1.50x [1.10-1.50] |" in out
  assert "| eager PyTorch | 2,000 [1,800-3,000] | 1.00x [1.00-1.00] |" in out
  assert "| CTranslate2 bfloat16 | error |" in out


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a GPU machine: gpu.sh measures")
def test_gpu_script_says_in_one_line_that_there_is_no_gpu():
  proc = subprocess.run(["bash", "experiments/benchmarks/gpu.sh"], cwd=REPO, capture_output=True, text=True,
                        timeout=60)
  assert proc.returncode == 1 and proc.stdout == ""
  assert proc.stderr.startswith("error: no CUDA GPU on this machine") and proc.stderr.count("\n") == 1


def test_only_runs_the_rows_it_matches():
  script = ('. experiments/benchmarks/rows.sh; round=2; '
            'row "beam 4" "ours float32" echo \'{"v": 1}\'; row "beam 4" "HF generate" echo \'{"v": 2}\'; '
            'row greedy "ours float32" echo \'{"v": 3}\'')
  run = lambda only: subprocess.run(["bash", "-c", script], cwd=REPO, env=dict(os.environ, ONLY=only),
                                    capture_output=True, text=True, check=True).stdout.splitlines()
  assert [json.loads(line)["v"] for line in run("")] == [1, 2, 3]
  picked = [json.loads(line) for line in run("^beam 4: ours")]
  assert picked == [{"v": 1, "group": "beam 4", "row": "ours float32", "round": 2}]
