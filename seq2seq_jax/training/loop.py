"""train_and_evaluate: data -> train steps -> checkpoints, metrics, evaluation, results.json.

The workdir's layout is `seq2seq_jax/workdir.py`'s.  Running again on the same workdir continues from
the latest checkpoint and ends exactly where an uninterrupted run ends (batches and dropout keys
are functions of the step).
"""

import contextlib
import dataclasses
import json
import os
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
from tqdm import tqdm

from seq2seq_jax import evaluation, models, translator, workdir as workdir_lib
from seq2seq_jax.config import TrainConfig
from seq2seq_jax.data import datasets, pipeline
from seq2seq_jax.decoding.task import DecodingTask
from seq2seq_jax.data.tokenizers import OutOfVocabularyError
from seq2seq_jax.errors import UsageError
from seq2seq_jax.training import faults, fine_tuning, parallel, state as state_lib, step as step_lib
from seq2seq_jax.training.metrics_writer import MetricsWriter



def hardware() -> str:
  """What the run ran on, for its results' provenance: the accelerators' kind and number, or the CPU
  model, the matrix extensions that decide its speed and the cores this process may use
  (`cpu: Intel(R) Xeon(R) Processor (AVX512-BF16, AMX), 2 cores`)."""
  device = jax.devices()[0]
  if device.platform != "cpu":
    return f"{device.platform}: {jax.device_count()} x {device.device_kind}"
  model, flags = "unknown model", []
  if os.path.exists("/proc/cpuinfo"):
    with open("/proc/cpuinfo") as f:
      first_cpu = f.read().split("\n\n")[0]
    info = {key.strip(): value.strip() for key, value in
            (line.split(":", 1) for line in first_cpu.splitlines() if ":" in line)}
    model, flags = info.get("model name", model), info.get("flags", "").split()
  extensions = [name for flag, name in (("avx512_bf16", "AVX512-BF16"), ("amx_tile", "AMX")) if flag in flags]
  return f"cpu: {model}{' (' + ', '.join(extensions) + ')' if extensions else ''}, {len(os.sched_getaffinity(0))} cores"


def validate(config: TrainConfig) -> None:
  """Raises UsageError naming the first bad setting."""
  for name in ("num_train_steps", "eval_every_steps", "checkpoint_every_steps", "log_every_steps",
               "batch_size", "eval_batch_size", "warmup_steps", "keep_checkpoints"):
    if getattr(config, name) <= 0:
      raise UsageError(f"--{name} must be a positive integer, got {getattr(config, name)}")
  if config.batch_size % jax.device_count():
    raise UsageError(f"--batch_size={config.batch_size} must be divisible by the number of devices "
                     f"({jax.device_count()})")
  if config.eval_batch_size % jax.device_count():
    raise UsageError(f"--eval_batch_size={config.eval_batch_size} must be divisible by the number "
                     f"of devices ({jax.device_count()})")
  if not 0.0 <= config.label_smoothing < 1.0:
    raise UsageError(f"--label_smoothing must be in [0, 1), got {config.label_smoothing}")
  if config.grad_accum_steps < 1:
    raise UsageError(f"--grad_accum_steps must be a positive integer, got {config.grad_accum_steps}")
  if not config.max_tokens and config.batch_size % (jax.device_count() * config.grad_accum_steps):
    raise UsageError(f"--batch_size={config.batch_size} must be divisible by devices x --grad_accum_steps "
                     f"({jax.device_count()} x {config.grad_accum_steps})")
  models.check_hyperparameters(config.model, config.model_hparams)
  for name in models.FILLED_BY_RUN:
    if name in config.model_hparams:
      raise UsageError(f"model_hparams[{name!r}] is set by the run (from the data, or --dtype); drop it")
  model_fields = models.hyperparameter_names(config.model)
  if config.dtype not in ("float32", "bfloat16") or (config.dtype != "float32" and "dtype" not in model_fields):
    raise UsageError(f"--dtype={config.dtype} is not available for --model={config.model} "
                     "(float32 everywhere; bfloat16 for the transformer)")
  for name in ("max_source_length", "max_target_length"):
    if not 0 < getattr(config, name) <= max(config.buckets):
      raise UsageError(f"--{name}={getattr(config, name)} must be in [1, {max(config.buckets)}] "
                       "(the longest length bucket; see --length_buckets)")
  if list(config.buckets) != sorted(set(config.buckets)) or min(config.buckets) <= 0:
    raise UsageError(f"--length_buckets must be increasing positive lengths, got {config.buckets}")
  if config.max_tokens < 0 or config.vocab_size < 0:
    raise UsageError("--max_tokens and --vocab_size must be >= 0")
  if config.init_from and (config.vocab_size or config.shared_vocab):
    raise UsageError("--init_from keeps the vocabularies of the run it starts from: drop --vocab_size "
                     "and --shared_vocab")
  if config.model_hparams.get("share_embeddings") and not config.shared_vocab and not config.init_from:
    raise UsageError("--share_embeddings ties source and target tokens with the same id: it needs "
                     "--shared_vocab (one SentencePiece vocabulary for both sides)")
  if config.schedule not in state_lib.SCHEDULES:
    raise UsageError(f"unknown --schedule={config.schedule!r}; choose one of: {', '.join(state_lib.SCHEDULES)}")
  if config.optimizer not in state_lib.OPTIMIZERS:
    raise UsageError(f"unknown --optimizer={config.optimizer!r}; choose one of: {', '.join(state_lib.OPTIMIZERS)}")
  if config.weight_decay < 0 or (config.weight_decay and config.optimizer == "adam"):
    raise UsageError(f"--weight_decay={config.weight_decay}: use --optimizer=adamw (or adafactor) for "
                     "decoupled weight decay, and a value >= 0")
  if not 0.0 <= config.ema_decay < 1.0:
    raise UsageError(f"--ema_decay must be in [0, 1) (0 = off; e.g. 0.999), got {config.ema_decay}")
  if config.best_metric and config.best_metric not in BEST_METRICS:
    raise UsageError(f"unknown --best_metric={config.best_metric!r}; choose one of: {', '.join(BEST_METRICS)}")


