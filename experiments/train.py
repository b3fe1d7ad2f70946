r"""Train a sequence-to-sequence model, evaluate it on the test split, write results.json.

  python -m experiments.train                      # default: Transformer on CMUdict G2P, ~5 min
  python -m experiments.train --workdir=runs/g2p --flagfile=experiments/g2p_cmudict/transformer_1h.flags

Running the same command again continues from the workdir's latest checkpoint.
"""

import sys

from absl import app, flags, logging

from experiments import decoding_flags

FLAGS = flags.FLAGS

flags.DEFINE_string("workdir", "runs/default", "Directory for checkpoints, metrics and results.")
flags.DEFINE_string("model", "transformer", "Model name (see seq2seq_jax.models.MODELS).")
flags.DEFINE_string("dataset", "cmudict_g2p", "Dataset name (see seq2seq_jax.data.datasets.DATASETS).")
flags.DEFINE_string("data_dir", "~/tensorflow_datasets", "Where TFDS datasets are prepared.")
flags.DEFINE_string("train_lengths", None, "Synthetic tasks: training sequence lengths a:b (inclusive).")
flags.DEFINE_string("test_lengths", None, "Synthetic tasks: test sequence lengths c:d (inclusive).")
flags.DEFINE_integer("num_train_examples", None, "Synthetic tasks: training examples.")
flags.DEFINE_integer("num_test_examples", None, "Synthetic tasks: test examples.")
flags.DEFINE_string("source_lang", None, "tfds:* translation datasets: source language field.")
flags.DEFINE_string("target_lang", None, "tfds:* translation datasets: target language field.")
flags.DEFINE_integer("vocab_size", 0, "SentencePiece pieces per vocabulary for natural-language datasets "
                     "(0 = symbol vocabularies, for G2P and synthetic tasks).")
flags.DEFINE_bool("shared_vocab", False, "One SentencePiece vocabulary for source and target.")
flags.DEFINE_integer("num_train_steps", 1200, "Optimizer steps.")
flags.DEFINE_integer("eval_every_steps", 600, "Validation (loss; WER/PER with the decoding flags) every N steps.")
flags.DEFINE_integer("checkpoint_every_steps", 500, "Checkpoint every N steps (and at the end).")
flags.DEFINE_integer("keep_checkpoints", 2, "Keep the latest N checkpoints (older ones are deleted); "
                     "more lets `experiments.evaluate --step` evaluate earlier steps of the run.")
flags.DEFINE_integer("log_every_steps", 50, "Training metrics every N steps.")
flags.DEFINE_integer("batch_size", 256, "Global batch size (split over all devices).")
flags.DEFINE_integer("max_tokens", 0, "Token budget per global batch (rows x bucket length, as fairseq); "
                     "0 = fixed --batch_size rows.")
flags.DEFINE_integer("eval_batch_size", 512, "Evaluation/decoding batch size.")
flags.DEFINE_integer("max_eval_examples", 1000, "Validation examples for periodic WER (0 = all).")
flags.DEFINE_integer("max_test_examples", 0, "Test examples for the final evaluation (0 = all; "
                     "fewer only for smoke tests).")
flags.DEFINE_integer("seed", 0, "Seed for initialisation, data order and dropout.")
flags.DEFINE_enum("schedule", "inverse_sqrt", ["inverse_sqrt", "constant", "cosine"],
                  "Learning-rate schedule (inverse_sqrt: Vaswani et al. eq. 3).")
flags.DEFINE_float("learning_rate", 2.0, "Schedule scale (inverse_sqrt) or peak learning rate.")
flags.DEFINE_integer("warmup_steps", 500, "Linear warmup steps.")
flags.DEFINE_float("grad_clip_norm", 0.0, "Clip gradients to this global norm (0 = off).")
flags.DEFINE_float("label_smoothing", 0.1, "Label smoothing epsilon (Vaswani et al. §5.4).")
flags.DEFINE_integer("grad_accum_steps", 1, "Split each device's share of the batch into this many "
                     "microbatches and add their gradients: one optimizer update, as with one big batch.")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Activation/matmul dtype (bfloat16: "
                  "mixed precision; parameters, optimizer state and loss stay float32).")
