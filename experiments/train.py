r"""Train a sequence-to-sequence model, evaluate it on the test split, write results.json.

  python -m experiments.train                      # default: Transformer on CMUdict G2P, ~5 min
  python -m experiments.train --workdir=runs/g2p --flagfile=experiments/g2p_cmudict/transformer_1h.flags

Running the same command again continues from the workdir's latest checkpoint (one that fails to
restore is moved aside as `<step>.damaged` and the next older one is used).

Exit status: 0 done (results.json written); 2 a bad flag or input, or the workdir is in use by
another training process (one line, nothing written); 3 the loss became non-finite (the
checkpoints kept are the good ones, no results.json); 75 stopped by SIGTERM or SIGINT after saving
a checkpoint (run the same command again to continue).

Every default is `seq2seq_jax.config.TrainConfig`'s (and the chosen model's config dataclass for
the model flags): a flag left unset leaves the dataclass default in place.
"""

import dataclasses
import os
import sys
import types
import typing

from experiments import allocator

if __name__ == "__main__":  # before JAX is imported: the allocator is chosen when the process starts
  allocator.run_again_with_tcmalloc()

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax
from absl import flags, logging

from experiments import decoding_flags, entry_point
from seq2seq_jax import models, workdir
from seq2seq_jax.config import TrainConfig
from seq2seq_jax.data import datasets
from seq2seq_jax.errors import UsageError
from seq2seq_jax.training import faults, loop, parallel

FLAGS = flags.FLAGS
DEFAULT = TrainConfig()
DIVERGED_EXIT_CODE = 3
STOPPED_EXIT_CODE = 75  # EX_TEMPFAIL: try again later

flags.DEFINE_string("workdir", DEFAULT.workdir, "Directory for checkpoints, metrics and results.")
flags.DEFINE_string("model", DEFAULT.model, f"Model: {', '.join(models.model_names())}.")
flags.DEFINE_string("dataset", DEFAULT.dataset, "Dataset name (see seq2seq_jax.data.datasets.DATASETS), "
                    "tfds:<name>/<config>, or files:PREFIX for your own PREFIX.{train,validation,test}.tsv "
                    "(or .src/.tgt) files.")
flags.DEFINE_string("data_dir", DEFAULT.data_dir, "Where TFDS datasets are prepared.")
flags.DEFINE_integer("vocab_size", DEFAULT.vocab_size, "SentencePiece pieces per vocabulary for "
                     "natural-language datasets (0 = the dataset's default; symbol datasets take none).")
flags.DEFINE_bool("shared_vocab", DEFAULT.shared_vocab, "One SentencePiece vocabulary for source and target.")
flags.DEFINE_integer("num_train_steps", DEFAULT.num_train_steps, "Optimizer steps.")
flags.DEFINE_integer("eval_every_steps", DEFAULT.eval_every_steps, "Validation (loss; WER/PER or BLEU "
                     "with the decoding flags) every N steps and at the last step.")
flags.DEFINE_integer("checkpoint_every_steps", DEFAULT.checkpoint_every_steps, "Checkpoint every N steps "
                     "(and at the end).")
flags.DEFINE_integer("keep_checkpoints", DEFAULT.keep_checkpoints, "Keep the latest N checkpoints; more "
                     "lets `experiments.evaluate --checkpoint=STEP` evaluate earlier steps of the run.")
flags.DEFINE_integer("log_every_steps", DEFAULT.log_every_steps, "Training metrics every N steps.")
flags.DEFINE_integer("batch_size", DEFAULT.batch_size, "Global batch size (split over all devices).")
flags.DEFINE_integer("max_tokens", DEFAULT.max_tokens, "Token budget per global batch (rows x bucket "
                     "length, as fairseq); 0 = fixed --batch_size rows.")
flags.DEFINE_integer("eval_batch_size", DEFAULT.eval_batch_size, "Evaluation/decoding batch size.")
flags.DEFINE_integer("max_eval_examples", DEFAULT.max_eval_examples, "Validation examples for the "
                     "periodic evaluation (0 = all).")
flags.DEFINE_integer("max_test_examples", DEFAULT.max_test_examples, "Test examples for the final "
                     "evaluation (0 = all; fewer only for smoke tests).")
