"""IAF Figure 1 (Kingma et al. 2016): a toy VAE with four data points, a 2-D latent space and a
spherical Gaussian prior, fitted once with a factorized Gaussian posterior and once with an IAF
posterior; each data point's posterior samples are drawn in their own colour over the prior.

  python launch/iaf_figure1.py --output_dir=results/iaf_figure1

Writes iaf_figure1.png (the figure), iaf_figure1.json (ELBOs, log-likelihoods, settings, wall
time) into --output_dir. Run from the repository root; 1-1.5 minutes on two shared CPU cores
(results/iaf_figure1/README.md has the figure, its caption and the numbers).

What the paper fixes (Figure 1's caption, Section 1): a VAE with a spherical Gaussian prior, a
factorized Gaussian posterior (panel b) or an IAF posterior (panel c), a toy dataset of four data
points; the figure's axes show a 2-D latent space. Everything else is ours, as the paper gives no
more detail: the data (the four one-hot vectors of length 4, i.e. the four 2x2 binary images with
one pixel on), a Bernoulli decoder, the encoder and decoder MLPs, the IAF's depth and width
(Algorithm 1 with MADEs, via vae_jax.flows.autoregressive.IAF), Adam, the step count, the number
of posterior samples per step and the seed.
The figure's panel (a) shows samples of the prior, as the paper's does; the decoder's region
borders drawn in (b) and (c) are our addition, to show the tiles the exact posteriors fill.

With four equally likely data points, no model can do better than an average log p(x) of
-log 4 = -1.386 nats (the data's entropy): it reaches it when the decoder splits the latent space
into four regions of prior mass 1/4 each, one per data point, and then the exact posterior
p(z|x) is the prior restricted to that region. An ELBO can only reach that value if q(z|x) fills
its region exactly; the gap ELBO - log p(x) = -KL(q(z|x) || p(z|x)) is what a posterior pays for
the parts of the prior it leaves uncovered or shares with another point.
"""
import os
import sys
import time
from typing import Sequence

from absl import app, flags
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from vae_jax.flows.autoregressive import IAF  # pylint: disable=wrong-import-position
from vae_jax.metric_writer import write_json_atomically  # pylint: disable=wrong-import-position

FLAGS = flags.FLAGS


def define_flags():
  """The command's flags, defined when it runs, not on import (tests import this file beside
  modules that define flags of the same names)."""
  flags.DEFINE_string("output_dir", "results/iaf_figure1", "Where the PNG and JSON go.")
  flags.DEFINE_integer("seed", 0, "Initialisation and training noise; the same for both models.")
  flags.DEFINE_integer("steps", 20_000, "Adam steps for each model.")
  flags.DEFINE_float("learning_rate", 1e-3, "Adam's step size (cosine-decayed to 0).")
  flags.DEFINE_integer("train_samples", 32, "Posterior samples per data point per step.")
  flags.DEFINE_integer("iaf_steps", 8, "IAF steps (MADEs) of the IAF posterior.")
  flags.DEFINE_integer("iaf_hidden", 64, "Units of each of a MADE's two hidden layers.")
  flags.DEFINE_integer("plot_samples", 2_000, "Posterior samples drawn per data point.")

# Ours: the four one-hot vectors (2x2 binary images with one pixel on).
DATA = np.eye(4, dtype=np.float32)
LATENT_DIM = 2  # the 2-D latent space of Figure 1's axes
NETWORK_WIDTH = 64  # ours: the encoder's and decoder's two hidden layers
ELBO_SAMPLES = 10_000  # per data point, for the final ELBO estimate
IMPORTANCE_SAMPLES = 1_000  # per data point, for log p(x) by importance sampling
GRID_LIMIT, GRID_POINTS = 6.0, 801  # the quadrature grid of exact log p(x): [-6, 6]^2
BEST_LOG_LIKELIHOOD = -float(np.log(len(DATA)))  # the data's entropy bounds mean log p(x)


