"""A trained model ready to use: workdir -> (vocabularies, model, params) -> text in, text out."""

import dataclasses

import jax
import numpy as np

from seq2seq_jax import models, workdir as workdir_lib
from seq2seq_jax.models.ensemble import Ensemble, ensemble_params
from seq2seq_jax.data import audio_files, pipeline
from seq2seq_jax.data.tokenizers import AudioInput
from seq2seq_jax.special_tokens import BOS_ID, EOS_ID, language_token
from seq2seq_jax.decoding.task import DecodingOptions, DecodingResult, DecodingTask
from seq2seq_jax.errors import UsageError


def decoding_mesh():
  """A 1-D mesh over this process's devices to decode data-parallel over, or None when there is one
  device or several processes (a multi-process run decodes as one global computation on the
  replicated parameters, as every process calls it alike)."""
  if jax.process_count() > 1 or jax.local_device_count() == 1:
    return None
  return jax.sharding.Mesh(np.asarray(jax.local_devices()), ("rows",),
                           axis_types=(jax.sharding.AxisType.Auto,))


def decoding_task(model, model_config, params, target_vocab, options: DecodingOptions) -> DecodingTask:
  """A DecodingTask for `model` that decodes data-parallel over this process's devices."""
  return DecodingTask(model, params, options, bos_id=BOS_ID, eos_id=EOS_ID,
                      detokenize=target_vocab.decode, model_max_length=model_config.max_len, mesh=decoding_mesh())


def options_for_language(options: DecodingOptions, target_vocab, language: str) -> DecodingOptions:
  """`options` for a model trained in several directions, translating into `language`: its token
  first in the prompt (the decoder reads BOS, <2xx>, then the output, as in training: see
  `pipeline.encode_pairs`) and no language token among the outputs.  UsageError if the
  vocabulary has no token for `language`."""
  try:
    token = target_vocab.token_id(language_token(language))
  except (UsageError, AttributeError):
    raise UsageError(f"this model has no target-language token {language_token(language)}: it was not trained "
                     f"to translate into {language!r} (a model trained with --both_directions is)") from None
  suppress = tuple(sorted(set(options.suppress_tokens) | set(target_vocab.language_token_ids())))
  return dataclasses.replace(options, prompt=(token, *options.prompt), suppress_tokens=suppress)


def decode_all(task: DecodingTask, sources: list[np.ndarray], batch_size: int, buckets,
               source_unit: int = 1) -> list[DecodingResult]:
  """DecodingResults for every source, in input order, batched by the coarser length buckets
  (`pipeline.coarser_buckets`: fewer compiles; results do not depend on padding).  source_unit:
  samples per bucket unit for audio sources (`pipeline.eval_batches`)."""
  results = [None] * len(sources)
  for idx, batch in pipeline.eval_batches(sources, None, batch_size, pipeline.coarser_buckets(buckets),
                                          source_unit):
    for i, res in zip(idx, task.run(batch["inputs"][: len(idx)])):
      results[i] = res
  return results


def _restores(manager, step: int) -> bool:
  try:
    workdir_lib.restore_params(manager, step)
  except workdir_lib.DamagedCheckpointError:
    return False
  return True


