"""Model registry: name -> (config dataclass, linen module class).

Every model is a linen module with the contract
  __call__(inputs [B, S], targets [B, T], train) -> logits [B, T, V]      (teacher forcing)
  encode(inputs, train) -> encoded;   decode(encoded, inputs, tokens, train, decode) -> logits
with incremental state kept in the `cache` collection when `decode=True`.

The cache contract.  A `decode=True` call on [N, L] tokens creates the cache for N rows and L
steps; later calls take one step.  Each cache leaf has one of three roles, marked in the cache
itself with the Flax metadata boxes of `kv_cache` (the model reads and writes through them as
plain values; decoding sees the boxes):
- `kv_cache.PerRow`: [N, ...], one entry per row (hypothesis).  Beam search reorders exactly these
  leaves with the beams (e.g. the RNN carries, the Transformer's self-attention slot tables).
- `kv_cache.PerSource`: [N / G, ...], depends only on the source (e.g. encoder-decoder keys and
  values).  Computed by the creating call, kept once per source for the G consecutive rows that
  decode it, never reordered.
- unmarked: stays where it is: step counters (scalars) and storage that rows read through a
  per-row leaf (the Transformer's key/value slots, read through the slot tables).
"""

import dataclasses

from seq2seq_jax.models.rnn import RNNConfig, RNNSeq2Seq
from seq2seq_jax.models.rnn_attention import RNNAttention
from seq2seq_jax.models.speech_transformer import SpeechTransformer, SpeechTransformerConfig
from seq2seq_jax.models.transformer import Transformer, TransformerConfig
from seq2seq_jax.errors import UsageError

MODELS = {
    "transformer": (TransformerConfig, Transformer),
    "rnn_seq2seq": (RNNConfig, RNNSeq2Seq),
    "rnn_attention": (RNNConfig, RNNAttention),
    "speech_transformer": (SpeechTransformerConfig, SpeechTransformer),
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


# Fields of a model config that the training run fills in, never the user.
FILLED_BY_RUN = ("source_vocab_size", "target_vocab_size", "dtype")


def check_hyperparameters(name: str, hyperparameters: dict) -> None:
  """UsageError naming the first hyperparameter that model `name` does not have."""
  known = hyperparameter_names(name)
  for key in hyperparameters:
    if key not in known:
      settable = sorted(known - set(FILLED_BY_RUN))
      raise UsageError(f"model {name!r} has no hyperparameter {key!r}; its hyperparameters: "
                       f"{', '.join(settable)}")


def resolve_hyperparameters(name: str, hyperparameters: dict) -> dict:
  """Every hyperparameter of model `name` (except those in FILLED_BY_RUN): the given values over
  the config dataclass's defaults.  UsageError for one the model does not have."""
  check_hyperparameters(name, hyperparameters)
  config_cls = _registered(name)[0]
  resolved = {f.name: f.default for f in dataclasses.fields(config_cls)
              if f.name not in FILLED_BY_RUN and f.default is not dataclasses.MISSING}
  resolved.update({k: v for k, v in hyperparameters.items() if k not in FILLED_BY_RUN})
  return resolved


def build_model(name: str, **hyperparameters):
  """Returns (config, module) for a registered model; an unknown name or a hyperparameter the
  model does not have raises UsageError."""
  config_cls, module_cls = _registered(name)
  check_hyperparameters(name, hyperparameters)
  config = config_cls(**hyperparameters)
  return config, module_cls(config)
