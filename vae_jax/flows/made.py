"""MADE (Germain et al. 2015): a masked MLP whose output for dimension i sees only the inputs
before i in a chosen order, plus an unmasked context h (Kingma et al. 2016, Algorithm 1).

No JAX library ships a working MADE (distrax has none; TFP's AutoregressiveNetwork fails on its
JAX substrate), so this is ours. Degrees follow the paper: inputs get their rank in `order`
(1..D), hidden units degrees cycling through 1..D-1 (0..D-1 with a context), and a connection
i -> j exists when
deg(j) >= deg(i) into a hidden layer and deg(j) > deg(i) into the outputs. With no hidden layers
the output mask is the strictly lower-triangular one directly (the linear IAF of Appendix A).
"""
from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def input_degrees(order: Sequence[int]) -> np.ndarray:
  """Degree (1..D) of each input dimension: its position in `order`, which lists the dimensions
  from first to last."""
  order = np.asarray(order)
  if sorted(order.tolist()) != list(range(len(order))):
    raise ValueError(f"order must be a permutation of 0..{len(order) - 1}, got {order.tolist()}.")
  degrees = np.empty(len(order), np.int32)
  degrees[order] = np.arange(1, len(order) + 1)
  return degrees


def hidden_degrees(units: int, dim: int, with_context: bool) -> np.ndarray:
  """Degrees in turn: 1..D-1, or 0..D-1 with a context. Degree-0 units see the context and no
  input, and feed every output, so the context reaches the first dimension's outputs too."""
  low = 0 if with_context else 1
  return np.arange(units) % max(dim - low, 1) + low


class MaskedDense(nn.Module):
  """Dense layer whose kernel is multiplied by a fixed 0/1 mask [in, out]."""
  mask: np.ndarray
  bias_init: nn.initializers.Initializer = nn.initializers.zeros
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", self.kernel_init, self.mask.shape)
    bias = self.param("bias", self.bias_init, self.mask.shape[1:])
    return x @ (kernel * jnp.asarray(self.mask, kernel.dtype)) + bias


class MADE(nn.Module):
  """x [..., D] (and context [..., H]) -> [..., D, num_params], autoregressive in `order`.

  Attributes:
    hidden: units of each hidden layer; () gives the masked linear map.
    num_params: outputs per input dimension (2 for an IAF step's (m, s), 1 for a shift).
    order: the autoregressive order of the dimensions (default 0, 1, ..., D-1).
    activation: hidden nonlinearity (ReLU in VLAE Appendix A; ELU in the IAF experiments).
    output_bias: initial bias of each of the num_params outputs (IAF: s near +1..+2, Section 4).
    zero_init_output: start the outputs at their bias (an IAF step then starts as a fixed
      mixing, an AF prior as the identity).
  """
  hidden: Sequence[int]
  num_params: int
  order: Optional[Sequence[int]] = None
  activation: str = "relu"
  output_bias: Optional[Sequence[float]] = None
  zero_init_output: bool = False

  @nn.compact
  def __call__(self, x, context=None):
    dim = x.shape[-1]
    degrees = input_degrees(np.arange(dim) if self.order is None else self.order)
    activation = getattr(jax.nn, self.activation)
    h, previous = x, degrees
    for i, units in enumerate(self.hidden):
      current = hidden_degrees(units, dim, context is not None)
      h = MaskedDense(current[None, :] >= previous[:, None], name=f"masked_{i}")(h)
      if context is not None and i == 0:
        h = h + nn.Dense(units, name="context")(context)
      h = activation(h)
      previous = current
    out_mask = np.repeat(degrees[None, :] > previous[:, None], self.num_params, axis=1)
    bias = np.zeros(self.num_params) if self.output_bias is None else np.asarray(self.output_bias)
    if len(bias) != self.num_params:
      raise ValueError(f"output_bias has {len(bias)} values for num_params={self.num_params}.")
    out = MaskedDense(
        out_mask, bias_init=lambda *_: jnp.tile(jnp.asarray(bias, jnp.float32), dim),
        kernel_init=(nn.initializers.zeros if self.zero_init_output
                     else nn.initializers.lecun_normal()), name="output")(h)
    if context is not None and not self.hidden:
      out = out + nn.Dense(dim * self.num_params, name="context")(context)
    return out.reshape(out.shape[:-1] + (dim, self.num_params))
