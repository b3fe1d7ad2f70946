"""--checkpoint and --use_ema: which saved parameters evaluate, decode and embed use."""

from absl import flags

from seq2seq_jax import workdir

FLAGS = flags.FLAGS

flags.DEFINE_string("checkpoint", "latest", "latest, best (kept by training with --best_metric) or a "
                    "saved step number.")
flags.DEFINE_bool("use_ema", True, "Use the moving average of the parameters when the run kept one "
                  "(--ema_decay); --nouse_ema: the parameters themselves.")


def translator_args() -> dict:
  """Keyword arguments of `Translator.from_workdir` from the flags (UsageError for a bad --checkpoint)."""
  return {"checkpoint": workdir.parse_checkpoint(FLAGS.checkpoint), "use_ema": FLAGS.use_ema}
