"""One 3x3 convolution layer, forward alone and forward with both gradients, as XLA:CPU compiles
it under the XLA_FLAGS of this process (issue #17 part 2: YNNPACK's convolutions against XLA's).
vae_jax is not imported, so its own flag (vae_jax/__init__.py) does not apply:

  python launch/issue17_diagnostics/layer_libraries.py        # XLA's default: YNNPACK
  XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=individual_dot,reduce \
      python launch/issue17_diagnostics/layer_libraries.py    # XLA's own convolutions
"""
import time

import jax
from jax import lax
import jax.numpy as jnp

# (batch, height, width, in channels, out channels): the ConvVAE's 28x28x32 layer at its batch,
# and B.5's 32x32x96 and 16x16x192 layers at batch 32.
SHAPES = ((128, 28, 28, 32, 64), (32, 32, 32, 96, 96), (32, 16, 16, 192, 192))


def conv(x, w):
  return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def milliseconds(fn, *args, seconds=1.5):
  jax.block_until_ready(fn(*args))
  start, calls = time.perf_counter(), 0
  while time.perf_counter() - start < seconds:
    jax.block_until_ready(fn(*args))
    calls += 1
  return 1000 * (time.perf_counter() - start) / calls


def main():
  both_gradients = jax.jit(jax.grad(lambda x, w: jnp.sum(conv(x, w) ** 2), argnums=(0, 1)))
  for batch, height, width, c_in, c_out in SHAPES:
    x = jax.random.normal(jax.random.PRNGKey(0), (batch, height, width, c_in))
    w = 0.1 * jax.random.normal(jax.random.PRNGKey(1), (3, 3, c_in, c_out))
    flops = 2 * batch * height * width * c_in * c_out * 9
    for name, fn, passes in (("forward", jax.jit(conv), 1), ("forward and both gradients",
                                                               both_gradients, 3)):
      ms = milliseconds(fn, x, w)
      print(f"{batch}x{height}x{width}x{c_in}->{c_out} {name}: {ms:.1f} ms, "
            f"{passes * flops / ms / 1e6:.1f} GFLOP/s", flush=True)


if __name__ == "__main__":
  main()
