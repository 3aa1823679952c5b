"""The analyses of Xu et al. (2020) on trained workdirs: each returns JSON-ready results and draws
its figures into an output directory. `vae_jax.analyze` is the command line around them.

  elbo             Table 6 / B.16-B.19: test NLL, ELBO, recons, kl, kl_{z|x}; active units on the
                   training set (B.3); the learned posterior std (Table B.3).
  overlap          B.4 / Fig. 3: closest pairs of posteriors, distances, normalized distances.
  rate_distortion  Fig. 4, 5, B.6: rate and distortion per (K, beta) workdir, with the average
                   normalized distance and posterior std.
  interpolation    Fig. 2: decoded interpolations between posterior centres, log p(z) heatmaps.
  samples          Fig. 1, B.3-B.5: prior samples, last column the nearest training image.
  low_posterior    B.14: the prior samples with the lowest aggregated posterior q(z).
  aggregate_kl     B.8: D_KL(q(z) || p(z)) by Algorithm B.2, with the paper's caveat.
"""
import dataclasses
import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import checkpoints, evaluate, image_grid, parallel, runs
from vae_jax.analysis import estimators, plots
from vae_jax.data import batching

WHATS = ("elbo", "overlap", "rate_distortion", "interpolation", "samples", "low_posterior",
         "aggregate_kl")


@dataclasses.dataclass(frozen=True)
class Options:
  """Settings shared by the analyses (flags of `vae_jax.analyze`)."""
  output_dir: str
  seed: int = 0
  num_samples: int = 1000  # importance samples per test point (B.3)
  posterior_samples: int = 1000  # per Std[i; j] (B.4) and per E_q[z|x] for active units (B.3)
  overlap_points: int = 0  # training points whose closest pair is measured; 0: all (B.4)
  interpolation_pairs: int = 3  # per kind (similar, dissimilar), Fig. 2 shows 3 + 3
  interpolation_steps: int = 8
  grid_rows: int = 10  # Fig. B.3-B.5: 10 x 10 grids (Fig. 1: 6 x 6)
  grid_columns: int = 10
  low_posterior_candidates: int = 10000  # B.14
  low_posterior_kept: int = 100  # B.14
  low_posterior_source: str = ""  # label of the workdir whose prior and q(z) rank the z
  elbo_samples: int = 100  # samples per ELBO of the decoded x (B.14)
  aggregate_images: int = 0  # training images of Algorithm B.2; 0: all
  aggregate_nx: tuple = (1,)  # n_x values of Table B.5
  aggregate_nz: int = 10  # n_z of Table B.5


