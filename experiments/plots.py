"""Attention heatmaps: output tokens down, source tokens across, one panel per layer (or per head).

Rendering uses matplotlib's Agg backend (files only, no display needed).
"""

import os
import re
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from seq2seq_jax.attention_maps import AttentionMap  # pylint: disable=wrong-import-position
from seq2seq_jax.errors import UsageError  # pylint: disable=wrong-import-position

MAX_NAME_CHARS = 40


def file_name(index: int, text: str) -> str:
  """A filesystem-safe PNG name from an input's 1-based index and its text: 003_knight.png.
  Anything but ASCII letters, digits, '-', '_' and '.' becomes '_'; long texts are cut."""
  safe = re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:MAX_NAME_CHARS].strip("._") or "input"
  return f"{index:03d}_{safe}.png"


def panels(attention: AttentionMap, per_head: bool) -> tuple[np.ndarray, list[str], str]:
  """(weights [rows, cols, output_len, source_len], panel titles in row-major order, figure title).

  One panel per layer, averaged over heads (rows = 1), or with `per_head` one per head per layer
  (rows = layers, cols = heads).  A single-layer single-head map (the attention RNN) is one panel.
  """
  layers, heads = attention.weights.shape[:2]
  if layers * heads == 1:
    return attention.weights, [""], attention.description
  if per_head:
    titles = [f"layer {l + 1}, head {h + 1}" for l in range(layers) for h in range(heads)]
    return attention.weights, titles, f"{attention.description}, per head"
  mean = attention.weights.mean(axis=1)[None]   # [1, layers, T, S]
  titles = [f"layer {l + 1}" for l in range(layers)]
  return mean, titles, f"{attention.description}, mean over {heads} heads"


def plot(attention: AttentionMap, path: str, per_head: bool = False, title: str | None = None) -> str:
  """Writes one heatmap PNG of `attention` (weights [layers, heads, output_len, source_len]) to
  `path`: rows are the output tokens (EOS included), columns the source tokens; returns `path`."""
  grid, titles, figure_title = panels(attention, per_head)
  rows, cols, out_len, src_len = grid.shape
  cell = 0.32
  width = min(max(cols * (src_len * cell + 1.2), 4.0), 40.0)
  height = min(max(rows * (out_len * cell + 1.2) + 0.8, 3.0), 40.0)
  fig, axes = plt.subplots(rows, cols, figsize=(width, height), squeeze=False, constrained_layout=True)
  for ax, weights, panel_title in zip(axes.flat, grid.reshape(rows * cols, out_len, src_len), titles):
    image = ax.imshow(weights, cmap="Greys", vmin=0.0, vmax=1.0, aspect="equal", interpolation="nearest")
    ax.set_xticks(range(src_len), attention.source, rotation=90 if max(map(len, attention.source)) > 2 else 0)
    ax.set_yticks(range(out_len), attention.output)
    ax.tick_params(length=0, labelsize=9)
    ax.set_title(panel_title, fontsize=10)
  fig.colorbar(image, ax=axes, shrink=0.6, label="attention weight")
  fig.suptitle(figure_title if title is None else f"{title}\n{figure_title}", fontsize=11)
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def save_all(attentions: Sequence[AttentionMap], texts: Sequence[str], outdir: str,
             per_head: bool = False, titles: Sequence[str] | None = None) -> list[str]:
  """One PNG per input in `outdir` (created if needed), named by `file_name` from the input's
  1-based index and text; `titles` (e.g. "input -> output") head the figures.  Returns the paths."""
  try:
    os.makedirs(outdir, exist_ok=True)
  except OSError as e:
    raise UsageError(f"can't write attention plots to {outdir}: {e.strerror}") from e
  titles = titles or [None] * len(texts)
  return [plot(attention, os.path.join(outdir, file_name(index, text)), per_head, title)
          for index, (attention, text, title) in enumerate(zip(attentions, texts, titles), 1)]