flags.DEFINE_integer("seed", DEFAULT.seed, "Seed for initialisation, data order and dropout.")
flags.DEFINE_enum("schedule", DEFAULT.schedule, ["inverse_sqrt", "constant", "cosine"],
                  "Learning-rate schedule (inverse_sqrt: Vaswani et al. eq. 3).")
flags.DEFINE_float("learning_rate", DEFAULT.learning_rate, "Schedule scale (inverse_sqrt) or peak rate.")
flags.DEFINE_integer("warmup_steps", DEFAULT.warmup_steps, "Linear warmup steps.")
flags.DEFINE_float("grad_clip_norm", DEFAULT.grad_clip_norm, "Clip gradients to this global norm (0 = off).")
flags.DEFINE_enum("optimizer", DEFAULT.optimizer, ["adam", "adamw", "adafactor"], "adam (Vaswani et al. "
                  "§5.3), adamw (decoupled weight decay) or adafactor (Shazeer & Stern 2018).")
flags.DEFINE_float("adam_b1", DEFAULT.adam_b1, "Adam/AdamW beta1.")
flags.DEFINE_float("adam_b2", DEFAULT.adam_b2, "Adam/AdamW beta2.")
flags.DEFINE_float("adam_eps", DEFAULT.adam_eps, "Adam/AdamW epsilon.")
flags.DEFINE_float("weight_decay", DEFAULT.weight_decay, "Decoupled weight decay (adamw, adafactor).")
flags.DEFINE_float("ema_decay", DEFAULT.ema_decay, "Keep an exponential moving average of the parameters "
                   "with this decay (e.g. 0.999; 0 = off); validation, the test and the checkpoints' "
                   "users (evaluate, decode, embed) then use it.")
flags.DEFINE_enum("best_metric", DEFAULT.best_metric or None, ["wer", "per", "cer", "bleu", "chrf", "loss"],
                  "Also keep the checkpoint with the best validation figure of this metric "
                  "(`--checkpoint=best` in evaluate, decode, embed).")
flags.DEFINE_string("init_from", DEFAULT.init_from or None, "WORKDIR[:STEP|:best]: start from that run's "
                    "parameters and vocabularies (model flags default to that run's), with a fresh "
                    "optimizer and schedule.")
flags.DEFINE_float("label_smoothing", DEFAULT.label_smoothing, "Label smoothing epsilon (Vaswani et al. §5.4).")
flags.DEFINE_integer("grad_accum_steps", DEFAULT.grad_accum_steps, "Split each device's share of the "
                     "batch into this many microbatches: one optimizer update, as with one big batch.")
flags.DEFINE_enum("dtype", DEFAULT.dtype, ["float32", "bfloat16"], "Activation/matmul dtype (bfloat16: "
                  "mixed precision; parameters, optimizer state and loss stay float32).")
flags.DEFINE_integer("max_source_length", DEFAULT.max_source_length, "Drop training pairs with longer "
                     "sources (tokens); longer inputs are rejected at decoding.")
flags.DEFINE_integer("max_target_length", DEFAULT.max_target_length, "Drop training pairs with longer "
                     "targets (tokens incl. EOS).")
flags.DEFINE_list("length_buckets", [str(b) for b in DEFAULT.buckets], "Padded lengths of batches (each "
                  "compiles once); the last must be >= the max lengths.")

# Multi-host data parallelism (jax.distributed); without these, started only under SLURM, Open MPI,
# a TPU pod or with JAX_COORDINATOR_ADDRESS set.
flags.DEFINE_string("coordinator_address", None, "host:port of process 0, e.g. 10.0.0.1:1234.")
flags.DEFINE_integer("num_processes", None, "Number of processes (hosts) in the run.")
flags.DEFINE_integer("process_id", None, "This process's index in [0, num_processes).")

