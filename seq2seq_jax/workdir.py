"""A run's directory: what made it, its vocabularies and its checkpoints.

    <workdir>/config.json          the identity fields (below) and the full TrainConfig
    <workdir>/vocab_source.json    the vocabularies the model was trained with
    <workdir>/vocab_target.json
    <workdir>/checkpoints/<step>/  orbax: train state + {step, data position, PRNG key, wall time}
    <workdir>/checkpoints/<step>.damaged/   a checkpoint that failed to restore, moved aside
    <workdir>/checkpoints_best/<step>/  with --best_metric: the parameters validated best so far
                                   + {step, metric, value}
    <workdir>/metrics.jsonl, tensorboard/, results.json
    <workdir>/train.lock           while a training process works in it: its pid, host, start time

Training writes it (`prepare`, under `TrainingLock`); decoding and evaluation read it (`load`,
`restore_params`).  Nothing here imports training code.
"""

import contextlib
import dataclasses
import datetime
import io
import json
import logging
import os
import shutil
import socket
import sys
import time
import traceback
import warnings

import jax
import orbax.checkpoint as ocp

from seq2seq_jax import models
from seq2seq_jax.config import TrainConfig
from seq2seq_jax.data.tokenizers import vocabulary_from_json
from seq2seq_jax.errors import UsageError

# Fields that define the model and its data: a workdir cannot be resumed with other values.
IDENTITY_FIELDS = ("model", "dataset", "dataset_options", "model_hparams", "max_source_length",
                   "max_target_length", "buckets", "vocab_size", "shared_vocab", "optimizer",
                   "ema_decay", "init_from")
# The ways to name a checkpoint on the command line (`--checkpoint`), besides a step number.
CHECKPOINT_NAMES = ("latest", "best")


def metric_history(workdir: str, name: str) -> dict[int, float]:
  """step -> the value of metric `name` (e.g. "validation/nll") at each step metrics.jsonl has it."""
  history = {}
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    for line in f:
      record = json.loads(line)
      if name in record:
        history[record["step"]] = record[name]
  return history


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


def prepare(config: TrainConfig, vocabs: tuple, data_digest: str = "") -> None:
  """Records config and vocabularies in a new workdir; for an existing one, refuses (UsageError,
  nothing written) a run with a different model, dataset or vocabulary.  `data_digest` (a hash of
  a files: dataset's content) is recorded too, and a resume on other content is refused."""
  path = os.path.join(config.workdir, "config.json")
  if os.path.exists(path):
    recorded = _read_json(config.workdir, "config.json")
    if "averaged_from" in recorded:
      raise UsageError(f"workdir {config.workdir} holds averaged parameters (no optimizer state) and "
                       f"cannot be trained further; fine-tune from it with --init_from={config.workdir} "
                       "and a new --workdir")
    mine, saved = identity(config), saved_identity(recorded)
    diff = [f"{k}: {saved[k]!r} != {mine[k]!r}" for k in IDENTITY_FIELDS if saved[k] != mine[k]]
    if diff:
      raise UsageError(f"workdir {config.workdir} holds a run with different settings ({'; '.join(diff)}); "
                       "use a new --workdir or the original flags")
    if recorded.get("data_digest", "") != data_digest:
      raise UsageError(f"workdir {config.workdir} was trained on other contents of {config.dataset} "
                       "(the files changed); use a new --workdir, or restore the files")
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
  digest = {"data_digest": data_digest} if data_digest else {}
  write_json_atomic(path, {**identity(config), **digest, "full_config": _as_json(full)})


def load(workdir: str):
  """(config dict, source vocab, target vocab) recorded in a workdir.  The config dict holds every
  identity field (see `saved_identity`) and `full_config`."""
  if not os.path.exists(os.path.join(workdir, "config.json")):
    raise UsageError(f"{workdir} is not a training workdir (no config.json); train with "
                     f"`python -m experiments.train --workdir={workdir}` first")
  config = _read_json(workdir, "config.json")
  config.update(saved_identity(config))
  return config, _read_vocabulary(workdir, "source"), _read_vocabulary(workdir, "target")


