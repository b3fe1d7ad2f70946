"""The host memory allocator that the training entry points (train, bench train) run with.

glibc's malloc hands large freed blocks back to the system, so every training step faults in fresh
pages for its activations; tcmalloc keeps and reuses them, and training runs faster on a CPU
(experiments/benchmarks/README.md).  The dynamic loader reads LD_PRELOAD once, when a process
starts, so an entry point that wants tcmalloc runs itself again with it, first thing, before JAX is
imported:

  if __name__ == "__main__":
    allocator.run_again_with_tcmalloc()   # replaces the process (same pid) at most once

- LD_PRELOAD unset and tcmalloc installed (Debian: libtcmalloc-minimal4): the process runs again
  with LD_PRELOAD=<tcmalloc> (and CHOSEN_BY_DEFAULT=<tcmalloc>, which marks that it was chosen here).
- LD_PRELOAD set, even to nothing, by the user: left alone (`LD_PRELOAD= python -m ...` runs with
  glibc's malloc).
- tcmalloc not installed: glibc's malloc; `describe` says how to get tcmalloc.
Decoding does not change with the allocator (its loop allocates nothing per step), so the decoding
entry points leave it alone; their XLA options are in experiments/decoding_xla_flags.py.
"""

import os
import sys
from collections.abc import Callable, Mapping

TCMALLOC_PATHS = (  # where distributions install gperftools' tcmalloc
    "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",  # Debian, Ubuntu: libtcmalloc-minimal4
    "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib64/libtcmalloc_minimal.so.4",  # Fedora, RHEL: gperftools-libs
    "/usr/lib/libtcmalloc_minimal.so.4",
)
CHOSEN_BY_DEFAULT = "SEQ2SEQ_JAX_TCMALLOC"
INSTALL_HINT = "apt-get install libtcmalloc-minimal4"


def find_tcmalloc(exists: Callable[[str], bool] = os.path.exists) -> str | None:
  """The first of TCMALLOC_PATHS that `exists`, else None."""
  return next((path for path in TCMALLOC_PATHS if exists(path)), None)


def tcmalloc_environ(environ: Mapping[str, str], exists: Callable[[str], bool] = os.path.exists
                     ) -> dict[str, str] | None:
  """The environment to run again with, tcmalloc preloaded; None where the process should run as
  it is: the user set LD_PRELOAD (even to nothing), or tcmalloc is not installed."""
  if "LD_PRELOAD" in environ:
    return None
  path = find_tcmalloc(exists)
  return None if path is None else {**environ, "LD_PRELOAD": path, CHOSEN_BY_DEFAULT: path}


def describe(environ: Mapping[str, str], exists: Callable[[str], bool] = os.path.exists) -> str:
  """One line: the allocator a process started with `environ` runs with, and how to change it."""
  preload = environ.get("LD_PRELOAD")
  if preload is not None and preload == environ.get(CHOSEN_BY_DEFAULT):
    return f"allocator: tcmalloc ({preload}; set LD_PRELOAD, even to nothing, to choose yourself)"
  if preload:
    return f"allocator: LD_PRELOAD={preload} (yours)"
  if preload is not None:
    return "allocator: glibc malloc (LD_PRELOAD is set to nothing)"
  path = find_tcmalloc(exists)
  if path:
    return f"allocator: glibc malloc (tcmalloc at {path} is preloaded when this runs as an entry point)"
  return f"allocator: glibc malloc; training runs faster with tcmalloc, used once installed: {INSTALL_HINT}"


def run_again_with_tcmalloc(environ: Mapping[str, str] = os.environ, argv: list[str] | None = None,
                            execve: Callable = os.execve) -> None:
  """Replaces this process with the same command (`sys.orig_argv`) and tcmalloc preloaded, where
  `tcmalloc_environ` says so; else returns.  Call before anything else runs: the process starts
  over (same pid, so signals and waiting parents still reach it)."""
  new_environ = tcmalloc_environ(environ)
  if new_environ is None:
    return
  argv = list(sys.orig_argv if argv is None else argv)
  sys.stdout.flush()
  sys.stderr.flush()
  try:
    execve(sys.executable, argv, new_environ)
  except OSError as e:  # the process goes on as it is, with glibc's malloc
    print(f"allocator: could not run again with tcmalloc ({e}); glibc malloc", file=sys.stderr)
