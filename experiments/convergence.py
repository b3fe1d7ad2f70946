"""Whether a run had converged: its validation loss over the last fifth of training.

The studies' tables call a run "flat" (converged) when its validation NLL moved by less than
FLAT_FRACTION from the last evaluation at or before 80% of the steps to the last evaluation, "falling" when it was
still improving and "rising" when the model had begun to over-fit.
"""

FLAT_FRACTION = 0.01


def last_fifth_change(losses: dict[int, float], steps: int) -> tuple[float, float]:
  """(validation NLL at the last evaluation at or before 80% of the run's steps, at its last
  evaluation; training validates every --eval_every_steps and at its last step).  The two must
  differ: a run needs a validation within its last fifth."""
  early = [step for step in losses if step <= 0.8 * steps]
  if not early or max(early) == max(losses):
    raise SystemExit(f"a run of {steps} steps validated at steps {sorted(losses)}: its convergence needs one "
                     "validation at or before 80% of the steps and one after; train with a smaller --eval_every_steps")
  return losses[max(early)], losses[max(losses)]


def last_two_validations(losses: dict[int, float]) -> tuple[tuple[int, float], tuple[int, float]]:
  """((step, validation NLL), (step, validation NLL)) of a run's last two evaluations: the latest
  trend, for runs whose metrics have no validation at their last step and whose last validation
  falls at 80% of the steps."""
  if len(losses) < 2:
    raise SystemExit(f"a run validated at steps {sorted(losses)}: its trend needs two validations; "
                     "train with a smaller --eval_every_steps")
  before, after = sorted(losses)[-2:]
  return (before, losses[before]), (after, losses[after])


def trend(before: float, after: float) -> str:
  """'falling', 'flat' or 'rising' (over-fitting): the change of the validation NLL against FLAT_FRACTION."""
  if before - after >= FLAT_FRACTION * before:
    return "falling"
  return "rising" if after - before >= FLAT_FRACTION * before else "flat"
