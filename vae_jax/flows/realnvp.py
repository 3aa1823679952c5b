"""RealNVP as in Xu et al. (2020), Appendix B.2: K blocks of InvertibleDense -> Coupling -> ActNorm.

Vectors (event_ndims=1) use dense coupling networks (B.2); 8x8xC latent tensors (event_ndims=3)
use invertible 1x1 convolutions and residual coupling networks (B.5). The "pure" RealNVP of
Dinh et al. (2017) (B.7, Table B.4) keeps only the couplings, alternating the transformed half.

The modules return distrax bijectors for the map f: z -> w (the paper's direction), so a prior is
`distrax.Transformed(N(0, I), distrax.Inverse(f))` and log p(z) = log N(f(z)) + log|det df/dz|.
Modules take `init_inputs`, a batch that reaches the layer; it is read only while initialising
(ActNorm's data-dependent initialisation, Kingma & Dhariwal 2018), and ignored afterwards.
"""
import contextlib
import re

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax.flows import bijectors
from vae_jax.nets import conv
from vae_jax.nets.dense import MLP, Dense


class ActNorm(nn.Module):
  """Per-feature affine map initialised so that its first batch leaves with mean 0, std 1."""
  event_ndims: int = 1

  @nn.compact
  def __call__(self, init_inputs):
    axes = tuple(range(init_inputs.ndim - 1))
    log_scale = self.param(
        "log_scale", lambda _: -jnp.log(jnp.std(init_inputs, axis=axes) + 1e-6))
    bias = self.param(
        "bias", lambda _: -jnp.mean(init_inputs, axis=axes) * jnp.exp(log_scale))
    return bijectors.actnorm(log_scale, bias, self.event_ndims)


class InvertibleDenseLayer(nn.Module):
  """InvertibleDense initialised at a random rotation; P and the signs of diag(U) stay fixed."""
  event_ndims: int = 1

  @nn.compact
  def __call__(self, init_inputs):
    dim = init_inputs.shape[-1]
    # Flax also evaluates init functions (abstractly) when applying, to check shapes; only at
    # initialisation does the key matter, and then all five parameters share one decomposition.
    key = self.make_rng("params") if self.is_initializing() else jax.random.PRNGKey(0)

    def decomposition():
      rotation, _ = jnp.linalg.qr(jax.random.normal(key, (dim, dim)))
      return jax.scipy.linalg.lu(rotation)

    permutation = self.param("permutation", lambda _: decomposition()[0])
    lower = self.param("lower", lambda _: jnp.tril(decomposition()[1], -1))
    upper = self.param("upper", lambda _: jnp.triu(decomposition()[2], 1))
    diag = lambda: jnp.diag(decomposition()[2])
    log_abs_diag = self.param("log_abs_diag", lambda _: jnp.log(jnp.abs(diag())))
    sign_diag = self.param("sign_diag", lambda _: jnp.sign(diag()))
    return bijectors.InvertibleDense(jax.lax.stop_gradient(permutation), lower, upper,
                                     log_abs_diag, jax.lax.stop_gradient(sign_diag),
                                     self.event_ndims)


class DenseConditioner(nn.Module):
  """u_l -> Dense[hidden] -> (Linear[dim_r] for s, Linear[dim_r] for t)."""
  hidden: int
  out_dim: int

  @nn.compact
  def __call__(self, u_left):
    h = MLP((self.hidden,), name="mlp")(u_left)
    return Dense(self.out_dim, name="scale")(h), Dense(self.out_dim, name="shift")(h)


class ResnetConditioner(nn.Module):
  """u_l -> Resnet[8x8xhidden -> 8x8xhidden] -> (LinearConv1x1 for s, LinearConv1x1 for t) (B.5).

  B.5 writes the outputs as 8x8x32, the whole latent; they have the channels of u_r, the half
  that the coupling transforms. Both outputs start at zero (as in Glow), so each block starts
  volume-preserving: the coupling halves u_r and ActNorm's data-dependent scale doubles it back.
  With random outputs the 50 blocks over 8x8x32 latents start at log|det| of about -42,000 nats.
  """
  hidden: int
  out_channels: int

  @nn.compact
  def __call__(self, u_left):
    h = conv.ResidualBlock(self.hidden, name="block_0")(u_left)
    h = conv.ResidualBlock(self.hidden, name="block_1")(h)
    linear_1x1 = lambda name: nn.Conv(self.out_channels, (1, 1), kernel_init=nn.initializers.zeros,
                                      name=name)
    return linear_1x1("scale")(h), linear_1x1("shift")(h)


