"""Speech front ends: Whisper's log-Mel features and convolutional stem, and Res2Net blocks.

Features (Radford et al. 2022, "Robust Speech Recognition via Large-Scale Weak Supervision", §2.2):
16 kHz audio, 25 ms Hann windows (n_fft 400) every 10 ms (hop 160), the power spectrum mapped to
80 Mel bins, log10, clamped to 8 (log10 units) below the utterance's maximum and scaled to about
[-1, 1] by (x + 4) / 4.  `log_mel_spectrogram` computes them in JAX, on the device that runs the
model.

Stem (Whisper's AudioEncoder, §2.3): two 1-D convolutions of width 3 with GELU, the second with
stride 2, so F frames become ceil(F / 2) (`conv_output_length`).

Res2Net (Gao et al. 2019, "Res2Net: A New Multi-scale Backbone Architecture", §3.1): a block
splits its channels into `scale` groups and convolves them hierarchically, each group's
convolution fed the previous group's output as well, so one block sees many receptive fields.  The
squeeze-and-excitation option is that of ECAPA-TDNN (Desplanques et al. 2020, §2.2).

Padding.  A batch of utterances is int samples [B, N] padded with zeros; an utterance's length is
up to its last non-zero sample (`sample_lengths`: trailing digital silence counts as padding, the
same alone as in any batch).  Every function here takes the lengths (or a frame mask) and makes
its output on real frames independent of the padding: samples past the length are silence, frames
past it are zero and never read by a real frame's computation except as those zeros.

Shapes: B batch, N samples, F frames (10 ms), M Mel bins, C channels.
"""

import functools

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

SAMPLE_RATE = 16000
N_FFT = 400        # 25 ms window
HOP_LENGTH = 160   # 10 ms hop
N_MELS = 80


# --- Log-Mel features ------------------------------------------------------------------------


def _hz_to_mel(hz):
  """Slaney's Mel scale (the Auditory Toolbox; librosa's default): linear below 1 kHz, log above."""
  hz = np.asarray(hz, np.float64)
  f_sp, min_log_hz = 200.0 / 3, 1000.0
  min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
  return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) / logstep, hz / f_sp)


def _mel_to_hz(mel):
  mel = np.asarray(mel, np.float64)
  f_sp, min_log_hz = 200.0 / 3, 1000.0
  min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
  return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


@functools.cache
def mel_filters(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
  """Triangular Mel filterbank [n_mels, n_fft // 2 + 1], float32: n_mels + 2 points equally spaced
  on the Slaney Mel scale from 0 Hz to Nyquist, each filter rising and falling linearly between its
  neighbours' centres and scaled to unit area (2 / bandwidth).  The filters Whisper reads."""
  fft_hz = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
  mel_hz = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), n_mels + 2))
  widths = np.diff(mel_hz)
  ramps = mel_hz[:, None] - fft_hz[None, :]                    # [n_mels + 2, bins]
  lower = -ramps[:-2] / widths[:-1, None]
  upper = ramps[2:] / widths[1:, None]
  weights = np.maximum(0.0, np.minimum(lower, upper))
  weights *= (2.0 / (mel_hz[2:] - mel_hz[:-2]))[:, None]
  return weights.astype(np.float32)


def hann_window(n_fft: int = N_FFT) -> np.ndarray:
  """Periodic Hann window [n_fft]: 0.5 - 0.5 cos(2 pi n / n_fft) (torch.hann_window's default)."""
  return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def num_frames(num_samples):
  """Frames of N samples: N // hop (Whisper drops the STFT's last, partial frame)."""
  return num_samples // HOP_LENGTH


def sample_lengths(samples):
  """int samples [B, N], zero-padded -> [B] int32: one past each row's last non-zero sample."""
  positions = jnp.arange(1, samples.shape[-1] + 1, dtype=jnp.int32)
  return jnp.max(jnp.where(samples != 0, positions, 0), axis=-1)


def frame_mask(lengths, frames: int):
  """[B] lengths (of any unit) -> [B, frames] bool: True on the first `lengths` frames."""
  return jnp.arange(frames)[None, :] < lengths[:, None]


