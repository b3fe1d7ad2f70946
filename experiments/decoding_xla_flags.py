"""The XLA option the decoding entry points (decode, evaluate, bench decode) run with."""

import os


DECODING_XLA_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"


def use_decoding_xla_flags(environ=os.environ):
  """Adds `DECODING_XLA_FLAG` to XLA_FLAGS unless the option is already set there.

  On CPU, XLA's concurrency-optimised scheduler (on by default) orders the many small ops of a
  decoding step for overlap; without it beam 4 on the `small` benchmark (two host devices) ran
  faster in each of 10 interleaved pairs (median 13%, 5-16%; greedy: no difference; training: no
  gain, so experiments.train keeps XLA's default).  XLA reads the option from XLA_FLAGS only (a
  per-compilation `compiler_options` entry is accepted but not used), so a decoding entry point
  calls this before its first JAX computation.  It changes the order of the compiled ops only:
  beam-search outputs were bit-identical with and without it.
  """
  current = environ.get("XLA_FLAGS", "")
  if "xla_cpu_enable_concurrency_optimized_scheduler" not in current:
    environ["XLA_FLAGS"] = f"{current} {DECODING_XLA_FLAG}".strip()
