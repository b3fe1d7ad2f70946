"""Test set-up: two forced host CPU devices (before JAX is imported) and a shared prepared dataset."""

import os
import sys
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One persistent compilation cache for the test processes and every entry point they start: the
# many short training and decoding processes compile the same programs (identical executables, so
# identical results), and a later test run starts warm.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"seq2seq_jax_tests_{os.getuid()}_jit_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pytest  # pylint: disable=g-import-not-at-top

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_transformer_flagfile(num_train_steps: int, checkpoint_every_steps: int, log_every_steps: int) -> str:
  """A flagfile's text for a Transformer small enough to train in seconds (greedy evaluation of 8
  examples at the end)."""
  return f"""\
--num_train_steps={num_train_steps}
--eval_every_steps={num_train_steps}
--checkpoint_every_steps={checkpoint_every_steps}
--log_every_steps={log_every_steps}
--warmup_steps=2
--batch_size=16
--d_model=16
--d_ff=32
--num_heads=2
--num_layers=1
--max_eval_examples=8
--max_test_examples=8
--eval_batch_size=16
--beam_size=0
"""


def pytest_configure(config):
  config.addinivalue_line("markers", "slow: longer checks; run with `pytest -m slow`")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  """A TFDS data_dir with cmudict_g2p prepared once per test session."""
  from seq2seq_jax.data import datasets  # pylint: disable=g-import-not-at-top
  path = str(tmp_path_factory.mktemp("tfds"))
  datasets.load("cmudict_g2p", path)
  return path
