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
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._events = EventFileWriter(os.path.join(workdir, "tensorboard")) if enabled else None

  def truncate_after(self, step: int) -> None:
    """Drops lines logged after `step` (written by a run that died before its next checkpoint)."""
    if not self.enabled or not os.path.exists(self.path):
      return
    with open(self.path) as f:
      kept = [line for line in f if line.strip() and json.loads(line)["step"] <= step]
    with open(self.path + ".tmp", "w") as f:
      f.writelines(kept)
    os.replace(self.path + ".tmp", self.path)

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
