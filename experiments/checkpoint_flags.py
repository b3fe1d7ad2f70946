"""--checkpoint, --use_ema and --ensemble: which saved parameters evaluate, decode and embed use."""

from absl import flags

from seq2seq_jax import workdir
from seq2seq_jax.errors import UsageError
from seq2seq_jax.sentence_encoder import SentenceEncoder
from seq2seq_jax.translator import Translator

FLAGS = flags.FLAGS

flags.DEFINE_string("checkpoint", "latest", "latest, best (kept by training with --best_metric) or a "
                    "saved step number.")
flags.DEFINE_bool("use_ema", True, "Use the moving average of the parameters when the run kept one "
                  "(--ema_decay); --nouse_ema: the parameters themselves.")


flags.DEFINE_list("ensemble", [], "More workdirs to decode together with --workdir as one ensemble "
                  "(their log-probabilities averaged at every step); each at --checkpoint, or at its own "
                  "as WORKDIR:STEP (or WORKDIR:best, WORKDIR:latest).")


def translator_args() -> dict:
  """Keyword arguments of `Translator.from_workdir` from the flags (UsageError for a bad --checkpoint)."""
  return {"checkpoint": workdir.parse_checkpoint(FLAGS.checkpoint), "use_ema": FLAGS.use_ema}


def load_translator(workdir_path: str, dtype: str | None = None) -> Translator:
  """The Translator of --workdir, or of the ensemble of --workdir and the --ensemble workdirs."""
  args = translator_args()
  members = [Translator.from_workdir(workdir_path, dtype=dtype, **args)]
  for entry in FLAGS.ensemble:
    path, checkpoint = workdir.parse_workdir_reference(entry, default=args["checkpoint"])
    members.append(Translator.from_workdir(path, dtype=dtype, **{**args, "checkpoint": checkpoint}))
  return members[0] if len(members) == 1 else Translator.ensemble(members)


def load_sentence_encoder(workdir_path: str, pooling: str) -> SentenceEncoder:
  """The encoder of --workdir at --checkpoint; UsageError for --ensemble (an ensemble has no one encoder)."""
  if FLAGS.ensemble:
    raise UsageError("--ensemble decodes several models as one; sentence vectors come from one model's "
                     "encoder: give only --workdir")
  return SentenceEncoder(load_translator(workdir_path), pooling)
