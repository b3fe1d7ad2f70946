r"""Benchmarks on random weights and random tokens, one JSON line on stdout.

  python -m experiments.bench decode --config=small --beam_size=4 --batch_size=32 --decode_len=32
  python -m experiments.bench decode --config=small --beam_size=0 --batch_size=32 --decode_len=32

Dimensions match the PyTorch peer kit (shared/peers/README.md): `small` = vocab 8000, d_model 256,
4 heads, d_ff 1024, 3+3 layers; `base` = vocab 32000, d_model 512, 8 heads, d_ff 2048, 6+6 layers.
Decode: a random [batch, decode_len] source without pad/EOS; every output has exactly decode_len
tokens (EOS suppressed until then, as the peer's min_new_tokens), then EOS.  `compile_s` is the
first call minus the median of the timed calls.
"""

import json
import os
import platform
import statistics
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_enum("config", "small", ["small", "base"], "Peer model dimensions.")
flags.DEFINE_integer("beam_size", 4, "Beam width; 0 = greedy.")
flags.DEFINE_integer("batch_size", 32, "Sentences per batch.")
flags.DEFINE_integer("decode_len", 32, "Source length and exact number of generated tokens.")
flags.DEFINE_integer("repeats", 5, "Timed calls (median reported).")

CONFIGS = {
    "small": dict(vocab=8000, d_model=256, num_heads=4, d_ff=1024, layers=3),
    "base": dict(vocab=32000, d_model=512, num_heads=8, d_ff=2048, layers=6),
}


def bench_decode():
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from seq2seq_jax.decoding.task import DecodingOptions, decode_batch  # pylint: disable=g-import-not-at-top
  from seq2seq_jax.models import build_model  # pylint: disable=g-import-not-at-top
  c = CONFIGS[FLAGS.config]
  n = FLAGS.decode_len
  config, model = build_model("transformer", source_vocab_size=c["vocab"], target_vocab_size=c["vocab"],
                              d_model=c["d_model"], num_heads=c["num_heads"], d_ff=c["d_ff"],
                              num_encoder_layers=c["layers"], num_decoder_layers=c["layers"],
                              dropout=0.0, max_len=256)
  inputs = np.random.default_rng(0).integers(3, c["vocab"], (FLAGS.batch_size, n)).astype(np.int32)
  params = jax.jit(lambda: model.init(jax.random.key(0), inputs[:1], inputs[:1])["params"])()
  options = DecodingOptions(beam_size=FLAGS.beam_size or None, min_len=n, max_len_a=0.0,
                            max_len_b=n + 1, suppress_blank=False)
  key, rows = jax.random.key(0), np.arange(FLAGS.batch_size)
  call = lambda: jax.block_until_ready(decode_batch(model, params, inputs, key, rows, options=options,
                                                    bos_id=1, eos_id=2, limit=config.max_len))
  start = time.perf_counter()
  tokens, _, _, lengths = call()
  first = time.perf_counter() - start
  times = []
  for _ in range(FLAGS.repeats):
    start = time.perf_counter()
    call()
    times.append(time.perf_counter() - start)
  median = statistics.median(times)
  generated = int(np.asarray(lengths)[:, 0].min()) - 1  # tokens before the final EOS
  return {
      "bench": "decode", "config": FLAGS.config, "framework": "jax", "jax": jax.__version__,
      "backend": jax.default_backend(), "device": str(jax.devices()[0].device_kind),
      "beam": FLAGS.beam_size or 1, "batch": FLAGS.batch_size, "src_len": n, "new_tokens": n,
      "generated_len": generated, "sentences_per_s": FLAGS.batch_size / median,
      "generated_tokens_per_s": FLAGS.batch_size * generated / median,
      "decode": {"median_s": median, "min_s": min(times), "max_s": max(times), "times_s": times},
      "compile_s": first - median, "cpu_count": os.cpu_count(), "python": platform.python_version(),
  }


def main(argv):
  if len(argv) != 2 or argv[1] not in ("decode",):
    raise app.UsageError("usage: python -m experiments.bench decode [flags]")
  print(json.dumps(bench_decode()))


if __name__ == "__main__":
  app.run(main)
