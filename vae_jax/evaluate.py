"""Test-set evaluation: IS log-likelihood, ELBO and its parts, bits/dim, active units, and a run's
test evaluation with its image grids (`evaluate_test`, which training ends with).

Usable on its own: `python -m vae_jax.evaluate --workdir=runs/x` evaluates the latest checkpoint
(the best validated parameters when the run validated) and writes `eval_test.json` there.
"""
import functools
import math
import os
import platform
import time

from absl import flags, logging
import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import bounds, checkpoints, image_grid, parallel
from vae_jax.data import batching
from vae_jax.metric_writer import write_json_atomically
from vae_jax.runs import Run, setup_run, workdir_config
from vae_jax.train_state import TrainState, current_params, make_optimizer, restore_train_state


def make_bound_estimator(model, num_samples: int, sample_chunk: int):
  """(params, x, key) -> per-example IS log-likelihood, ELBO, reconstruction and KL estimates.

  Samples are drawn `sample_chunk` at a time inside a `lax.scan`, and the log-mean-exp is
  accumulated in a max-subtracted streaming form, so memory does not grow with `num_samples`.
  KL here is E_q[log q(z|x) - log p(z)] (B.3), estimated from the same samples. Also E_q[z] and
  E_q[z^2] per example and latent dimension, for the latent statistics of Table B.1.
  """
  sample_chunk = min(sample_chunk, num_samples)
  if num_samples % sample_chunk:
    raise ValueError(f"num_samples={num_samples} must be a multiple of sample_chunk={sample_chunk}.")

  def estimate(params, x, key):
    def add_chunk(carry, chunk_key):
      log_mean_exp, sums, z_sums = carry
      parts = model.apply({"params": params}, x, chunk_key, sample_chunk, method="log_weights")
      log_w = bounds.log_weight(parts)
      chunk_sums = jnp.stack([log_w.sum(0), parts.log_likelihood.sum(0),
                              (parts.log_posterior - parts.log_prior).sum(0)])
      z = parts.z.reshape(parts.z.shape[:2] + (-1,))
      z_sums = z_sums + jnp.stack([z.sum(0), jnp.square(z).sum(0)])
      return (log_mean_exp.add(log_w), sums + chunk_sums, z_sums), None

    latent_size = sum(c.stop - c.start for c in model.latent_groups.values())
    init = (bounds.LogMeanExp.empty(x.shape[:1]), jnp.zeros((3, x.shape[0])),
            jnp.zeros((2, x.shape[0], latent_size)))
    keys = jax.random.split(key, num_samples // sample_chunk)
    (log_mean_exp, sums, z_sums), _ = jax.lax.scan(add_chunk, init, keys)
    means, z_means = sums / num_samples, z_sums / num_samples
    return {"log_likelihood": log_mean_exp.value(), "elbo": means[0],
            "reconstruction": means[1], "kl": means[2], "z_mean": z_means[0],
            "z_square_mean": z_means[1]}

  return estimate


def device_memory_bytes() -> int:
  """Memory of one local device: the runtime's limit on GPU/TPU, a share of RAM on CPU."""
  stats = jax.local_devices()[0].memory_stats() or {}
  if "bytes_limit" in stats:
    return int(stats["bytes_limit"])
  return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // jax.local_device_count()


def sample_chunk_for_memory(model, params, x, num_samples: int, memory_bytes: float) -> int:
  """The largest divisor of `num_samples` whose chunk of samples for the points `x` needs at most
  `memory_bytes` of temporaries by XLA's memory analysis (1 if none does).

  A straight line a + b * chunk through two small chunks gives the first guess; XLA's need is not
  exactly linear (fusion and layout choices change with the chunk), so the guess is then checked
  by compiling it (each chunk compiled once) and moved one divisor at a time: down while it does
  not fit, then up while the next one does."""
  @functools.cache
  def temp_bytes(chunk):
    estimate = jax.jit(make_bound_estimator(model, chunk, chunk))
    compiled = estimate.lower(params, x, jax.random.PRNGKey(0)).compile()
    return compiled.memory_analysis().temp_size_in_bytes

  divisors = [c for c in range(1, num_samples + 1) if num_samples % c == 0]
  small, large = temp_bytes(4), temp_bytes(8)
  per_sample = max((large - small) / 4, 1.0)
  fixed = small - 4 * per_sample
  fits = lambda i: temp_bytes(divisors[i]) <= memory_bytes
  i = max(i for i, c in enumerate(divisors) if i == 0 or fixed + c * per_sample <= memory_bytes)
  while i > 0 and not fits(i):
    i -= 1
  while i + 1 < len(divisors) and fits(i + 1):
    i += 1
  return divisors[i]


class DatasetEvaluator:
  """Runs the bound estimator over a device-resident uint8 image array, `batch_size` points and
  `sample_chunk` samples per point at a time (0: the largest chunk that fits in a quarter of a
  device's memory, found at the first call)."""

  def __init__(self, model, mesh, num_samples: int, sample_chunk: int, batch_size: int):
    self.num_samples = num_samples
    self.sample_chunk = sample_chunk
    self._model, self._mesh, self._batch_size = model, mesh, batch_size
    self._estimate_batch = None
    self.compile_seconds = 0.0

  def _compile(self, params, images, encoding, key):
    if not self.sample_chunk:
      x = batching.model_input(None, images[:self._batch_size // self._mesh.size], encoding)
      self.sample_chunk = sample_chunk_for_memory(self._model, params, x, self.num_samples,
                                                  device_memory_bytes() // 4)
      logging.info("IS evaluation: %d samples per chunk.", self.sample_chunk)
    estimate = make_bound_estimator(self._model, self.num_samples, self.sample_chunk)
    batch_sharding = parallel.batch_sharded(self._mesh)
    batch_size = self._batch_size

    def estimate_batch(params, images, start, encoding, key):
      # Wrap-around padding of the last batch; the host drops the padded results.
      index = (start + jnp.arange(batch_size)) % images.shape[0]
      index = jax.lax.with_sharding_constraint(index, batch_sharding)
      key = jax.random.fold_in(key, start)
      x = batching.model_input(jax.random.fold_in(key, 0), images[index], encoding)
      return estimate(params, x, jax.random.fold_in(key, 1))
    # Results come back replicated, so that every process can read all of them.
    self._estimate_batch = jax.jit(estimate_batch, static_argnums=3,
                                   out_shardings=parallel.replicated(self._mesh))
    start_time = time.time()  # compiled outside the timed evaluation (jit reuses it)
    self._estimate_batch.lower(params, images, 0, encoding, key).compile()
    self.compile_seconds = time.time() - start_time

  def __call__(self, params, images, encoding: str, key) -> dict:
    """Dataset means (in nats) of each estimate, the latent statistics, and timing.

    kl_z_given_x = log p(x) - ELBO = E KL(q(z|x) || p(z|x)) (Table 6), from the IS estimate of
    log p(x); latent_mean and latent_variance average Mean(z_k) and Var(z_k) over k (Table B.1);
    posterior_std averages Std_q(z_k|x) over points and k from the same samples, the learned std
    of Table B.3.
    """
    if self._estimate_batch is None:
      self._compile(params, images, encoding, key)
    start_time = time.time()
    n = images.shape[0]
    per_batch = [self._estimate_batch(params, images, start, encoding, key)
                 for start in range(0, n, self._batch_size)]
    per_example = {k: np.concatenate([np.asarray(b[k]) for b in per_batch])[:n]
                   for k in per_batch[0]}
    seconds = time.time() - start_time
    z_mean_per_example = per_example.pop("z_mean")
    z_square_mean_per_example = per_example.pop("z_square_mean")
    posterior_variance = np.maximum(z_square_mean_per_example - np.square(z_mean_per_example), 0)
    z_mean = z_mean_per_example.mean(0)
    z_variance = z_square_mean_per_example.mean(0) - np.square(z_mean)
    results = {k: float(np.mean(v)) for k, v in per_example.items()}
    results["nll"] = -results.pop("log_likelihood")
    results.update(kl_z_given_x=-results["nll"] - results["elbo"],
                   latent_mean=float(z_mean.mean()), latent_variance=float(z_variance.mean()),
                   posterior_std=float(np.sqrt(posterior_variance).mean()))
    results.update(num_points=n, num_samples=self.num_samples, sample_chunk=self.sample_chunk,
                   seconds=seconds, compile_seconds=self.compile_seconds,
                   importance_samples_per_second=n * self.num_samples / seconds)
    return results


@functools.partial(jax.jit, static_argnums=(0, 1, 4, 6, 7))
def _over_batches(model, method: str, params, images, encoding, key, batch_size, args=()):
  """model.<method>(x, key, *args) -> [batch, k] over `images` in batches of `batch_size` (a
  remainder of fewer images is left out), concatenated."""
  def batch_outputs(start):
    batch = jax.lax.dynamic_slice_in_dim(images, start, batch_size)
    key_start = jax.random.fold_in(key, start)
    x = batching.model_input(jax.random.fold_in(key_start, 0), batch, encoding)
    return model.apply({"params": params}, x, jax.random.fold_in(key_start, 1), *args,
                       method=method)
  starts = jnp.arange(0, images.shape[0] - batch_size + 1, batch_size)
  outputs = jax.lax.map(batch_outputs, starts)
  return outputs.reshape(-1, outputs.shape[-1])


def active_units(model, params, images, encoding: str, key, threshold: float, num_samples: int,
                 batch_size: int = 500) -> dict:
  """Dimensions k with Var_x(E_q[z_k|x]) > threshold, over `images` (Burda et al. 2016; B.3).

  Returns {"active_units": total} plus, for models with several latent variables, one count per
  variable ("active_units_z1", ...). For a Gaussian posterior E_q[z|x] is its mean, exactly;
  otherwise (flow posteriors, z1 of the HVAE) the mean of `num_samples` samples (1,000 in B.3).
  A remainder of fewer than `batch_size` images is left out.
  """
  batch_size = min(batch_size, images.shape[0])
  means = _over_batches(model, "posterior_mean", params, images, encoding, key, batch_size,
                        (num_samples,))
  active = np.asarray(jnp.var(means, axis=0) > threshold)
  counts = {"active_units": int(active.sum())}
  if len(model.latent_groups) > 1:
    counts.update({f"active_units_{name}": int(active[columns].sum())
                   for name, columns in model.latent_groups.items()})
  return counts


def kl_per_layer(model, params, images, encoding: str, key, batch_size: int = 500) -> list:
  """The mean over `images` of each stochastic layer's KL(q || p) in nats, for models whose
  layers each have one (the SeRe-VAE: Apostolopoulou et al., Figure S8's no-collapse argument)."""
  batch_size = min(batch_size, images.shape[0])
  kls = _over_batches(model, "kl_per_layer", params, images, encoding, key, batch_size)
  return [float(v) for v in np.asarray(jnp.mean(kls, 0))]


def bits_per_dim(nll_nats: float, image_shape) -> float:
  """nats per image -> bits per pixel-channel."""
  return nll_nats / (math.prod(image_shape) * math.log(2))


def test_metrics(run: Run, params, num_samples: int, key, active_unit_samples: int,
                 active_unit_images: int = 0) -> dict:
  """Test-set NLL, ELBO and its parts (DatasetEvaluator) and active units on the first
  `active_unit_images` training images (0: all)."""
  eval_config = run.config.eval
  evaluator = DatasetEvaluator(run.model, run.mesh, num_samples, eval_config.sample_chunk,
                               eval_config.batch_size)
  # eval.test_images > 0 evaluates the first that many test images only (a cheaper estimate
  # for slow models, such as PixelCNN decoders with thousands of importance samples).
  test_images = run.test_images[:eval_config.test_images or None]
  results = evaluator(params, test_images, run.dataset.test_encoding,
                      jax.random.fold_in(key, 0))
  num_images = min(active_unit_images or run.train_images.shape[0], run.train_images.shape[0])
  results.update(active_units(
      run.model, params, run.train_images[:num_images], run.dataset.encoding,
      jax.random.fold_in(key, 1), eval_config.active_unit_threshold, active_unit_samples))
  results["active_unit_images"] = num_images
  if run.model.has_kl_per_layer:
    results["kl_per_layer"] = kl_per_layer(
        run.model, params, test_images, run.dataset.test_encoding, jax.random.fold_in(key, 2),
        eval_config.batch_size)
    # What the latent statistics and active units read (issue #19; evaluations before it used
    # eps itself, whose scale the SeRe-VAE leaves free).
    results["latent_statistics_of"] = "base latents whitened by their prior"
  return results


def evaluate_test(run: Run, state: TrainState, workdir: str, num_samples: int,
                  output: str = "eval_test.json") -> dict:
  """Test NLL/ELBO/KL/bits-per-dim of the state's evaluation parameters, active units on the
  training set, PNG grids, and which parameters these are (step, epochs, finished or not)."""
  params = _evaluation_params(state)
  eval_config = run.config.eval
  _, _, _, eval_key = run.keys()
  results = test_metrics(run, params, num_samples, eval_key, eval_config.active_unit_samples,
                         eval_config.active_unit_images)
  results["bits_per_dim"] = bits_per_dim(results["nll"], run.dataset.image_shape)
  results["kl_bits"] = results["kl"] / math.log(2)  # E[KL(q(z|x) || p(z))] per image (VLAE 4.1)
  results["num_params"] = sum(int(leaf.size) for leaf in jax.tree_util.tree_leaves(params))
  used = _parameters_used(run, state)
  logging.info("Evaluated the %s parameters at step %d of %d (%s run).", used["parameters"],
               used["step"], run.total_steps, "a finished" if used["finished"] else "an unfinished")
  results.update(used)
  results.update(dataset=run.dataset.name, devices=f"{jax.device_count()}x {jax.devices()[0].device_kind}",
                 host=platform.node(), cpu_count=os.cpu_count(),
                 test_binarizations=(run.config.data.test_binarizations
                                     if run.dataset.dynamic_binarization else 1))
  write_json_atomically(os.path.join(workdir, output), results)
  # Every process computes the grids (the arrays span all devices); process 0 writes them.
  n = eval_config.num_images
  apply = jax.jit(run.model.apply, static_argnames=("method", "n"),
                  out_shardings=parallel.replicated(run.mesh))
  samples = apply({"params": params}, jax.random.fold_in(eval_key, 2), n=n, method="generate")
  image_grid.save_grid(os.path.join(workdir, "samples.png"), samples)
  originals = batching.model_input(None, run.test_images[:n // 2], run.dataset.test_encoding)
  reconstructions = apply({"params": params}, originals, jax.random.fold_in(eval_key, 3),
                          method="reconstruct")
  pairs = lambda b: jnp.stack([originals, b], 1).reshape((-1,) + originals.shape[1:])
  image_grid.save_grid(os.path.join(workdir, "reconstructions.png"), pairs(reconstructions))
  if eval_config.decompressions:  # VLAE Fig. 1a: x, then x' ~ p(x|z) with z ~ q(z|x)
    decompressions = apply({"params": params}, originals, jax.random.fold_in(eval_key, 4),
                           method="decompress")
    image_grid.save_grid(os.path.join(workdir, "decompressions.png"), pairs(decompressions))
  if run.model.has_pseudo_inputs:  # the learned pseudo-inputs (Fig. 4)
    pseudo_inputs = run.model.apply({"params": params},
                                    method=lambda module: module.prior.pseudo_inputs())
    image_grid.save_grid(os.path.join(workdir, "pseudo_inputs.png"), pseudo_inputs[:n])
  return results


def _evaluation_params(state: TrainState):
  return current_params(state) if state.best_params is None else state.best_params


def _parameters_used(run: Run, state: TrainState) -> dict:
  """Which parameters an evaluation used: the step and epochs trained, whether the run had
  finished, and whether they are the best validated, the Polyak average or the latest."""
  step = int(state.step)
  if state.best_params is not None:
    kind = f"best validated (step {int(state.best_step)})"
  else:
    kind = "Polyak average" if state.averaged_params is not None else "latest"
  return {"step": step, "epochs": step / run.steps_per_epoch,
          "finished": step >= run.total_steps, "parameters": kind}


def evaluate_workdir(workdir: str, num_samples=None, test_binarizations=None,
                     output: str = "eval_test.json", active_unit_images=None,
                     test_images=None) -> dict:
  """Evaluates the latest checkpoint of a finished or interrupted run.

  `num_samples`, `test_binarizations`, `active_unit_images` and `test_images` override the run's
  config for this evaluation only.
  """
  config = workdir_config(workdir)
  if test_binarizations:
    config.data.test_binarizations = test_binarizations
  if active_unit_images is not None:
    config.eval.active_unit_images = active_unit_images
  if test_images is not None:
    config.eval.test_images = test_images
  if num_samples:
    config.eval.num_samples = num_samples
    if config.eval.sample_chunk:  # the largest chunk that divides num_samples, within the bound
      config.eval.sample_chunk = max(c for c in range(1, min(num_samples, config.eval.sample_chunk)
                                                      + 1) if num_samples % c == 0)
    config.train.validation_samples = config.eval.sample_chunk or 1  # unused; keeps it valid
  run = setup_run(config)
  optimizer = make_optimizer(config.train, run.total_steps)
  with checkpoints.manager(workdir, config.train.keep_checkpoints) as manager:
    state = restore_train_state(run, optimizer, manager)
  if state is None:
    raise FileNotFoundError(f"No checkpoint in {workdir}/checkpoints to evaluate.")
  return evaluate_test(run, state, workdir, num_samples or config.eval.num_samples, output)


def main(argv):
  del argv
  parallel.initialize_from_flags()
  checkpoints.quiet_orbax_logging()
  flag_values = flags.FLAGS
  results = evaluate_workdir(flag_values.workdir, num_samples=flag_values.num_samples,
                             test_binarizations=flag_values.test_binarizations,
                             output=flag_values.output,
                             active_unit_images=flag_values.active_unit_images,
                             test_images=flag_values.test_images)
  logging.info("Test results: %s", results)


if __name__ == "__main__":
  # Defined here, not at import, so that `vae_jax.main` can import this module.
  flags.DEFINE_string("workdir", None, "A training workdir (holds config.json and checkpoints/).")
  # Bounds: a value the evaluation cannot honour is refused (one line, exit status 2) rather
  # than silently replaced by the config's (0 samples) or sliced from the end (-1 images).
  flags.DEFINE_integer("num_samples", None, "Importance samples per point (default: the config's).",
                       lower_bound=1)
  flags.DEFINE_integer("test_binarizations", None,
                       "Binarizations of each test image, for dynamically binarized sets "
                       "(default: the config's).", lower_bound=1)
  flags.DEFINE_string("output", "eval_test.json", "File name of the results, inside the workdir.")
  flags.DEFINE_integer("active_unit_images", None,
                       "Training images for active units (default: the config's; 0: all).",
                       lower_bound=0)
  flags.DEFINE_integer("test_images", None,
                       "Evaluate the first this many test images (default: the config's; 0: all).",
                       lower_bound=0)
  parallel.define_flags()
  flags.mark_flag_as_required("workdir")
  from vae_jax import cli  # pylint: disable=g-import-not-at-top
  cli.run(main)