# Multi-host data parallelism (jax.distributed); without these, started only under SLURM, Open MPI,
# a TPU pod or with JAX_COORDINATOR_ADDRESS set.
flags.DEFINE_string("coordinator_address", None, "host:port of process 0, e.g. 10.0.0.1:1234.")
flags.DEFINE_integer("num_processes", None, "Number of processes (hosts) in the run.")
flags.DEFINE_integer("process_id", None, "This process's index in [0, num_processes).")
flags.DEFINE_integer("max_source_length", 32, "Drop training pairs with longer sources (tokens); "
                     "longer inputs are rejected at decoding.")
flags.DEFINE_integer("max_target_length", 32, "Drop training pairs with longer targets (tokens incl. EOS).")
flags.DEFINE_list("length_buckets", ["8", "12", "16", "32"], "Padded lengths of batches (each compiles once); "
                  "the last must be >= the max lengths.")
# Model hyper-parameters (fields of the model's config dataclass).
flags.DEFINE_integer("d_model", 128, "Model width.")
flags.DEFINE_integer("num_heads", 4, "Attention heads.")
flags.DEFINE_integer("key_size", 0, "Per-head key/value size d_k = d_v (0 = d_model / num_heads).")
flags.DEFINE_integer("d_ff", 512, "Feed-forward hidden width.")
flags.DEFINE_integer("num_layers", 2, "Encoder and decoder layers (each).")
flags.DEFINE_float("dropout", 0.1, "Dropout rate; 0 turns every dropout off.")
flags.DEFINE_float("attention_dropout", None, "Transformer: dropout of the attention weights alone "
                   "(default: --dropout).")
flags.DEFINE_integer("relative_positions", 0, "Transformer: K > 0 adds a learned per-head bias of the "
                     "offset j - i clipped to [-K, K] to both self-attentions (T5); 0 = off.")
flags.DEFINE_integer("cross_relative_positions", 0, "Transformer: K > 0 adds a learned per-head bias of "
                     "source position j - target position i clipped to [-K, K] to encoder-decoder attention; 0 = off.")
flags.DEFINE_enum("positional", "sinusoidal", ["sinusoidal", "learned"], "Positional encoding.")
flags.DEFINE_bool("pre_ln", False, "Pre-LN residual blocks instead of the paper's post-LN.")
flags.DEFINE_bool("share_target_embedding", True, "Tie target embedding and output projection.")
flags.DEFINE_bool("share_embeddings", False, "Transformer: one table for source, target and output "
                  "projection (Vaswani et al. §3.4); needs a vocabulary shared by both sides.")
# RNN families (rnn_seq2seq, rnn_attention).
flags.DEFINE_enum("rnn_cell", "lstm", ["lstm", "gru"], "Recurrent cell.")
flags.DEFINE_integer("hidden_size", 256, "RNN hidden size.")
flags.DEFINE_integer("embedding_size", 256, "RNN token embedding size.")
flags.DEFINE_bool("bidirectional_encoder", False, "Bidirectional RNN encoder.")
flags.DEFINE_bool("reverse_source", False, "Read the source backwards (Sutskever et al. 2014).")
flags.DEFINE_enum("attention", "bahdanau", ["bahdanau", "luong_dot", "luong_general", "luong_concat"],
                  "rnn_attention scoring function.")


