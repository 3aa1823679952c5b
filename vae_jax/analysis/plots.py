"""The figures of the analyses (Xu et al. 2020, Fig. 1-5, B.6-B.8), as PNG files.

matplotlib draws them off-screen (Agg); each function takes plain arrays and a path, so the
figures can be redrawn from the JSON the analyses write.
"""
import os
import tempfile

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from vae_jax import image_grid  # pylint: disable=wrong-import-position


def _save(figure, path: str) -> None:
  """Writes the PNG through a temporary file, so a failure leaves any older figure intact."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, suffix=".png")
  os.close(fd)
  try:
    figure.savefig(tmp, dpi=120, bbox_inches="tight")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
  finally:
    plt.close(figure)
    if os.path.exists(tmp):
      os.unlink(tmp)


def _show_images(axis, images, columns: int, title: str = "") -> None:
  tiled = image_grid.tile(images, columns)
  tiled = tiled[..., 0] if tiled.shape[-1] == 1 else tiled
  axis.imshow(tiled, cmap="gray" if tiled.ndim == 2 else None, vmin=0, vmax=1)
  axis.set_xticks([])
  axis.set_yticks([])
  if title:
    axis.set_title(title, fontsize=9)


def overlap_histograms(path: str, per_label: dict) -> None:
  """Fig. 3: histograms of per-dimension posterior stds, distances of closest pairs and their
  normalized distances; `per_label` maps label -> dict with arrays `std`, `distance`,
  `normalized_distance`."""
  panels = (("std", "per-dimension std of q(z|x)"), ("distance", "distance d_ij"),
            ("normalized_distance", "normalized distance (Eq. B.3)"))
  figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
  for axis, (key, title) in zip(axes, panels):
    values = [np.asarray(v[key]).ravel() for v in per_label.values()]
    upper = max(np.quantile(v, 0.995) for v in values)
    bins = np.linspace(0, upper, 60)
    for label, v in zip(per_label, values):
      axis.hist(np.clip(v, 0, upper), bins=bins, alpha=0.5, density=True, label=label)
    axis.set_title(title, fontsize=10)
    axis.set_ylabel("density")
  axes[0].legend(fontsize=8)
  _save(figure, path)


def rate_distortion(path: str, rows) -> None:
  """Fig. 4, 5 and B.6: rate (KL) against distortion (-recons), one curve per flow depth K over
  beta; average normalized distance and average posterior std against beta. `rows` are dicts with
  K, beta, rate, distortion, normalized_distance, posterior_std."""
  figure, axes = plt.subplots(1, 3, figsize=(14, 4))
  for depth in sorted({r["K"] for r in rows}):
    curve = sorted((r for r in rows if r["K"] == depth), key=lambda r: r["beta"])
    label = f"K = {depth}" + (" (standard prior)" if depth == 0 else "")
    rate = [r["rate"] for r in curve]
    line, = axes[0].plot(rate, [r["distortion"] for r in curve], "o-", label=label)
    for r in curve:
      axes[0].annotate(f"β={r['beta']:g}", (r["rate"], r["distortion"]), fontsize=7,
                       textcoords="offset points", xytext=(3, 3), color=line.get_color())
    betas = [r["beta"] for r in curve]
    axes[1].plot(betas, [r["normalized_distance"] for r in curve], "o-", label=label)
    axes[2].plot(betas, [r["posterior_std"] for r in curve], "o-", label=label)
  axes[0].set(xlabel="rate = E KL(q(z|x) || p(z)) [nats]",
              ylabel="distortion = -E log p(x|z) [nats]", title="rate-distortion (Fig. 4)")
  axes[1].set(ylabel="average normalized distance", title="posterior overlap (Fig. 5)")
  axes[2].set(ylabel="average std of q(z|x)", title="Fig. B.6")
  betas = sorted({r["beta"] for r in rows})
  for axis in axes[1:]:
    axis.set(xlabel="β", xscale="log")
    axis.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(betas))
    axis.xaxis.set_major_formatter(matplotlib.ticker.FixedFormatter([f"{b:g}" for b in betas]))
    axis.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
  for axis in axes:
    axis.legend(fontsize=8)
  _save(figure, path)


def interpolations(path: str, per_label: dict, row_titles) -> None:
  """Fig. 2: for each label (a column block) and pair (a row), the two training images around
  the decoded interpolations, and under them log p(z) of each interpolated z as a heatmap.

  `per_label` maps label -> (images [pairs, steps + 2, H, W, C], log_p [pairs, steps])."""
  labels = list(per_label)
  num_pairs = len(row_titles)
  figure, axes = plt.subplots(2 * num_pairs, len(labels), squeeze=False,
                              figsize=(6.5 * len(labels), 1.25 * num_pairs + 0.6),
                              gridspec_kw={"height_ratios": [3, 1] * num_pairs})
  for column, label in enumerate(labels):
    images, log_p = (np.asarray(a) for a in per_label[label])
    low, high = float(log_p.min()), float(log_p.max())
    for pair in range(num_pairs):
      steps = log_p.shape[1]
      image_axis, heat_axis = axes[2 * pair, column], axes[2 * pair + 1, column]
      _show_images(image_axis, images[pair], steps + 2)
      if column == 0:
        image_axis.set_ylabel(row_titles[pair], fontsize=8, rotation=0, ha="right", va="center")
      if pair == 0:
        image_axis.set_title(f"{label}: log p(z) from {low:.0f} to {high:.0f}", fontsize=9)
      # The heatmap sits under the interpolated images (not under the two training images).
      heat = np.full((1, steps + 2), np.nan)
      heat[0, 1:-1] = log_p[pair]
      mappable = heat_axis.imshow(heat, cmap="viridis", vmin=low, vmax=high, aspect="auto")
      heat_axis.set_xticks([])
      heat_axis.set_yticks([])
    figure.colorbar(mappable, ax=axes[:, column].tolist(), fraction=0.02, pad=0.01,
                    label=f"log p(z), {label}")
  _save(figure, path)


def low_posterior(path: str, per_label: dict) -> None:
  """Fig. B.7-B.8: per label (a row), histograms of log p(z) and of the ELBO of x ~ p(x|z) for
  the low-posterior z against z from training points, and the means of p(x|z) of the low ones.

  `per_label` maps label -> dict with log_p_low, elbo_low, log_p_train, elbo_train (arrays) and
  means [N, H, W, C]."""
  figure, axes = plt.subplots(len(per_label), 3, squeeze=False,
                              figsize=(13, 3.4 * len(per_label)))
  for row, (label, v) in enumerate(per_label.items()):
    for axis, key, xlabel in ((axes[row, 0], "log_p", "log p(z)"), (axes[row, 1], "elbo", "ELBO")):
      train, low = np.asarray(v[f"{key}_train"]), np.asarray(v[f"{key}_low"])
      bins = np.linspace(min(train.min(), low.min()), max(train.max(), low.max()), 40)
      axis.hist(train, bins=bins, alpha=0.5, label="train samples")
      axis.hist(low, bins=bins, alpha=0.5, label="low posterior samples")
      axis.set(xlabel=xlabel, ylabel=label)
      axis.legend(fontsize=8)
    means = np.asarray(v["means"])
    _show_images(axes[row, 2], means, int(np.ceil(np.sqrt(len(means)))), "E[x|z], low posterior z")
  _save(figure, path)