# Dataset options (fields of datasets.DatasetOptions); unset = the dataset's default.
DATASET_FLAGS = {  # flag -> (DatasetOptions field, parser)
    "train_lengths": ("train_lengths", datasets.parse_lengths),
    "test_lengths": ("test_lengths", datasets.parse_lengths),
    "num_train_examples": ("num_train", int),
    "num_test_examples": ("num_test", int),
    "source_lang": ("source_lang", str),
    "target_lang": ("target_lang", str),
    "source_tokenizer": ("source_tokenizer", str),
    "target_tokenizer": ("target_tokenizer", str),
    "both_directions": ("both_directions", bool),
    "max_examples": ("max_examples", int),
    "snr_db": ("snr_db", float),
    "data_seed": ("data_seed", int),
}
flags.DEFINE_integer("max_examples", None, "speech_cmudict: utterances in all splits together (default 24000).")
flags.DEFINE_float("snr_db", None, "speech_cmudict: add white noise at this signal-to-noise ratio in dB "
                   "(unset: clean audio).")
flags.DEFINE_integer("data_seed", None, "speech_cmudict: the seed of the words, voices, speeds, pitches "
                     "and noise drawn (default 0).")
flags.DEFINE_string("train_lengths", None, "Synthetic tasks: training sequence lengths a:b (inclusive).")
flags.DEFINE_string("test_lengths", None, "Synthetic tasks: test sequence lengths c:d (inclusive).")
flags.DEFINE_integer("num_train_examples", None, "Synthetic tasks: training examples.")
flags.DEFINE_integer("num_test_examples", None, "Synthetic tasks: test (and validation) examples.")
flags.DEFINE_string("source_lang", None, "tfds:* translation datasets: source language field; files:* "
                    "datasets: the source's language name (for --both_directions; default source).")
flags.DEFINE_string("target_lang", None, "tfds:* translation datasets: target language field; files:* "
                    "datasets: the target's language name (default target).")
flags.DEFINE_bool("both_directions", None, "Bible, tfds:* and files:* datasets: train one model on "
                  "source -> target and target -> source, with one shared vocabulary and the target "
                  "language given to the decoder as a token <2xx> after BOS (LASER); decode with "
                  "--target_language.")
flags.DEFINE_enum("source_tokenizer", None, list(datasets.parallel_files.TOKENIZERS), "files:* datasets: "
                  "source vocabulary (unset: chars without spaces, symbols up to 500 distinct tokens, "
                  "else sentencepiece).")
flags.DEFINE_enum("target_tokenizer", None, list(datasets.parallel_files.TOKENIZERS), "files:* datasets: "
                  "target vocabulary (unset: chosen from the training split as for the source).")

# Model hyperparameters: one flag per field of the registered models' config dataclasses, defined
# below from the dataclasses themselves.  Unset = the chosen model's default.
MODEL_FLAG_HELP = {
    "d_model": "Transformer width.",
    "num_heads": "Attention heads.",
    "key_size": "Per-head key/value size d_k = d_v (0 = d_model / num_heads).",
    "d_ff": "Feed-forward hidden width.",
    "num_encoder_layers": "Transformer encoder layers.",
    "num_decoder_layers": "Transformer decoder layers.",
    "num_layers": "RNN layers; for the transformer, encoder and decoder layers each.",
    "dropout": "Dropout rate; 0 turns every dropout off.",
    "attention_dropout": "Transformer: dropout of the attention weights alone (unset: --dropout).",
    "relative_positions": "Transformer: K > 0 adds a learned per-head bias of the offset j - i clipped "
                          "to [-K, K] to both self-attentions (T5); 0 = off.",
    "cross_relative_positions": "Transformer: K > 0 adds a learned per-head bias of source position j - "
                                "target position i clipped to [-K, K] to encoder-decoder attention.",
    "positional": "Transformer positional encoding: sinusoidal or learned.",
    "pre_ln": "Transformer: pre-LN residual blocks instead of the paper's post-LN.",
    "share_target_embedding": "Transformer: tie target embedding and output projection.",
    "share_embeddings": "Transformer: one table for source, target and output projection (Vaswani et "
                        "al. §3.4); needs --shared_vocab.",
    "activation": "Transformer feed-forward activation.",
    "rnn_cell": "RNN cell: lstm or gru.",
    "hidden_size": "RNN hidden size.",
    "embedding_size": "RNN token embedding size.",
    "bidirectional_encoder": "RNN: bidirectional encoder.",
    "reverse_source": "RNN: read the source backwards (Sutskever et al. 2014).",
    "attention": "rnn_attention scoring: bahdanau, luong_dot, luong_general or luong_concat.",
    "input_feeding": "rnn_attention with luong_*: feed the attentional vector to the next step (Luong et al. §3.3).",
    "frontend": "speech_transformer: conv (Whisper's convolutional stem) or res2net (the stem, then Res2Net blocks).",
    "n_mels": "speech_transformer: Mel bins of the log-Mel features.",
    "max_frames": "speech_transformer: the most encoded frames (20 ms each) the encoder positions cover.",
    "res2net_blocks": "speech_transformer with --frontend=res2net: Res2Net blocks after the stem.",
    "res2net_scale": "speech_transformer: Res2Net groups per block (Gao et al. 2019, s).",
    "res2net_dilation": "speech_transformer: dilation of each Res2Net group's 3-tap convolution.",
    "squeeze_excitation": "speech_transformer: ECAPA-TDNN squeeze-and-excitation after each Res2Net block.",
    "se_bottleneck": "speech_transformer: squeeze-and-excitation bottleneck width.",
}
# Config fields that are conventions of the code, not choices of an experiment.
NOT_MODEL_FLAGS = ("bos_id", "pad_id", "max_len")
# Flags that stand for several fields of a model that lacks the flag's own field.
MODEL_FLAG_ALIASES = {"num_layers": ("num_encoder_layers", "num_decoder_layers")}