@dataclasses.dataclass
class Workdir:
  """A trained workdir loaded for analysis: its run (config, data on device, model) and params."""
  path: str
  label: str
  run: runs.Run
  params: Any
  cache: dict = dataclasses.field(default_factory=dict)

  @property
  def model(self):
    return self.run.model

  @property
  def train_encoding(self) -> str:
    return self.run.dataset.encoding

  def key(self, name: str, seed: int):
    """A key per analysis, the same for every workdir (so shared decoders draw the same x)."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), sum(map(ord, name)))


def load(path: str, label: str, test_binarizations: int | None = None) -> Workdir:
  config = runs.workdir_config(path)
  if test_binarizations:
    config.data.test_binarizations = test_binarizations
  run = runs.setup_run(config)
  saved = checkpoints.restore_params(path, total_steps=run.total_steps)
  params = parallel.replicate(jax.tree_util.tree_map(jnp.asarray, saved), run.mesh)
  return Workdir(path=path, label=label, run=run, params=params)


def _cached(name):
  """Results of an analysis computed once per workdir (rate_distortion reuses elbo and overlap)."""
  def decorator(fn):
    @functools.wraps(fn)
    def wrapper(workdir: Workdir, options: Options):
      if name not in workdir.cache:
        workdir.cache[name] = fn(workdir, options)
      return workdir.cache[name]
    return wrapper
  return decorator


def _summary(values) -> dict:
  values = np.asarray(values, np.float64).ravel()
  return {"mean": float(values.mean()), "median": float(np.median(values)),
          "std": float(values.std()), "p5": float(np.quantile(values, 0.05)),
          "p95": float(np.quantile(values, 0.95))}


# ----------------------------------------------------------------------------------------------
# Table 6 / B.16-B.19


@_cached("elbo")
def elbo_decomposition(workdir: Workdir, options: Options) -> dict:
  """Test-set NLL and ELBO parts (nats), active units on the training set, posterior stats."""
  results = evaluate.test_metrics(workdir.run, workdir.params, options.num_samples,
                                  workdir.key("elbo", options.seed), options.posterior_samples)
  results["test_images"] = int(workdir.run.test_images.shape[0])
  return results


ELBO_COLUMNS = (("nll", "NLL"), ("elbo", "elbo"), ("reconstruction", "recons"), ("kl", "kl"),
                ("kl_z_given_x", "kl_z|x"), ("active_units", "active units"),
                ("posterior_std", "std of q(z|x)"))


def elbo_markdown(results: dict) -> str:
  lines = ["| workdir | " + " | ".join(title for _, title in ELBO_COLUMNS) + " |",
           "|---" * (len(ELBO_COLUMNS) + 1) + "|"]
  for label, r in results.items():
    cells = [f"{r[k]:d}" if isinstance(r[k], int) else f"{r[k]:.2f}" if k != "posterior_std"
             else f"{r[k]:.4f}" for k, _ in ELBO_COLUMNS]
    lines.append(f"| {label} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# B.4 / Fig. 3


@_cached("training_posteriors")
def training_posteriors(workdir: Workdir, options: Options):
  """q(w|x) of every training image (one binarization), with E_q[z|x] and per-dimension stds."""
  estimators.require_one_latent_vae(workdir.model)
  key = workdir.key("posteriors", options.seed)
  posteriors = estimators.encode(workdir.model, workdir.params, workdir.run.train_images,
                                 workdir.train_encoding, jax.random.fold_in(key, 0))
  centres, stds = estimators.posterior_moments(workdir.model, workdir.params, posteriors,
                                               jax.random.fold_in(key, 1),
                                               options.posterior_samples)
  return posteriors, centres, stds


@_cached("overlap_arrays")
def overlap_arrays(workdir: Workdir, options: Options) -> dict:
  posteriors, centres, stds = training_posteriors(workdir, options)
  n = centres.shape[0]
  num_queries = min(options.overlap_points or n, n)
  overlap = estimators.posterior_overlap(workdir.model, workdir.params, posteriors, centres,
                                         num_queries, workdir.key("overlap", options.seed),
                                         options.posterior_samples)
  return {"std": np.asarray(stds[:num_queries]), "distance": np.asarray(overlap.distance),
          "normalized_distance": np.asarray(overlap.normalized_distance),
          "num_points": num_queries, "num_candidates": n}


def overlap(workdirs, options: Options) -> dict:
  arrays = {w.label: overlap_arrays(w, options) for w in workdirs}
  plots.overlap_histograms(os.path.join(options.output_dir, "overlap.png"), arrays)
  return {label: {"num_points": a["num_points"], "num_candidates": a["num_candidates"],
                  "samples_per_std": options.posterior_samples,
                  **{key: _summary(a[key]) for key in ("std", "distance", "normalized_distance")}}
          for label, a in arrays.items()}


# ----------------------------------------------------------------------------------------------
# Fig. 4, 5, B.6


def rate_distortion(workdirs, options: Options) -> dict:
  rows = []
  for w in workdirs:
    model_config = w.run.config.model
    depth = model_config.prior.num_blocks if model_config.prior.name == "realnvp" else 0
    elbo = elbo_decomposition(w, options)
    arrays = overlap_arrays(w, options)
    rows.append({"label": w.label, "K": depth, "beta": w.run.config.train.beta,
                 "rate": elbo["kl"], "distortion": -elbo["reconstruction"],
                 "nll": elbo["nll"], "elbo": elbo["elbo"],
                 "normalized_distance": float(arrays["normalized_distance"].mean()),
                 "posterior_std": float(arrays["std"].mean())})
  plots.rate_distortion(os.path.join(options.output_dir, "rate_distortion.png"), rows)
  return {"rows": rows}


# ----------------------------------------------------------------------------------------------
# Fig. 2


def _shown(images, encoding: str):
  """Stored uint8 images as shown and compared: {0, 1} as they are, else intensities in [0, 1]."""
  return np.asarray(batching.model_input(None, jnp.asarray(images),
                                         "binary" if encoding == "binary" else "8bit"))


def interpolation_pairs(workdir: Workdir, options: Options):
  """(i, j) training-image pairs: `interpolation_pairs` similar ones (j the nearest other image
  in pixel L2) then as many dissimilar ones (j the farthest of 1,000 random images)."""
  train_images = workdir.run.dataset.train
  pixels = _shown(train_images, workdir.train_encoding).reshape(len(train_images), -1)
  rng = np.random.default_rng(options.seed)
  count = options.interpolation_pairs
  starts = rng.choice(len(pixels), 2 * count, replace=False)
  similar, _ = estimators.nearest_neighbours(jnp.asarray(pixels[starts[:count]]),
                                             jnp.asarray(pixels), jnp.asarray(starts[:count]))
  pairs = [(int(i), int(j)) for i, j in zip(starts[:count], np.asarray(similar))]
  for i in starts[count:]:
    candidates = rng.choice(len(pixels), 1000, replace=False)
    far = candidates[np.linalg.norm(pixels[candidates] - pixels[i], axis=1).argmax()]
    pairs.append((int(i), int(far)))
  return pairs


@functools.partial(jax.jit, static_argnums=(0, 4))
def _interpolate_and_decode(model, params, start, end, steps, key):
  z = jax.vmap(lambda a, b: estimators.interpolate(a, b, steps))(start, end)  # [pairs, steps, D]
  flat = z.reshape((-1,) + tuple(model.latent_shape))
  images = model.apply({"params": params}, flat, key, method="decode")
  log_p = estimators.prior_log_prob(model, params, flat)
  return images.reshape(z.shape[:2] + images.shape[1:]), log_p.reshape(z.shape[:2])


def interpolation(workdirs, options: Options) -> dict:
  pairs = interpolation_pairs(workdirs[0], options)
  count = options.interpolation_pairs
  titles = [f"similar {i}-{j}" for i, j in pairs[:count]] + [
      f"dissimilar {i}-{j}" for i, j in pairs[count:]]
  figures, results = {}, {"pairs": pairs, "kinds": ["similar"] * count + ["dissimilar"] * count}
  for w in workdirs:
    _, centres, _ = training_posteriors(w, options)
    i, j = (np.array(index) for index in zip(*pairs))
    images, log_p = _interpolate_and_decode(w.model, w.params, centres[i], centres[j],
                                            options.interpolation_steps,
                                            w.key("interpolation", options.seed))
    shown = _shown(w.run.dataset.train[np.concatenate([i, j])], w.train_encoding)
    ends = shown.reshape((2, len(pairs)) + shown.shape[1:])
    figures[w.label] = (np.concatenate([ends[0][:, None], np.asarray(images), ends[1][:, None]],
                                       1), np.asarray(log_p))
    log_p = np.asarray(log_p, np.float64)
    # How far log p(z) sinks between the two ends: > 0 where the prior avoids the path's middle.
    dip = (log_p[:, 0] + log_p[:, -1]) / 2 - log_p.min(1)
    results[w.label] = {"log_p": log_p.tolist(), "log_p_dip": dip.tolist(),
                        "mean_dip_similar": float(dip[:count].mean()),
                        "mean_dip_dissimilar": float(dip[count:].mean())}
  plots.interpolations(os.path.join(options.output_dir, "interpolation.png"), figures, titles)
  return results


# ----------------------------------------------------------------------------------------------
# Fig. 1, B.3-B.5


def samples_with_nearest(workdir: Workdir, options: Options) -> dict:
  """A grid of prior samples whose last column is the training image nearest (pixel L2) to the
  sample in the second-to-last column."""
  rows, columns = options.grid_rows, options.grid_columns
  key = workdir.key("samples", options.seed)
  samples = np.asarray(jax.jit(workdir.model.apply, static_argnames=("method", "n"))(
      {"params": workdir.params}, key, n=rows * (columns - 1), method="generate"))
  samples = samples.reshape((rows, columns - 1) + samples.shape[1:])
  train_images = workdir.run.dataset.train
  pixels = _shown(train_images, workdir.train_encoding).reshape(len(train_images), -1)
  nearest, distance = estimators.nearest_neighbours(
      jnp.asarray(samples[:, -1].reshape(rows, -1)), jnp.asarray(pixels))
  nearest = np.asarray(nearest)
  neighbours = pixels[nearest].reshape((rows, 1) + samples.shape[2:])
  grid = np.concatenate([samples, neighbours], 1).reshape((-1,) + samples.shape[2:])
  path = os.path.join(options.output_dir, f"samples_nearest_{workdir.label}.png")
  image_grid.save_grid(path, grid, columns=columns)
  return {"figure": os.path.basename(path), "nearest_training_index": nearest.tolist(),
          "pixel_distance": np.asarray(distance).tolist()}


# ----------------------------------------------------------------------------------------------
# B.14


@_cached("low_posterior_z")
def _low_posterior_z(source: Workdir, options: Options):
  """The source's lowest-q(z) prior samples with their log q(z), and z ~ q(z|x) of as many random
  training points; computed once per source, whichever workdirs score them."""
  posteriors, _, _ = training_posteriors(source, options)
  key = source.key("low_posterior", options.seed)
  z_low, log_q_low = estimators.low_posterior_samples(
      source.model, source.params, posteriors, jax.random.fold_in(key, 0),
      options.low_posterior_candidates, options.low_posterior_kept)
  kept = options.low_posterior_kept
  train_index = np.random.default_rng(options.seed).choice(
      posteriors.loc.shape[0], kept, replace=False)
  z_train = estimators.posterior_samples(
      source.model, source.params, estimators.Posteriors(*(p[train_index] for p in posteriors)),
      jax.random.fold_in(key, 1), 1)[0].reshape((kept,) + tuple(source.model.latent_shape))
  return z_low, log_q_low, z_train


def _same_encoder_and_decoder(a: Workdir, b: Workdir) -> bool:
  """Whether all parameters but the prior's are identical."""
  if a is b:
    return True
  vae = lambda w: {k: v for k, v in w.params.items() if k != "prior"}
  leaves_a, tree_a = jax.tree_util.tree_flatten(vae(a))
  leaves_b, tree_b = jax.tree_util.tree_flatten(vae(b))
  return tree_a == tree_b and all(
      x.shape == y.shape and np.array_equal(x, y) for x, y in zip(leaves_a, leaves_b))


