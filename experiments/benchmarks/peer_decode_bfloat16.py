"""The peer kit's `decode` with the HF Marian model cast to bfloat16 (`model.to(torch.bfloat16)`).

Run with the peer venv's Python, beside `experiments.bench decode --dtype=bfloat16`, so that a
bfloat16 ratio compares like with like; the kit itself measures float32 only:
  .peers/bin/python experiments/benchmarks/peer_decode_bfloat16.py ../shared/peers decode --config small --beam 4
Prints the kit's JSON line with "dtype": "bfloat16" added.
"""
import json
import sys

sys.path.insert(0, sys.argv.pop(1))
import torch  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
import torch_peers  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

_build = torch_peers._build_marian  # pylint: disable=protected-access


def _build_bfloat16(torch_module, cfg, seed):
  model, version = _build(torch_module, cfg, seed)
  return model.to(torch.bfloat16), version


def _emit(obj):
  print(json.dumps({**obj, "dtype": "bfloat16"}), flush=True)


torch_peers._build_marian = _build_bfloat16  # pylint: disable=protected-access
torch_peers.emit = _emit
torch_peers.main()
