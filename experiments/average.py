r"""Average the parameters of a run's checkpoints into a new workdir that every command can use.

  python -m experiments.average --workdir=runs/g2p --last=5            # -> runs/g2p_avg5
  python -m experiments.average --workdir=runs/g2p --steps=8000,8500,9000 --output_workdir=runs/g2p_avg
  python -m experiments.evaluate --workdir=runs/g2p_avg5 --split=test

The new workdir holds the run's config and vocabularies and one checkpoint (the newest averaged
step) with the mean of the checkpoints' parameters themselves (not of a moving average the run may
keep).  It has no optimizer state: `experiments.train` refuses to continue it; fine-tune from it
with `--init_from`.  Training keeps the latest --keep_checkpoints steps (2 by default): train with
--keep_checkpoints=5 to average the last 5.
"""

from absl import flags, logging

from experiments import entry_point
from seq2seq_jax import averaging, workdir
from seq2seq_jax.errors import UsageError

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Training workdir whose checkpoints to average.", required=True)
flags.DEFINE_integer("last", None, "Average the last N saved checkpoints.")
flags.DEFINE_list("steps", [], "Average these saved steps instead.")
flags.DEFINE_string("output_workdir", None, "Where to write the averaged workdir (default: "
                    "<workdir>_avg<N>, or <workdir>_avg<first>-<last> with --steps).")


def chosen_steps(saved: list[int]) -> list[int]:
  """The steps --last or --steps names, checked against the saved ones."""
  if (FLAGS.last is None) == (not FLAGS.steps):
    raise UsageError("give exactly one of --last=N or --steps=a,b,c")
  listing = ", ".join(map(str, saved)) or "none"
  if FLAGS.last is not None:
    if FLAGS.last < 1 or FLAGS.last > len(saved):
      raise UsageError(f"--last={FLAGS.last}: {FLAGS.workdir} has {len(saved)} checkpoint(s) (steps {listing}); "
                       "train with --keep_checkpoints=N to keep more")
    return saved[-FLAGS.last:]
  try:
    steps = sorted({int(s) for s in FLAGS.steps})
  except ValueError:
    raise UsageError(f"--steps must be step numbers, got {','.join(FLAGS.steps)}") from None
  missing = [s for s in steps if s not in saved]
  if missing:
    raise UsageError(f"{FLAGS.workdir} has no checkpoint of step(s) {', '.join(map(str, missing))}; saved steps: {listing}")
  return steps


def main():
  logging.set_verbosity(logging.WARNING)
  workdir.load(FLAGS.workdir)  # a UsageError if it is not a training workdir
  manager = workdir.checkpoint_manager(FLAGS.workdir)
  steps = chosen_steps(sorted(manager.all_steps()))
  suffix = f"_avg{FLAGS.last}" if FLAGS.last is not None else f"_avg{steps[0]}-{steps[-1]}"
  output = FLAGS.output_workdir or FLAGS.workdir.rstrip("/") + suffix
  trees = []
  for step in steps:
    try:
      trees.append(workdir.restore_params(manager, step, use_ema=False))
    except workdir.DamagedCheckpointError as e:
      raise UsageError(f"{FLAGS.workdir}: {e}; leave it out with --steps") from None
  note = {"workdir": FLAGS.workdir, "steps": steps}
  workdir.write_params_workdir(FLAGS.workdir, output, steps[-1], averaging.mean_params(trees), note)
  print(f"averaged steps {', '.join(map(str, steps))} of {FLAGS.workdir} -> {output}")


if __name__ == "__main__":
  entry_point.run(main)
