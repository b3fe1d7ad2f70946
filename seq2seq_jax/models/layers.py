"""Building blocks shared by every model family: FeedForward, token embeddings, positional encodings.

Shapes: B batch, L length, D d_model, V vocabulary size.
"""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from seq2seq_jax.special_tokens import PAD_ID

def shift_right(targets, bos_id: int, pad_id: int = PAD_ID):
  """Teacher-forcing decoder input: [B, T] -> [B, T] = [BOS, y_1, ..., y_{T-1}] (pads stay pads)."""
  shifted = jnp.pad(targets, ((0, 0), (1, 0)), constant_values=bos_id)[:, :-1]
  return jnp.where(targets == pad_id, pad_id, shifted)


ACTIVATIONS = {"relu": nn.relu, "gelu": nn.gelu, "tanh": jnp.tanh, "silu": nn.silu}


def float32_sum_dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None,
                            **kwargs):
  """`lax.dot_general` that sums its products in float32 and rounds the result once, to
  `preferred_element_type` or else the operands' dtype; for float32 operands it is `lax.dot_general`.

  With bfloat16 operands this is the usual mixed-precision product (bfloat16 inputs, float32
  accumulation).  It is also the form XLA:CPU runs on its bfloat16 matrix-unit path; a product
  asked for a bfloat16 result takes a slower path (experiments/benchmarks/README.md).
  The products of its gradient are asked for float32 sums too (`_layer_product`), which JAX's own
  derivative of `lax.dot_general` would ask for in bfloat16.  Pass it as `dot_general=` to
  `nn.Dense`/`nn.DenseGeneral`.
  """
  out_dtype = jnp.dtype(preferred_element_type or jnp.result_type(lhs, rhs))
  (lhs_contract, rhs_contract), batch = dimension_numbers
  k = len(lhs_contract)
  if (lhs.dtype == jnp.float32 or kwargs or batch != ((), ()) or tuple(rhs_contract) != tuple(range(k))
      or tuple(lhs_contract) != tuple(range(lhs.ndim - k, lhs.ndim))):
    out = lax.dot_general(lhs, rhs, dimension_numbers, precision, preferred_element_type=jnp.float32, **kwargs)
    return out.astype(out_dtype)
  return _layer_product(lhs, rhs, k, precision, out_dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _layer_product(x, w, k, precision, out_dtype):
  """A layer's product x [..., C] w [C, O] over the k axes C, summed in float32 -> [..., O]."""
  dims = ((tuple(range(x.ndim - k, x.ndim)), tuple(range(k))), ((), ()))
  return lax.dot_general(x, w, dims, precision, preferred_element_type=jnp.float32).astype(out_dtype)


def _layer_product_fwd(x, w, k, precision, out_dtype):
  return _layer_product(x, w, k, precision, out_dtype), (x, w)


def _layer_product_bwd(k, precision, out_dtype, residuals, g):
  """dx = g w^T over the O axes, dw = x^T g over the leading axes; operands in x's and w's dtype,
  sums in float32."""
  del out_dtype
  x, w = residuals
  out_axes, lead_axes = w.ndim - k, x.ndim - k
  g = g.astype(w.dtype)
  dx = lax.dot_general(g, w, ((tuple(range(g.ndim - out_axes, g.ndim)), tuple(range(k, w.ndim))), ((), ())),
                       precision, preferred_element_type=jnp.float32)
  dw = lax.dot_general(x, g.astype(x.dtype), ((tuple(range(lead_axes)), tuple(range(lead_axes))), ((), ())),
                       precision, preferred_element_type=jnp.float32)
  return dx.astype(x.dtype), dw.astype(w.dtype)


_layer_product.defvjp(_layer_product_fwd, _layer_product_bwd)


class FeedForward(nn.Module):
  """Position-wise feed-forward network, Vaswani et al. (2017) §3.3, eq. (2).

  FFN(x) = act(x W1 + b1) W2 + b2, applied to each position separately.
  [..., D] -> [..., output_dim or D].
  """
  hidden_dim: int
  output_dim: int | None = None
  activation: str = "relu"
  dropout: float = 0.0  # on the hidden activations
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    out_dim = self.output_dim or x.shape[-1]
    h = nn.Dense(self.hidden_dim, dtype=self.dtype, dot_general=float32_sum_dot_general, name="hidden")(x)
    h = ACTIVATIONS[self.activation](h)
    h = nn.Dropout(self.dropout)(h, deterministic=not train)
    return nn.Dense(out_dim, dtype=self.dtype, dot_general=float32_sum_dot_general, name="output")(h)


class TokenEmbedding(nn.Module):
  """Token embedding scaled by sqrt(d_model) (Vaswani et al. §3.4); `attend` is the tied output layer.

  ids [B, L] int -> [B, L, D];  attend: [B, L, D] -> logits [B, L, V].
  """
  vocab_size: int
  features: int
  scale: bool = True
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    self.table = nn.Embed(self.vocab_size, self.features, dtype=self.dtype,
                          embedding_init=nn.initializers.normal(stddev=self.features**-0.5))

  def __call__(self, ids):
    x = self.table(ids)
    return x * math.sqrt(self.features) if self.scale else x

  def attend(self, x):
    return tied_logits(x, self.table.embedding.astype(self.dtype))


@jax.custom_vjp
def tied_logits(x, table):
  """The pre-softmax projection tied to an embedding (Vaswani et al. §3.4): logits = x E^T.

  x [..., D], table E [V, D] -> float32 logits [..., V] (summed in float32 for bfloat16 x, E).  Plain autodiff computes dE = g^T x from the [N, V]
  cotangent g, which XLA's CPU backend feeds to the matrix product as a transposed copy of g (the
  largest array of the step); `_tied_logits_bwd` computes the same dE as (x^T g)^T, which reads g
  in place and transposes only the small [D, V] result.
  """
  return jnp.einsum("...d,vd->...v", x, table, preferred_element_type=jnp.float32)


def _tied_logits_fwd(x, table):
  return tied_logits(x, table), (x, table)


def _tied_logits_bwd(residuals, g):
  x, table = residuals
  flat_x, flat_g = x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1]).astype(x.dtype)
  dx = jnp.dot(flat_g, table, preferred_element_type=jnp.float32).reshape(x.shape)
  dtable = jnp.dot(flat_x.T, flat_g, preferred_element_type=jnp.float32).T
  return dx.astype(x.dtype), dtable.astype(table.dtype)


