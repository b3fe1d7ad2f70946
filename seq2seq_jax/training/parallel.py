"""Data parallelism over every device of every process, and multi-process start-up.

The steps in `step.py` use collectives over `DATA_AXIS`.  `data_parallel` runs them as
jit(shard_map) on a 1-D mesh over `jax.devices()` (all hosts): the batch is split along the axis,
everything else replicated.  `pmap_data_parallel` runs the same step under `jax.pmap` for code that
keeps a leading device axis (no flax `jax_utils` / `common_utils` needed: `pmap_replicate`,
`pmap_shard`, `pmap_unreplicate`).

Multi-host: call `initialize_distributed` before anything touches devices; every process then
builds the same global batch and `shard_batch` feeds only the rows its own devices hold.
"""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P

from seq2seq_jax.errors import UsageError

DATA_AXIS = "data"


def cluster_from_environment(env) -> str | None:
  """The multi-process launcher that `env` (a mapping like os.environ) shows, or None.

  Only launches with more than one process count: JAX_COORDINATOR_ADDRESS set; SLURM (srun with
  SLURM_NTASKS > 1); Open MPI (mpirun, OMPI_COMM_WORLD_SIZE > 1); a TPU pod slice (more than one
  host in TPU_PROCESS_ADDRESSES / TPU_WORKER_HOSTNAMES).  These are the environments in which
  `jax.distributed.initialize()` finds its arguments by itself.  Under SLURM only the tasks of an
  `srun` step count (they have SLURM_STEP_NODELIST): a batch script's own process is one process
  even in an allocation of several tasks.
  """
  if env.get("JAX_COORDINATOR_ADDRESS"):
    return "jax"
  slurm = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID")
  if all(k in env for k in slurm) and int(env["SLURM_NTASKS"]) > 1:
    return "slurm"
  if "OMPI_MCA_orte_hnp_uri" in env and int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
    return "openmpi"
  hosts = env.get("TPU_PROCESS_ADDRESSES") or env.get("TPU_WORKER_HOSTNAMES") or ""
  if len([h for h in hosts.split(",") if h.strip()]) > 1:
    return "tpu_pod"
  return None


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None, env=None) -> bool:
  """Starts jax.distributed; must run before anything touches devices.  Returns whether it did.

  With explicit values (all three together) they are used as given; with none, initialises only
  when `cluster_from_environment(env or os.environ)` names a launcher, letting JAX read that
  launcher's variables; otherwise (one process) does nothing.
  """
  explicit = (coordinator_address, num_processes, process_id)
  if any(v is not None for v in explicit):
    if any(v is None for v in explicit):
      raise UsageError("--coordinator_address, --num_processes and --process_id go together: give all three")
    if num_processes < 1 or not 0 <= process_id < num_processes:
      raise UsageError(f"--process_id={process_id} must be in [0, --num_processes={num_processes})")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
    return True
  if cluster_from_environment(os.environ if env is None else env) is None:
    return False
  jax.distributed.initialize()
  return True