class ToyVAE(nn.Module):
  """q(z|x) = N(mu(x), diag sigma(x)^2), optionally followed by an IAF with context h(x);
  p(z) = N(0, I) in 2-D; p(x|z) = Bernoulli(logits = decoder(z))."""
  iaf_steps: int = 0  # 0: the factorized Gaussian posterior
  iaf_hidden: Sequence[int] = (NETWORK_WIDTH, NETWORK_WIDTH)
  width: int = NETWORK_WIDTH

  def setup(self):
    self.encoder = nn.Sequential([nn.Dense(self.width), nn.elu, nn.Dense(self.width), nn.elu])
    self.posterior_loc = nn.Dense(LATENT_DIM)
    self.posterior_log_scale = nn.Dense(LATENT_DIM)
    self.flow = (IAF(self.iaf_steps, tuple(self.iaf_hidden), activation="elu")
                 if self.iaf_steps else None)
    self.decoder = nn.Sequential([nn.Dense(self.width), nn.elu, nn.Dense(self.width), nn.elu,
                                  nn.Dense(DATA.shape[1])])

  def encode(self, x):
    """(mu, log sigma, h) of q(w|x) and the IAF's context h (Algorithm 1)."""
    h = self.encoder(x)
    return self.posterior_loc(h), self.posterior_log_scale(h), h

  def transform(self, w, x):
    """z = f(w; h(x)) and log|det dz/dw| for samples w [..., batch, 2] of each x [batch, 4]."""
    if self.flow is None:
      return w, jnp.zeros(w.shape[:-1])
    return self.flow(w, self.encode(x)[2]).forward_and_log_det(w)

  def sample_posterior(self, x, key, num_samples: int):
    """z ~ q(z|x) [num_samples, batch, 2] and log q(z|x) [num_samples, batch]."""
    loc, log_scale, _ = self.encode(x)
    eps = jax.random.normal(key, (num_samples,) + loc.shape)
    w = loc + jnp.exp(log_scale) * eps
    log_q_w = jnp.sum(standard_normal_log_prob(eps) - log_scale, -1)
    z, log_det = self.transform(w, x)
    return z, log_q_w - log_det  # change of variables (IAF Section 2.2, Eq. 5)

  def log_likelihood(self, z, x):
    """log p(x|z) under the Bernoulli decoder, for z [..., batch, 2] and x [batch, 4]."""
    logits = self.decoder(z)
    return jnp.sum(x * jax.nn.log_sigmoid(logits) + (1 - x) * jax.nn.log_sigmoid(-logits), -1)

  def __call__(self, x, key, num_samples: int = 1):
    """Log-weights log p(x|z) + log p(z) - log q(z|x) [num_samples, batch], and z."""
    z, log_q = self.sample_posterior(x, key, num_samples)
    log_prior = jnp.sum(standard_normal_log_prob(z), -1)
    return self.log_likelihood(z, x) + log_prior - log_q, z


def standard_normal_log_prob(v):
  return -0.5 * (jnp.square(v) + np.log(2 * np.pi))


def make_model(posterior: str, iaf_steps: int, iaf_hidden: int) -> ToyVAE:
  if posterior == "gaussian":
    return ToyVAE()
  return ToyVAE(iaf_steps=iaf_steps, iaf_hidden=(iaf_hidden, iaf_hidden))


def init_params(model: ToyVAE, key):
  return model.init(key, jnp.asarray(DATA), jax.random.PRNGKey(0))["params"]


def negative_elbo(model: ToyVAE, params, key, num_samples: int):
  """-ELBO (IAF Eq. 2) averaged over the four data points, in nats."""
  log_weights, _ = model.apply({"params": params}, jnp.asarray(DATA), key, num_samples)
  return -jnp.mean(log_weights)