def model_flag_fields() -> dict[str, dataclasses.Field]:
  """Flag name -> a dataclass field it sets, over every registered model (first model wins)."""
  fields = {}
  for name in models.model_names():
    for field in dataclasses.fields(models.MODELS[name][0]):
      if field.name not in models.FILLED_BY_RUN + NOT_MODEL_FLAGS:
        fields.setdefault(field.name, field)
  return fields


def _flag_type(annotation):
  """int / float / bool / str from a field annotation such as `float | None`."""
  if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
    annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
  return annotation


def _model_defaults(flag: str) -> str:
  """'transformer: 128; rnn_attention, rnn_seq2seq: 256' for the help text."""
  models_by_default = {}
  for name in models.model_names():
    defaults = {f.name: f.default for f in dataclasses.fields(models.MODELS[name][0])}
    for field in (flag, *MODEL_FLAG_ALIASES.get(flag, ())):
      if field in defaults:
        models_by_default.setdefault(repr(defaults[field]), []).append(name)
        break
  return "; ".join(f"{', '.join(names)}: {value}" for value, names in models_by_default.items())


def define_model_flags() -> None:
  definers = {int: flags.DEFINE_integer, float: flags.DEFINE_float, bool: flags.DEFINE_bool,
              str: flags.DEFINE_string}
  for flag, field in model_flag_fields().items():
    definers[_flag_type(field.type)](flag, None, f"{MODEL_FLAG_HELP[flag]} Unset: the model's default "
                                     f"({_model_defaults(flag)}).")


define_model_flags()
flags.adopt_module_key_flags(decoding_flags)


def model_hparams_from_flags(model: str) -> dict:
  """The model flags set on the command line (or in a flagfile), as hyperparameters of `model`;
  UsageError for a flag that the model does not have."""
  known = models.hyperparameter_names(model)
  hparams = {}
  for flag in model_flag_fields():
    if not FLAGS[flag].present:
      continue
    if flag in known:
      hparams[flag] = FLAGS[flag].value
    elif set(MODEL_FLAG_ALIASES.get(flag, ())) <= known and flag in MODEL_FLAG_ALIASES:
      for field in MODEL_FLAG_ALIASES[flag]:
        if not FLAGS[field].present:  # --num_encoder_layers beats --num_layers
          hparams[field] = FLAGS[flag].value
    else:
      raise UsageError(f"--{flag} does not apply to --model={model}; its flags: "
                       f"{', '.join(sorted(known & set(model_flag_fields())))}")
  return hparams


def dataset_options_from_flags() -> dict:
  return {field: parse(FLAGS[flag].value) for flag, (field, parse) in DATASET_FLAGS.items()
          if FLAGS[flag].value is not None}


def model_from_flags() -> tuple[str, dict]:
  """(model, hyperparameters) from the flags; with --init_from and no --model, the run's model and
  hyperparameters that --init_from names, under the model flags set here."""
  if not FLAGS.init_from or FLAGS["model"].present:
    return FLAGS.model, model_hparams_from_flags(FLAGS.model)
  source, _, _ = workdir.load(workdir.parse_workdir_reference(FLAGS.init_from)[0])
  return source["model"], {**source["model_hparams"], **model_hparams_from_flags(source["model"])}


