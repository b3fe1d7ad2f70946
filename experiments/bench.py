r"""Benchmarks on random weights and random tokens, one JSON line on stdout.

  python -m experiments.bench decode --config=small --beam_size=4 --batch_size=32 --decode_len=32
  python -m experiments.bench decode --config=small --beam_size=0 --batch_size=32 --decode_len=32
  python -m experiments.bench train --config=small        # [--dtype=bfloat16] [--grad_accum_steps=k]
  python -m experiments.bench train --config=base

Dimensions match the PyTorch peer kit (shared/peers/README.md): `small` = vocab 8000, d_model 256,
4 heads, d_ff 1024, 3+3 layers; `base` = vocab 32000, d_model 512, 8 heads, d_ff 2048, 6+6 layers;
one embedding shared by source, target and output projection, as the peer's (`--share_embeddings`).
Train: the production step (`parallel.data_parallel(step.train_step)` over all devices, state
donated) on random [B, L] sources and targets in [2, V) (no padding: B*L target tokens a step),
small B 64, L 32, base B 16, L 64, dropout 0.1, label smoothing 0.1, Adam(0.9, 0.98, 1e-9); every
batch is placed on the devices before timing, as the peer builds its tensors up front.  3 warm-up
steps, then N timed steps (20 small, 5 base), each ended by waiting for its results (the peer reads
the loss every step); `pipelined` times the same number of steps dispatched back to back, as the
training loop runs them.  `flops_per_step` counts as the peer does (its `_train_flops`: 3 x
forward, dense weight matrices + tied output projection + full attention); `xla_flops_per_step`
is XLA's own cost analysis of the compiled step, for reference.  `compile_s` is lowering plus
compiling the step ahead of time.
The allocator is experiments.train's (`experiments/allocator.py`: tcmalloc where installed, unless
LD_PRELOAD is set, even to nothing); the devices are XLA's default (one on a CPU) unless XLA_FLAGS
sets them, as in experiments.train.
Decode: a random [batch, decode_len] source without pad/EOS; every output has exactly decode_len
tokens (EOS suppressed until then, as the peer's min_new_tokens), then EOS.  It runs with the XLA
options of `experiments.decode` (`experiments/decoding_xla_flags.py`): on CPU, unless XLA_FLAGS
sets the device count (e.g. `--xla_force_host_platform_device_count=1`), one host device per
core, over which the batch is decoded data-parallel, as `experiments.decode` does.
`compile_s` is the first call minus the median of the timed calls.
"""

import json
import os
import platform
import statistics
import sys
import time

from experiments import allocator

if __name__ == "__main__" and sys.argv[1:2] == ["train"]:  # as experiments.train, before JAX is imported
  allocator.run_again_with_tcmalloc()

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax
import numpy as np
from absl import app, flags

from experiments.decoding_xla_flags import use_decoding_xla_flags
from seq2seq_jax.decoding.task import DecodingOptions, decode_batch, decode_batch_data_parallel, replicate_on
from seq2seq_jax.models import build_model
from seq2seq_jax.training import parallel, state as state_lib, step as step_lib

FLAGS = flags.FLAGS
flags.DEFINE_enum("config", "small", ["small", "base"], "Peer model dimensions.")
flags.DEFINE_integer("beam_size", 4, "Beam width; 0 = greedy.")
flags.DEFINE_integer("batch_size", 32, "Sentences per batch.")
flags.DEFINE_integer("decode_len", 32, "Source length and exact number of generated tokens.")
flags.DEFINE_integer("repeats", 5, "Timed calls (median reported).")
flags.DEFINE_integer("steps", 0, "train: timed steps (0 = the peer's: 20 small, 5 base).")
flags.DEFINE_integer("warmup", 3, "train: untimed steps after compiling.")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Activation and matrix-product operand dtype "
                  "(products are summed in float32; parameters stay float32).")
flags.DEFINE_integer("grad_accum_steps", 1, "train: microbatches per step.")
flags.DEFINE_float("dropout", 0.1, "train: dropout rate (the peer's is 0.1).")
flags.DEFINE_bool("share_embeddings", True, "One embedding for source, target and output projection, "
                  "as the peer's model (Vaswani et al. 2017 §3.4); false: a separate source embedding.")
flags.DEFINE_string("profile_dir", None, "Write a jax.profiler trace here (train: the pipelined steps; decode: the timed calls).")

CONFIGS = {
    "small": dict(vocab=8000, d_model=256, num_heads=4, d_ff=1024, layers=3, batch=64, length=32, steps=20),
    "base": dict(vocab=32000, d_model=512, num_heads=8, d_ff=2048, layers=6, batch=16, length=64, steps=5),
}