def train(model: ToyVAE, seed: int, steps: int, learning_rate: float, num_samples: int,
          chunk: int = 500):
  """Adam on the full batch (all four points) for `steps` steps; returns the parameters and the
  loss (-ELBO, nats) of every step. Steps run `chunk` at a time inside one jitted lax.scan."""
  init_key, train_key = jax.random.split(jax.random.PRNGKey(seed))
  params = init_params(model, init_key)
  optimizer = optax.adam(optax.cosine_decay_schedule(learning_rate, steps))
  loss_and_grad = jax.value_and_grad(lambda p, k: negative_elbo(model, p, k, num_samples))

  def step(carry, key):
    params, opt_state = carry
    loss, grads = loss_and_grad(params, key)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  run_chunk = jax.jit(lambda carry, keys: jax.lax.scan(step, carry, keys))
  carry, losses = (params, optimizer.init(params)), []
  keys = jax.random.split(train_key, steps)
  for start in range(0, steps, chunk):
    carry, chunk_losses = run_chunk(carry, keys[start:start + chunk])
    losses.append(np.asarray(chunk_losses))
  return carry[0], np.concatenate(losses) if losses else np.zeros(0)


def log_mean_exp(values, axis: int = 0):
  return jax.scipy.special.logsumexp(values, axis) - np.log(values.shape[axis])


def evaluate(model: ToyVAE, params, key) -> dict:
  """Per data point and averaged: the ELBO (ELBO_SAMPLES samples), log p(x) by importance
  sampling with q (IMPORTANCE_SAMPLES samples) and log p(x) by quadrature on a grid, which is
  exact up to the grid's resolution in 2-D."""
  elbo_key, is_key = jax.random.split(key)
  apply = jax.jit(lambda k, n: model.apply({"params": params}, jnp.asarray(DATA), k, n)[0],
                  static_argnums=1)
  elbo = jnp.mean(apply(elbo_key, ELBO_SAMPLES), 0)
  importance = log_mean_exp(apply(is_key, IMPORTANCE_SAMPLES))
  exact = jax.jit(grid_log_likelihood, static_argnums=0)(model, params)
  per_point = lambda v: [round(float(x), 4) for x in np.asarray(v)]
  return {"elbo": float(jnp.mean(elbo)), "elbo_per_point": per_point(elbo),
          "log_likelihood_importance": float(jnp.mean(importance)),
          "log_likelihood_importance_per_point": per_point(importance),
          "log_likelihood_grid": float(jnp.mean(exact)),
          "log_likelihood_grid_per_point": per_point(exact),
          # log p(x) - ELBO = KL(q(z|x) || p(z|x)) (IAF Eq. 3): what the posterior's misfit costs.
          "bound_gap": float(jnp.mean(exact - elbo))}


def latent_grid(limit: float = GRID_LIMIT, points: int = GRID_POINTS):
  """(axis values [points], grid z [points, points, 2] with z[i, j] = (axis[j], axis[i]))."""
  axis = np.linspace(-limit, limit, points, dtype=np.float32)
  zx, zy = np.meshgrid(axis, axis)
  return axis, np.stack([zx, zy], -1)


def grid_log_likelihood(model: ToyVAE, params, data=DATA):
  """log p(x) = log of the sum over grid cells of p(x|z) p(z) dz, for each x of data [N, 4]."""
  axis, z = latent_grid()
  cell = float(axis[1] - axis[0]) ** 2
  z = jnp.asarray(z.reshape(-1, 1, LATENT_DIM))
  log_joint = (model.apply({"params": params}, z, jnp.asarray(data), method=ToyVAE.log_likelihood)
               + jnp.sum(standard_normal_log_prob(z), -1))
  return jax.scipy.special.logsumexp(log_joint, 0) + np.log(cell)