class RealNVPBlock(nn.Module):
  """f_k = InvertibleDense -> CouplingLayer -> ActNorm; only the coupling when `pure`.

  The coupling splits the last axis (features, or channels of a latent tensor) in halves.
  """
  coupling_hidden: int
  event_ndims: int = 1
  pure: bool = False
  swap: bool = False  # transform the left half instead of the right (pure flows alternate)

  @nn.compact
  def __call__(self, init_inputs):
    dim = init_inputs.shape[-1]
    split = dim // 2
    out_dim = split if self.swap else dim - split
    conditioner = (DenseConditioner if self.event_ndims == 1 else ResnetConditioner)(
        self.coupling_hidden, out_dim, name="coupling")
    coupling = bijectors.sigmoid_affine_coupling(conditioner, split_index=split,
                                                 event_ndims=self.event_ndims, swap=self.swap)
    if self.pure:
      return coupling
    layers = [InvertibleDenseLayer(self.event_ndims, name="invertible_dense")(init_inputs),
              coupling]
    h = init_inputs
    if self.is_initializing():
      for layer in layers:
        h = layer.forward(h)
    layers.append(ActNorm(self.event_ndims, name="actnorm")(h))
    return distrax.Chain(layers[::-1])  # Chain applies its last bijector first.


def _stack(trees):
  """Trees of one structure -> one tree of their leaves stacked on a new leading axis."""
  return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *trees)


_unroll_scans = [False]


@contextlib.contextmanager
def unrolled_scans():
  """Traces the stacked blocks unrolled while active: XLA's cost analysis counts a loop's body
  once, so the FLOPs and kernels of a step are counted on an unrolled copy (vae_jax.benchmark)."""
  _unroll_scans[0] = True
  try:
    yield
  finally:
    _unroll_scans[0] = False


class StackedBlocks(distrax.Bijector):
  """f = f_K o ... o f_1 for K blocks of one structure whose parameters are stacked [K, ...],
  applied in a `lax.scan`: one loop of a block's kernels instead of K copies of them, and one
  optimizer loop per parameter kind instead of one per block (issue #18).

  Blocks with convolutional couplings (latent tensors) are unrolled: XLA:CPU runs convolutions
  inside a loop far slower (B.5's prior of K = 50 trained at 0.9 images/s in a scan, 15.6
  unrolled; issue #17), and the stacked parameters keep the optimizer's fewer loops either way.
  """

  def __init__(self, block: nn.Module, params, event_ndims: int):
    super().__init__(event_ndims_in=event_ndims)
    self._forward_block = nn.apply(lambda m, x: m(x).forward_and_log_det(x), block)
    self._inverse_block = nn.apply(lambda m, y: m(y).inverse_and_log_det(y), block)
    self._params = params

  def _scan(self, apply_block, x, reverse: bool):
    def body(carry, params):
      x, log_det = carry
      y, block_log_det = apply_block({"params": params}, x)
      return (y, log_det + block_log_det), None
    log_det = jnp.zeros(x.shape[:x.ndim - self.event_ndims_in], x.dtype)
    unroll = _unroll_scans[0] or self.event_ndims_in > 1
    (y, log_det), _ = jax.lax.scan(body, (x, log_det), self._params, reverse=reverse,
                                   unroll=unroll)
    return y, log_det

  def forward_and_log_det(self, x):
    return self._scan(self._forward_block, x, reverse=False)

  def inverse_and_log_det(self, y):
    return self._scan(self._inverse_block, y, reverse=True)


