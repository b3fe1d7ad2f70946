"""Data parallelism: a mesh over all devices with one named axis, and steps wrapped in shard_map.

The steps in `step.py` use collectives over `DATA_AXIS`; `data_parallel` runs them with the batch
split along that axis and everything else replicated.  The same step also runs under
`jax.pmap(step, axis_name=DATA_AXIS)`.
"""

import functools

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices=None) -> jax.sharding.Mesh:
  """A 1-D mesh named `DATA_AXIS` over `devices` (default: all devices of all processes)."""
  devices = jax.devices() if devices is None else devices
  return jax.sharding.Mesh(np.asarray(devices), (DATA_AXIS,),
                           axis_types=(jax.sharding.AxisType.Auto,))


def replicate(tree, mesh):
  """Places every leaf on every device of the mesh."""
  return jax.device_put(tree, NamedSharding(mesh, P()))


def shard_batch(batch, mesh):
  """Splits every batch array along its leading axis over the mesh's data axis."""
  return jax.device_put(batch, NamedSharding(mesh, P(DATA_AXIS)))


def data_parallel(step_fn, mesh, batch_argnums, donate_argnums=(), **static_kwargs):
  """jit(shard_map(step_fn)): arguments at `batch_argnums` are sharded along the data axis, all
  others and all outputs replicated.  `static_kwargs` are bound into the step."""
  fn = functools.partial(step_fn, axis_name=DATA_AXIS, **static_kwargs)

  def wrapped(*args):
    in_specs = tuple(P(DATA_AXIS) if i in batch_argnums else P() for i in range(len(args)))
    return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=P(), check_vma=False)(*args)

  return jax.jit(wrapped, donate_argnums=donate_argnums)