def sync_processes(name: str) -> None:
  """Waits until every process reaches the barrier `name` (nothing to wait for with one process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def wait_for_processes(name: str, timeout_s: int = 4 * 3600) -> None:
  """Waits until every process reaches the barrier `name` of jax.distributed's coordination service.

  Unlike `sync_processes` this runs no device collective, whose set-up gives up when a process is
  more than about 30 s late (on CPU, gloo's "GetKeyValue() timed out"): use it around work that
  one process does alone for longer, such as preparing a dataset the others then read.
  """
  if jax.process_count() > 1:
    from jax._src import distributed  # pylint: disable=g-import-not-at-top  (no public barrier without devices)
    distributed.global_state.client.wait_at_barrier(name, timeout_s * 1000)


def chief_first(name: str, fn):
  """fn() in process 0, then, once it returned, in every other process (fn()'s result in each).

  For work that writes to a shared directory once and reads it after, e.g. a dataset prepared in a
  shared --data_dir: the other processes find it ready instead of writing it at the same time."""
  if jax.process_count() == 1:
    return fn()
  result = fn() if jax.process_index() == 0 else None
  wait_for_processes(name)
  return result if jax.process_index() == 0 else fn()


def make_mesh(devices=None) -> jax.sharding.Mesh:
  """A 1-D mesh named `DATA_AXIS` over `devices` (default: all devices of all processes)."""
  devices = jax.devices() if devices is None else devices
  return jax.sharding.Mesh(np.asarray(devices), (DATA_AXIS,),
                           axis_types=(jax.sharding.AxisType.Auto,))


def replicate(tree, mesh):
  """Places every leaf (the same value in every process) on every device of the mesh.

  Each process copies its own value to its own devices, so this also works for arrays already
  committed to one local device (a freshly initialised or restored state) in a multi-process mesh.
  """
  sharding = NamedSharding(mesh, P())

  def put(x):
    copies = [jax.device_put(x, d) for d in mesh.local_devices]  # in mesh order
    return jax.make_array_from_single_device_arrays(jnp.shape(x), sharding, copies)

  return jax.tree.map(put, tree)


def process_rows(sharding, global_shape) -> slice:
  """The rows of a [B, ...] array split by `sharding` that this process's devices hold (one
  contiguous block: the mesh lists each process's devices together, as jax.devices() does)."""
  blocks = sorted({idx[0].indices(global_shape[0])[:2]
                   for idx in sharding.addressable_devices_indices_map(global_shape).values()})
  for (_, stop), (start, _) in zip(blocks, blocks[1:]):
    if stop != start:
      raise ValueError(f"this process's rows {blocks} are not one block; order the mesh by process")
  return slice(blocks[0][0], blocks[-1][1])


def shard_batch(batch, mesh):
  """Global batch (numpy, the same in every process) -> global arrays split along the data axis.

  Each process contributes only the rows its own devices hold
  (`jax.make_array_from_process_local_data`); with one process that is the whole batch.
  """
  sharding = NamedSharding(mesh, P(DATA_AXIS))

  def put(x):
    x = np.asarray(x)
    return jax.make_array_from_process_local_data(sharding, x[process_rows(sharding, x.shape)], x.shape)

  return jax.tree.map(put, batch)


def data_parallel(step_fn, mesh, batch_argnums, donate_argnums=(), **static_kwargs):
  """jit(shard_map(step_fn)): arguments at `batch_argnums` are sharded along the data axis, all
  others and all outputs replicated.  `static_kwargs` are bound into the step."""
  fn = functools.partial(step_fn, axis_name=DATA_AXIS, **static_kwargs)

  def wrapped(*args):
    in_specs = tuple(P(DATA_AXIS) if i in batch_argnums else P() for i in range(len(args)))
    return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=P(), check_vma=False)(*args)

  return jax.jit(wrapped, donate_argnums=donate_argnums)


def pmap_data_parallel(step_fn, devices=None, donate_argnums=(), **static_kwargs):
  """jax.pmap(step_fn) over `DATA_AXIS` on `devices` (default: this process's devices).

  Every argument and output carries a leading device axis: pass batches through `pmap_shard` and
  everything else through `pmap_replicate`; `pmap_unreplicate` takes device 0's copy of an output.
  """
  fn = functools.partial(step_fn, axis_name=DATA_AXIS, **static_kwargs)
  return jax.pmap(fn, axis_name=DATA_AXIS, devices=devices, donate_argnums=donate_argnums)


def pmap_replicate(tree, num_devices: int):
  """Every leaf [...] -> [num_devices, ...], the same value for each device."""
  return jax.tree.map(lambda x: jnp.broadcast_to(x, (num_devices, *jnp.shape(x))), tree)


def pmap_shard(batch, num_devices: int):
  """Every batch array [B, ...] -> [num_devices, B / num_devices, ...] (device i: the i-th block)."""
  def split(x):
    x = np.asarray(x)
    if x.shape[0] % num_devices:
      raise UsageError(f"batch of {x.shape[0]} rows does not split over {num_devices} devices")
    return x.reshape(num_devices, x.shape[0] // num_devices, *x.shape[1:])
  return jax.tree.map(split, batch)


def pmap_unreplicate(tree):
  """[num_devices, ...] -> [...]: device 0's copy of every leaf."""
  return jax.tree.map(lambda x: x[0], tree)