def peer_train_flops(params, vocab: int, d_model: int, layers: int, batch: int, src_len: int,
                     tgt_len: int) -> int:
  """FLOPs of one training step counted as the PyTorch peer does (torch_peers._train_flops):
  3 x forward, forward = 2 B (P_enc S + P_dec T + V d T) + 4 B d (n_enc S^2 + n_dec (T^2 + T S)),
  P_enc / P_dec = weight-matrix (ndim >= 2) parameters of the encoder / decoder layers."""

  def matrix_params(prefix):
    return sum(x.size for name, sub in params.items() if name.startswith(prefix)
               for x in jax.tree.leaves(sub) if x.ndim >= 2)

  forward = 2 * batch * (matrix_params("encoder_") * src_len + matrix_params("decoder_") * tgt_len
                         + vocab * d_model * tgt_len)
  forward += 4 * batch * d_model * (layers * src_len**2 + layers * (tgt_len**2 + tgt_len * src_len))
  return 3 * forward


def _timings(times):
  return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
          "times_s": [round(t, 6) for t in times]}


def bench_train():
  c = CONFIGS[FLAGS.config]
  batch, length, vocab = c["batch"], c["length"], c["vocab"]
  steps = FLAGS.steps or c["steps"]
  _, model = build_model("transformer", source_vocab_size=vocab, target_vocab_size=vocab,
                         d_model=c["d_model"], num_heads=c["num_heads"], d_ff=c["d_ff"],
                         num_encoder_layers=c["layers"], num_decoder_layers=c["layers"],
                         dropout=FLAGS.dropout, max_len=max(128, length), dtype=FLAGS.dtype,
                         share_embeddings=FLAGS.share_embeddings)
  mesh = parallel.make_mesh()
  init_key, dropout_key = jax.random.split(jax.random.key(0, impl="rbg"))
  state = state_lib.create_train_state(model, init_key, (batch, length), (batch, length),
                                       state_lib.adam(1e-4))
  params = jax.device_get(state.params)
  state = parallel.replicate(state, mesh)
  dropout_key = parallel.replicate(dropout_key, mesh)
  rng = np.random.default_rng(1)
  total = FLAGS.warmup + 2 * steps + 1
  data = rng.integers(2, vocab, (total, 2, batch, length)).astype(np.int32)
  batches = [parallel.shard_batch({"inputs": d[0], "targets": d[1]}, mesh) for d in data]
  train_fn = parallel.data_parallel(step_lib.train_step, mesh, batch_argnums=(1,), donate_argnums=(0,),
                                    label_smoothing=0.1, grad_accum_steps=FLAGS.grad_accum_steps)

  start = time.perf_counter()
  compiled = train_fn.lower(state, batches[0], dropout_key).compile()
  compile_s = time.perf_counter() - start
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  start = time.perf_counter()
  state, sums = jax.block_until_ready(compiled(state, batches[0], dropout_key))
  first_step_s = time.perf_counter() - start
  for b in batches[1:FLAGS.warmup]:
    state, sums = compiled(state, b, dropout_key)
  jax.block_until_ready(sums)
  times = []
  for b in batches[FLAGS.warmup:FLAGS.warmup + steps]:
    start = time.perf_counter()
    state, sums = jax.block_until_ready(compiled(state, b, dropout_key))
    times.append(time.perf_counter() - start)
  final = step_lib.metrics_from_sums(jax.device_get(sums))
  if FLAGS.profile_dir:
    jax.profiler.start_trace(FLAGS.profile_dir)
  start = time.perf_counter()
  for b in batches[FLAGS.warmup + steps:FLAGS.warmup + 2 * steps]:
    state, sums = compiled(state, b, dropout_key)
  jax.block_until_ready((state, sums))
  pipelined_s = time.perf_counter() - start
  if FLAGS.profile_dir:
    jax.profiler.stop_trace()

  elapsed = sum(times)
  flops = peer_train_flops(params, vocab, c["d_model"], c["layers"], batch, length, length)
  n_params = state_lib.parameter_count(params)
  embedding = sum(params[k]["table"]["embedding"].size for k in ("source_embedding", "target_embedding")
                  if k in params)
  return {
      "bench": "train", "config": FLAGS.config, "framework": "jax", "jax": jax.__version__,
      "backend": jax.default_backend(), "device": str(jax.devices()[0].device_kind),
      "devices": jax.device_count(), "dtype": FLAGS.dtype, "grad_accum_steps": FLAGS.grad_accum_steps,
      "batch": batch, "src_len": length, "tgt_len": length, "vocab": vocab, "d_model": c["d_model"],
      "layers": [c["layers"], c["layers"]], "dropout": FLAGS.dropout,
      "share_embeddings": FLAGS.share_embeddings, "params": n_params,
      "embedding_params": embedding, "non_embedding_params": n_params - embedding,
      "warmup_steps": FLAGS.warmup, "timed_steps": steps, "compile_s": compile_s,
      "first_step_s": first_step_s, "steps_per_s": steps / elapsed,
      "target_tokens_per_s": steps * batch * length / elapsed, "step": _timings(times),
      "pipelined": {"steps_per_s": steps / pipelined_s,
                    "target_tokens_per_s": steps * batch * length / pipelined_s},
      "flops_per_step": flops, "flops_counting": "peer formula (torch_peers._train_flops)",
      "xla_flops_per_step": float(cost.get("flops", -1.0)) if cost else None,
      "gflops_per_s": flops * steps / elapsed / 1e9, "final_loss": final["loss"],
      "cpu_count": os.cpu_count(), "python": platform.python_version(), "xla_flags": os.environ.get("XLA_FLAGS", ""), "ld_preload": os.environ.get("LD_PRELOAD", ""),
      "allocator": allocator.describe(os.environ),
  }


