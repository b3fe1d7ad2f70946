"""Checkpoint averaging: the element-wise mean of several checkpoints' parameters.

Vaswani et al. (2017, §6.1) report models "obtained by averaging the last 5 checkpoints"; fairseq's
`average_checkpoints.py` does the same.  Means are taken in float32 and cast back to each
parameter's dtype.
"""

import jax
import jax.numpy as jnp


def mean_params(trees: list):
  """The element-wise mean of parameter trees of one structure and shapes."""
  if not trees:
    raise ValueError("nothing to average")
  total = jax.tree.map(lambda *leaves: sum(jnp.asarray(x, jnp.float32) for x in leaves), *trees)
  return jax.tree.map(lambda t, x: (t / len(trees)).astype(x.dtype), total, trees[0])
