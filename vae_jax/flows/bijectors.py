"""The invertible layers of RealNVP (Xu et al. 2020, Appendix B.2) as distrax bijectors.

Each bijector is a plain value built from arrays (and, for couplings, a conditioner function);
the Flax modules in `realnvp.py` own the parameters and build these per call.
"""
import math
from typing import Callable

import distrax
import jax
import jax.numpy as jnp


class InvertibleDense(distrax.Bijector):
  """y = W x with W = P L (U + diag(sign * exp(log_abs_diag))) (Glow's LU form) on the last axis.

  With event_ndims=1 it is the InvertibleDense of Xu et al. (2020, B.2); with event_ndims=3 on
  [H, W, C] events it is Glow's invertible 1x1 convolution (B.5). log|det| = H W sum(log_abs_diag),
  and the inverse costs two triangular solves.
  """

  def __init__(self, permutation, lower, upper, log_abs_diag, sign_diag, event_ndims: int = 1):
    super().__init__(event_ndims_in=event_ndims)
    dim = log_abs_diag.shape[-1]
    self._permutation = permutation
    self._lower = jnp.tril(lower, -1) + jnp.eye(dim, dtype=lower.dtype)
    self._upper = jnp.triu(upper, 1) + jnp.diag(sign_diag * jnp.exp(log_abs_diag))
    self._log_det = jnp.sum(log_abs_diag)

  @property
  def matrix(self):
    return self._permutation @ self._lower @ self._upper

  def _log_det_for(self, x):
    event_ndims = self.event_ndims_in
    positions = math.prod(x.shape[x.ndim - event_ndims:-1])  # 1 for vectors, H W for images
    return jnp.broadcast_to(positions * self._log_det, x.shape[:x.ndim - event_ndims])

  def forward_and_log_det(self, x):
    return x @ self.matrix.T, self._log_det_for(x)

  def inverse_and_log_det(self, y):
    # x = U^-1 L^-1 P^T y, solved on the transposed batch.
    flat = (y @ self._permutation).reshape(-1, y.shape[-1]).T
    flat = jax.scipy.linalg.solve_triangular(self._lower, flat, lower=True, unit_diagonal=True)
    flat = jax.scipy.linalg.solve_triangular(self._upper, flat, lower=False)
    return flat.T.reshape(y.shape), -self._log_det_for(y)


def actnorm(log_scale, bias, event_ndims: int) -> distrax.Bijector:
  """y = x * exp(log_scale) + bias with per-feature (last axis) parameters."""
  return distrax.Block(distrax.ScalarAffine(shift=bias, log_scale=log_scale), ndims=event_ndims)


def sigmoid_affine_coupling(conditioner: Callable, split_index: int, event_ndims: int,
                            swap: bool = False) -> distrax.Bijector:
  """Affine coupling whose scale is a sigmoid (Xu et al. 2020, Appendix B.2).

  [u_l, u_r] -> [u_l, u_r * sigmoid(s(u_l)) + t(u_l)], split on the last axis. The scale lies in
  (0, 1), so the forward map cannot blow up as an exp-scale can (a known source of NaNs);
  ActNorm after each coupling restores the spread. `conditioner(u_l)` returns (s, t). With
  `swap`, the left part is transformed conditioned on the right.
  """

  def inner(params):
    pre_scale, shift = params
    return distrax.ScalarAffine(shift=shift, log_scale=jax.nn.log_sigmoid(pre_scale))

  return distrax.SplitCoupling(split_index=split_index, event_ndims=event_ndims,
                               conditioner=conditioner, bijector=inner, swap=swap)


class LowRankAffine(distrax.Bijector):
  """z = c + (diag(d) + u u^T) eps on vectors, with d > 0: the affine bijector of the
  Self-Reflective VAE (Apostolopoulou et al., Section 3.1), whose c, d, u are functions of the
  previous layer's latent code.

  Parameters may carry batch axes [..., N]. The matrix determinant lemma gives
  log|det| = sum_i log d_i + log(1 + u^T diag(d)^-1 u), and Sherman-Morrison the inverse: both
  O(N), with no N x N matrix.
  """

  def __init__(self, shift, diag, u):
    super().__init__(event_ndims_in=1)
    self.shift, self.diag, self.u = shift, diag, u

  def _log_det(self, x):
    log_det = (jnp.sum(jnp.log(self.diag), -1)
               + jnp.log1p(jnp.sum(jnp.square(self.u) / self.diag, -1)))
    return jnp.broadcast_to(log_det, x.shape[:-1])

  def forward_and_log_det(self, x):
    z = self.shift + self.diag * x + self.u * jnp.sum(self.u * x, -1, keepdims=True)
    return z, self._log_det(z)

  def inverse_and_log_det(self, z):
    y = (z - self.shift) / self.diag
    u_over_d = self.u / self.diag
    gain = jnp.sum(self.u * y, -1, keepdims=True) / (
        1.0 + jnp.sum(self.u * u_over_d, -1, keepdims=True))
    x = y - u_over_d * gain
    return x, -self._log_det(x)
