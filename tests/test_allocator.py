"""What experiments.train runs with when nothing is set (tcmalloc where installed, XLA's devices),
and that a user's own LD_PRELOAD and XLA_FLAGS are left alone."""

import json
import os
import socket
import subprocess
import sys

from conftest import REPO
from experiments import allocator

TCMALLOC = allocator.TCMALLOC_PATHS[0]


def installed(*paths):
  return lambda path: path in paths


def test_tcmalloc_is_preloaded_where_installed_and_ld_preload_unset():
  env = allocator.tcmalloc_environ({"PATH": "/bin"}, exists=installed(TCMALLOC))
  assert env == {"PATH": "/bin", "LD_PRELOAD": TCMALLOC, allocator.CHOSEN_BY_DEFAULT: TCMALLOC}
  assert allocator.describe(env).startswith(f"allocator: tcmalloc ({TCMALLOC};")
  assert allocator.tcmalloc_environ(env, exists=installed(TCMALLOC)) is None  # once only


def test_without_tcmalloc_glibc_and_how_to_install_it():
  assert allocator.tcmalloc_environ({}, exists=installed()) is None
  assert allocator.describe({}, exists=installed()).endswith(allocator.INSTALL_HINT)


def test_a_users_ld_preload_is_left_alone_even_when_empty():
  for mine in ("", "/opt/jemalloc.so", TCMALLOC):
    assert allocator.tcmalloc_environ({"LD_PRELOAD": mine}, exists=installed(TCMALLOC)) is None
  assert allocator.describe({"LD_PRELOAD": ""}) == "allocator: glibc malloc (LD_PRELOAD is set to nothing)"
  assert allocator.describe({"LD_PRELOAD": "/opt/jemalloc.so"}) == "allocator: LD_PRELOAD=/opt/jemalloc.so (yours)"
  assert allocator.describe({"LD_PRELOAD": TCMALLOC}) == f"allocator: LD_PRELOAD={TCMALLOC} (yours)"


def test_run_again_replaces_the_process_with_the_same_command():
  calls = []
  argv = [sys.executable, "-m", "experiments.train", "--workdir=w"]
  environ = {} if allocator.find_tcmalloc() else {"LD_PRELOAD": ""}  # glibc here: nothing to run
  allocator.run_again_with_tcmalloc(environ, argv, execve=lambda *a: calls.append(a))
  if allocator.find_tcmalloc():
    assert calls == [(sys.executable, argv, allocator.tcmalloc_environ({}))]
  else:
    assert not calls


def train_first_line(workdir, **environ):
  """The first stderr line of experiments.train, stopped where training begins: the workdir's lock
  is held by this (live) process."""
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "train.lock"), "w") as f:
    json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started": "2026-01-01T00:00:00+00:00"}, f)
  env = {k: v for k, v in os.environ.items()
         if k not in ("XLA_FLAGS", "LD_PRELOAD", allocator.CHOSEN_BY_DEFAULT)}
  proc = subprocess.run([sys.executable, "-m", "experiments.train", f"--workdir={workdir}"], cwd=REPO,
                        capture_output=True, text=True, env={**env, **environ}, timeout=300)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert f"is in use by process {os.getpid()}" in proc.stderr.strip().splitlines()[-1], proc.stderr[-2000:]
  return proc.stderr.splitlines()[0]


def test_train_defaults_are_in_effect_and_a_users_settings_are_kept(tmp_path):
  line = train_first_line(str(tmp_path / "w"))
  assert line.startswith("training on 1 cpu device (XLA's default;"), line
  path = allocator.find_tcmalloc()
  assert line.endswith(f"allocator: tcmalloc ({path}; set LD_PRELOAD, even to nothing, to choose yourself)"
                       if path else allocator.INSTALL_HINT), line

  line = train_first_line(str(tmp_path / "w"), XLA_FLAGS="--xla_force_host_platform_device_count=2", LD_PRELOAD="")
  assert line == "training on 2 cpu devices; allocator: glibc malloc (LD_PRELOAD is set to nothing)"
