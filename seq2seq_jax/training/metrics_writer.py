"""Writes scalar metrics to `<workdir>/metrics.jsonl` and to TensorBoard event files (no TF)."""

import json
import os
import time

from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter


class MetricsWriter:
  """`write(step, {"train/loss": 1.2, ...})` appends one JSON line and one TensorBoard event."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    self.dropped_lines = 0
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._events = EventFileWriter(os.path.join(workdir, "tensorboard")) if enabled else None

  def _lines(self) -> list[dict]:
    """The readable records of metrics.jsonl; `dropped_lines` counts the others."""
    records = []
    with open(self.path) as f:
      for line in f:
        try:
          record = json.loads(line)
          int(record["step"])
          records.append(record)
        except (ValueError, KeyError, TypeError):
          if line.strip():
            self.dropped_lines += 1
    return records

  def truncate_after(self, step: int) -> None:
    """Drops records logged after `step` (written by a run that stopped before its next checkpoint)
    and unreadable lines (a write cut short by a kill, or a bad edit)."""
    if not self.enabled or not os.path.exists(self.path):
      return
    kept = [r for r in self._lines() if int(r["step"]) <= step]
    with open(self.path + ".tmp", "w") as f:
      f.writelines(json.dumps(r) + "\n" for r in kept)
    os.replace(self.path + ".tmp", self.path)

  def last_value(self, name: str):
    """The last value of metric `name` in metrics.jsonl, or None."""
    if not os.path.exists(self.path):
      return None
    values = [r[name] for r in self._lines() if name in r]
    return values[-1] if values else None

  def write(self, step: int, scalars: dict) -> None:
    if not self.enabled:
      return
    with open(self.path, "a") as f:
      f.write(json.dumps({"step": int(step), **scalars}) + "\n")
    values = [Summary.Value(tag=k, simple_value=float(v)) for k, v in scalars.items()
              if isinstance(v, (int, float))]
    self._events.add_event(Event(wall_time=time.time(), step=int(step), summary=Summary(value=values)))
    self._events.flush()

  def close(self) -> None:
    if self._events is not None:
      self._events.close()
