"""Test set-up: two forced host CPU devices (before JAX is imported) and a shared prepared dataset."""

import os
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pytest  # pylint: disable=g-import-not-at-top

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_configure(config):
  config.addinivalue_line("markers", "slow: longer checks; run with `pytest -m slow`")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  """A TFDS data_dir with cmudict_g2p prepared once per test session."""
  from seq2seq_jax.data import datasets  # pylint: disable=g-import-not-at-top
  path = str(tmp_path_factory.mktemp("tfds"))
  datasets.load("cmudict_g2p", path)
  return path
