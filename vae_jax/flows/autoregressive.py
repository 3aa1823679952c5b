"""Autoregressive flows: IAF posteriors (Kingma et al. 2016) and AF priors (Chen et al. 2017).

Both are chains of affine steps whose parameters come from a MADE of their own input, with the
order reversed between steps (IAF Section 6). They differ in which direction is parallel:

- IAF step, Algorithm 1: z' = sigmoid(s) * z + (1 - sigmoid(s)) * m with [m, s] = MADE(z, h).
  Sampling (forward) is one pass; log|det dz'/dz| = sum log sigmoid(s). The inverse needs D
  passes and is only used by tests and analyses.
- AF step, VLAE Section 3.2: z_i = eps_i * sigma_i(z_<i) + mu_i(z_<i). Its density
  log p(z) = log u(eps) + log|det d eps/dz| needs the inverse eps = (z - mu(z)) / sigma(z), one
  pass; sampling needs D passes. The mean-only variant (sigma = 1, VLAE Appendix A) is volume
  preserving.
"""
from typing import Callable, Sequence

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vae_jax.flows.made import MADE

# IAF Section 4: s starts "sufficiently positive, such as close to +1 or +2" (a forget-gate
# bias), so each step first changes z only slightly.
IAF_GATE_BIAS = 1.5


def _sequential_inverse(parallel_map: Callable, y, dim: int):
  """x with parallel_map(x) = y, where output i of parallel_map depends on x_<=i only through
  x_<i and monotonically on x_i: D rounds of x <- solve_i(y, params(x)) fix one more dimension
  each (dimension d in the order is exact after d rounds)."""
  return jax.lax.fori_loop(0, dim, lambda _, x: parallel_map(x, y), jnp.zeros_like(y))


class InverseAutoregressiveStep(distrax.Bijector):
  """One IAF step on [..., D]; `conditioner(z)` returns MADE outputs [..., D, 2] (m, s), or
  [..., D, 1] (m) for the location-only step z' = z + m (IAF Table 3)."""

  def __init__(self, conditioner: Callable, location_only: bool = False):
    super().__init__(event_ndims_in=1)
    self._conditioner = conditioner
    self._location_only = location_only

  def _gate_and_shift(self, z):
    params = self._conditioner(z)
    if self._location_only:
      return jnp.zeros_like(z), params[..., 0]
    return jax.nn.log_sigmoid(params[..., 1]), params[..., 0]

  def forward_and_log_det(self, z):
    z, log_det_units = iaf_update(self._conditioner(z), z, self._location_only)
    return z, jnp.sum(log_det_units, -1)

  def inverse_and_log_det(self, y):
    def solve(z, y):
      log_gate, m = self._gate_and_shift(z)
      if self._location_only:
        return y - m
      gate = jnp.exp(log_gate)
      return (y - (1 - gate) * m) / gate
    z = _sequential_inverse(solve, y, y.shape[-1])
    return z, -self.forward_and_log_det(z)[1]


def iaf_update(params, z, location_only: bool = False):
  """Algorithm 1's step from MADE outputs params [..., 2] = (m, s): z' = sigma * z + (1 - sigma)
  * m with sigma = sigmoid(s), and log|dz'_i/dz_i| = log sigma_i per unit; location-only:
  z' = z + m (params [..., 1]) with log-det 0."""
  if location_only:
    return z + params[..., 0], jnp.zeros_like(z)
  log_gate = jax.nn.log_sigmoid(params[..., 1])
  gate = jnp.exp(log_gate)
  return gate * z + (1 - gate) * params[..., 0], log_gate


class AutoregressiveAffineStep(distrax.Bijector):
  """One AF step eps -> z on [..., D]: z = eps * exp(log_sigma(z_<i)) + mu(z_<i), with
  `conditioner(z)` giving [..., D, 2] (mu, log_sigma) or [..., D, 1] (mu, mean-only)."""

  def __init__(self, conditioner: Callable, mean_only: bool = True):
    super().__init__(event_ndims_in=1)
    self._conditioner = conditioner
    self._mean_only = mean_only

  def _shift_and_log_scale(self, z):
    params = self._conditioner(z)
    if self._mean_only:
      return params[..., 0], jnp.zeros_like(z)
    return params[..., 0], params[..., 1]

  def inverse_and_log_det(self, z):
    mu, log_sigma = self._shift_and_log_scale(z)
    return (z - mu) * jnp.exp(-log_sigma), -jnp.sum(log_sigma, -1)

  def forward_and_log_det(self, eps):
    def solve(z, eps):
      mu, log_sigma = self._shift_and_log_scale(z)
      return eps * jnp.exp(log_sigma) + mu
    z = _sequential_inverse(solve, eps, eps.shape[-1])
    return z, -self.inverse_and_log_det(z)[1]


def step_order(dim: int, step: int) -> np.ndarray:
  """0..D-1 for even steps, reversed for odd ones (IAF Section 6)."""
  order = np.arange(dim)
  return order[::-1].copy() if step % 2 else order


class IAF(nn.Module):
  """An IAF posterior flow of `num_steps` steps, each a MADE with `hidden` layers that also sees
  the encoder's context h (Algorithm 1). `hidden=()` is the linear IAF of Appendix A."""
  takes_context = True  # q(z|x) depends on x through h as well as through (mu, sigma)
  num_steps: int
  hidden: Sequence[int] = (320, 320)
  location_only: bool = False
  activation: str = "elu"

  @nn.compact
  def __call__(self, z, context) -> distrax.Bijector:
    """The flow for samples z [..., D] with context h [..., H] (broadcast over leading axes)."""
    dim = z.shape[-1]
    steps = []
    for t in range(self.num_steps):
      made = MADE(self.hidden, 1 if self.location_only else 2, order=tuple(step_order(dim, t)),
                  activation=self.activation,
                  output_bias=(0.0,) if self.location_only else (0.0, IAF_GATE_BIAS),
                  name=f"made_{t}")

      def conditioner(value, made=made):
        return made(value, jnp.broadcast_to(context, value.shape[:-1] + context.shape[-1:]))
      steps.append(InverseAutoregressiveStep(conditioner, self.location_only))
    flow = distrax.Chain(steps[::-1])  # distrax.Chain applies its last bijector first.
    if self.is_initializing():
      flow.forward(z)  # creates the MADEs' parameters
    return flow
