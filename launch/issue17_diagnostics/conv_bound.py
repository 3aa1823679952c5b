"""How close to the matmul peak can this machine train the convolutional families at all? Each
convolution of the library's training step, timed alone, for issue #17 part 2.

  VAE_JAX_DATA_DIR=../shared/data PYTHONPATH=. \
      python launch/issue17_diagnostics/conv_bound.py [--families=ConvVAE,ResnetVAE,PixelVAE] [--seconds=0.5]

For each family (the benchmark's xu2020 cell, standard prior, the paper's batch: 128, PixelVAE
64) it traces the training step, collects every convolution of its forward and backward pass
(`conv_general_dilated` in the step's jaxpr, sub-jaxprs included) and times each alone, jitted,
on random inputs of its shapes:
  - as XLA:CPU runs that convolution, and
  - as the one matrix product of the same FLOPs it amounts to ([M, K] @ [K, N] with M = output
    positions x batch, K = kernel taps x input channels, N = output channels: im2col without the
    cost of building the patches).
The sum over the step's convolutions of the faster of the two is a lower bound on the step's time
for any implementation built from XLA:CPU's convolutions or matmuls, even if everything else in
the step (activations, losses, the optimizer) were free. The step's FLOPs over that bound, as a
fraction of the matmul peak measured in the same run, is then the most any such implementation
can reach; the library's measured step is shown beside it.
"""
import collections

from absl import app, flags
import jax
import jax.numpy as jnp
from jax._src.interpreters import partial_eval as pe
import numpy as np

from vae_jax import benchmark

# vae_jax.benchmark defines --families and --seconds.
flags.FLAGS.set_default("families", ["ConvVAE", "ResnetVAE", "PixelVAE"])
flags.FLAGS.set_default("seconds", 0.5)
FLAGS = flags.FLAGS


def _convolutions(jaxpr):
  """Every conv_general_dilated equation of a jaxpr and of its sub-jaxprs."""
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "conv_general_dilated":
      yield eqn
    for param in eqn.params.values():
      for sub in param if isinstance(param, (tuple, list)) else (param,):
        inner = getattr(sub, "jaxpr", sub)
        if isinstance(inner, jax.extend.core.Jaxpr):
          yield from _convolutions(inner)


def _signature(eqn):
  lhs, rhs = (v.aval for v in eqn.invars)
  params = tuple(sorted((k, repr(v)) for k, v in eqn.params.items()))
  return lhs.shape, rhs.shape, params


def _matmul_shape(eqn, flops: float) -> tuple[int, int, int]:
  """(M, K, N) of the matrix product with the convolution's FLOPs: M and N from its output, K
  from its FLOPs (XLA counts a transposed convolution's taps on non-zero inputs only)."""
  numbers = eqn.params["dimension_numbers"]
  out = eqn.outvars[0].aval.shape
  out_batch, out_feature, *out_spatial = numbers.out_spec
  m = out[out_batch] * int(np.prod([out[d] for d in out_spatial]))
  n = out[out_feature]
  return m, max(1, round(flops / (2 * m * n))), n


def _milliseconds(fn, *args) -> float:
  calls, seconds = benchmark._timed(lambda: fn(*args), FLAGS.seconds)  # pylint: disable=protected-access
  return 1000 * seconds / calls


def _time_convolution(eqn) -> dict:
  key = jax.random.PRNGKey(0)
  lhs, rhs = (jax.random.normal(key, v.aval.shape, v.aval.dtype) for v in eqn.invars)
  convolve = jax.jit(lambda a, b: jax.lax.conv_general_dilated_p.bind(a, b, **eqn.params))
  flops = float(convolve.lower(lhs, rhs).compile().cost_analysis()["flops"])
  m, k, n = _matmul_shape(eqn, flops)
  a, b = jnp.ones((m, k), jnp.float32), jnp.ones((k, n), jnp.float32)
  return {"conv_ms": _milliseconds(convolve, lhs, rhs),
          "matmul_ms": _milliseconds(jax.jit(jnp.matmul), a, b), "flops": flops,
          "mkn": (m, k, n)}


def bound(family: str, peak: float) -> dict:
  cell = benchmark.family_cell(family, "standard")
  row = benchmark.benchmark_cell(cell, FLAGS.seconds * 4, 0, 1, None, peak)
  run = benchmark.train.setup_run(benchmark.config_files.load(f"configs/xu2020.py:{cell}"))
  optimizer = benchmark.train.make_optimizer(run.config.train, run.total_steps)
  state = benchmark.train.create_train_state(run, optimizer)
  order = np.arange(run.train_images.shape[0])
  step = benchmark.train.make_train_step(run, optimizer)
  jaxpr = jax.make_jaxpr(step)(state, run.train_images, order).jaxpr
  # Without the convolutions XLA removes: jax.vjp inside the chunked gradients also traces
  # forward passes whose outputs are unused.
  jaxpr, _ = pe.dce_jaxpr(jaxpr, [True] * len(jaxpr.outvars))
  counts = collections.Counter(_signature(e) for e in _convolutions(jaxpr))
  examples = {_signature(e): e for e in _convolutions(jaxpr)}
  conv_ms = matmul_ms = best_ms = conv_flops = 0.0
  for signature, count in counts.items():
    timed = _time_convolution(examples[signature])
    conv_ms += count * timed["conv_ms"]
    matmul_ms += count * timed["matmul_ms"]
    best_ms += count * min(timed["conv_ms"], timed["matmul_ms"])
    conv_flops += count * timed["flops"]
  step_flops = row["flops_per_step"]
  return {"family": family, "cell": cell, "convolutions": sum(counts.values()),
          "distinct": len(counts), "step_flops": step_flops, "conv_flops": conv_flops,
          "conv_ms": conv_ms, "matmul_ms": matmul_ms, "bound_ms": best_ms,
          "bound_fraction": step_flops / (best_ms / 1000) / peak,
          "library_ms": row["train_ms_per_step"],
          "library_fraction": row["fraction_of_matmul_peak"]}


def main(argv):
  del argv
  peak = benchmark.matmul_peak(2048, 2.0)["peak_flops_per_second"]
  print(f"{jax.device_count()} {jax.devices()[0].platform} device(s), jax {jax.__version__}, "
        f"matmul peak {peak / 1e9:.0f} GFLOP/s; the paper's batch (128, PixelVAE 64), standard "
        "prior; ms per step")
  print("| family | convolutions (distinct) | step MFLOP | of which in convolutions | "
        "convolutions alone, XLA | as matmuls | bound: faster of the two | bound, % of peak | "
        "library step | library, % of peak |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  for family in FLAGS.families:
    r = bound(family, peak)
    print(f"| {family} | {r['convolutions']} ({r['distinct']}) | {r['step_flops'] / 1e6:,.0f} | "
          f"{r['conv_flops'] / r['step_flops']:.0%} | {r['conv_ms']:.1f} | {r['matmul_ms']:.1f} | "
          f"{r['bound_ms']:.1f} | {r['bound_fraction']:.1%} | {r['library_ms']:.1f} | "
          f"{r['library_fraction']:.1%} |", flush=True)
  after = benchmark.matmul_peak(2048, 2.0)["peak_flops_per_second"]
  print(f"matmul peak at the end: {after / 1e9:.0f} GFLOP/s")


if __name__ == "__main__":
  app.run(main)
