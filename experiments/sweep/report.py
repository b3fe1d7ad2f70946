"""A sweep's results: results.json (or the recorded error) per run -> rows with mean/std over seeds,
written as CSV, markdown and plots."""

import csv
import dataclasses
import json
import math
import os
import statistics
from typing import Optional

from experiments.sweep.plan import RESULTS_FILE, STATUS_FILE, Configuration, Run, safe_name

NOT_METRICS = ("examples", "tokens", "truncated_sources")
# Metrics shown first, in this order; any other numeric eval key follows alphabetically.
METRIC_ORDER = ("loss", "nll", "perplexity", "accuracy", "wer", "per", "bleu", "chrf")


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
    path = os.path.join(plot_dir, f"{safe_name(axis)}.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    paths.append(path)
  return paths
