"""Time of each convolution of the B.5 CIFAR-10 ResnetVAE and of its two gradients, one layer at a
time, on this machine's default device: where a training step's time goes (results/README.md,
issue #17 part 2).

  python launch/conv_gradients.py --batch_size=128 [--width=0.25] [--scan_chunks=2,4,8,16,32]

For each 3x3 layer shape of B.5 (channels scaled by --width) it prints the forward time, the
input gradient (dx), the kernel gradient (dW) as JAX computes it and as nets.conv computes it (in
batch chunks where nets.conv.kernel_gradient_chunk says so), and for the stride-2 transposed
convolutions JAX's own gradients against nets.conv.strided_conv_transpose's.
"""
import time

from absl import app, flags
import jax
import jax.numpy as jnp
from jax import lax

from vae_jax.nets import conv

flags.DEFINE_integer("batch_size", 128, "Images per call (B.5 trains with 128).")
flags.DEFINE_float("width", 1.0, "Fraction of B.5's channel counts (the width=<fraction> token).")
flags.DEFINE_float("seconds", 1.5, "Minimum timed seconds per measurement.")
flags.DEFINE_list("scan_chunks", [], "Also time the kernel gradient in chunks of each of these "
                  "sizes (images), whatever kernel_gradient_chunk chooses, e.g. 2,4,8,16,32.")
FLAGS = flags.FLAGS

_NUMBERS = ("NHWC", "HWIO", "NHWC")
# (height = width, channels) of B.5's stride-1 3x3 layers, and (input height, in, out channels)
# of its stride-2 transposed ones.
_STRIDE_1 = ((32, 96), (16, 192), (8, 256))
_UPSAMPLING = ((8, 256, 192), (16, 192, 96))


def _ms(fn, *args) -> float:
  jax.block_until_ready(fn(*args))
  calls, start = 0, time.perf_counter()
  while calls < 3 or time.perf_counter() - start < FLAGS.seconds:
    jax.block_until_ready(fn(*args))
    calls += 1
  return 1000 * (time.perf_counter() - start) / calls


def _convolve(x, kernel):
  return lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=_NUMBERS)


def _kernel_gradient(convolve):
  return jax.jit(lambda x, dy, kernel: jax.vjp(lambda k: convolve(x, k), kernel)[1](dy)[0])


def main(argv):
  del argv
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  n = FLAGS.batch_size
  channels_of = lambda c: conv.scaled_channels(c, FLAGS.width)
  print(f"{jax.devices()[0].device_kind}, jax {jax.__version__}, batch {n}, width {FLAGS.width}; "
        "milliseconds")
  for size, channels in _STRIDE_1:
    channels = channels_of(channels)
    x = jax.random.normal(keys[0], (n, size, size, channels))
    dy = jax.random.normal(keys[1], x.shape)
    kernel = 0.05 * jax.random.normal(keys[2], (3, 3, channels, channels))
    input_gradient = jax.jit(lambda dy, k, x=x: jax.vjp(lambda v: _convolve(v, k), x)[1](dy)[0])
    ours = lambda x, k: conv.conv2d(x, k, 1)
    print(f"conv 3x3 {size}x{size}x{channels}: forward {_ms(jax.jit(_convolve), x, kernel):.1f}, "
          f"dx {_ms(input_gradient, dy, kernel):.1f}, "
          f"dW: JAX's {_ms(_kernel_gradient(_convolve), x, dy, kernel):.1f}, conv2d's "
          f"{_ms(_kernel_gradient(ours), x, dy, kernel):.1f} "
          f"(chunk {conv.kernel_gradient_chunk(x.shape)})", flush=True)
    for chunk in map(int, FLAGS.scan_chunks):
      chunked = jax.jit(lambda x, dy, k, c=chunk: conv._chunked_kernel_vjp(  # pylint: disable=protected-access
          _convolve, x, k, dy, c))
      print(f"  dW in chunks of {chunk}: {_ms(chunked, x, dy, kernel):.1f}", flush=True)
  for size, channels_in, channels_out in _UPSAMPLING:
    channels_in, channels_out = channels_of(channels_in), channels_of(channels_out)
    x = jax.random.normal(keys[0], (n, size, size, channels_in))
    kernel = 0.05 * jax.random.normal(keys[2], (3, 3, channels_in, channels_out))
    jax_own = lambda x, k: lax.conv_transpose(x, k, (2, 2), "SAME", dimension_numbers=_NUMBERS)
    ours = lambda x, k: conv.strided_conv_transpose(x, k, 2)
    gradients = lambda f: jax.jit(jax.grad(lambda x, k: jnp.sum(jnp.sin(f(x, k))), (0, 1)))
    print(f"transposed 3x3 stride 2 {size}x{size}x{channels_in} -> {channels_out}: forward "
          f"{_ms(jax.jit(jax_own), x, kernel):.1f}, forward and both gradients: JAX's "
          f"{_ms(gradients(jax_own), x, kernel):.1f}, strided_conv_transpose's "
          f"{_ms(gradients(ours), x, kernel):.1f}", flush=True)


if __name__ == "__main__":
  app.run(main)