@dataclasses.dataclass
class Translator:
  model: object
  model_config: object
  params: dict
  source_vocab: object  # tokenizers.Vocabulary or SentencePieceVocabulary
  target_vocab: object
  buckets: tuple
  step: int
  max_source_length: int

  @classmethod
  def from_workdir(cls, workdir: str, checkpoint: str | int = "latest", dtype: str | None = None,
                   use_ema: bool = True) -> "Translator":
    """Loads the vocabularies, the model recorded in config.json and the parameters of the
    checkpoint named by `checkpoint` ("latest", "best" or a step number; see
    `workdir.select_checkpoint`): their moving average when the run kept one, unless `use_ema` is
    False.  `dtype` replaces the model's compute dtype (e.g. decode a float32-trained Transformer
    in bfloat16); the parameters are loaded as saved."""
    config, source_vocab, target_vocab = workdir_lib.load(workdir)
    hparams = dict(config["model_hparams"])
    if dtype is not None:
      if "dtype" not in models.hyperparameter_names(config["model"]):
        raise UsageError(f"model {config['model']!r} computes in float32 only; drop --dtype")
      hparams["dtype"] = dtype
    model_config, model = models.build_model(config["model"], source_vocab_size=source_vocab.size,
                                  target_vocab_size=target_vocab.size, **hparams)
    manager, step = workdir_lib.select_checkpoint(workdir, checkpoint)
    try:
      params = workdir_lib.restore_params(manager, step, use_ema)
    except workdir_lib.DamagedCheckpointError as e:
      intact = [s for s in manager.all_steps() if s != step and _restores(manager, s)]
      hint = (f"intact steps: {', '.join(map(str, intact))}; pass --checkpoint=N, or run experiments.train "
              "on the workdir again (it moves the damaged checkpoint aside and resumes)") if intact else \
          "no other checkpoint restores; train again"
      raise UsageError(f"{workdir}: {e}; {hint}") from None
    return cls(model, model_config, params, source_vocab, target_vocab,
               tuple(config["buckets"]), step, config["max_source_length"])

  def encode_source(self, text: str, name: str = "input") -> np.ndarray:
    """Token ids of one text; UsageError calling it `name` if it is empty or too long, or naming
    its unknown symbols if it is out of vocabulary."""
    if isinstance(self.source_vocab, AudioInput):
      return self.encode_audio(text, name)
    ids = self.source_vocab.encode(text)  # raises OutOfVocabularyError (a UsageError)
    if not ids:
      raise UsageError(f"{name} is empty")
    if len(ids) > self.max_source_length:
      raise UsageError(f"{name} ({text[:40]!r}...) has {len(ids)} tokens; this model takes at most "
                       f"{self.max_source_length} (its --max_source_length); shorten or split the input")
    return np.asarray(ids, np.int32)

  def encode_audio(self, path: str, name: str = "input") -> np.ndarray:
    """int16 samples of the WAV file `path` for an audio model; UsageError if it is silent or longer
    than the model takes."""
    samples = audio_files.read_wav(path, self.source_vocab.sample_rate)
    if not np.any(samples):
      raise UsageError(f"{name} ({path}) is silent")
    hops = pipeline.source_length(samples, self.source_vocab.unit)
    if hops > self.max_source_length:
      limit = self.max_source_length * self.source_vocab.unit / self.source_vocab.sample_rate
      raise UsageError(f"{name} ({path}) lasts {len(samples) / self.source_vocab.sample_rate:.2f} s; this "
                       f"model takes at most {limit:.2f} s (its --max_source_length); cut the audio")
    return samples

  @property
  def source_unit(self) -> int:
    """Samples per source length unit: 1 for text, a 10 ms hop for audio."""
    return getattr(self.source_vocab, "unit", 1)

  @classmethod
  def ensemble(cls, members: list["Translator"]) -> "Translator":
    """One Translator that decodes with the members' averaged log-probabilities
    (`models.ensemble.Ensemble`); UsageError unless they share both vocabularies."""
    first = members[0]
    for i, member in enumerate(members[1:], 2):
      if member.source_vocab != first.source_vocab or member.target_vocab != first.target_vocab:
        raise UsageError(f"ensemble member {i} has other vocabularies than member 1; an ensemble "
                         "needs models trained on the same vocabularies")
    model = Ensemble(tuple(m.model for m in members), bos_id=BOS_ID)
    model_config = dataclasses.replace(first.model_config, max_len=min(m.model_config.max_len for m in members))
    return cls(model, model_config, ensemble_params([m.params for m in members]), first.source_vocab,
               first.target_vocab, first.buckets, first.step,
               min(m.max_source_length for m in members))

  def encode_sources(self, texts: list[str]) -> list[np.ndarray]:
    """Token ids per text; UsageError naming the line if a text is empty, too long or out of vocabulary."""
    return [self.encode_source(text, f"input {line}") for line, text in enumerate(texts, 1)]

  def task(self, options: DecodingOptions) -> DecodingTask:
    return decoding_task(self.model, self.model_config, self.params, self.target_vocab, options)

  def translate(self, sources: list[np.ndarray], options: DecodingOptions,
                batch_size: int = 256) -> list[DecodingResult]:
    return decode_all(self.task(options), sources, batch_size, self.buckets, self.source_unit)

  def encode_targets(self, texts: list[str]) -> list[np.ndarray]:
    """Target token ids ending in EOS (for scoring given outputs)."""
    return [np.asarray(self.target_vocab.encode(t, add_eos=True), np.int32) for t in texts]
