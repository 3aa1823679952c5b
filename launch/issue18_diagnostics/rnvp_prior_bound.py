"""How fast can this machine train Xu et al.'s DenseVAE with the RealNVP prior K=20 at all? A
minimal hand-written jitted step of the same mathematics, beside the library's, for issue #18.

The model (Xu et al. 2020, Appendix B.2-B.3): encoder 784-500-500 -> (mean, log std) of a 40-d
Gaussian, decoder 40-500-500-784 Bernoulli logits, leaky ReLU 0.2; prior p(z) = N(f(z); 0, I)
|det df/dz| with f = K blocks of InvertibleDense (LU form) -> sigmoid affine coupling (20 -> 256
-> scale, shift of 20) -> ActNorm; L2 1e-4 on the hidden kernels; gradients clipped to global
norm 100; Adam; batch 128. Written as plainly as the mathematics allows, in two layouts of the
prior's parameters: one array per block and parameter (as the library stores them), and stacked
[K, ...] arrays with the blocks in a `lax.scan`. Random binary images: speed, not learning.

  VAE_JAX_DATA_DIR=../shared/data PYTHONPATH=<checkout> \
      python launch/issue18_diagnostics/rnvp_prior_bound.py

(PYTHONPATH=<an older checkout> measures that checkout's library beside the same minimal steps.)

Prints, per step: images/s (median of 5 alternating rounds of 2 s, 50 steps per call), XLA's
FLOPs and kernel count of one step, and the fraction of the matmul peak measured in the same run.
"""
import contextlib
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vae_jax import benchmark, config_files, parallel, train
from vae_jax.flows import realnvp
# The plain dense layers of the VampPrior paper's minimal step.
from vae_jax.reference_step import _dense, _linear  # pylint: disable=protected-access

xu2020 = config_files.module("configs/xu2020.py")

LATENT, HIDDEN, PIXELS, BATCH, BLOCKS, COUPLING = 40, 500, 784, 128, 20, 256
HALF = LATENT // 2
STEPS_PER_CALL = 50
L2, CLIP, LEARNING_RATE = 1e-4, 100.0, 1e-3


def _leaky(x):
  return jax.nn.leaky_relu(x, 0.2)


def _block_params(key):
  keys = jax.random.split(key, 4)
  rotation, _ = jnp.linalg.qr(jax.random.normal(keys[0], (LATENT, LATENT)))
  permutation, lower, upper = jax.scipy.linalg.lu(rotation)
  zero = lambda p: jax.tree_util.tree_map(jnp.zeros_like, p)
  return {"permutation": permutation, "lower": jnp.tril(lower, -1), "upper": jnp.triu(upper, 1),
          "log_abs_diag": jnp.log(jnp.abs(jnp.diag(upper))), "sign": jnp.sign(jnp.diag(upper)),
          "hidden": _dense(keys[1], HALF, COUPLING), "scale": zero(_dense(keys[2], COUPLING, HALF)),
          "shift": zero(_dense(keys[3], COUPLING, HALF)),
          "log_scale": jnp.zeros(LATENT), "bias": jnp.zeros(LATENT)}


def _block(p, u):
  """One block f_k on u [B, 40]: (f_k(u), log|det|)."""
  eye = jnp.eye(LATENT)
  lower = jnp.tril(p["lower"], -1) + eye
  upper = jnp.triu(p["upper"], 1) + jnp.diag(jax.lax.stop_gradient(p["sign"])
                                             * jnp.exp(p["log_abs_diag"]))
  matrix = jax.lax.stop_gradient(p["permutation"]) @ lower @ upper
  u = u @ matrix.T
  u_left, u_right = u[:, :HALF], u[:, HALF:]
  h = _leaky(_linear(p["hidden"], u_left))
  pre_scale, shift = _linear(p["scale"], h), _linear(p["shift"], h)
  u = jnp.concatenate([u_left, u_right * jax.nn.sigmoid(pre_scale) + shift], -1)
  u = u * jnp.exp(p["log_scale"]) + p["bias"]
  log_det = (jnp.sum(p["log_abs_diag"]) + jnp.sum(jax.nn.log_sigmoid(pre_scale), -1)
             + jnp.sum(p["log_scale"]))
  return u, log_det