def config_from_flags() -> TrainConfig:
  """TrainConfig from the flags (the evaluation's decoding options from experiments.decoding_flags)."""
  try:
    buckets = tuple(int(b) for b in FLAGS.length_buckets)
  except ValueError:
    raise UsageError(f"--length_buckets must be integers, got {','.join(FLAGS.length_buckets)}") from None
  model, model_hparams = model_from_flags()
  return TrainConfig(
      workdir=FLAGS.workdir, model=model, dataset=FLAGS.dataset, data_dir=FLAGS.data_dir,
      dataset_options=dataset_options_from_flags(), vocab_size=FLAGS.vocab_size,
      shared_vocab=FLAGS.shared_vocab, model_hparams=model_hparams,
      batch_size=FLAGS.batch_size, max_tokens=FLAGS.max_tokens, num_train_steps=FLAGS.num_train_steps,
      eval_every_steps=FLAGS.eval_every_steps, checkpoint_every_steps=FLAGS.checkpoint_every_steps,
      keep_checkpoints=FLAGS.keep_checkpoints, log_every_steps=FLAGS.log_every_steps, seed=FLAGS.seed,
      schedule=FLAGS.schedule, learning_rate=FLAGS.learning_rate, warmup_steps=FLAGS.warmup_steps,
      grad_clip_norm=FLAGS.grad_clip_norm, optimizer=FLAGS.optimizer, adam_b1=FLAGS.adam_b1,
      adam_b2=FLAGS.adam_b2, adam_eps=FLAGS.adam_eps, weight_decay=FLAGS.weight_decay,
      ema_decay=FLAGS.ema_decay, best_metric=FLAGS.best_metric or "", init_from=FLAGS.init_from or "",
      label_smoothing=FLAGS.label_smoothing,
      grad_accum_steps=FLAGS.grad_accum_steps, dtype=FLAGS.dtype,
      max_source_length=FLAGS.max_source_length, max_target_length=FLAGS.max_target_length,
      buckets=buckets, eval_batch_size=FLAGS.eval_batch_size, max_eval_examples=FLAGS.max_eval_examples,
      max_test_examples=FLAGS.max_test_examples,
      decoding=decoding_flags.options_from_flags(decoding_flags.TEXT_FREE_VOCABULARY))


def process_description(environ) -> str:
  """One line on stderr: the devices and the allocator this training process runs with."""
  n, backend = jax.device_count(), jax.default_backend()
  devices = f"{n} {backend} device{'s' if n > 1 else ''}"
  if backend == "cpu" and "xla_force_host_platform_device_count" not in environ.get("XLA_FLAGS", ""):
    devices += " (XLA's default; XLA_FLAGS=--xla_force_host_platform_device_count=N for N host devices)"
  return f"training on {devices}; {allocator.describe(environ)}"


def main():
  logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint file at INFO
  parallel.initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  config = config_from_flags()
  models.build_model(config.model, source_vocab_size=8, target_vocab_size=8, **config.model_hparams)
  datasets.spec(config.dataset, datasets.DatasetOptions(**config.dataset_options))
  loop.validate(config)
  if jax.process_index() == 0:  # after the checks of the flags and inputs, whose errors are one line
    print(process_description(os.environ), file=sys.stderr)
  try:
    results = loop.train_and_evaluate(config)
  except faults.NonFiniteLoss as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(DIVERGED_EXIT_CODE)
  except faults.TrainingStopped as e:
    print(str(e), file=sys.stderr)
    sys.exit(STOPPED_EXIT_CODE)
  if jax.process_index():
    return  # process 0 reports
  ev, o = results["eval"], config.decoding
  how = f"beam {o.beam_size}" if o.beam_size else ("greedy" if o.temperatures == (0.0,) else "sampling")
  print(f"test ({ev['examples']} examples, {how}): {loop.format_metrics(ev)}  "
        f"[step {results['step']}, {results['wall_s']:.0f} s] -> {FLAGS.workdir}/results.json")


if __name__ == "__main__":
  entry_point.run(main)