def log_mel_spectrogram(audio, lengths=None, n_mels: int = N_MELS):
  """Whisper's log-Mel spectrogram.  audio [B, N] float in [-1, 1] -> [B, N // 160, n_mels] float32.

  X_t = STFT of the centred frame t (reflect-padded by n_fft / 2 at the edges, periodic Hann window),
  S = Mel |X|^2, L = log10(max(S, 1e-10)), L = max(L, max(L) - 8), out = (L + 4) / 4, with the
  maximum taken over each utterance.

  lengths [B] (samples), optional: each row is its first `lengths` samples followed by silence.
  Samples past the length are read as zeros, also past the array's end (no reflection there),
  the maximum is taken over the row's N // 160 real frames, and frames past those are 0.  A row's
  real frames are then the same whatever padding follows it.
  """
  audio = jnp.asarray(audio, jnp.float32)
  batch, n = audio.shape
  frames = num_frames(n)
  if lengths is not None:
    audio = jnp.where(jnp.arange(n)[None, :] < lengths[:, None], audio, 0.0)
    audio = jnp.pad(audio, ((0, 0), (0, N_FFT // 2)))           # silence, then reflect silence
  padded = jnp.pad(audio, ((0, 0), (N_FFT // 2, N_FFT // 2)), mode="reflect")
  index = HOP_LENGTH * np.arange(frames)[:, None] + np.arange(N_FFT)[None, :]   # [F, n_fft]
  windowed = padded[:, index] * hann_window()                                  # [B, F, n_fft]
  power = jnp.abs(jnp.fft.rfft(windowed, axis=-1)) ** 2                        # [B, F, n_fft / 2 + 1]
  mel = jnp.einsum("bfk,mk->bfm", power, mel_filters(SAMPLE_RATE, N_FFT, n_mels),
                   precision="highest")                                       # [B, F, M]
  log_spec = jnp.log10(jnp.maximum(mel, 1e-10))
  real = (jnp.ones((batch, frames), bool) if lengths is None
          else frame_mask(num_frames(lengths), frames))[..., None]
  peak = jnp.max(jnp.where(real, log_spec, -jnp.inf), axis=(1, 2), keepdims=True)
  log_spec = jnp.maximum(log_spec, peak - 8.0)
  return jnp.where(real, (log_spec + 4.0) / 4.0, 0.0)


# --- Whisper's convolutional stem -----------------------------------------------------------


def conv_output_length(frames):
  """Frames after the stem: conv1 (width 3, padding 1) keeps F; conv2 (width 3, stride 2, padding 1)
  gives floor((F + 2 - 3) / 2) + 1 = ceil(F / 2)."""
  return (frames - 1) // 2 + 1


def encoded_length(num_samples):
  """Encoder positions of an utterance of `num_samples` real samples: its frames after the stem."""
  return conv_output_length(num_frames(num_samples))


class ConvStem(nn.Module):
  """Whisper's AudioEncoder stem: x = GELU(conv1(x)), x = GELU(conv2(x)), conv2 with stride 2.

  features [B, F, M], mask [B, F] -> ([B, ceil(F / 2), C], mask [B, ceil(F / 2)]).  Frames off the
  mask are zeroed after each convolution, so a real frame reads padding only as zeros (as it would
  read the convolution's own zero padding at the end of an unpadded utterance).
  """
  channels: int
  dtype: str = "float32"

  @nn.compact
  def __call__(self, features, mask):
    conv = functools.partial(nn.Conv, self.channels, kernel_size=(3,), padding=((1, 1),), dtype=self.dtype)
    x = jnp.where(mask[..., None], features, 0.0).astype(self.dtype)
    x = jnp.where(mask[..., None], nn.gelu(conv(name="conv1")(x), approximate=False), 0.0)
    out_mask = frame_mask(conv_output_length(jnp.sum(mask, axis=-1)), conv_output_length(x.shape[1]))
    x = nn.gelu(conv(strides=(2,), name="conv2")(x), approximate=False)
    return jnp.where(out_mask[..., None], x, 0.0), out_mask


# --- Res2Net ----------------------------------------------------------------------------------


def masked_mean(x, mask):
  """x [B, F, C], mask [B, F] -> [B, C]: the mean over real frames."""
  count = jnp.maximum(jnp.sum(mask, axis=-1, keepdims=True), 1)
  return jnp.sum(jnp.where(mask[..., None], x, 0.0), axis=1) / count.astype(x.dtype)


class SqueezeExcitation(nn.Module):
  """Squeeze-and-excitation (Hu et al. 2018) as ECAPA-TDNN uses it (Desplanques et al. 2020, eqs. 3-4):
  z = mean_t h_t (eq. 3), s = sigmoid(W2 f(W1 z + b1) + b2) (eq. 4, f = ReLU), out_t = s * h_t.

  x [B, F, C], mask [B, F] -> [B, F, C]; the mean is over real frames only."""
  bottleneck: int = 128
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x, mask):
    z = masked_mean(x, mask)                                                     # [B, C]
    s = nn.relu(nn.Dense(self.bottleneck, dtype=self.dtype, name="squeeze")(z))
    s = nn.sigmoid(nn.Dense(x.shape[-1], dtype=self.dtype, name="excite")(s))    # [B, C]
    return x * s[:, None, :]


class Res2Net(nn.Module):
  """A Res2Net block over time (Gao et al. 2019, §3.1, Fig. 2), with ECAPA-TDNN's options.

  x [B, F, C], mask [B, F] (True = real frame) or None -> [B, F, C].

    h = act(W_in x)                                   1x1 convolution, [B, F, C]
    x_1, ..., x_s = split(h)                          s = `scale` groups of C / s channels
    y_1 = x_1
    y_2 = K_2(x_2)
    y_i = K_i(x_i + y_{i-1}),  2 < i <= s             (§3.1: K_i a 3-tap convolution, act after)
    y = act(W_out concat(y_1, ..., y_s))              1x1 convolution
    y = SE(y)                                         optional (`squeeze_excitation`)
    out = x + y                                       residual

  Group i sees a receptive field of 2 (i - 1) + 1 frames (dilation 1): the block mixes many scales
  at the cost of one.  Frames off the mask are zeroed before every convolution, so padding never
  reaches a real frame.
  """
  scale: int = 4
  kernel_size: int = 3
  dilation: int = 1
  squeeze_excitation: bool = False
  se_bottleneck: int = 128
  dtype: str = "float32"

  @nn.compact
  def __call__(self, x, mask=None):
    channels = x.shape[-1]
    if channels % self.scale:
      raise ValueError(f"Res2Net: {channels} channels do not split into scale={self.scale} groups")
    mask = jnp.ones(x.shape[:2], bool) if mask is None else mask
    zero_pad = lambda h: jnp.where(mask[..., None], h, 0.0)
    dense = functools.partial(nn.Dense, channels, dtype=self.dtype)
    h = zero_pad(nn.gelu(dense(name="input")(x), approximate=False))
    groups = jnp.split(h, self.scale, axis=-1)
    half = self.dilation * (self.kernel_size - 1) // 2
    ys = [groups[0]]
    for i in range(1, self.scale):
      group_in = groups[i] if i == 1 else groups[i] + ys[-1]
      conv = nn.Conv(channels // self.scale, kernel_size=(self.kernel_size,), kernel_dilation=(self.dilation,),
                     padding=((half, half),), dtype=self.dtype, name=f"group_{i}")
      ys.append(zero_pad(nn.gelu(conv(group_in), approximate=False)))
    y = zero_pad(nn.gelu(dense(name="output")(jnp.concatenate(ys, axis=-1)), approximate=False))
    if self.squeeze_excitation:
      y = SqueezeExcitation(self.se_bottleneck, dtype=self.dtype, name="se")(y, mask)
    return zero_pad(x + y)


# --- Utterance vectors -------------------------------------------------------------------------


class AttentiveStatisticsPooling(nn.Module):
  """Attentive statistics pooling (Okabe et al. 2018, eqs. 5-7), channel-dependent and with global
  context as in ECAPA-TDNN (Desplanques et al. 2020, §2.3, eqs. 7-9): frames [B, F, C], mask
  [B, F] -> one vector [B, 2C] per utterance.

    e_t   = v_c^T f(W [h_t; mean(h); std(h)] + b) + k_c     per channel c (f = tanh)
    a_t,c = softmax over real frames t of e_t,c
    mu    = sum_t a_t * h_t,    sigma = sqrt(sum_t a_t * h_t^2 - mu^2)
    out   = [mu; sigma]

  With `global_context=False` the attention reads h_t alone.  The energies' last layer starts at
  zero, so an untrained pooling is the plain mean and standard deviation over the real frames.
  """
  bottleneck: int = 128
  global_context: bool = True
  eps: float = 1e-6

  @nn.compact
  def __call__(self, x, mask=None):
    mask = jnp.ones(x.shape[:2], bool) if mask is None else mask
    x = x.astype(jnp.float32)
    if self.global_context:
      mean, std = weighted_statistics(x, mask.astype(jnp.float32)[..., None], self.eps)
      frames = x.shape[1]
      context = jnp.concatenate([x, jnp.repeat(mean[:, None], frames, 1), jnp.repeat(std[:, None], frames, 1)], -1)
    else:
      context = x
    hidden = jnp.tanh(nn.Dense(self.bottleneck, name="attention_hidden")(context))
    energies = nn.Dense(x.shape[-1], kernel_init=nn.initializers.zeros, name="attention_energies")(hidden)
    energies = jnp.where(mask[..., None], energies, jnp.finfo(jnp.float32).min)
    weights = jnp.where(mask[..., None], nn.softmax(energies, axis=1), 0.0)       # [B, F, C]
    mu, sigma = weighted_statistics(x, weights, self.eps)
    return jnp.concatenate([mu, sigma], axis=-1)


def weighted_statistics(x, weights, eps: float = 1e-6):
  """x [B, F, C], weights [B, F, 1|C] (summing to 1 over F, or a 0/1 mask) -> mean, std [B, C]."""
  weights = weights / jnp.maximum(jnp.sum(weights, axis=1, keepdims=True), eps)
  mean = jnp.sum(weights * x, axis=1)
  variance = jnp.sum(weights * x * x, axis=1) - mean * mean
  return mean, jnp.sqrt(jnp.maximum(variance, eps))
