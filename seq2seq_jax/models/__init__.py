"""Model registry: name -> (config dataclass, linen module class).

Every model is a linen module with the contract
  __call__(inputs [B, S], targets [B, T], train) -> logits [B, T, V]      (teacher forcing)
  encode(inputs, train) -> encoded;   decode(encoded, inputs, tokens, train, decode) -> logits
with incremental state kept in the `cache` collection when `decode=True`.  Cache variables named
`static_*` depend only on the source (e.g. encoder-decoder keys and values): beam search leaves
them in place instead of reordering them with the beams.  Variables named `slot_*` are written by
each row into its own slot and never reordered either: the model reads them through another,
per-row variable that beam search does reorder (the Transformer's `cached_slots`).
"""

import dataclasses

from seq2seq_jax.models.rnn import RNNConfig, RNNSeq2Seq
from seq2seq_jax.models.rnn_attention import RNNAttention
from seq2seq_jax.models.transformer import Transformer, TransformerConfig
from seq2seq_jax.errors import UsageError

MODELS = {
    "transformer": (TransformerConfig, Transformer),
    "rnn_seq2seq": (RNNConfig, RNNSeq2Seq),
    "rnn_attention": (RNNConfig, RNNAttention),
}


def model_names() -> list[str]:
  return sorted(MODELS)


def _registered(name: str):
  if name not in MODELS:
    raise UsageError(f"unknown model {name!r}; choose one of: {', '.join(model_names())}")
  return MODELS[name]


def hyperparameter_names(name: str) -> set[str]:
  """The fields of a registered model's config dataclass."""
  return {f.name for f in dataclasses.fields(_registered(name)[0])}


def build_model(name: str, **hyperparameters):
  """Returns (config, module) for a registered model; an unknown name raises UsageError, and
  hyperparameters the model does not have are ignored."""
  config_cls, module_cls = _registered(name)
  known = hyperparameter_names(name)
  config = config_cls(**{k: v for k, v in hyperparameters.items() if k in known})
  return config, module_cls(config)