def _prior_unrolled(blocks, z):
  log_det = 0.0
  for p in blocks:
    z, block_log_det = _block(p, z)
    log_det = log_det + block_log_det
  return z, log_det


def _prior_scanned(blocks, z, unroll: bool):
  def body(carry, p):
    z, log_det = carry
    z, block_log_det = _block(p, z)
    return (z, log_det + block_log_det), None
  (z, log_det), _ = jax.lax.scan(body, (z, jnp.zeros(z.shape[0])), blocks, unroll=unroll)
  return z, log_det


def _log_normal(x, mean, log_std):
  return jnp.sum(-0.5 * jnp.log(2 * jnp.pi) - log_std - 0.5 * jnp.square((x - mean)
                                                                        / jnp.exp(log_std)), -1)


def init_params(layout: str) -> dict:
  keys = jax.random.split(jax.random.PRNGKey(0), 9)
  params = {"e0": _dense(keys[0], PIXELS, HIDDEN), "e1": _dense(keys[1], HIDDEN, HIDDEN),
            "mean": _dense(keys[2], HIDDEN, LATENT), "log_std": _dense(keys[3], HIDDEN, LATENT),
            "d0": _dense(keys[4], LATENT, HIDDEN), "d1": _dense(keys[5], HIDDEN, HIDDEN),
            "logits": _dense(keys[6], HIDDEN, PIXELS)}
  blocks = [_block_params(k) for k in jax.random.split(keys[7], BLOCKS)]
  if layout == "stacked":
    params["prior"] = realnvp._stack(blocks)  # pylint: disable=protected-access
  elif layout == "per_block":
    params["prior"] = blocks
  return params


def loss(params, x, key, layout: str, unroll: bool = False):
  h = _leaky(_linear(params["e1"], _leaky(_linear(params["e0"], x))))
  mean, log_std = _linear(params["mean"], h), jnp.maximum(_linear(params["log_std"], h), -11.0)
  eps = jax.random.normal(key, mean.shape)
  z = mean + jnp.exp(log_std) * eps
  logits = _linear(params["logits"], _leaky(_linear(params["d1"], _leaky(
      _linear(params["d0"], z)))))
  log_px = jnp.sum(x * logits - jax.nn.softplus(logits), -1)
  log_q = _log_normal(eps, 0.0, 0.0) - jnp.sum(log_std, -1)
  if layout == "standard":
    log_p = _log_normal(z, 0.0, 0.0)
  else:
    w, log_det = (functools.partial(_prior_scanned, unroll=unroll) if layout == "stacked"
                  else _prior_unrolled)(params["prior"], z)
    log_p = _log_normal(w, 0.0, 0.0) + log_det
  kernels = [params[k]["w"] for k in ("e0", "e1", "d0", "d1")]
  prior_hidden = ([] if layout == "standard" else
                  [params["prior"]["hidden"]["w"]] if layout == "stacked" else
                  [p["hidden"]["w"] for p in params["prior"]])
  l2 = sum(jnp.sum(jnp.square(k)) for k in kernels + prior_hidden)
  return -jnp.mean(log_px + log_p - log_q) + L2 * l2