def config_from_flags():
  """TrainConfig from the flags (the evaluation's decoding options from experiments.decoding_flags)."""
  from seq2seq_jax.training.loop import TrainConfig  # pylint: disable=g-import-not-at-top
  model_hparams = {
      "d_model": FLAGS.d_model, "num_heads": FLAGS.num_heads, "key_size": FLAGS.key_size, "d_ff": FLAGS.d_ff,
      "num_encoder_layers": FLAGS.num_layers, "num_decoder_layers": FLAGS.num_layers,
      "dropout": FLAGS.dropout, "positional": FLAGS.positional, "pre_ln": FLAGS.pre_ln,
      "share_target_embedding": FLAGS.share_target_embedding,
      "rnn_cell": FLAGS.rnn_cell, "hidden_size": FLAGS.hidden_size, "num_layers": FLAGS.num_layers,
      "embedding_size": FLAGS.embedding_size, "bidirectional_encoder": FLAGS.bidirectional_encoder,
      "reverse_source": FLAGS.reverse_source, "attention": FLAGS.attention,
  }
  if FLAGS.attention_dropout is not None:  # absent otherwise, so older workdirs still match
    model_hparams["attention_dropout"] = FLAGS.attention_dropout
  if FLAGS.relative_positions:  # likewise
    model_hparams["relative_positions"] = FLAGS.relative_positions
  if FLAGS.cross_relative_positions:  # likewise
    model_hparams["cross_relative_positions"] = FLAGS.cross_relative_positions
  if FLAGS.share_embeddings:  # likewise
    model_hparams["share_embeddings"] = True
  from seq2seq_jax.data import datasets  # pylint: disable=g-import-not-at-top
  from seq2seq_jax.errors import UsageError  # pylint: disable=g-import-not-at-top
  options = {
      "train_lengths": datasets.parse_lengths(FLAGS.train_lengths) if FLAGS.train_lengths else None,
      "test_lengths": datasets.parse_lengths(FLAGS.test_lengths) if FLAGS.test_lengths else None,
      "num_train": FLAGS.num_train_examples, "num_test": FLAGS.num_test_examples,
      "source_lang": FLAGS.source_lang, "target_lang": FLAGS.target_lang}
  try:
    buckets = tuple(int(b) for b in FLAGS.length_buckets)
  except ValueError:
    raise UsageError(f"--length_buckets must be integers, got {','.join(FLAGS.length_buckets)}") from None
  return TrainConfig(
      workdir=FLAGS.workdir, model=FLAGS.model, dataset=FLAGS.dataset, data_dir=FLAGS.data_dir,
      dataset_options={k: v for k, v in options.items() if v is not None},
      vocab_size=FLAGS.vocab_size, shared_vocab=FLAGS.shared_vocab, max_tokens=FLAGS.max_tokens,
      buckets=buckets, max_source_length=FLAGS.max_source_length, max_target_length=FLAGS.max_target_length,
      model_hparams=model_hparams, batch_size=FLAGS.batch_size, num_train_steps=FLAGS.num_train_steps,
      eval_every_steps=FLAGS.eval_every_steps, checkpoint_every_steps=FLAGS.checkpoint_every_steps,
      keep_checkpoints=FLAGS.keep_checkpoints,
      log_every_steps=FLAGS.log_every_steps, seed=FLAGS.seed, schedule=FLAGS.schedule,
      learning_rate=FLAGS.learning_rate, warmup_steps=FLAGS.warmup_steps,
      grad_clip_norm=FLAGS.grad_clip_norm, label_smoothing=FLAGS.label_smoothing,
      grad_accum_steps=FLAGS.grad_accum_steps, dtype=FLAGS.dtype,
      eval_batch_size=FLAGS.eval_batch_size,
      max_eval_examples=FLAGS.max_eval_examples, max_test_examples=FLAGS.max_test_examples,
      decoding=decoding_flags.options_from_flags(_TextFreeVocabulary()))


class _TextFreeVocabulary:
  """Training evaluation takes no text-valued decoding options (they need the trained vocabulary)."""

  def encode(self, text):
    if text:
      from seq2seq_jax.errors import UsageError  # pylint: disable=g-import-not-at-top
      raise UsageError("--prefix/--prompt/--suppress_tokens are decode-time options: "
                       "use them with experiments.decode")
    return []


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint file at INFO
  from seq2seq_jax import models  # pylint: disable=g-import-not-at-top
  from seq2seq_jax.data import datasets  # pylint: disable=g-import-not-at-top
  from seq2seq_jax.errors import UsageError  # pylint: disable=g-import-not-at-top
  from seq2seq_jax.training.loop import describe, train_and_evaluate, validate  # pylint: disable=g-import-not-at-top
  from seq2seq_jax.training.parallel import initialize_distributed  # pylint: disable=g-import-not-at-top
  try:
    initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)  # before any device use
    config = config_from_flags()
    models.build_model(config.model, source_vocab_size=8, target_vocab_size=8, **config.model_hparams)
    datasets.spec(config.dataset, datasets.DatasetOptions(**config.dataset_options))
    validate(config)
    results = train_and_evaluate(config)
  except UsageError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  import jax  # pylint: disable=g-import-not-at-top
  if jax.process_index():
    return  # process 0 reports
  ev = results["eval"]
  o = config.decoding
  how = f"beam {o.beam_size}" if o.beam_size else ("greedy" if o.temperatures == (0.0,) else "sampling")
  print(f"test ({ev['examples']} examples, {how}): {describe(ev)}  "
        f"[step {results['step']}, {results['wall_s']:.0f} s] -> {FLAGS.workdir}/results.json")


if __name__ == "__main__":
  app.run(main)
