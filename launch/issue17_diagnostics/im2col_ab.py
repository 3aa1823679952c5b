"""Issue #17 part 2: the training step with XLA:CPU's convolutions against the same convolutions as
im2col (the patches of each stride-1 or strided convolution built by slicing, then one matmul),
alternately in one process, through vae_jax.benchmark.benchmark_cell (nets.conv.conv2d swapped;
the stride-2 transposed convolutions stay XLA's). Prints images/s and the fraction of the matmul
peak measured at the start.

  VAE_JAX_DATA_DIR=../shared/data PYTHONPATH=. taskset -c 0 \
      python launch/issue17_diagnostics/im2col_ab.py conv,standard,mnist resnet,standard,mnist
"""
import sys

import jax.numpy as jnp
from jax import lax
from vae_jax import benchmark
from vae_jax.nets import conv

def im2col_conv2d(x, kernel, strides=1, padding="SAME"):
  kh, kw, cin, cout = kernel.shape
  n, h, w, _ = x.shape
  pads = (lax.padtype_to_pads((h, w), (kh, kw), (strides, strides), padding)
          if isinstance(padding, str) else padding)
  xp = jnp.pad(x, ((0, 0), tuple(pads[0]), tuple(pads[1]), (0, 0)))
  ho = (xp.shape[1] - kh) // strides + 1
  wo = (xp.shape[2] - kw) // strides + 1
  cols = jnp.concatenate([
      xp[:, i:i + strides * (ho - 1) + 1:strides, j:j + strides * (wo - 1) + 1:strides, :]
      for i in range(kh) for j in range(kw)], axis=-1)
  return (cols.reshape(-1, kh * kw * cin) @ kernel.reshape(kh * kw * cin, cout)).reshape(n, ho, wo, cout)

xla = conv.conv2d
peak = benchmark.matmul_peak(2048, 2.0)["peak_flops_per_second"]
print("peak", peak / 1e9, flush=True)
for cell in sys.argv[1:]:
  for label, fn in (("xla", xla), ("im2col", im2col_conv2d)) * 2:
    conv.conv2d = fn
    r = benchmark.benchmark_cell(cell, 3.0, 0, 10, None, peak)
    print(label, cell, round(r["train_images_per_second"], 1), round(r["fraction_of_matmul_peak"], 3), flush=True)