def make(layout: str):
  """(call, flops per step, kernels per step) of the minimal step; layout is 'standard' (no
  flow prior), 'per_block' or 'stacked'."""
  params = init_params(layout)
  optimizer = optax.chain(optax.clip_by_global_norm(CLIP), optax.adam(LEARNING_RATE))
  images = jnp.asarray(np.random.RandomState(0).rand(50000, PIXELS) < 0.13, jnp.float32)

  def step(params, opt_state, key, unroll=False):
    rows = jax.random.randint(jax.random.fold_in(key, 0), (BATCH,), 0, images.shape[0])
    value, grads = jax.value_and_grad(loss)(params, images[rows], jax.random.fold_in(key, 1),
                                            layout, unroll)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, value

  @jax.jit
  def train_steps(params, opt_state, key, first):
    def body(carry, i):
      params, opt_state, _ = step(*carry, jax.random.fold_in(key, i))
      return (params, opt_state), None
    (params, opt_state), _ = jax.lax.scan(body, (params, opt_state),
                                          first + jnp.arange(STEPS_PER_CALL))
    return params, opt_state

  opt_state = optimizer.init(params)
  # Counted unrolled: XLA's cost analysis counts a loop's body once.
  one_step = jax.jit(functools.partial(step, unroll=True)).lower(
      params, opt_state, jax.random.PRNGKey(1)).compile()
  state = [params, opt_state, 0]

  def call():
    state[0], state[1] = train_steps(state[0], state[1], jax.random.PRNGKey(1), state[2])
    state[2] += STEPS_PER_CALL
    return state[0]
  return (call, STEPS_PER_CALL, float(one_step.cost_analysis()["flops"]),
          benchmark.entry_instructions(one_step))


def library(cell: str):
  """(call, steps per call, flops per step, kernels per step) of the library's step."""
  config = xu2020.get_config(cell)
  run = train.setup_run(config)
  optimizer = train.make_optimizer(config.train, run.total_steps)
  state = train.create_train_state(run, optimizer)
  order = parallel.replicate(np.arange(run.train_images.shape[0]), run.mesh)
  # Counted unrolled: XLA's cost analysis counts a loop once (a checkout from before the
  # stacked blocks has no loop to unroll).
  with getattr(realnvp, "unrolled_scans", contextlib.nullcontext)():
    one_step = jax.jit(train.make_train_step(run, optimizer)).lower(
        state, run.train_images, order).compile()
  train_steps = train.make_train_steps(run, optimizer)
  holder = [state]

  def call():
    holder[0], sums = train_steps(holder[0], run.train_images, order, run.steps_per_call)
    return sums
  return (call, run.steps_per_call, float(one_step.cost_analysis()["flops"]),
          benchmark.entry_instructions(one_step))


def main():
  steps = {"library, standard prior": library("dense,standard,mnist"),
           "library, RealNVP prior K=20": library("dense,rnvp_prior,K=20,mnist"),
           "minimal, standard prior": make("standard"),
           "minimal, RealNVP prior, one array per block": make("per_block"),
           "minimal, RealNVP prior, stacked [K, ...] in a scan": make("stacked")}
  peaks = [benchmark.matmul_peak(2048, 2.0)["peak_flops_per_second"]]
  rates = {name: [] for name in steps}
  for name, (call, *_) in steps.items():
    jax.block_until_ready(call())
  for _ in range(5):
    for name, (call, steps_per_call, *_) in steps.items():
      calls, seconds = benchmark._timed(call, 2.0)  # pylint: disable=protected-access
      rates[name].append(calls * steps_per_call * BATCH / seconds)
  peaks.append(benchmark.matmul_peak(2048, 2.0)["peak_flops_per_second"])
  peak = max(peaks)
  print(f"{jax.device_count()} {jax.devices()[0].platform} device(s), jax {jax.__version__}, "
        f"matmul peak {peak / 1e9:.0f} GFLOP/s (before and after: "
        f"{', '.join(f'{p / 1e9:.0f}' for p in peaks)})")
  print("| step | images/s | ms/step | MFLOP/step | kernels/step | % of peak |")
  print("|---|---|---|---|---|---|")
  for name, (_, _, flops, kernels) in steps.items():
    rate = float(np.median(rates[name]))
    print(f"| {name} | {rate:,.0f} | {1000 * BATCH / rate:.2f} | {flops / 1e6:,.0f} | "
          f"{kernels:,} | {100 * flops * rate / BATCH / peak:.1f}% |")


if __name__ == "__main__":
  main()
