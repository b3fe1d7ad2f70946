"""Speech front ends: log-Mel parity with librosa, padding invariance, the stem's length formula,
Res2Net against a direct loop over its groups."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seq2seq_jax.models import audio


def _test_signal(seconds: float = 1.3, seed: int = 0) -> np.ndarray:
  """A chirp in noise between stretches of exact silence (exercises the -8 clamp), float32."""
  rng = np.random.default_rng(seed)
  t = np.arange(int(seconds * audio.SAMPLE_RATE)) / audio.SAMPLE_RATE
  x = 0.3 * np.sin(2 * np.pi * (200 + 1500 * t) * t) + 0.01 * rng.standard_normal(t.size)
  x[: 1600] = 0.0
  x[-2000:] *= 1e-4
  return x.astype(np.float32)


def _librosa_log_mel(x: np.ndarray) -> np.ndarray:
  """Whisper's recipe written with librosa's STFT and filterbank: [frames, 80]."""
  librosa = pytest.importorskip("librosa")
  stft = librosa.stft(x, n_fft=400, hop_length=160, window="hann", center=True, pad_mode="reflect")
  power = np.abs(stft[:, :-1]) ** 2
  mel = librosa.filters.mel(sr=16000, n_fft=400, n_mels=80) @ power
  log_spec = np.log10(np.maximum(mel, 1e-10))
  log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
  return ((log_spec + 4.0) / 4.0).T


def test_mel_filters_match_librosa():
  librosa = pytest.importorskip("librosa")
  np.testing.assert_allclose(audio.mel_filters(), librosa.filters.mel(sr=16000, n_fft=400, n_mels=80),
                             atol=1e-7)


def test_log_mel_matches_librosa_reference():
  x = _test_signal()
  ours = np.asarray(audio.log_mel_spectrogram(x[None]))[0]
  ref = _librosa_log_mel(x)
  assert ours.shape == ref.shape == (x.size // 160, 80)
  np.testing.assert_allclose(ours, ref, atol=2e-5)
  assert ours.min() == pytest.approx(ours.max() - 2.0, abs=1e-6)   # the clamp: 8 log10 units / 4


def test_log_mel_of_a_padded_row_equals_the_row_alone():
  x = _test_signal(0.8)
  x[-1] = 0.5  # a real last sample
  padded = np.zeros((2, x.size + 1234), np.float32)
  padded[0, : x.size] = x
  padded[1, :700] = 0.1
  lengths = jnp.asarray([x.size, 700])
  log_mel = jax.jit(audio.log_mel_spectrogram)
  together = np.asarray(log_mel(padded, lengths))
  alone = np.asarray(log_mel(x[None], jnp.asarray([x.size])))[0]
  frames = x.size // 160
  np.testing.assert_allclose(together[0, :frames], alone, atol=1e-6)
  assert np.all(together[0, frames:] == 0) and np.all(together[1, 700 // 160:] == 0)


def test_sample_lengths_end_at_the_last_non_zero_sample():
  samples = np.zeros((3, 10), np.int16)
  samples[0, :4] = [0, 5, 0, -3]
  samples[1, 9] = 1
  np.testing.assert_array_equal(audio.sample_lengths(jnp.asarray(samples)), [4, 10, 0])


@pytest.mark.parametrize("frames", [1, 8, 101])
def test_conv_stem_output_length(frames):
  """ceil(F / 2) frames out, for the array and for each row's real frames."""
  stem = audio.ConvStem(channels=8)
  x = jnp.ones((2, frames, 5))
  mask = audio.frame_mask(jnp.asarray([frames, (frames + 1) // 2]), frames)
  (y, out_mask), _ = stem.init_with_output(jax.random.key(0), x, mask)
  assert y.shape == (2, audio.conv_output_length(frames), 8) == (2, -(-frames // 2), 8)
  np.testing.assert_array_equal(np.sum(out_mask, axis=1),
                                [audio.conv_output_length(frames), audio.conv_output_length((frames + 1) // 2)])


def test_conv_stem_ignores_padding():
  stem = audio.ConvStem(channels=6)
  rng = np.random.default_rng(1)
  x = rng.standard_normal((1, 9, 4)).astype(np.float32)
  params = jax.jit(stem.init)(jax.random.key(0), x, jnp.ones((1, 9), bool))
  apply = jax.jit(stem.apply)
  alone, _ = apply(params, x, jnp.ones((1, 9), bool))
  padded_x = np.concatenate([x, 100 * rng.standard_normal((1, 4, 4)).astype(np.float32)], axis=1)
  padded, mask = apply(params, padded_x, audio.frame_mask(jnp.asarray([9]), 13))
  assert int(mask.sum()) == alone.shape[1] == 5
  np.testing.assert_allclose(padded[:, :5], alone, atol=1e-6)
  assert np.all(np.asarray(padded[:, 5:]) == 0)


def _conv1d(x, kernel, bias, dilation=1):
  """Direct 'same' 1-D convolution.  x [F, Cin], kernel [K, Cin, Cout] -> [F, Cout]."""
  width = kernel.shape[0]
  half = dilation * (width - 1) // 2
  padded = np.pad(x, ((half, half), (0, 0)))
  out = np.zeros((x.shape[0], kernel.shape[2]), np.float64)
  for t in range(x.shape[0]):
    for k in range(width):
      out[t] += padded[t + k * dilation] @ kernel[k]
  return out + bias


def _gelu(x):
  return 0.5 * x * (1 + np.vectorize(math.erf)(x / np.sqrt(2)))


@pytest.mark.parametrize("squeeze_excitation", [False, True])
def test_res2net_equals_a_direct_loop_over_its_groups(squeeze_excitation):
  scale, channels, frames = 4, 12, 7
  block = audio.Res2Net(scale=scale, dilation=2, squeeze_excitation=squeeze_excitation, se_bottleneck=5)
  x = np.random.default_rng(2).standard_normal((1, frames, channels)).astype(np.float32)
  params = block.init(jax.random.key(3), x)["params"]
  params = jax.tree.map(lambda p: np.asarray(p, np.float64), params)
  out = np.asarray(block.apply({"params": jax.tree.map(jnp.asarray, params)}, x))[0]

  h = _gelu(x[0] @ params["input"]["kernel"] + params["input"]["bias"])
  width = channels // scale
  ys = [h[:, :width]]
  for i in range(1, scale):
    group = h[:, i * width:(i + 1) * width] + (ys[-1] if i > 1 else 0)
    ys.append(_gelu(_conv1d(group, params[f"group_{i}"]["kernel"], params[f"group_{i}"]["bias"], dilation=2)))
  y = _gelu(np.concatenate(ys, axis=-1) @ params["output"]["kernel"] + params["output"]["bias"])
  if squeeze_excitation:
    se = params["se"]
    s = np.maximum(y.mean(axis=0) @ se["squeeze"]["kernel"] + se["squeeze"]["bias"], 0)
    s = 1 / (1 + np.exp(-(s @ se["excite"]["kernel"] + se["excite"]["bias"])))
    y = y * s
  np.testing.assert_allclose(out, x[0] + y, atol=2e-5)


def test_res2net_ignores_padding():
  block = audio.Res2Net(scale=2, squeeze_excitation=True, se_bottleneck=3)
  rng = np.random.default_rng(4)
  x = rng.standard_normal((1, 6, 8)).astype(np.float32)
  params = jax.jit(block.init)(jax.random.key(0), x)
  apply = jax.jit(block.apply)
  alone = apply(params, x, jnp.ones((1, 6), bool))
  padded_x = np.concatenate([x, rng.standard_normal((1, 3, 8)).astype(np.float32)], axis=1)
  padded = apply(params, padded_x, audio.frame_mask(jnp.asarray([6]), 9))
  np.testing.assert_allclose(padded[:, :6], alone, atol=1e-6)


def test_attentive_statistics_pooling_starts_as_mean_and_std_over_real_frames():
  pooling = audio.AttentiveStatisticsPooling(bottleneck=4)
  rng = np.random.default_rng(5)
  x = rng.standard_normal((2, 7, 3)).astype(np.float32)
  mask = audio.frame_mask(jnp.asarray([7, 4]), 7)
  apply = jax.jit(pooling.apply)
  params = jax.jit(pooling.init)(jax.random.key(0), x, mask)
  out = np.asarray(apply(params, x, mask))
  assert out.shape == (2, 6)
  for row, n in enumerate([7, 4]):
    np.testing.assert_allclose(out[row, :3], x[row, :n].mean(0), atol=1e-5)
    np.testing.assert_allclose(out[row, 3:], x[row, :n].std(0), atol=1e-4)
  # Trained (non-zero) energies: still blind to padded frames.
  params = jax.tree.map(lambda p: p + 0.3, params)
  padded = x.copy()
  padded[1, 4:] = 50.0
  np.testing.assert_allclose(apply(params, padded, mask)[1], apply(params, x, mask)[1], atol=1e-5)
  np.testing.assert_allclose(apply(params, x[1:, :4], None)[0], apply(params, x, mask)[1], atol=1e-5)
