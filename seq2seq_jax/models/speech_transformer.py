"""A speech recogniser as Whisper builds one (Radford et al. 2022, §2.3, Fig. 1): log-Mel features,
a convolutional stem, a pre-LN Transformer encoder over the frames, and the text Transformer's
decoder unchanged.

  features  = log_mel_spectrogram(samples / 32768)        [B, F, 80], F = N // 160 (10 ms frames)
  x         = GELU(conv2(GELU(conv1(features))))           [B, ceil(F / 2), D]   (`audio.ConvStem`)
  x         = Res2Net blocks (x)                           only with frontend="res2net" (`audio.Res2Net`)
  x         = x + sinusoidal positions                     (Vaswani et al. §3.5)
  encoded   = LN(EncoderLayer^N(x))                        pre-LN self-attention over real frames
  logits    = the Transformer decoder (encoded, BOS-shifted targets)   [B, T, V]

Inputs are 16 kHz audio as int samples [B, N] (16-bit PCM values in int16 or int32), padded with
zeros; a row's audio ends at its last non-zero sample (`audio.sample_lengths`).  The model contract
is the text Transformer's: `__call__(inputs, targets, train)`, `encode`, `decode(..., decode=True)`
with the `cache` collection; the decoder attends to the encoded frames of each row's own length
(`source_mask`), and no frame past that length changes a real frame, so padding changes no output.
"""

import dataclasses

import flax.linen as nn
import jax.numpy as jnp

from seq2seq_jax.errors import UsageError
from seq2seq_jax.models import audio
from seq2seq_jax.models.layers import PositionalEncoding
from seq2seq_jax.models.transformer import Transformer, TransformerConfig

FRONTENDS = ("conv", "res2net")


@dataclasses.dataclass(frozen=True)
class SpeechTransformerConfig(TransformerConfig):
  """The Transformer's hyper-parameters (the decoder's and the encoder layers') plus the audio
  front end.  Defaults follow Whisper's choices at a small size: pre-LN, GELU."""
  pre_ln: bool = True
  activation: str = "gelu"
  max_len: int = 64             # longest target (the decoder's positions)
  frontend: str = "conv"        # conv: Whisper's stem; res2net: the stem, then Res2Net blocks
  n_mels: int = audio.N_MELS
  max_frames: int = 1500        # longest encoded audio, in frames after the stem (20 ms each: 30 s)
  res2net_blocks: int = 2
  res2net_scale: int = 4        # groups the channels split into (Gao et al. 2019, s)
  res2net_dilation: int = 1     # of each group's 3-tap convolution
  squeeze_excitation: bool = False  # ECAPA-TDNN's SE after each Res2Net block
  se_bottleneck: int = 128

  def __post_init__(self):
    super().__post_init__()
    if self.frontend not in FRONTENDS:
      raise UsageError(f"frontend must be one of {', '.join(FRONTENDS)}, got {self.frontend!r}")
    if self.frontend == "res2net" and self.d_model % self.res2net_scale:
      raise UsageError(f"d_model={self.d_model} must be divisible by res2net_scale={self.res2net_scale}")
    if self.share_embeddings:
      raise UsageError("share_embeddings needs a source vocabulary; audio has none")


class SpeechTransformer(Transformer):
  """Whisper-style encoder-decoder: audio samples in, the Transformer decoder's logits out."""
  config: SpeechTransformerConfig

  def setup(self):
    super().setup()
    c = self.config
    self.stem = audio.ConvStem(c.d_model, dtype=c.dtype)
    self.res2net = [audio.Res2Net(c.res2net_scale, dilation=c.res2net_dilation,
                                  squeeze_excitation=c.squeeze_excitation, se_bottleneck=c.se_bottleneck,
                                  dtype=c.dtype, name=f"res2net_{i}")
                    for i in range(c.res2net_blocks if c.frontend == "res2net" else 0)]
    self.frame_positions = PositionalEncoding(c.max_frames, "sinusoidal")

  def features(self, inputs):
    """int samples [B, N] -> (log-Mel features [B, N // 160, M], frame mask [B, N // 160])."""
    lengths = audio.sample_lengths(inputs)
    features = audio.log_mel_spectrogram(inputs.astype(jnp.float32) / 32768.0, lengths, self.config.n_mels)
    return features, audio.frame_mask(audio.num_frames(lengths), features.shape[1])

  def encode(self, inputs, train: bool = False):
    """int samples [B, N] -> encoded frames [B, ceil((N // 160) / 2), D]; frames past a row's
    audio are 0 (Whisper's AudioEncoder with masked padding)."""
    c = self.config
    features, mask = self.features(inputs)
    x, mask = self.stem(features, mask)                                  # [B, F', D]
    if x.shape[1] > c.max_frames:
      raise UsageError(f"audio of {inputs.shape[1] / audio.SAMPLE_RATE:.1f} s gives {x.shape[1]} frames, "
                       f"more than the model's max_frames={c.max_frames}")
    for block in self.res2net:
      x = block(x, mask)
    x = self.frame_positions(x)
    x = self.embedding_dropout(x, deterministic=not train)
    attention_mask = nn.make_attention_mask(mask, mask)
    for layer in self.encoder_layers:
      x = layer(x, attention_mask, train)
    x = self.encoder_norm(x) if c.pre_ln else x
    return jnp.where(mask[..., None], x, 0.0)

  def source_mask(self, inputs):
    """int samples [B, N] -> [B, F'] bool: the encoded frames of each row's own audio."""
    frames = audio.conv_output_length(audio.num_frames(audio.sample_lengths(inputs)))
    return audio.frame_mask(frames, audio.conv_output_length(audio.num_frames(inputs.shape[1])))
