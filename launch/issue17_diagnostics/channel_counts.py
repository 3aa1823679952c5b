"""Forward convolutions of the PixelCNN's shapes (batch 64 of 28x28 maps, 2x3 kernels) with its
33 and 66 channels against 32 and 64, timed one call each in turn for --rounds rounds (medians;
issue #17): XLA:CPU's convolutions run slower per FLOP at channel counts one above a multiple
of 8, the reason the PixelVAE's step reaches a lower fraction of the matmul peak than the other
convolutional families (B.2 fixes its 33 features).

  PYTHONPATH=. python launch/issue17_diagnostics/channel_counts.py [--rounds=15]
"""
import statistics
import time

from absl import app, flags
import jax
from jax import lax

from vae_jax import CPU_FUSION_FLAG  # importing vae_jax sets it: XLA's own convolutions

flags.DEFINE_integer("rounds", 15, "Calls of each convolution, alternately.")
FLAGS = flags.FLAGS
# (input channels, output channels): the PixelCNN's gated block's two convolutions, and the
# nearest multiples of 8.
CHANNELS = ((33, 33), (32, 32), (33, 66), (32, 64), (32, 66), (33, 64))


def main(argv):
  del argv
  kernel_shape, batch = (2, 3), (64, 28, 28)
  calls = {}
  for c_in, c_out in CHANNELS:
    x = jax.random.normal(jax.random.PRNGKey(0), batch + (c_in,))
    kernel = jax.random.normal(jax.random.PRNGKey(1), kernel_shape + (c_in, c_out))
    conv = jax.jit(lambda x, k: lax.conv_general_dilated(
        x, k, (1, 1), ((1, 0), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")))
    jax.block_until_ready(conv(x, kernel))
    flops = 2 * 64 * 28 * 28 * c_in * c_out * kernel_shape[0] * kernel_shape[1]
    calls[(c_in, c_out)] = (lambda conv=conv, x=x, kernel=kernel: conv(x, kernel), flops)
  times = {key: [] for key in calls}
  for _ in range(FLAGS.rounds):
    for key, (call, _) in calls.items():
      start = time.perf_counter()
      jax.block_until_ready(call())
      times[key].append(time.perf_counter() - start)
  print(f"{jax.devices()[0].platform}, jax {jax.__version__} ({CPU_FUSION_FLAG}); 2x3 "
        f"convolution of 64 x 28 x 28 maps, median of {FLAGS.rounds} alternating calls")
  for (c_in, c_out), (_, flops) in calls.items():
    median = statistics.median(times[(c_in, c_out)])
    print(f"{c_in:3d} -> {c_out:3d} channels: {1000 * median:6.2f} ms, "
          f"{flops / median / 1e9:6.1f} GFLOP/s")


if __name__ == "__main__":
  app.run(main)