def decoder_regions(model: ToyVAE, params, limit: float, points: int = 401):
  """The data point the decoder finds most likely at each z of a grid [points, points]: the tiles
  that the exact posteriors p(z|x) cover."""
  _, z = latent_grid(limit, points)
  z = jnp.asarray(z.reshape(-1, 1, LATENT_DIM))
  log_likelihood = model.apply({"params": params}, z, jnp.asarray(DATA),
                               method=ToyVAE.log_likelihood)
  return np.asarray(jnp.argmax(log_likelihood, -1)).reshape(points, points)


def posterior_samples(model: ToyVAE, params, key, num_samples: int) -> np.ndarray:
  """z ~ q(z|x) for each data point: [num_samples, 4, 2]."""
  return np.asarray(model.apply({"params": params}, jnp.asarray(DATA), key, num_samples,
                                method=ToyVAE.sample_posterior)[0])


# Four colours that stay distinct for colour-blind readers (Okabe-Ito).
POINT_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7")
PLOT_LIMIT = 3.5


def _latent_axes(ax, title: str, axis, z) -> None:
  """Prior density as grey shading with dotted circles at radius 1, 2, 3; equal aspect."""
  prior_density = np.exp(np.sum(standard_normal_log_prob(z), -1))
  ax.imshow(prior_density, extent=(-PLOT_LIMIT, PLOT_LIMIT) * 2, origin="lower", cmap="Greys",
            vmax=prior_density.max() * 1.6, interpolation="bilinear")
  ax.contour(axis, axis, np.sqrt(np.sum(z ** 2, -1)), levels=(1, 2, 3), colors="0.4",
             linewidths=0.7, linestyles="dotted")
  ax.set_xlim(-PLOT_LIMIT, PLOT_LIMIT)
  ax.set_ylim(-PLOT_LIMIT, PLOT_LIMIT)
  ax.set_aspect("equal")
  ax.set_xlabel("z1")
  ax.set_ylabel("z2")
  ax.set_title(title, fontsize=10)