class TrainingLock:
  """`<workdir>/train.lock`, held by the one process that trains in a workdir.

  Taking it while a live process on this host holds it, or while a process on another host does
  (its liveness cannot be checked from here), is a UsageError naming the holder.  A lock whose
  process is gone (a run killed with SIGKILL, a machine restarted) is taken over, and `took_over`
  says from whom.  Used as a context manager; the file is removed on exit.
  """

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, "train.lock")
    self.took_over = None  # the stale holder's record, when there was one

  def _holder(self):
    try:
      with open(self.path) as f:
        return json.load(f)
    except FileNotFoundError:
      return None
    except (json.JSONDecodeError, UnicodeDecodeError):
      return {"pid": None, "host": None, "started": "unknown (damaged lock file)"}

  @staticmethod
  def _alive(holder: dict) -> bool:
    """Whether the holder may still run: its process exists on this host, or it is on another."""
    if holder.get("host") != socket.gethostname():
      return holder.get("host") is not None  # another host's process cannot be checked from here
    if not isinstance(holder.get("pid"), int):
      return False
    try:
      os.kill(holder["pid"], 0)
    except ProcessLookupError:
      return False
    except PermissionError:  # exists, owned by another user
      return True
    return True

  def __enter__(self):
    os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
    record = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    for _ in range(3):
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
      except FileExistsError:
        holder = self._holder()
        if holder is None:
          continue  # released in between: try again
        if self._alive(holder):
          raise UsageError(f"workdir {os.path.dirname(self.path)} is in use by process {holder['pid']} on "
                           f"{holder['host']} (training since {holder['started']}); wait for it, stop it, "
                           f"or use another --workdir (a lock left by a dead process on another host: "
                           f"delete {self.path})")
        self.took_over = holder
        os.remove(self.path)
        continue
      with os.fdopen(fd, "w") as f:
        json.dump(record, f)
      return self
    raise UsageError(f"could not take {self.path}; another process keeps creating it")

  def __exit__(self, *exc):
    try:
      with open(self.path) as f:
        mine = json.load(f).get("pid") == os.getpid()
    except (OSError, ValueError):
      mine = False
    if mine:
      os.remove(self.path)
    return False


