r"""The README's speed rows from the JSON lines of vs_peers.sh (or gpu.sh): per group, each row's
median over the rounds [min-max], and its ratio to each reference row of the group as the median
of the per-round ratios [min-max].

  python experiments/benchmarks/table.py vs_peers.jsonl
"""

import collections
import json
import statistics
import sys

FIGURES = {"train": "target_tokens_per_s", "decode": "sentences_per_s",
           "matmul": "gflops_per_s", "jaxmatmul": "gflops_per_s"}
UNITS = {"train": "target tokens/s", "decode": "sentences/s", "matmul": "GFLOP/s", "jaxmatmul": "GFLOP/s"}
REFERENCES = {  # group -> the rows every row of it is divided by
    "train": ("eager PyTorch", "eager PyTorch, tcmalloc"),  # vs_peers.sh (CPU)
    "train small": ("eager PyTorch",),  # gpu.sh
    "train base": ("eager PyTorch",),
    "greedy": ("CTranslate2 float32", "HF generate float32"),
    "beam 4": ("CTranslate2 float32", "CTranslate2 bfloat16", "CTranslate2 int8", "HF generate float32"),
}


def spread(values, unit: str = "") -> str:
  """'median<unit> [min-max]', with the precision the size of the figures calls for."""
  fmt = (lambda v: f"{v:,.0f}") if max(values) >= 1000 else (lambda v: f"{v:.1f}" if max(values) >= 10 else f"{v:.2f}")
  med = fmt(statistics.median(values)) + unit
  return med if len(values) == 1 else f"{med} [{fmt(min(values))}-{fmt(max(values))}]"


def figures(lines) -> dict:
  """group -> row -> round -> figure (None where the measurement reported an error)."""
  table = collections.defaultdict(lambda: collections.defaultdict(dict))
  for d in lines:
    table[d["group"]][d["row"]][d["round"]] = None if "error" in d else d.get(FIGURES[d["bench"]])
  return table


def group_rows(group: str, rows: dict, unit: str) -> list[str]:
  """Markdown lines of one group's table."""
  refs = [r for r in REFERENCES.get(group, ()) if r in rows]
  header = [f"{group} ({unit})", "median [min-max]", *(f"/ {r}" for r in refs)]
  out = ["| " + " | ".join(header) + " |", "| --- " * len(header) + "|"]
  for name, by_round in rows.items():
    got = [v for v in by_round.values() if v is not None]
    cells = [spread(got) if got else "error"]
    for ref in refs:
      ratios = [v / rows[ref][k] for k, v in by_round.items() if v and rows[ref].get(k)]
      cells.append(spread(ratios, "x") if ratios else "")
    out.append(f"| {name} | " + " | ".join(cells) + " |")
  return out


def main(path: str) -> None:
  with open(path) as f:
    lines = [json.loads(line) for line in f if line.strip()]
  units = {d["group"]: UNITS[d["bench"]] for d in lines}
  rounds = sorted({d["round"] for d in lines if d["round"]})
  print(f"{len(rounds)} rounds; medians over the rounds [min-max]; ratios: median of the per-round ratios [min-max]\n")
  for group, rows in figures(lines).items():
    print("\n".join(group_rows(group, rows, units[group])) + "\n")


if __name__ == "__main__":
  if len(sys.argv) != 2:
    sys.exit("usage: python experiments/benchmarks/table.py RESULTS.jsonl")
  main(sys.argv[1])
