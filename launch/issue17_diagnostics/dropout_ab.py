"""The PixelVAE's training step with Flax's nn.Dropout and with vae_jax.nets.dropout.Dropout (the
threefry hash unrolled), in one process (issue #17): the metrics and parameters after one step
from the same state, which must be equal bit for bit, then one call of each step in turn for
--rounds rounds (medians; this 2-core machine's speed drifts by 30% within minutes).

  VAE_JAX_DATA_DIR=../shared/data PYTHONPATH=. \\
      python launch/issue17_diagnostics/dropout_ab.py pixel,standard,mnist [--rounds=20]
"""
import statistics
import time

from absl import app, flags
import flax.linen as nn
import jax
import numpy as np

from vae_jax import config_files, parallel, train
from vae_jax.nets import pixelcnn

flags.DEFINE_integer("rounds", 20, "Calls of each step, alternately.")
FLAGS = flags.FLAGS


def main(argv):
  print(f"{jax.devices()[0].platform}, jax {jax.__version__}; median ms per step over "
        f"{FLAGS.rounds} alternating calls", flush=True)
  arms = {"nn.Dropout": nn.Dropout, "vae_jax Dropout": pixelcnn.Dropout}
  for cell in argv[1:]:
    run = train.setup_run(config_files.load(f"configs/xu2020.py:{cell}"))
    optimizer = train.make_optimizer(run.config.train, run.total_steps)
    state = train.create_train_state(run, optimizer)
    order = parallel.replicate(np.arange(run.train_images.shape[0]), run.mesh)
    steps, results = {}, {}
    for label, layer in arms.items():
      pixelcnn.Dropout = layer  # the module global GatedResidualBlock looks up when traced
      try:
        step = jax.jit(train.make_train_step(run, optimizer)).lower(
            state, run.train_images, order).compile()
      finally:
        pixelcnn.Dropout = arms["vae_jax Dropout"]
      steps[label] = lambda step=step: step(state, run.train_images, order)
      results[label] = jax.tree.leaves(jax.device_get(steps[label]()))
    equal = all(np.array_equal(a, b) for a, b in zip(*results.values()))
    times = {label: [] for label in arms}
    for _ in range(FLAGS.rounds):
      for label, call in steps.items():
        start = time.perf_counter()
        jax.block_until_ready(call())
        times[label].append(time.perf_counter() - start)
    medians = {label: statistics.median(t) for label, t in times.items()}
    print(cell, "; ".join(f"{label}: {1000 * m:.1f} ms" for label, m in medians.items()),
          f"; time ratio {medians['vae_jax Dropout'] / medians['nn.Dropout']:.3f}; state and "
          f"metrics after one step {'bit for bit equal' if equal else 'DIFFERENT'}", flush=True)


if __name__ == "__main__":
  app.run(main)