def bench_decode():
  use_decoding_xla_flags()  # as experiments.decode; before the first JAX computation
  c = CONFIGS[FLAGS.config]
  n = FLAGS.decode_len
  config, model = build_model("transformer", source_vocab_size=c["vocab"], target_vocab_size=c["vocab"],
                              d_model=c["d_model"], num_heads=c["num_heads"], d_ff=c["d_ff"],
                              num_encoder_layers=c["layers"], num_decoder_layers=c["layers"],
                              dropout=0.0, max_len=256, share_embeddings=FLAGS.share_embeddings,
                              dtype=FLAGS.dtype)
  inputs = np.random.default_rng(0).integers(3, c["vocab"], (FLAGS.batch_size, n)).astype(np.int32)
  params = jax.jit(lambda: model.init(jax.random.key(0), inputs[:1], inputs[:1])["params"])()
  options = DecodingOptions(beam_size=FLAGS.beam_size or None, min_len=n, max_len_a=0.0,
                            max_len_b=n + 1, suppress_blank=False)
  key, rows = jax.random.key(0), np.arange(FLAGS.batch_size)
  static = dict(options=options, bos_id=1, eos_id=2, model_max_length=config.max_len)
  if jax.device_count() > 1:  # data-parallel over the devices, as experiments.decode does
    mesh = parallel.make_mesh()
    params = replicate_on(mesh, params)
    call = lambda: jax.block_until_ready(decode_batch_data_parallel(mesh, model, params, inputs, key, rows, **static))
  else:
    call = lambda: jax.block_until_ready(decode_batch(model, params, inputs, key, rows, **static))
  start = time.perf_counter()
  tokens, _, _, lengths = call()
  first = time.perf_counter() - start
  times = []
  if FLAGS.profile_dir:
    jax.profiler.start_trace(FLAGS.profile_dir)
  for _ in range(FLAGS.repeats):
    start = time.perf_counter()
    call()
    times.append(time.perf_counter() - start)
  if FLAGS.profile_dir:
    jax.profiler.stop_trace()
  median = statistics.median(times)
  generated = int(np.asarray(lengths)[:, 0].min()) - 1  # tokens before the final EOS
  return {
      "bench": "decode", "config": FLAGS.config, "framework": "jax", "jax": jax.__version__,
      "backend": jax.default_backend(), "device": str(jax.devices()[0].device_kind),
      "devices": jax.device_count(), "dtype": FLAGS.dtype,
      "beam": FLAGS.beam_size or 1, "batch": FLAGS.batch_size, "src_len": n, "new_tokens": n,
      "generated_len": generated, "sentences_per_s": FLAGS.batch_size / median,
      "generated_tokens_per_s": FLAGS.batch_size * generated / median,
      "decode": {"median_s": median, "min_s": min(times), "max_s": max(times), "times_s": times},
      "compile_s": first - median, "cpu_count": os.cpu_count(), "python": platform.python_version(), "xla_flags": os.environ.get("XLA_FLAGS", ""), "ld_preload": os.environ.get("LD_PRELOAD", ""),
  }


BENCHES = {"decode": bench_decode, "train": bench_train}


def main(argv):
  if len(argv) != 2 or argv[1] not in BENCHES:
    raise app.UsageError("usage: python -m experiments.bench decode|train [flags]")
  print(json.dumps(BENCHES[argv[1]]()))


if __name__ == "__main__":
  app.run(main)