# Validation figures a best checkpoint can be chosen by, and whether higher is better.
BEST_METRICS = {"wer": False, "per": False, "cer": False, "bleu": True, "chrf": True, "loss": False}


def check_best_metric(config: TrainConfig, spec) -> None:
  """UsageError when the dataset's validation does not report `config.best_metric`."""
  if config.best_metric and config.best_metric != "loss" and config.best_metric not in spec.metrics:
    raise UsageError(f"--best_metric={config.best_metric}: {config.dataset} is scored by "
                     f"{', '.join(spec.metrics)} (or loss)")


def is_better(metric: str, value: float, best: dict | None) -> bool:
  """Whether `value` of `metric` beats the best so far (ties keep the earlier checkpoint)."""
  if best is None:
    return True
  return value > best["value"] if BEST_METRICS[metric] else value < best["value"]


def check_vocabulary_covers(examples: dict, vocabs: tuple, init_from: str) -> None:
  """UsageError naming the split and text when the data holds symbols that the vocabularies of the
  run we fine-tune from cannot encode."""
  source_vocab, target_vocab = vocabs
  for split, split_examples in examples.items():
    for ex in split_examples:
      try:
        source_vocab.encode(ex.source)
        for ref in ex.references:
          target_vocab.encode(ref)
      except OutOfVocabularyError as e:
        raise UsageError(f"--init_from={init_from}: the {split} split does not fit that run's "
                         f"vocabulary ({e}); fine-tuning keeps the vocabularies of the run it starts from") from None


def model_dtype(config: TrainConfig) -> dict:
  """The compute dtype as a model hyperparameter, for the models that have one."""
  return {"dtype": config.dtype} if "dtype" in models.hyperparameter_names(config.model) else {}


def evaluate(task: DecodingTask, eval_fn, examples, vocabs, config: TrainConfig, mesh, spec) -> dict:
  """Teacher-forced loss/perplexity/accuracy over every reference that fits the longest bucket, and
  the dataset's metrics of the decoded outputs (`evaluation.decode_and_score`)."""
  source_vocab, target_vocab = vocabs
  pairs = pipeline.encode_pairs(examples, source_vocab, target_vocab, max(config.buckets))
  sums = None
  for _, batch in pipeline.eval_batches(pairs.sources, pairs.targets, config.eval_batch_size, config.buckets,
                                        pairs.source_unit):
    s = eval_fn(task.params, parallel.shard_batch(batch, mesh))
    sums = s if sums is None else jax.tree.map(lambda a, b: a + b, sums, s)
  metrics = step_lib.metrics_from_sums(jax.device_get(sums))
  metrics.update(evaluation.decode_and_score(task, examples, source_vocab, target_vocab, spec.metrics,
                                             config.max_source_length, config.eval_batch_size, config.buckets))
  return metrics


