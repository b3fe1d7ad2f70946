"""The command line of a study's report: its run directory in, a markdown table and a figure out.

  python -m experiments.<study>.report --out_dir=RUNS --output=results.md [--plot=results.png]
"""

import argparse
from typing import Callable


def main(description: str, load_runs: Callable[[str], dict], table: Callable[[dict], str],
         plot: Callable[[dict, str], None], plotted: str) -> None:
  """Parses --out_dir, --output and --plot; writes table(load_runs(out_dir)) to --output (and prints
  it) and draws plot(runs, --plot) when asked.  `plotted` says what the figure shows."""
  parser = argparse.ArgumentParser(description=description)
  parser.add_argument("--out_dir", required=True)
  parser.add_argument("--output", required=True, help="Markdown file to write the table to.")
  parser.add_argument("--plot", help=f"PNG file to draw {plotted} in.")
  args = parser.parse_args()
  runs = load_runs(args.out_dir)
  text = table(runs)
  if args.plot:
    plot(runs, args.plot)
  with open(args.output, "w") as f:
    f.write(text)
  print(text, end="")


def save_figure(fig, title: str, path: str) -> None:
  """The figure with its title (the study, dataset and steps) as a PNG at `path`."""
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
