"""The first training losses of a model at seed 0, one jitted step at a time: run against two
checkouts (PYTHONPATH=<checkout>) to check that a speed change leaves the training unchanged.

  PYTHONPATH=. python launch/issue18_diagnostics/losses.py configs/vampprior.py:static_mnist-vae-standard 200
  PYTHONPATH=. python launch/issue18_diagnostics/losses.py configs/xu2020.py:dense,rnvp_prior,K=20,mnist 200
prints every 50th loss and the last, to 7 significant digits. (Checkouts before issue #20 took
`vampprior:<cell>` and `xu2020:<cell>`.)
"""
import sys

import jax
import jax.numpy as jnp

from vae_jax import config_files, train

num_steps = int(sys.argv[2])
config = config_files.load(sys.argv[1])
run = train.setup_run(config)
optimizer = train.make_optimizer(config.train, run.total_steps)
state = train.create_train_state(run, optimizer)
step = jax.jit(train.make_train_step(run, optimizer))
order = jnp.arange(run.train_images.shape[0])
for i in range(1, num_steps + 1):
  state, metrics = step(state, run.train_images, order)
  if i % 50 == 0 or i in (1, num_steps):
    print(f"step {i}: loss {float(metrics['loss']):.7g}", flush=True)