def draw_figure(path: str, prior_samples: np.ndarray, panels: list[dict]) -> None:
  """(a) samples of the prior; then one panel per model: each data point's posterior samples in
  its colour over the prior, with the borders of the decoder's regions (thin black lines)."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.lines  # pylint: disable=import-outside-toplevel
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  axis, z = latent_grid(PLOT_LIMIT, 401)
  figure, axes = plt.subplots(1, 1 + len(panels), figsize=(5 * (1 + len(panels)), 5.6),
                           layout="constrained")
  _latent_axes(axes[0], "(a) prior p(z) = N(0, I)", axis, z)
  axes[0].scatter(prior_samples[:, 0], prior_samples[:, 1], s=1.5, color="0.15", alpha=0.5,
                  linewidths=0, rasterized=True)
  for ax, panel in zip(axes[1:], panels):
    _latent_axes(ax, f"{panel['title']}\nELBO = {panel['elbo']:.3f} nats, "
                 f"log p(x) = {panel['log_likelihood']:.3f} nats", axis, z)
    ax.contour(axis, axis, panel["regions"], levels=(0.5, 1.5, 2.5), colors="black",
               linewidths=0.8)
    for i, colour in enumerate(POINT_COLOURS):
      ax.scatter(panel["samples"][:, i, 0], panel["samples"][:, i, 1], s=1.5, color=colour,
                 alpha=0.5, linewidths=0, rasterized=True)
  handles = [matplotlib.lines.Line2D([], [], marker="o", linestyle="", color=colour,
                                     label=f"q(z|x) for x = {''.join(map(str, row.astype(int)))}")
             for colour, row in zip(POINT_COLOURS, DATA)]
  handles.append(matplotlib.lines.Line2D([], [], color="black", linewidth=0.8,
                                         label="borders of argmax_x p(x|z)"))
  figure.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=9,
                frameon=False)
  figure.suptitle("Toy VAE of IAF Figure 1: four data points, 2-D latent space "
                  f"(best possible mean log p(x) = -log 4 = {BEST_LOG_LIKELIHOOD:.3f} nats)",
                  fontsize=11)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp.png"  # a failed save leaves any older figure intact
  figure.savefig(tmp, dpi=130, bbox_inches="tight")
  plt.close(figure)
  os.replace(tmp, path)


POSTERIORS = (("gaussian", "(b) factorized Gaussian posterior"), ("iaf", "(c) IAF posterior"))


def main(argv):
  del argv
  started = time.time()
  results, panels = {}, []
  for posterior, title in POSTERIORS:
    model_started = time.time()
    model = make_model(posterior, FLAGS.iaf_steps, FLAGS.iaf_hidden)
    params, losses = train(model, FLAGS.seed, FLAGS.steps, FLAGS.learning_rate,
                           FLAGS.train_samples)
    eval_key, plot_key = jax.random.split(jax.random.PRNGKey(FLAGS.seed + 1))
    metrics = evaluate(model, params, eval_key)
    metrics["final_training_loss_mean_last_500"] = float(np.mean(losses[-500:]))
    metrics["train_seconds"] = round(time.time() - model_started, 1)
    results[posterior] = metrics
    print(f"{posterior}: ELBO {metrics['elbo']:.4f}, log p(x) (grid) "
          f"{metrics['log_likelihood_grid']:.4f}, (IS) {metrics['log_likelihood_importance']:.4f}"
          f", gap {metrics['bound_gap']:.4f}, {metrics['train_seconds']} s", flush=True)
    panels.append({"title": title, "elbo": metrics["elbo"],
                   "log_likelihood": metrics["log_likelihood_grid"],
                   "samples": posterior_samples(model, params, plot_key, FLAGS.plot_samples),
                   "regions": decoder_regions(model, params, PLOT_LIMIT)})
  png = os.path.join(FLAGS.output_dir, "iaf_figure1.png")
  prior_key = jax.random.PRNGKey(FLAGS.seed + 2)
  draw_figure(png, np.asarray(jax.random.normal(prior_key, (FLAGS.plot_samples,
                                                              LATENT_DIM))), panels)
  payload = {
      "command": "python launch/iaf_figure1.py " + " ".join(sys.argv[1:]),
      "paper": "Kingma et al. 2016, Improved Variational Inference with IAF, Figure 1",
      "results": results,
      "best_possible_mean_log_likelihood": BEST_LOG_LIKELIHOOD,
      "settings": {
          "seed": FLAGS.seed, "steps": FLAGS.steps, "learning_rate": FLAGS.learning_rate,
          "optimizer": "adam, cosine decay to 0", "train_samples_per_point": FLAGS.train_samples,
          "data": "four one-hot vectors of length 4, Bernoulli decoder",
          "encoder": f"MLP {NETWORK_WIDTH}-{NETWORK_WIDTH} ELU -> (mu, log sigma) in 2-D",
          "decoder": f"MLP {NETWORK_WIDTH}-{NETWORK_WIDTH} ELU -> 4 Bernoulli logits",
          "iaf": f"{FLAGS.iaf_steps} steps, MADE {FLAGS.iaf_hidden}-{FLAGS.iaf_hidden} ELU, "
                 "context h(x) = the encoder's last hidden layer, order reversed between steps",
          "prior": "N(0, I), 2-D", "elbo_samples_per_point": ELBO_SAMPLES,
          "importance_samples_per_point": IMPORTANCE_SAMPLES,
          "grid": f"{GRID_POINTS}x{GRID_POINTS} on [-{GRID_LIMIT:g}, {GRID_LIMIT:g}]^2",
          "plot_samples_per_point": FLAGS.plot_samples,
      },
      "hardware": f"CPU, {len(os.sched_getaffinity(0))} cores",
      "jax": jax.__version__,
      "wall_seconds": round(time.time() - started, 1),
  }
  write_json_atomically(os.path.join(FLAGS.output_dir, "iaf_figure1.json"), payload)
  print(f"wrote {png} ({payload['wall_seconds']} s)")


if __name__ == "__main__":
  define_flags()
  app.run(main)
