"""What a training run does when it is told to stop or when it diverges.

- SIGTERM (what SLURM, Kubernetes and preemptible VMs send before killing a job) and SIGINT
  (Ctrl-C): the run finishes the step it is in, saves a checkpoint and raises `TrainingStopped`.
  Run the same command again to continue; it ends exactly where an uninterrupted run ends.  A
  second SIGINT falls back to Python's default (KeyboardInterrupt).
- A non-finite loss or gradient norm: the run raises `NonFiniteLoss` naming the first such step,
  before it writes a checkpoint or results.json, so the checkpoints it keeps are the good ones.
"""

import signal

import jax
import numpy as np
from jax.experimental import multihost_utils


class TrainingStopped(Exception):
  """The run saved a checkpoint at `step` and stopped because it received `signal_name`."""

  def __init__(self, step: int, signal_name: str):
    super().__init__(f"stopped by {signal_name} after step {step}; checkpoint {step} saved; "
                     "run the same command again to continue")
    self.step, self.signal_name = step, signal_name


class NonFiniteLoss(Exception):
  """The loss or gradient norm of `step` was NaN or infinite; `last_checkpoint` is the newest good one."""

  def __init__(self, step: int, last_checkpoint: int | None):
    kept = f"checkpoint {last_checkpoint} is the last good one" if last_checkpoint else "no checkpoint was written"
    super().__init__(f"the loss became non-finite at step {step} ({kept}); lower --learning_rate, "
                     "raise --warmup_steps or set --grad_clip_norm, then train in a new --workdir or "
                     "resume this one")
    self.step, self.last_checkpoint = step, last_checkpoint


class StopSignals:
  """While active, SIGTERM and SIGINT set `received` instead of ending the process.

  Installs the handlers only in the main thread (Python allows no other); elsewhere it does
  nothing and the signals keep their usual effect.
  """

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.received = None  # the name of the first signal received
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    if self.received is None:
      self.received = signal.Signals(signum).name
    if signum == signal.SIGINT:  # a second Ctrl-C interrupts at once
      signal.signal(signal.SIGINT, signal.default_int_handler)

  def __enter__(self):
    try:
      for signum in self.SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    except ValueError:  # not the main thread
      self._previous = {}
    return self

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    return False

  def stop_requested(self) -> str | None:
    """The signal that asks this run to stop, agreed by every process (one process: its own)."""
    if jax.process_count() == 1:
      return self.received
    names = [s.name for s in self.SIGNALS]
    mine = np.int32(names.index(self.received) + 1 if self.received else 0)
    everyone = np.asarray(multihost_utils.process_allgather(mine))
    return names[int(everyone.max()) - 1] if everyone.max() else None


def first_non_finite_step(recorded: list) -> int | None:
  """The first step whose loss sum or gradient norm is NaN or infinite, from `recorded`:
  [(step, loss_sum, grad_norm)] with device scalars (fetched here, once per check)."""
  if not recorded:
    return None
  values = jax.device_get([(loss, norm) for _, loss, norm in recorded])
  for (step, _, _), (loss, norm) in zip(recorded, values):
    if not (np.isfinite(loss) and np.isfinite(norm)):
      return step
  return None