def format_metrics(metrics: dict) -> str:
  """One line of the headline metrics present in `metrics`."""
  parts = [f"{k.upper()} {metrics[k]:.2%}" for k in ("wer", "per", "cer") if k in metrics]
  parts += [f"{name} {metrics[k]:.2f}" for k, name in (("bleu", "BLEU"), ("chrf", "chrF")) if k in metrics]
  parts += [f"loss {metrics['loss']:.3f}", f"ppl {metrics['perplexity']:.2f}", f"accuracy {metrics['accuracy']:.3f}"]
  return "  ".join(parts)


def _scalar(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def restore_newest_intact(config: TrainConfig, state, log) -> tuple:
  """(manager, state, meta) from the newest checkpoint that restores, or (manager, state, None)
  when there is none.  A checkpoint that fails to restore is moved aside (`<step>.damaged`) with
  one line to `log`, and the next older one is tried."""
  manager = workdir_lib.checkpoint_manager(config.workdir, config.keep_checkpoints)
  for step in sorted(manager.all_steps(), reverse=True):
    args = ocp.args.Composite(state=ocp.args.StandardRestore(state), meta=ocp.args.JsonRestore())
    try:
      restored = workdir_lib.restore_checkpoint(manager, step, args)
    except workdir_lib.DamagedCheckpointError as e:
      if jax.process_index() == 0:
        aside = workdir_lib.move_aside(config.workdir, step)
        log(f"{e}; moved aside to {aside}")
      parallel.sync_processes(f"move_aside_{step}")
      manager = workdir_lib.checkpoint_manager(config.workdir, config.keep_checkpoints)
      continue
    return manager, restored["state"], restored["meta"]
  return manager, state, None


def read_best_or_none(workdir: str, log) -> dict | None:
  """The record of the best checkpoint so far ({"step", "metric", "value"}); None when there is
  none, or when it is damaged (then it is moved aside with one line to `log`)."""
  try:
    return workdir_lib.read_best(workdir)
  except workdir_lib.DamagedCheckpointError as e:
    step = workdir_lib.best_checkpoint_manager(workdir).latest_step()
    if jax.process_index() == 0:
      aside = workdir_lib.move_aside(workdir, step, "checkpoints_best")
      log(f"best {e}; moved aside to {aside}")
    parallel.sync_processes("move_aside_best")
    return None


def train_and_evaluate(config: TrainConfig) -> dict:
  """Trains (or resumes) in `config.workdir`, evaluates on the test split, writes results.json.

  Raises `faults.TrainingStopped` after saving a checkpoint when SIGTERM or SIGINT arrives, and
  `faults.NonFiniteLoss` when the loss diverges (then no checkpoint or results.json is written
  after the last good step).  Only one process at a time trains in a workdir
  (`workdir.TrainingLock`).
  """
  validate(config)
  is_chief = jax.process_index() == 0
  with (workdir_lib.TrainingLock(config.workdir) if is_chief else contextlib.nullcontext()) as lock:
    if lock is not None and lock.took_over:
      held = lock.took_over
      print(f"took over the lock of process {held.get('pid')} on {held.get('host')} (started "
            f"{held.get('started')}), which is no longer running", flush=True)
    with faults.StopSignals() as signals:
      return _train_and_evaluate(config, signals)


def _train_and_evaluate(config: TrainConfig, signals: faults.StopSignals) -> dict:
  options = datasets.DatasetOptions(**config.dataset_options)
  spec = datasets.spec(config.dataset, options)
  # Process 0 prepares the dataset and the vocabularies in the shared data_dir; the others read them.
  splits = parallel.chief_first("prepare_dataset", lambda: datasets.load(config.dataset, config.data_dir, options))
  examples = {name: pipeline.read_examples(source, spec) for name, source in splits.items()}
  check_best_metric(config, spec)
  if config.init_from:
    _, vocabs, init_params, _ = fine_tuning.source_run(config.init_from)
    check_vocabulary_covers(examples, vocabs, config.init_from)
  else:
    init_params = None
    vocabs = parallel.chief_first("build_vocabularies", lambda: pipeline.build_vocabularies(
        examples["train"], spec, config.vocab_size, config.shared_vocab, cache_dir=config.data_dir,
        cache_key={"dataset": config.dataset, "options": config.dataset_options}))
  model_config, model = models.build_model(
      config.model, source_vocab_size=vocabs[0].size, target_vocab_size=vocabs[1].size,
      **config.model_hparams, **model_dtype(config))
  is_chief = jax.process_index() == 0
  log = lambda line: print(line, flush=True) if is_chief else None
  mesh = parallel.make_mesh()
  schedule = state_lib.learning_rate_schedule(
      config.schedule, getattr(model_config, "d_model", getattr(model_config, "hidden_size", 512)), config.warmup_steps,
      config.learning_rate, config.num_train_steps)
  tx = state_lib.optimizer(config.optimizer, schedule, b1=config.adam_b1, b2=config.adam_b2, eps=config.adam_eps,
                           weight_decay=config.weight_decay, grad_clip_norm=config.grad_clip_norm)
  init_key, dropout_base = jax.random.split(jax.random.key(config.seed, impl="rbg"))
  shape = (config.batch_size, config.buckets[0])
  source_shape = (config.batch_size, config.buckets[0] * getattr(vocabs[0], "unit", 1))  # audio: in samples
  state = state_lib.create_train_state(model, init_key, source_shape, shape, tx, config.ema_decay)
  if init_params is not None:
    fine_tuning.check_compatible(init_params, state.params, config.init_from)
    state = state_lib.create_train_state(model, init_key, source_shape, shape, tx, config.ema_decay,
                                         params=init_params)
  n_params = state_lib.parameter_count(state.params)
  if note := state_lib.moving_average_note(config.ema_decay, config.num_train_steps):
    log(note)
  if is_chief:  # one writer for the shared workdir; the other processes wait for it
    workdir_lib.prepare(config, vocabs, spec.content_digest)
  parallel.sync_processes("prepare_workdir")

  train_pairs = pipeline.encode_pairs(examples["train"], *vocabs, config.max_source_length,
                                      config.max_target_length)
  batches = pipeline.TrainBatches(train_pairs, config.batch_size, config.buckets, config.seed,
                                  config.max_tokens, multiple_of=jax.device_count() * config.grad_accum_steps)
  validation = examples["validation"]
  if config.max_eval_examples:
    validation = validation[: config.max_eval_examples]


  manager, state, meta = restore_newest_intact(config, state, log)
  best_manager = workdir_lib.best_checkpoint_manager(config.workdir) if config.best_metric else None
  best = read_best_or_none(config.workdir, log) if config.best_metric else None
  writer = MetricsWriter(config.workdir, enabled=is_chief)
  if meta is None:
    meta = {"wall_s": 0.0}
    writer.truncate_after(0)
  else:
    dropout_base = jax.random.wrap_key_data(np.asarray(meta["dropout_key"], np.uint32), impl="rbg")
    writer.truncate_after(int(meta["step"]))
  if writer.dropped_lines:
    log(f"{writer.path}: dropped {writer.dropped_lines} unreadable line(s) (a write cut short, or an edit)")
  state = parallel.replicate(state, mesh)
  dropout_base = parallel.replicate(dropout_base, mesh)

  train_fn = parallel.data_parallel(step_lib.train_step, mesh, batch_argnums=(1,), donate_argnums=(0,),
                                    label_smoothing=config.label_smoothing,
                                    grad_accum_steps=config.grad_accum_steps)
  eval_fn = parallel.data_parallel(step_lib.eval_step, mesh, batch_argnums=(1,), apply_fn=model.apply,
                                   label_smoothing=config.label_smoothing)
  recorded = []  # (step, loss sum, grad norm) since the last finiteness check

  def check_finite():
    bad = faults.first_non_finite_step(recorded)
    recorded.clear()
    if bad is not None:
      manager.wait_until_finished()
      progress.close()
      raise faults.NonFiniteLoss(bad, manager.latest_step())

  def save(step):
    check_finite()
    meta_now = {"step": step, "data_position": batches.position(step), "wall_s": wall_s(),
                "dropout_key": np.asarray(jax.random.key_data(dropout_base)).tolist()}
    manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                               meta=ocp.args.JsonSave(meta_now)))

  start_step = int(jax.device_get(state.step))
  results_path = os.path.join(config.workdir, "results.json")
  if is_chief and start_step < config.num_train_steps and os.path.exists(results_path):
    os.remove(results_path)  # training goes on: the results of an earlier, shorter run no longer hold
  session_start = time.time()
  wall_s = lambda: meta["wall_s"] + time.time() - session_start
  log(f"{config.model}: {n_params:,} parameters; {config.dataset}: {len(train_pairs.sources):,} "
      f"training pairs ({train_pairs.dropped} longer than {config.max_source_length}/"
      f"{config.max_target_length} source/target tokens dropped), "
      f"{batches.steps_per_epoch} steps/epoch; devices: {jax.device_count()}; "
      f"{'resuming at step ' + str(start_step) if start_step else 'starting'}")

  progress = tqdm(total=config.num_train_steps, initial=start_step, disable=not is_chief,
                  dynamic_ncols=True, desc="train")
  sums, tick, tick_step = None, time.time(), start_step
  for step in range(start_step, config.num_train_steps):
    batch = parallel.shard_batch(batches[step], mesh)
    state, step_sums = train_fn(state, batch, dropout_base)
    sums = step_sums if sums is None else jax.tree.map(lambda a, b: a + b, sums, step_sums)
    done = step + 1
    recorded.append((done, step_sums["loss"], step_sums["grad_norm"]))
    progress.update(1)
    if done % config.log_every_steps == 0 or done == config.num_train_steps:
      check_finite()
      metrics = step_lib.metrics_from_sums(jax.device_get(sums))
      metrics["grad_norm"] = float(jax.device_get(step_sums["grad_norm"]))
      elapsed = time.time() - tick
      metrics["target_tokens_per_s"] = metrics["tokens"] / elapsed
      metrics["steps_per_s"] = (done - tick_step) / elapsed
      metrics["learning_rate"] = float(schedule(done))
      writer.write(done, {f"train/{k}": v for k, v in metrics.items()})
      progress.set_postfix(loss=f"{metrics['loss']:.3f}", tok_s=f"{metrics['target_tokens_per_s']:.0f}")
      sums, tick, tick_step = None, time.time(), done
    if done % config.eval_every_steps == 0 or done == config.num_train_steps:
      params = state_lib.evaluation_params(state)
      task = translator.decoding_task(model, model_config, params, vocabs[1], config.decoding)
      valid = evaluate(task, eval_fn, validation, vocabs, config, mesh, spec)
      writer.write(done, {f"validation/{k}": v for k, v in valid.items() if _scalar(v)})
      if is_chief:
        progress.write(f"step {done}: validation {format_metrics(valid)}")
      if config.best_metric and is_better(config.best_metric, valid[config.best_metric], best):
        best = {"step": done, "metric": config.best_metric, "value": float(valid[config.best_metric])}
        best_manager.save(done, args=ocp.args.Composite(state=ocp.args.StandardSave({"params": params}),
                                                        meta=ocp.args.JsonSave(best)))
      tick = time.time()  # evaluation time is not training throughput
    saved = done % config.checkpoint_every_steps == 0 or done == config.num_train_steps
    if saved:
      save(done)
    if done < config.num_train_steps and (jax.process_count() == 1 or done % config.log_every_steps == 0):
      stop = signals.stop_requested()
      if stop:
        if not saved:
          save(done)
        manager.wait_until_finished()
        progress.close()
        writer.close()
        raise faults.TrainingStopped(done, stop)
  progress.close()
  manager.wait_until_finished()
  if best_manager is not None:
    best_manager.wait_until_finished()

  train_loss = writer.last_value("train/loss")
  test_examples = examples["test"][: config.max_test_examples or None]
  task = translator.decoding_task(model, model_config, state_lib.evaluation_params(state), vocabs[1],
                                  config.decoding)
  test = evaluate(task, eval_fn, test_examples, vocabs, config, mesh, spec)
  results = {"step": config.num_train_steps, "train_loss": train_loss, "wall_s": round(wall_s(), 1),
             "params": n_params, "model": config.model, "dataset": config.dataset, "split": "test",
             "decoding": json.loads(json.dumps(dataclasses.asdict(config.decoding))), "devices": jax.device_count(), "eval": test,
             "hardware": hardware(), "finished": time.strftime("%Y-%m-%d", time.gmtime())}
  if config.ema_decay:
    results["evaluated_params"] = f"moving average (decay {config.ema_decay})"
  if best is not None:
    results["best_checkpoint"] = best
  if is_chief:
    writer.write(config.num_train_steps, {f"test/{k}": v for k, v in test.items() if _scalar(v)})
    workdir_lib.write_json_atomic(results_path, results)
  writer.close()
  return results
