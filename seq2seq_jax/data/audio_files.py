"""Audio files in: WAV files (or directories of them) as the 16 kHz int16 samples a speech model reads."""

import os
import wave

import numpy as np

from seq2seq_jax.data.datasets.speech_cmudict import SAMPLE_RATE, resample, to_int16
from seq2seq_jax.errors import UsageError


def expand_paths(paths: list[str]) -> list[str]:
  """Each path as given, or for a directory its `.wav` files in name order; UsageError for a path
  that does not exist or a directory without WAV files."""
  out = []
  for path in paths:
    if os.path.isdir(path):
      found = sorted(os.path.join(path, name) for name in os.listdir(path) if name.lower().endswith(".wav"))
      if not found:
        raise UsageError(f"{path} holds no .wav files")
      out.extend(found)
    elif os.path.exists(path):
      out.append(path)
    else:
      raise UsageError(f"{path} does not exist (give WAV files or directories of them)")
  return out


def read_wav(path: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
  """A PCM WAV file (8/16/32-bit, any rate, mono or channels averaged) -> int16 samples at
  `sample_rate`; UsageError naming the file if it is not such a WAV file."""
  try:
    with wave.open(path) as f:
      width, channels, rate = f.getsampwidth(), f.getnchannels(), f.getframerate()
      data = f.readframes(f.getnframes())
  except (wave.Error, EOFError, OSError) as e:
    raise UsageError(f"{path}: not a readable PCM WAV file ({e})") from None
  if width == 1:
    x = (np.frombuffer(data, np.uint8).astype(np.float64) - 128) / 128
  elif width in (2, 4):
    dtype = np.int16 if width == 2 else np.int32
    x = np.frombuffer(data, dtype).astype(np.float64) / float(np.iinfo(dtype).max + 1)
  else:
    raise UsageError(f"{path}: {8 * width}-bit samples; give 8, 16 or 32-bit PCM")
  x = x.reshape(-1, channels).mean(axis=1)
  if rate != sample_rate and x.size:
    x = resample(x, rate, sample_rate)
  return to_int16(x)


def write_wav(path: str, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
  """int16 samples -> a mono 16-bit PCM WAV file."""
  with wave.open(path, "wb") as f:
    f.setnchannels(1)
    f.setsampwidth(2)
    f.setframerate(sample_rate)
    f.writeframes(np.asarray(samples, np.int16).tobytes())