class RealNVP(nn.Module):
  """f = f_K o ... o f_1, as one distrax bijector, over events of `event_ndims` axes.

  The K blocks' parameters are stacked, `params["blocks"]` with a leading axis of K (checkpoints
  from before keep `block_<k>` subtrees: `stack_blocks` converts them). The pure flow's blocks
  alternate which half they transform, so they differ in shape and stay one subtree each.
  """
  num_blocks: int
  coupling_hidden: int = 256
  event_ndims: int = 1
  pure: bool = False

  @nn.compact
  def __call__(self, init_inputs):
    if self.pure:
      return self._alternating_blocks(init_inputs)
    block = RealNVPBlock(self.coupling_hidden, self.event_ndims, parent=None)

    def init_blocks():
      """Each block initialised on the previous blocks' outputs (ActNorm's data-dependent
      initialisation), then stacked."""
      blocks, h = [], init_inputs
      for key in jax.random.split(self.make_rng("params"), self.num_blocks):
        params = block.init(key, h)["params"]
        h = block.apply({"params": params}, h).forward(h)
        blocks.append(params)
      return _stack(blocks)

    # A variable, not self.param: param() evaluates its initialiser abstractly at every apply to
    # check shapes, which would trace all K block initialisations each time.
    params = self.variable("params", "blocks", init_blocks).value
    return StackedBlocks(block, params, self.event_ndims)

  def _alternating_blocks(self, init_inputs):
    blocks, h = [], init_inputs
    for k in range(self.num_blocks):
      block = RealNVPBlock(self.coupling_hidden, self.event_ndims, pure=True, swap=k % 2 == 1,
                           name=f"block_{k}")(h)
      if self.is_initializing():
        h = block.forward(h)
      blocks.append(block)
    return distrax.Chain(blocks[::-1])


def _is_per_block_flow(tree) -> bool:
  return (isinstance(tree, dict) and bool(tree) and all(
      re.fullmatch(r"block_\d+", str(key)) and isinstance(value, dict)
      and "invertible_dense" in value for key, value in tree.items()))


def stack_blocks(tree):
  """`tree` (parameters, Adam moments, a whole saved state) with every full RealNVP's
  {block_0: ..., block_<K-1>: ...} subtrees, the layout before the blocks were stacked, replaced
  by {blocks: ...} with a leading axis of K."""
  def stack(flow):
    blocks = [flow[f"block_{k}"] for k in range(len(flow))]
    return {"blocks": _stack(blocks)}
  return jax.tree_util.tree_map(lambda node: stack(node) if _is_per_block_flow(node) else node,
                                tree, is_leaf=_is_per_block_flow)


def _is_stacked_flow(tree) -> bool:
  return (isinstance(tree, dict) and set(tree) == {"blocks"} and isinstance(tree["blocks"], dict)
          and "invertible_dense" in tree["blocks"])


def _dict_key_suffix(path) -> tuple:
  """The dict keys that end a tree path: ('prior', 'flow') both for a state's params and for
  Adam's moments of them (which sit under attribute keys such as `mu`)."""
  suffix = []
  for entry in reversed(path):
    if not isinstance(entry, jax.tree_util.DictKey):
      break
    suffix.append(entry.key)
  return tuple(reversed(suffix))


def unstack_blocks(tree):
  """The inverse of `stack_blocks` for arrays or jax.ShapeDtypeStructs: the layout of a
  checkpoint written before the blocks were stacked, as a restore target. A flow without
  arrays (optax.multi_transform's MaskedNode moments of the group it does not train) takes its
  number of blocks from the flow with arrays at the same dict keys."""
  flows = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_stacked_flow)[0]
  num_blocks = {_dict_key_suffix(path): jax.tree_util.tree_leaves(node["blocks"])[0].shape[0]
                for path, node in flows
                if _is_stacked_flow(node) and jax.tree_util.tree_leaves(node["blocks"])}

  def unstack(path, flow):
    leaves, treedef = jax.tree_util.tree_flatten(flow["blocks"])
    part = lambda leaf, k: (jax.ShapeDtypeStruct(leaf.shape[1:], leaf.dtype,
                                                  sharding=getattr(leaf, "sharding", None))
                            if isinstance(leaf, jax.ShapeDtypeStruct) else leaf[k])
    return {f"block_{k}": jax.tree_util.tree_unflatten(treedef, [part(l, k) for l in leaves])
            for k in range(num_blocks[_dict_key_suffix(path)])}
  return jax.tree_util.tree_map_with_path(
      lambda path, node: unstack(path, node) if _is_stacked_flow(node) else node, tree,
      is_leaf=_is_stacked_flow)
