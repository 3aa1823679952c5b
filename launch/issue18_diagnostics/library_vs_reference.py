"""The library's training step for the VampPrior paper's VAE against vae_jax.reference_step, in
alternating rounds in one process, for any checkout of the library: issue #18's before and after.

  PYTHONPATH=<checkout> python launch/issue18_diagnostics/library_vs_reference.py \
      PRIOR STEPS_PER_CALL

PRIOR is standard or vampprior; STEPS_PER_CALL is the library's (the reference runs 50 per call).
The reference step is loaded from this file's checkout, so an old checkout without it works.
"""
import importlib.util
import os
import sys
import time

import jax
import numpy as np

from vae_jax import config_files, parallel, train

vampprior = config_files.module("configs/vampprior.py")

prior, steps_per_call = sys.argv[1], int(sys.argv[2])
spec = importlib.util.spec_from_file_location("reference_step", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "vae_jax", "reference_step.py"))
reference_step = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reference_step)

config = vampprior.get_config(f"static_mnist-vae-{prior}")
config.train.steps_per_call = steps_per_call
run = train.setup_run(config)
optimizer = train.make_optimizer(config.train, run.total_steps)
train_steps = train.make_train_steps(run, optimizer)
order = parallel.replicate(np.arange(run.train_images.shape[0]), run.mesh)
holder = [train.create_train_state(run, optimizer)]


def library_call():
  holder[0], sums = train_steps(holder[0], run.train_images, order, steps_per_call)
  return sums


components = config.model.prior.num_components if prior == "vampprior" else 0
calls = {"library": (library_call, steps_per_call),
         "reference": (reference_step.make(components, 50), 50)}
rates = {name: [] for name in calls}
for name, (call, _) in calls.items():
  jax.block_until_ready(call())
for _ in range(5):
  for name, (call, steps) in calls.items():
    n, start = 0, time.perf_counter()
    while n < 3 or time.perf_counter() - start < 2.0:
      jax.block_until_ready(call())
      n += 1
    rates[name].append(n * steps * config.train.batch_size / (time.perf_counter() - start))
library, reference = (float(np.median(rates[name])) for name in calls)
print(f"{prior}, library {steps_per_call} steps per call: library {library:,.0f} img/s, "
      f"reference {reference:,.0f} img/s, ratio {library / reference:.2f} "
      f"({jax.device_count()} {jax.devices()[0].platform} device(s), jax {jax.__version__})")
