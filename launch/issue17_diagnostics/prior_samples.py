"""Where a trained RealNVP prior's samples go: N prior samples z = f^-1(w), w ~ N(0, I), of a
workdir's latest checkpoint, and how many of them (and of their decoded images) are non-finite.

  PYTHONPATH=. python launch/issue17_diagnostics/prior_samples.py WORKDIR [N]
"""
import sys

import jax
import numpy as np

from vae_jax import checkpoints, runs, train

workdir, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1000
run = train.setup_run(runs.workdir_config(workdir))
params = checkpoints.restore_params(workdir)
apply = lambda method, *args: run.model.apply({"params": params}, *args, method=method)
z = jax.jit(lambda key: apply("prior_sample", key, n))(jax.random.PRNGKey(0))
images = jax.jit(lambda z, key: apply("decode", z, key))(z, jax.random.PRNGKey(1))
z_flat = np.asarray(z).reshape(n, -1)
finite_z = np.isfinite(z_flat).all(1)
finite_images = np.isfinite(np.asarray(images).reshape(n, -1)).all(1)
z_norm = np.sqrt(np.nansum(np.where(np.isfinite(z_flat), z_flat, 0) ** 2, 1) / z_flat.shape[1])
print(f"{n} prior samples: {n - finite_z.sum()} non-finite z, {n - finite_images.sum()} "
      f"non-finite images ({(~finite_images & finite_z).sum()} of them from finite z)")
print("RMS of finite z, percentiles 50/90/99/max:",
      np.percentile(z_norm[finite_z], [50, 90, 99, 100]).round(3))
print("RMS of z for non-finite images:", np.sort(z_norm[~finite_images])[:10].round(3))
