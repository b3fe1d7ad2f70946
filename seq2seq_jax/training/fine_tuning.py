"""Starting a run from another run's parameters (`--init_from=WORKDIR[:STEP]`).

The new run takes the source run's vocabularies and parameters (its moving average when it kept
one) and starts a fresh optimizer and learning-rate schedule at step 0.  Everything else (data,
steps, learning rate, dropout) is the new run's own, so fine-tuning is an ordinary run that resumes
exactly from its own checkpoints.
"""

import jax

from seq2seq_jax import workdir as workdir_lib
from seq2seq_jax.errors import UsageError


def source_run(init_from: str) -> tuple[dict, tuple, object, int]:
  """(config dict, (source vocab, target vocab), params, step) of the run `init_from` names."""
  workdir, checkpoint = workdir_lib.parse_workdir_reference(init_from)
  config, source_vocab, target_vocab = workdir_lib.load(workdir)
  manager, step = workdir_lib.select_checkpoint(workdir, checkpoint)
  try:
    params = workdir_lib.restore_params(manager, step)
  except workdir_lib.DamagedCheckpointError as e:
    raise UsageError(f"--init_from={init_from}: {e}; name another checkpoint as WORKDIR:STEP") from None
  return config, (source_vocab, target_vocab), params, step


def _shapes(params) -> dict[str, tuple]:
  """'encoder/layer_0/kernel' -> shape, for every parameter."""
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  return {"/".join(str(getattr(k, "key", k)) for k in path): tuple(x.shape) for path, x in flat}


def check_compatible(loaded, initialised, init_from: str) -> None:
  """UsageError naming the first parameter that the model of this run lacks, has in addition, or
  has with another shape than the run `init_from`."""
  theirs, ours = _shapes(loaded), _shapes(initialised)
  for name in sorted(set(theirs) | set(ours)):
    if name not in ours:
      raise UsageError(f"--init_from={init_from}: parameter {name} {theirs[name]} is not in this model; "
                       "use that run's model flags")
    if name not in theirs:
      raise UsageError(f"--init_from={init_from}: this model's parameter {name} {ours[name]} is not in "
                       "that run; use that run's model flags")
    if theirs[name] != ours[name]:
      raise UsageError(f"--init_from={init_from}: parameter {name} has shape {theirs[name]} there and "
                       f"{ours[name]} in this model; use that run's model flags")
