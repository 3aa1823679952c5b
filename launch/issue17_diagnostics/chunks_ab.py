"""Training step with the kernel gradients in batch chunks where nets.conv.kernel_gradient_chunk
says so, and with no chunks, in one process (issue #17). Both steps are compiled, then timed one
call each in turn for --rounds rounds, so that the machine's drift (this 2-core machine's speed
varies by 30% within minutes) falls on both alike; medians.

  VAE_JAX_DATA_DIR=../shared/data PYTHONPATH=. \\
      python launch/issue17_diagnostics/chunks_ab.py pixel,standard,mnist [--rounds=30]
"""
import statistics
import time

from absl import app, flags
import jax
import numpy as np

from vae_jax import config_files, parallel, train
from vae_jax.nets import conv

flags.DEFINE_integer("rounds", 30, "Calls of each step, alternately.")
FLAGS = flags.FLAGS


def compiled_step(cell: str, chunks):
  """The cell's training step, traced with `chunks` in place of kernel_gradient_chunk."""
  rule = conv.kernel_gradient_chunk
  conv.kernel_gradient_chunk = chunks
  try:
    run = train.setup_run(config_files.load(f"configs/xu2020.py:{cell}"))
    optimizer = train.make_optimizer(run.config.train, run.total_steps)
    state = train.create_train_state(run, optimizer)
    order = parallel.replicate(np.arange(run.train_images.shape[0]), run.mesh)
    step = jax.jit(train.make_train_step(run, optimizer)).lower(
        state, run.train_images, order).compile()
  finally:
    conv.kernel_gradient_chunk = rule
  return lambda: step(state, run.train_images, order), run.config.train.batch_size


def main(argv):
  rule = conv.kernel_gradient_chunk
  arms = {"chunked": rule, "unchunked": lambda image_shape: None}
  print(f"{jax.devices()[0].platform}, jax {jax.__version__}; median ms per step over "
        f"{FLAGS.rounds} alternating calls (images/s)", flush=True)
  for cell in argv[1:]:
    steps = {label: compiled_step(cell, chunks) for label, chunks in arms.items()}
    times = {label: [] for label in arms}
    for label, (call, _) in steps.items():
      jax.block_until_ready(call())
    for _ in range(FLAGS.rounds):
      for label, (call, _) in steps.items():
        start = time.perf_counter()
        jax.block_until_ready(call())
        times[label].append(time.perf_counter() - start)
    medians = {label: statistics.median(t) for label, t in times.items()}
    print(cell, "; ".join(f"{label}: {1000 * m:.1f} ms ({steps[label][1] / m:.1f})"
                          for label, m in medians.items()),
          f"; chunked / unchunked time {medians['chunked'] / medians['unchunked']:.2f}",
          flush=True)


if __name__ == "__main__":
  app.run(main)
