"""Training step with and without the chunked kernel gradients, same process (2 cores)."""
import sys
from vae_jax import benchmark
from vae_jax.nets import conv
peak = benchmark.matmul_peak(2048, 2.0)["peak_flops_per_second"]
default = conv._CHUNKED_MIN_ELEMENTS
for cell in sys.argv[1:]:
  for label, threshold in (("chunked", default), ("unchunked", float("inf")), ("chunked", default), ("unchunked", float("inf"))):
    conv._CHUNKED_MIN_ELEMENTS = threshold
    r = benchmark.benchmark_cell(cell, 3.0, 0, 10, None, peak)
    print(label, cell, round(r["train_images_per_second"], 1), round(r["fraction_of_matmul_peak"], 3), flush=True)
