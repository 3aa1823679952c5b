"""A run's setup: its config (given, or read back from its workdir), its data on the devices, its
model and mesh; and the lock that keeps one run per workdir."""
import contextlib
import dataclasses
import fcntl
import os
import platform
from typing import Any

import jax

from vae_jax import configuration, data, parallel
from vae_jax.models import LatentVariableModel, create_model, factory


AUTO_STEPS_PER_CALL = 50  # for the models that a device loop makes faster (Run.steps_per_call)


@dataclasses.dataclass(frozen=True)
class Run:
  """Everything a run needs besides its state: config, data on device, model, mesh."""
  config: Any
  dataset: data.Dataset
  model: LatentVariableModel
  mesh: Any
  train_images: jax.Array
  validation_images: Any
  test_images: jax.Array
  steps_per_epoch: int

  @property
  def total_steps(self) -> int:
    return max(1, round(self.config.train.num_epochs * self.steps_per_epoch))

  @property
  def steps_per_call(self) -> int:
    """config.train.steps_per_call, or where it is 0 the fast choice for this model and device:
    one step per call for convolutional models on a CPU, whose gradient convolutions inside a
    device loop miss XLA:CPU's fast kernels (a ConvVAE step 17x slower, issue #7), else
    AUTO_STEPS_PER_CALL (for the VampPrior paper's VAE on a CPU, 1.4x the images/s of one step
    per call with the standard prior and 1.9x with K = 500 pseudo-inputs; issue #18)."""
    chosen = self.config.train.steps_per_call
    if chosen:
      return chosen
    convolutional = factory.convolutional(self.config.model)
    on_cpu = self.mesh.devices.flat[0].platform == "cpu"
    return 1 if convolutional and on_cpu else AUTO_STEPS_PER_CALL

  def keys(self):
    """(init, train, data order, evaluation) keys from the seed."""
    return jax.random.split(jax.random.PRNGKey(self.config.seed), 4)


def setup_run(config, devices=None) -> Run:
  mesh = parallel.data_mesh(devices)
  configuration.validate(config, mesh.size)
  dataset = data.load(config.data)
  if dataset.binary != factory.binary_pixels(config.model):
    likelihood = config.model.likelihood
    wanted = "bernoulli" if dataset.binary else "discretized_logistic"
    raise configuration.ConfigError(
        f"{dataset.name} has {'binary' if dataset.binary else '8-bit'} pixels but "
        f"config.model.likelihood.name={likelihood.name!r} models "
        f"{'8-bit' if dataset.binary else 'binary'} ones; set it to {wanted!r}.")
  steps_per_epoch = dataset.train.shape[0] // config.train.batch_size
  if steps_per_epoch == 0:
    raise configuration.ConfigError(
        f"config.train.batch_size={config.train.batch_size} exceeds the "
        f"{dataset.train.shape[0]} training images of {dataset.name}.")
  on_device = lambda a: None if a is None else parallel.replicate(a, mesh)
  return Run(config=config, dataset=dataset,
             model=create_model(config.model, dataset.image_shape), mesh=mesh,
             train_images=on_device(dataset.train),
             validation_images=on_device(dataset.validation),
             test_images=on_device(dataset.test), steps_per_epoch=steps_per_epoch)


def workdir_config(workdir: str):
  """The config a training workdir was run with."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: --workdir must be a vae_jax training workdir.")
  with open(path, encoding="utf-8") as f:
    return configuration.from_json(f.read())


class WorkdirBusyError(RuntimeError):
  """Another process is training in the workdir."""


@contextlib.contextmanager
def workdir_lock(workdir: str):
  """Holds an exclusive OS lock (flock) on <workdir>/lock while a run trains there, so that a
  second run in the same workdir stops at once, naming the holder. The OS releases the lock when
  its process exits in any way, so a lock file left by a killed run locks nothing. Only JAX
  process 0 locks: the processes of one multi-host run share the workdir."""
  if jax.process_index() != 0:
    yield
    return
  with open(os.path.join(workdir, "lock"), "a+", encoding="utf-8") as f:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      f.seek(0)
      raise WorkdirBusyError(f"{workdir} is in use by another run ({f.read().strip()}): wait for "
                             "it to finish, or give another --workdir.") from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on {platform.node()}\n")
    f.flush()
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)
