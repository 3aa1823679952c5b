"""A minimal hand-written training step, the speed reference for the library's own (issue #18).

The VampPrior paper's one-latent VAE (Tomczak & Welling 2018, Section 5.1: gated 784-300-300-40
encoder and decoder, Bernoulli likelihood, batch 100, Adam lr 5e-4) with the standard prior or a
VampPrior of K pseudo-inputs, written as plainly as the mathematics allows: the same program as
`../shared/bench/plain_step.py`, built here so that `python -m vae_jax.benchmark --reference`
runs without that file. Random binary images: it measures speed, not learning. The library's
step for the same model is `configs/vampprior.py:static_mnist-vae-<prior>`.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax

LATENT, HIDDEN, PIXELS, BATCH = 40, 300, 784, 100


def _dense(key, n_in, n_out):
  return {"w": jax.random.normal(key, (n_in, n_out)) / np.sqrt(n_in), "b": jnp.zeros(n_out)}


def _gated(key, n_in, n_out):
  a, b = jax.random.split(key)
  return {"h": _dense(a, n_in, n_out), "g": _dense(b, n_in, n_out)}


def _linear(p, x):
  return x @ p["w"] + p["b"]


def _gated_layer(p, x):
  return _linear(p["h"], x) * jax.nn.sigmoid(_linear(p["g"], x))


def _encode(p, x):
  h = _gated_layer(p["e2"], _gated_layer(p["e1"], x))
  return _linear(p["mu"], h), jnp.clip(_linear(p["logvar"], h), -6.0, 2.0)


def _log_normal(z, mean, logvar):
  return -0.5 * (jnp.log(2 * jnp.pi) + logvar + (z - mean) ** 2 / jnp.exp(logvar))


def loss(p, x, key, beta, components: int):
  """The negative ELBO (beta-weighted KL) of a batch x [B, 784]; components=0: N(0, I) prior."""
  mean, logvar = _encode(p, x)
  z = mean + jnp.exp(0.5 * logvar) * jax.random.normal(key, mean.shape)
  logits = _linear(p["px"], _gated_layer(p["d2"], _gated_layer(p["d1"], z)))
  log_px = jnp.sum(x * jax.nn.log_sigmoid(logits) + (1 - x) * jax.nn.log_sigmoid(-logits), -1)
  log_q = jnp.sum(_log_normal(z, mean, logvar), -1)
  if components:
    u_mean, u_logvar = _encode(p, jnp.clip(p["pseudo_inputs"], 0.0, 1.0))
    log_p = (jax.nn.logsumexp(jnp.sum(_log_normal(z[:, None], u_mean, u_logvar), -1), -1)
             - jnp.log(components))
  else:
    log_p = jnp.sum(-0.5 * (jnp.log(2 * jnp.pi) + z ** 2), -1)
  return -jnp.mean(log_px - beta * (log_q - log_p))


def init_params(components: int) -> dict:
  keys = jax.random.split(jax.random.PRNGKey(0), 8)
  params = {"e1": _gated(keys[0], PIXELS, HIDDEN), "e2": _gated(keys[1], HIDDEN, HIDDEN),
            "mu": _dense(keys[2], HIDDEN, LATENT), "logvar": _dense(keys[3], HIDDEN, LATENT),
            "d1": _gated(keys[4], LATENT, HIDDEN), "d2": _gated(keys[5], HIDDEN, HIDDEN),
            "px": _dense(keys[6], HIDDEN, PIXELS)}
  if components:
    params["pseudo_inputs"] = 0.05 + 0.01 * jax.random.normal(keys[7], (components, PIXELS))
  return params


def make(components: int, steps_per_call: int):
  """`call() -> loss`: steps_per_call optimizer steps in one jitted call (a device loop), with
  the state kept between calls; components=0 is the standard prior."""
  params = init_params(components)
  optimizer = optax.adam(5e-4)
  images = jnp.asarray(np.random.RandomState(0).rand(50000, PIXELS) < 0.13, jnp.float32)

  @jax.jit
  def train_steps(params, opt_state, key, first):
    def step(carry, i):
      params, opt_state = carry
      rows = jax.random.randint(jax.random.fold_in(key, 2 * i), (BATCH,), 0, images.shape[0])
      value, grads = jax.value_and_grad(loss)(params, images[rows],
                                               jax.random.fold_in(key, 2 * i + 1), 0.5,
                                               components)
      updates, opt_state = optimizer.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), value
    (params, opt_state), values = jax.lax.scan(step, (params, opt_state),
                                               first + jnp.arange(steps_per_call))
    return params, opt_state, values[-1]

  state = [params, optimizer.init(params), 0]
  key = jax.random.PRNGKey(1)

  def call():
    state[0], state[1], value = train_steps(state[0], state[1], key, state[2])
    state[2] += steps_per_call
    return value
  return call
