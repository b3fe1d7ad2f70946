"""A run's directory: what made it, its vocabularies and its checkpoints.

    <workdir>/config.json          the identity fields (below) and the full TrainConfig
    <workdir>/vocab_source.json    the vocabularies the model was trained with
    <workdir>/vocab_target.json
    <workdir>/checkpoints/<step>/  orbax: train state + {step, data position, PRNG key, wall time}
    <workdir>/metrics.jsonl, tensorboard/, results.json

Training writes it (`prepare`); decoding and evaluation read it (`load`, `restore_params`).
Nothing here imports training code.
"""

import dataclasses
import json
import os

import jax
import orbax.checkpoint as ocp

from seq2seq_jax import models
from seq2seq_jax.config import TrainConfig
from seq2seq_jax.data.tokenizers import vocabulary_from_json
from seq2seq_jax.errors import UsageError

# Fields that define the model and its data: a workdir cannot be resumed with other values.
IDENTITY_FIELDS = ("model", "dataset", "dataset_options", "model_hparams", "max_source_length",
                   "max_target_length", "buckets", "vocab_size", "shared_vocab")


def write_json_atomic(path: str, obj) -> None:
  """Writes `obj` as JSON to `path` through a temporary file: readers see the old or the new file."""
  with open(path + ".tmp", "w") as f:
    json.dump(obj, f, indent=1, sort_keys=True)
  os.replace(path + ".tmp", path)


def _as_json(obj):
  return json.loads(json.dumps(obj))


def identity(config: TrainConfig) -> dict:
  """The identity fields of `config`, with every hyperparameter of the chosen model resolved."""
  d = dataclasses.asdict(config)
  ident = {k: d[k] for k in IDENTITY_FIELDS}
  ident["model_hparams"] = models.resolve_hyperparameters(config.model, config.model_hparams)
  return _as_json(ident)


def saved_identity(saved: dict) -> dict:
  """The identity fields of a saved config.json.  Fields a workdir does not record get their
  defaults (the old single `max_length` stands for both length limits), and `model_hparams` keeps
  only, and all of, the recorded model's hyperparameters."""
  defaults = _as_json({k: v for k, v in dataclasses.asdict(TrainConfig()).items() if k in IDENTITY_FIELDS})
  if "max_length" in saved:
    defaults["max_source_length"] = defaults["max_target_length"] = saved["max_length"]
  ident = {k: saved.get(k, defaults[k]) for k in IDENTITY_FIELDS}
  known = models.hyperparameter_names(ident["model"])
  recorded = {k: v for k, v in ident["model_hparams"].items() if k in known}
  ident["model_hparams"] = _as_json(models.resolve_hyperparameters(ident["model"], recorded))
  return ident


def _read(workdir: str, name: str) -> str:
  with open(os.path.join(workdir, name)) as f:
    return f.read()


def _read_json(workdir: str, name: str) -> dict:
  """A workdir's JSON file; a damaged one is a UsageError naming it."""
  try:
    return json.loads(_read(workdir, name))
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise UsageError(f"{os.path.join(workdir, name)} is damaged ({e}); restore it from a copy "
                     "or start again with a new --workdir") from None


def _read_vocabulary(workdir: str, side: str):
  name = f"vocab_{side}.json"
  path = os.path.join(workdir, name)
  if not os.path.exists(path):
    raise UsageError(f"{path} is missing; restore it from a copy or start again with a new --workdir")
  try:
    return vocabulary_from_json(_read(workdir, name))
  except (ValueError, KeyError, TypeError) as e:
    raise UsageError(f"{path} is damaged ({type(e).__name__}: {e}); restore it from a copy "
                     "or start again with a new --workdir") from None


def prepare(config: TrainConfig, vocabs: tuple) -> None:
  """Records config and vocabularies in a new workdir; for an existing one, refuses (UsageError,
  nothing written) a run with a different model, dataset or vocabulary."""
  path = os.path.join(config.workdir, "config.json")
  if os.path.exists(path):
    mine, saved = identity(config), saved_identity(_read_json(config.workdir, "config.json"))
    diff = [f"{k}: {saved[k]!r} != {mine[k]!r}" for k in IDENTITY_FIELDS if saved[k] != mine[k]]
    if diff:
      raise UsageError(f"workdir {config.workdir} holds a run with different settings ({'; '.join(diff)}); "
                       "use a new --workdir or the original flags")
    for side, vocab in zip(("source", "target"), vocabs):
      if _read_vocabulary(config.workdir, side) != vocab:
        raise UsageError(f"workdir {config.workdir}: the {side} vocabulary differs from this data; "
                         "use a new --workdir")
    return
  os.makedirs(config.workdir, exist_ok=True)
  for side, vocab in zip(("source", "target"), vocabs):
    with open(os.path.join(config.workdir, f"vocab_{side}.json"), "w") as f:
      f.write(vocab.to_json())
  full = {**dataclasses.asdict(config), "model_hparams": identity(config)["model_hparams"]}
  write_json_atomic(path, {**identity(config), "full_config": _as_json(full)})


def load(workdir: str):
  """(config dict, source vocab, target vocab) recorded in a workdir.  The config dict holds every
  identity field (see `saved_identity`) and `full_config`."""
  if not os.path.exists(os.path.join(workdir, "config.json")):
    raise UsageError(f"{workdir} is not a training workdir (no config.json); train with "
                     f"`python -m experiments.train --workdir={workdir}` first")
  config = _read_json(workdir, "config.json")
  config.update(saved_identity(config))
  return config, _read_vocabulary(workdir, "source"), _read_vocabulary(workdir, "target")


def checkpoint_manager(workdir: str, keep: int = 2) -> ocp.CheckpointManager:
  """The orbax manager of `<workdir>/checkpoints`, keeping the latest `keep` steps."""
  return ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), "checkpoints"),
      options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))


def restore_params(manager: ocp.CheckpointManager, step: int):
  """The parameters of checkpoint `step`, on this process's first device, whatever devices saved
  them (a run on two devices decodes on one): the restore target is the saved shapes and dtypes."""
  path = os.path.join(str(manager.directory), str(step), "state")
  saved = ocp.StandardCheckpointer().metadata(path).item_metadata
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), saved)
  restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
  return restored["state"]["params"]
