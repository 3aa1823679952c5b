"""XLA:CPU's convolution libraries A/B: the training step compiled with convolutions in YNNPACK
(XLA's default on JAX 0.10-0.12) and in XLA's own (Eigen) kernels (vae_jax's setting), matmuls
and reductions in YNNPACK either way, timed alternately in one process, for issue #17 part 2.

  VAE_JAX_DATA_DIR=../shared/data PYTHONPATH=. \
      python launch/issue17_diagnostics/conv_library_ab.py conv,standard,mnist [cell ...] \
      [--rounds=3]

Each option set is passed to XLA per executable (`Lowered.compile(compiler_options=...)`), so
the process, the inputs and the machine's state are shared; the matmul peak is taken under each
option set and the larger used for both. FLOPs from XLA's cost analysis of the step as XLA
compiles it by default (the first option set), so the step compiles once per option set.
"""
import sys

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import benchmark, config_files, parallel, train
from vae_jax.flows import realnvp

_TYPES = "xla_cpu_experimental_ynn_fusion_type"
# XLA's default (the same compiled programs as no option, tested on JAX 0.10.2 and 0.12), and
# vae_jax's (vae_jax/__init__.py): the same less the convolutions.
XLA_DEFAULT = "YNNPACK convolutions (XLA's default)"
_DOTS_AND_REDUCTIONS = "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"
_CONVOLUTIONS = "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"
OPTIONS = {XLA_DEFAULT: {_TYPES: f"{_DOTS_AND_REDUCTIONS},{_CONVOLUTIONS}"},
           "XLA's own convolutions (vae_jax)": {_TYPES: _DOTS_AND_REDUCTIONS}}


def _ms(call, seconds: float) -> float:
  calls, elapsed = benchmark._timed(call, seconds)  # pylint: disable=protected-access
  return 1000 * elapsed / calls


def peak(options, size: int = 2048) -> float:
  a = jax.random.normal(jax.random.PRNGKey(0), (size, size), jnp.float32)
  matmul = jax.jit(lambda a, b: a @ b).lower(a, a).compile(options)
  best = min(_ms(lambda: matmul(a, a), 0.0) for _ in range(8))
  return 2 * size**3 / (best / 1000)


def main(cells, rounds: int = 3, seconds: float = 3.0):
  peaks = {name: peak(options) for name, options in OPTIONS.items()}
  print(f"jax {jax.__version__}, {jax.device_count()} cpu device(s); matmul peak (GFLOP/s): "
        + ", ".join(f"{n} {p / 1e9:.0f}" for n, p in peaks.items()), flush=True)
  top = max(peaks.values())
  for cell in cells:
    run = train.setup_run(config_files.load(f"configs/xu2020.py:{cell}"))
    optimizer = train.make_optimizer(run.config.train, run.total_steps)
    state = train.create_train_state(run, optimizer)
    order = parallel.replicate(np.arange(run.train_images.shape[0]), run.mesh)
    with realnvp.unrolled_scans():
      lowered = jax.jit(train.make_train_step(run, optimizer)).lower(state, run.train_images,
                                                                      order)
    steps = {name: lowered.compile(options) for name, options in OPTIONS.items()}
    flops = float(steps[XLA_DEFAULT].cost_analysis()["flops"])
    losses = {name: float(step(state, run.train_images, order)[1]["loss"])
              for name, step in steps.items()}
    batch = run.config.train.batch_size
    for r in range(rounds):
      for name, step in steps.items():
        ms = _ms(lambda: step(state, run.train_images, order), seconds)
        print(f"{cell} round {r} {name}: {batch / ms * 1000:.1f} img/s, {ms:.0f} ms/step, "
              f"{flops / (ms / 1000) / top:.1%} of the larger peak; first loss "
              f"{losses[name]:.6f}", flush=True)


if __name__ == "__main__":
  args = [a for a in sys.argv[1:] if not a.startswith("--")]
  rounds = [int(a.split("=")[1]) for a in sys.argv[1:] if a.startswith("--rounds=")]
  main(args, *rounds)
