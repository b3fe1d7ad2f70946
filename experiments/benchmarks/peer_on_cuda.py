"""The peer kit's commands on a CUDA GPU: torch_peers.py (train, decode) and ct2_peer.py (decode).

The kit runs on the CPU; this runs its own code with the GPU as torch's default device (the same
random inputs, drawn on the CPU from the kit's seeded generators and moved to the GPU) and
CTranslate2's translator on "cuda".  Run with the GPU peer venv's Python:
  .peers-cuda/bin/python experiments/benchmarks/peer_on_cuda.py ../shared/peers torch_peers train --config small
  .peers-cuda/bin/python experiments/benchmarks/peer_on_cuda.py ../shared/peers ct2_peer decode --beam 4 --compute_type bfloat16
Prints the kit's JSON line with "device": "cuda" and the GPU's name added.
"""
import json
import sys

PEERS, KIT = sys.argv.pop(1), sys.argv.pop(1)
sys.path.insert(0, PEERS)
import torch  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

if not torch.cuda.is_available():
  sys.exit(f"error: this torch ({torch.__version__}) sees no CUDA GPU; the peer venv needs torch's CUDA build")


def _emit(obj):
  print(json.dumps({**obj, "device": "cuda", "gpu": torch.cuda.get_device_name()}), flush=True)


def run_torch_peers():
  """torch_peers.main() with the GPU as torch's default device."""
  torch.set_default_device("cuda")
  randint = torch.randint

  def randint_from_cpu_generator(*args, generator=None, **kwargs):  # the kit's seeded draws, moved
    if generator is not None and generator.device.type == "cpu":
      return randint(*args, generator=generator, **{**kwargs, "device": "cpu"}).to("cuda")
    return randint(*args, generator=generator, **kwargs)

  torch.randint = randint_from_cpu_generator
  import torch_peers  # pylint: disable=g-import-not-at-top
  generate = torch_peers._hf_generate  # pylint: disable=protected-access

  def generate_synchronized(*args, **kwargs):
    out = generate(*args, **kwargs)
    torch.cuda.synchronize()
    return out

  torch_peers._hf_generate = generate_synchronized  # pylint: disable=protected-access
  torch_peers.emit = _emit
  torch_peers.main()


def run_ct2_peer():
  """ct2_peer.main() with CTranslate2's translator on "cuda" (torch builds the model on the CPU)."""
  import ctranslate2  # pylint: disable=g-import-not-at-top
  import ct2_peer  # pylint: disable=g-import-not-at-top
  translator, supported = ctranslate2.Translator, ctranslate2.get_supported_compute_types
  ctranslate2.Translator = lambda *args, **kwargs: translator(*args, **{**kwargs, "device": "cuda"})
  ctranslate2.get_supported_compute_types = lambda device: supported("cuda")
  ct2_peer.emit = _emit
  ct2_peer.main()


if KIT not in ("torch_peers", "ct2_peer"):
  sys.exit(f"error: unknown peer {KIT!r}: torch_peers or ct2_peer")
if KIT == "torch_peers":
  run_torch_peers()
else:
  run_ct2_peer()