def checkpoint_manager(workdir: str, keep: int = 2) -> ocp.CheckpointManager:
  """The orbax manager of `<workdir>/checkpoints`, keeping the latest `keep` steps.  Each step holds
  the items `state` (a pytree) and `meta` (JSON)."""
  return ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), "checkpoints"),
      options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
      item_handlers={"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()})


def best_checkpoint_manager(workdir: str) -> ocp.CheckpointManager:
  """The orbax manager of `<workdir>/checkpoints_best`: one step, whose items are `state`
  ({"params": the parameters validated}) and `meta` ({"step", "metric", "value"})."""
  return ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), "checkpoints_best"),
      options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True),
      item_handlers={"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()})


def parse_checkpoint(text: str) -> str | int:
  """'latest' | 'best' | a step number -> the name or the int; UsageError otherwise."""
  text = str(text).strip()
  if text in CHECKPOINT_NAMES:
    return text
  if text.isdigit():
    return int(text)
  raise UsageError(f"--checkpoint must be latest, best or a step number, got {text!r}")


def parse_workdir_reference(text: str, default: str | int = "latest") -> tuple[str, str | int]:
  """A run and one of its checkpoints in one string (--init_from, --ensemble): 'W' -> (W, default);
  'W:1200' -> (W, 1200); 'W:best' -> (W, 'best'); a path that itself holds a colon stays whole."""
  path, _, checkpoint = text.rpartition(":")
  if not path or not (checkpoint.isdigit() or checkpoint in CHECKPOINT_NAMES):
    return text, default
  return path, parse_checkpoint(checkpoint)


def select_checkpoint(workdir: str, checkpoint: str | int = "latest") -> tuple:
  """(manager, step) of the checkpoint named by `checkpoint` (see `parse_checkpoint`); UsageError
  naming the steps there are when it does not exist."""
  if checkpoint == "best":
    manager = best_checkpoint_manager(workdir)
    if manager.latest_step() is None:
      raise UsageError(f"{workdir} has no best checkpoint; train with --best_metric=wer|per|bleu|chrf|loss "
                       "to keep one, or pass --checkpoint=latest")
    return manager, manager.latest_step()
  manager = checkpoint_manager(workdir)
  if checkpoint == "latest":
    if manager.latest_step() is None:
      raise UsageError(f"{workdir} has no checkpoint yet; train first")
    return manager, manager.latest_step()
  if checkpoint not in manager.all_steps():
    saved = ", ".join(map(str, manager.all_steps())) or "none"
    raise UsageError(f"{workdir} has no checkpoint of step {checkpoint}; saved steps: {saved}")
  return manager, checkpoint


def read_best(workdir: str) -> dict | None:
  """{"step", "metric", "value"} of the best checkpoint, or None when there is none."""
  manager = best_checkpoint_manager(workdir)
  step = manager.latest_step()
  if step is None:
    return None
  return restore_checkpoint(manager, step, ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]


class DamagedCheckpointError(Exception):
  """A checkpoint that orbax cannot restore (a missing or truncated file)."""

  def __init__(self, step: int, reason: str):
    super().__init__(f"checkpoint {step} is damaged ({reason})")
    self.step, self.reason = step, reason


def _reason(error: BaseException) -> str:
  """The first line of the innermost error behind `error` (tensorstore names the file there)."""
  while (error.__cause__ or error.__context__) is not None:
    error = error.__cause__ or error.__context__
  lines = str(error).strip().splitlines()
  return (lines[0] if lines else type(error).__name__)[:400]


def _orbax_read_left_behind(unraisable) -> bool:
  """Whether an unraisable error is an orbax read coroutine abandoned by a failed restore."""
  code = getattr(unraisable.object, "cr_code", None)
  return code is not None and f"{os.sep}orbax{os.sep}" in code.co_filename


def _orbax_future_left_behind(record: logging.LogRecord) -> bool:
  """Whether an asyncio log record is '... exception was never retrieved' for a checkpoint read: a
  task running orbax code, or a bare future holding tensorstore's error on a checkpoint's OCDBT
  database (it has no traceback to name orbax)."""
  text = record.getMessage()
  if record.exc_info:
    text += "".join(traceback.format_exception(*record.exc_info))
  return "never retrieved" in text and (f"{os.sep}orbax{os.sep}" in text or "OCDBT database" in text)


def _silence_abandoned_reads() -> None:
  """From now on, drop the 'Exception ignored in: <coroutine ...>', 'Task exception was never
  retrieved' and 'coroutine ... was never awaited' reports of the orbax reads that a failed
  restore left behind (Python prints them when it collects them, even at exit)."""
  previous = sys.unraisablehook
  if getattr(previous, "drops_orbax_reads", False):
    return

  def hook(unraisable):
    if not _orbax_read_left_behind(unraisable):
      previous(unraisable)

  hook.drops_orbax_reads = True
  sys.unraisablehook = hook
  logging.getLogger("asyncio").addFilter(lambda record: not _orbax_future_left_behind(record))
  warnings.filterwarnings("ignore", message=r"coroutine '.*' was never awaited", category=RuntimeWarning)


def _wait_until_quiet(stream: io.StringIO, quiet_s: float = 0.5, limit_s: float = 10.0) -> None:
  """Returns once nothing has been written to `stream` for `quiet_s` seconds (at most `limit_s`):
  on a busy machine the abandoned reads report later than on an idle one."""
  deadline, size = time.monotonic() + limit_s, -1
  while size != stream.tell() and time.monotonic() < deadline:
    size = stream.tell()
    time.sleep(quiet_s)


@contextlib.contextmanager
def _unreadable_checkpoint_as_error(step: int):
  """Turns any failure to read checkpoint `step` into a DamagedCheckpointError.  When tensorstore
  fails one read, the reads still in flight report to an event loop that orbax has closed, each
  with a traceback on stderr: those are held back here, and the reads' coroutines are collected
  without a word (`_silence_abandoned_reads`)."""
  saved, sys.stderr = sys.stderr, io.StringIO()
  reason = None
  try:
    yield
  except Exception as e:  # pylint: disable=broad-except  (tensorstore, orbax and OS errors alike)
    reason = _reason(e)
  finally:
    if reason is not None:
      _silence_abandoned_reads()
      _wait_until_quiet(sys.stderr)  # the reads in flight finish reporting
    sys.stderr = saved
  if reason is not None:
    raise DamagedCheckpointError(step, reason)


def restore_checkpoint(manager: ocp.CheckpointManager, step: int, args):
  """`manager.restore(step, args)`; any failure to read it is a DamagedCheckpointError."""
  with _unreadable_checkpoint_as_error(step):
    return manager.restore(step, args=args)


def move_aside(workdir: str, step: int, directory: str = "checkpoints") -> str:
  """Renames checkpoint `step` to `<step>.damaged` (orbax then no longer lists it); returns the new path."""
  path = os.path.join(os.path.abspath(workdir), directory, str(step))
  aside = path + ".damaged"
  n = 1
  while os.path.exists(aside):
    n += 1
    aside = f"{path}.damaged{n}"
  os.rename(path, aside)
  return aside


def restore_params(manager: ocp.CheckpointManager, step: int, use_ema: bool = True):
  """The parameters of checkpoint `step`, on this process's first device, whatever devices saved
  them (a run on two devices decodes on one): the restore target is the saved shapes and dtypes.
  When the run kept a moving average of its parameters (`--ema_decay`), that average unless
  `use_ema` is False.  DamagedCheckpointError if it cannot be read."""
  with _unreadable_checkpoint_as_error(step):
    saved = manager.item_metadata(step)["state"].tree
  name = "ema_params" if use_ema and saved.get("ema_params") else "params"
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), saved)
  restored = restore_checkpoint(manager, step, ocp.args.Composite(state=ocp.args.StandardRestore(target)))
  return restored["state"][name]