tied_logits.defvjp(_tied_logits_fwd, _tied_logits_bwd)


def sinusoidal_table(max_len: int, features: int) -> np.ndarray:
  """PE(pos, 2i) = sin(pos / 10000^(2i/D)), PE(pos, 2i+1) = cos(...) (Vaswani et al. §3.5). [max_len, D]."""
  position = np.arange(max_len)[:, None]
  div = np.exp(np.arange(0, features, 2) * -(math.log(10000.0) / features))
  table = np.zeros((max_len, features), np.float32)
  table[:, 0::2] = np.sin(position * div)
  table[:, 1::2] = np.cos(position * div)[:, : features // 2]
  return table


class PositionalEncoding(nn.Module):
  """Adds sinusoidal (fixed) or learned (Vaswani et al. §3.5, Table 3 row E) position vectors.

  x [B, L, D] -> [B, L, D], positions 0..L-1.  With `decode=True` the positions continue from a
  counter kept in the `cache` collection, so step t of incremental decoding gets position t.
  """
  max_len: int
  kind: str = "sinusoidal"  # or "learned"

  @nn.compact
  def __call__(self, x, decode: bool = False):
    length, features = x.shape[-2:]
    if self.kind == "sinusoidal":
      table = jnp.asarray(sinusoidal_table(self.max_len, features))
    elif self.kind == "learned":
      table = self.param("table", nn.initializers.normal(stddev=0.02), (self.max_len, features))
    else:
      raise ValueError(f"positional encoding must be 'sinusoidal' or 'learned', got {self.kind!r}")
    positions = jnp.arange(length)
    if decode:
      is_initialized = self.has_variable("cache", "position")
      offset = self.variable("cache", "position", lambda: jnp.array(0, jnp.int32))
      if is_initialized:
        positions = positions + offset.value
        offset.value = offset.value + length
    return x + jnp.take(table, positions, axis=0, mode="clip").astype(x.dtype)
