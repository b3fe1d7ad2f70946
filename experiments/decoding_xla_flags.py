"""The XLA options the decoding entry points (decode, evaluate, bench decode) run with."""

import os

SCHEDULER_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"


def decoding_xla_flags(current: str, cores: int) -> str:
  """XLA_FLAGS for a decoding process from the user's `current` XLA_FLAGS and its `cores`.

  - The CPU's cores become host devices, one thread each (`--xla_force_host_platform_device_count=
    cores --xla_cpu_multi_thread_eigen=false`), unless `current` sets the device count: decoding
    then splits each batch over them (`DecodingTask` with a mesh), with the same outputs as on one
    device (scores may differ by about 1e-6: one thread sums in another order than several).  A
    decoding step is many small ops, which one device runs poorly on several threads.  Only the
    CPU platform is affected: on a GPU or TPU machine the accelerators remain JAX's devices.
  - XLA:CPU's concurrency-optimised scheduler (on by default) is turned off, unless `current`
    sets it: it orders the many small ops of a decoding step for overlap, which does not pay for
    decoding.  It changes the order of the compiled ops only: beam-search outputs are identical.
  The measured effect of both is in experiments/benchmarks/README.md.
  XLA reads both from XLA_FLAGS only (a per-compilation `compiler_options` entry for the scheduler
  is accepted but not used).
  """
  flags = current.split()
  if "xla_force_host_platform_device_count" not in current:
    flags.append(f"--xla_force_host_platform_device_count={cores}")
    if "xla_cpu_multi_thread_eigen" not in current:
      flags.append("--xla_cpu_multi_thread_eigen=false")
  if "xla_cpu_enable_concurrency_optimized_scheduler" not in current:
    flags.append(SCHEDULER_FLAG)
  return " ".join(flags)


def use_decoding_xla_flags(environ=os.environ):
  """Sets XLA_FLAGS in `environ` to `decoding_xla_flags(...)` for the cores this process may run
  on.  Call before the first JAX computation (XLA reads the flags once)."""
  environ["XLA_FLAGS"] = decoding_xla_flags(environ.get("XLA_FLAGS", ""), len(os.sched_getaffinity(0)))