def write_params_workdir(source: str, output: str, step: int, params, note: dict) -> None:
  """A new workdir `output` holding `params` as its one checkpoint (step `step`) beside `source`'s
  config and vocabularies, so that every command that reads a workdir can use it; `note` (e.g.
  which checkpoints were averaged) is recorded in its config.json as `averaged_from`, which also
  keeps `experiments.train` from resuming it (there is no optimizer state).  UsageError if
  `output` exists."""
  if os.path.exists(output):
    raise UsageError(f"{output} exists; choose another --output_workdir or remove it")
  config = _read_json(source, "config.json")
  tmp = output.rstrip(os.sep) + ".tmp"
  if os.path.exists(tmp):
    shutil.rmtree(tmp)
  os.makedirs(tmp)
  for side in ("source", "target"):
    with open(os.path.join(tmp, f"vocab_{side}.json"), "w") as f:
      f.write(_read(source, f"vocab_{side}.json"))
  write_json_atomic(os.path.join(tmp, "config.json"), {**config, "averaged_from": note})
  manager = checkpoint_manager(tmp, keep=1)
  manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave({"params": params}),
                                             meta=ocp.args.JsonSave({"step": step, "averaged_from": note})))
  manager.wait_until_finished()
  manager.close()
  os.rename(tmp, output)
