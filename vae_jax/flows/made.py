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

from vae_jax.nets.dense import Dense
from vae_jax.nets.weight_norm import WNConv


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


def made_masks(order: Sequence[int], hidden: Sequence[int], num_params: int,
               with_context: bool) -> list[np.ndarray]:
  """The 0/1 masks [in, out] of each layer: hidden layers connect deg(j) >= deg(i), the output
  layer (num_params units per dimension, grouped by dimension) deg(j) > deg(i)."""
  degrees = input_degrees(order)
  masks, previous = [], degrees
  for units in hidden:
    current = hidden_degrees(units, len(degrees), with_context)
    masks.append(current[None, :] >= previous[:, None])
    previous = current
  masks.append(np.repeat(degrees[None, :] > previous[:, None], num_params, axis=1))
  return masks


def initial_output_bias(output_bias, num_params: int, dim: int) -> np.ndarray:
  """The output bias per unit (grouped by dimension) from one value per parameter."""
  bias = np.zeros(num_params) if output_bias is None else np.asarray(output_bias, np.float32)
  if len(bias) != num_params:
    raise ValueError(f"output_bias has {len(bias)} values for num_params={num_params}.")
  return np.tile(bias, dim)


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


class ConvMADE(nn.Module):
  """A MADE over the channels of a feature map z [N, H, W, D] (and context [N, H, W, C]) ->
  [N, H, W, D, num_params], with weight-normalized 3x3 convolutions whose masks act on channels
  only: output channel d at any position sees input channels before d in `order`, at every
  position of its window. The Jacobian is thus triangular in a channel-major order of all
  H * W * D units, as an IAF step needs (the masked-conv IAF of Kingma et al. 2016, C.3).
  """
  hidden: Sequence[int]
  num_params: int
  order: Optional[Sequence[int]] = None
  output_bias: Optional[Sequence[float]] = None
  kernel_size: int = 3

  @nn.compact
  def __call__(self, z, context):
    dim = z.shape[-1]
    masks = made_masks(np.arange(dim) if self.order is None else self.order, self.hidden,
                       self.num_params, True)
    spatial = lambda mask: np.broadcast_to(mask, (self.kernel_size,) * 2 + mask.shape)
    conv = lambda features, name, **kw: WNConv(features, kernel_size=self.kernel_size, name=name, **kw)
    h = z
    for i, units in enumerate(self.hidden):
      h = conv(units, f"masked_{i}", mask=spatial(masks[i]))(h)
      if i == 0:
        h = h + conv(units, "context")(context)
      h = jax.nn.elu(h)
    out = conv(dim * self.num_params, "output", mask=spatial(masks[-1]), init_scale=0.1)(h)
    if not self.hidden:
      out = out + conv(dim * self.num_params, "context", init_scale=0.1)(context)
    out = out + initial_output_bias(self.output_bias, self.num_params, dim)
    return out.reshape(out.shape[:-1] + (dim, self.num_params))


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
    masks = made_masks(np.arange(dim) if self.order is None else self.order, self.hidden,
                       self.num_params, context is not None)
    activation = getattr(jax.nn, self.activation)
    h = x
    for i, units in enumerate(self.hidden):
      h = MaskedDense(masks[i], name=f"masked_{i}")(h)
      if context is not None and i == 0:
        h = h + Dense(units, name="context")(context)
      h = activation(h)
    bias = initial_output_bias(self.output_bias, self.num_params, dim)
    out = MaskedDense(
        masks[-1], bias_init=lambda *_: jnp.asarray(bias),
        kernel_init=(nn.initializers.zeros if self.zero_init_output
                     else nn.initializers.lecun_normal()), name="output")(h)
    if context is not None and not self.hidden:
      out = out + Dense(dim * self.num_params, name="context")(context)
    return out.reshape(out.shape[:-1] + (dim, self.num_params))