def low_posterior(workdirs, options: Options) -> dict:
  """z ~ p(z) of the source workdir (each workdir itself, or `low_posterior_source`), ranked by
  the source's aggregated posterior over its training set; the lowest are scored by every
  workdir: log p(z), and the ELBO of one x ~ p(x|z) drawn by that workdir's decoder. Beside them,
  the same for z ~ q(z|x) of as many random training points."""
  by_label = {w.label: w for w in workdirs}
  if options.low_posterior_source and options.low_posterior_source not in by_label:
    raise ValueError(f"--low_posterior_source={options.low_posterior_source!r} is not one of the "
                     f"labels {sorted(by_label)}.")
  figures, results = {}, {}
  for w in workdirs:
    source = by_label.get(options.low_posterior_source, w)
    if not _same_encoder_and_decoder(source, w):
      raise ValueError(
          f"--low_posterior_source={source.label}: {w.label} has another encoder or decoder, so "
          f"{source.label}'s z mean nothing to it. A shared source is for models that share "
          "q(z|x) and p(x|z), as a post-hoc prior shares its standard VAE's (Fig. B.7); "
          "analyse the others in a run without --low_posterior_source.")
    z_low, log_q_low, z_train = _low_posterior_z(source, options)
    key = w.key("low_posterior", options.seed)
    elbo = jax.jit(evaluate.make_bound_estimator(w.model, options.elbo_samples,
                                                 min(options.elbo_samples, 100)))
    scored = {}
    for name, z in (("low", z_low), ("train", z_train)):
      x = w.model.apply({"params": w.params}, z, jax.random.fold_in(key, 2),
                        method="sample_images")
      scored[f"log_p_{name}"] = np.asarray(estimators.prior_log_prob(w.model, w.params, z))
      scored[f"elbo_{name}"] = np.asarray(elbo(w.params, x, jax.random.fold_in(key, 3))["elbo"])
    scored["means"] = np.asarray(w.model.apply({"params": w.params}, z_low,
                                               jax.random.fold_in(key, 4), method="decode"))
    figures[w.label] = scored
    results[w.label] = {"source": source.label, "candidates": options.low_posterior_candidates,
                        "kept": options.low_posterior_kept, "log_q_low": _summary(log_q_low),
                        **{k: _summary(v) for k, v in scored.items() if k != "means"}}
  plots.low_posterior(os.path.join(options.output_dir, "low_posterior.png"), figures)
  return results


# ----------------------------------------------------------------------------------------------
# B.8


def aggregate_kl(workdir: Workdir, options: Options) -> dict:
  run = workdir.run
  if max(options.aggregate_nx) > 1 and not run.dataset.dynamic_binarization:
    raise ValueError(f"n_x > 1 draws several binarizations of each image (Algorithm B.2); "
                     f"{run.dataset.name} is not dynamically binarized: use --aggregate_nx=1.")
  n = min(options.aggregate_images or run.train_images.shape[0], run.train_images.shape[0])
  results = {}
  for n_x in options.aggregate_nx:
    results[f"n_x={n_x}"] = estimators.aggregate_kl(
        run.model, workdir.params, run.train_images[:n], run.dataset.encoding,
        jax.random.fold_in(workdir.key("aggregate_kl", options.seed), n_x), n_x,
        options.aggregate_nz)
  return results
