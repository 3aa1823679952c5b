"""Every bijector inverts, and its log-det equals log|det J| of the autodiff Jacobian."""
import distrax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vae_jax.flows import InvertibleDense, RealNVP, actnorm, sigmoid_affine_coupling
from vae_jax.flows.bijectors import LowRankAffine
from vae_jax.flows import realnvp
from vae_jax.priors import RealNVPPrior

DIM = 5


def _perturb(params, key, scale=0.3):
  """Random parameters: the initial ones plus noise (P and the signs are fixed by design)."""
  leaves, tree = jax.tree_util.tree_flatten_with_path(params)
  keys = jax.random.split(key, len(leaves))
  fixed = ("permutation", "sign_diag")
  new = [leaf if getattr(path[-1], "key", "") in fixed
         else leaf + scale * jax.random.normal(k, leaf.shape)
         for (path, leaf), k in zip(leaves, keys)]
  return jax.tree_util.tree_unflatten(tree, new)


def _check_bijector(bijector: distrax.Bijector, x):
  """Round trip, inverse log-det, and log|det| of the autodiff Jacobian, in float64 (the float64
  fixture, with float64 parameters): random parameters can give Jacobians with condition numbers
  of ~3e4 (RealNVP(3, 8) below, at other draws), whose float32 round trip is only good to ~1e-3,
  so a float32 tolerance would pass errors that large; in float64 the checks hold to 1e-8."""
  x = jnp.asarray(x, jnp.float64)
  y, log_det = bijector.forward_and_log_det(x)
  x_back, inverse_log_det = bijector.inverse_and_log_det(y)
  assert y.dtype == log_det.dtype == jnp.float64, "run under the float64 fixture"
  np.testing.assert_allclose(x_back, x, rtol=1e-8, atol=1e-8)
  np.testing.assert_allclose(inverse_log_det, -log_det, rtol=1e-8, atol=1e-8)
  jacobians = jax.vmap(jax.jacfwd(lambda v: bijector.forward(v[None])[0]))(x)
  np.testing.assert_allclose(log_det, jnp.linalg.slogdet(jacobians)[1], rtol=1e-8, atol=1e-8)


def _inputs(key, n=6):
  return 2.0 * jax.random.normal(key, (n, DIM)) + 0.5


@pytest.mark.usefixtures("float64")
def test_invertible_dense():
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  permutation = jnp.eye(DIM)[jax.random.permutation(keys[0], DIM)]
  bijector = InvertibleDense(permutation, jax.random.normal(keys[1], (DIM, DIM)),
                             jax.random.normal(keys[2], (DIM, DIM)),
                             jax.random.normal(keys[3], (DIM,)), jnp.array([1., -1., 1., 1., -1.]))
  _check_bijector(bijector, _inputs(jax.random.PRNGKey(1)))


@pytest.mark.usefixtures("float64")
def test_actnorm():
  keys = jax.random.split(jax.random.PRNGKey(2), 2)
  bijector = actnorm(jax.random.normal(keys[0], (DIM,)), jax.random.normal(keys[1], (DIM,)), 1)
  _check_bijector(bijector, _inputs(jax.random.PRNGKey(3)))


@pytest.mark.usefixtures("float64")
def test_sigmoid_coupling():
  weights = jax.random.normal(jax.random.PRNGKey(4), (2, 2, 3))
  conditioner = lambda left: (jnp.tanh(left @ weights[0]) * 3, left @ weights[1])
  bijector = sigmoid_affine_coupling(conditioner, split_index=2, event_ndims=1)
  x = _inputs(jax.random.PRNGKey(5))
  _check_bijector(bijector, x)
  # The left half passes unchanged, the right half is scaled by a sigmoid in (0, 1).
  y = bijector.forward(x)
  np.testing.assert_array_equal(y[:, :2], x[:, :2])


@pytest.mark.parametrize("module", [realnvp.InvertibleDenseLayer(), realnvp.ActNorm(),
                                    realnvp.RealNVPBlock(8), RealNVP(3, 8)],
                         ids=["invertible_dense", "actnorm", "block", "realnvp"])
@pytest.mark.usefixtures("float64")
def test_flax_built_bijectors_with_random_parameters(module):
  x = _inputs(jax.random.PRNGKey(6), n=32)
  # Noise of 0.3 gives some three-block flows Jacobians with condition numbers of ~1e13, whose
  # round trip even float64 cannot hold to 1e-8; 0.2 keeps them below ~1e3.
  params = _perturb(module.init(jax.random.PRNGKey(7), x), jax.random.PRNGKey(8), scale=0.2)
  _check_bijector(module.apply(params, x), x[:6])


@pytest.mark.usefixtures("float64")
def test_stacked_blocks_are_the_blocks_applied_one_after_another():
  """RealNVP keeps its K blocks' parameters stacked and applies them in a scan: the same map as
  each block's own bijector applied in turn (forward and inverse), with the log-dets summed."""
  x = _inputs(jax.random.PRNGKey(16), n=32)
  params = _perturb(RealNVP(3, 8).init(jax.random.PRNGKey(17), x), jax.random.PRNGKey(18),
                    scale=0.2)["params"]["blocks"]
  assert params["coupling"]["mlp"]["hidden_0"]["kernel"].shape == (3, DIM // 2, 8)
  flow = RealNVP(3, 8).apply({"params": {"blocks": params}}, x)
  blocks = [realnvp.RealNVPBlock(8).apply(
      {"params": jax.tree_util.tree_map(lambda leaf, k=k: leaf[k], params)}, x) for k in range(3)]
  y, log_det = x, 0.0
  for block in blocks:
    y, block_log_det = block.forward_and_log_det(y)
    log_det += block_log_det
  np.testing.assert_allclose(flow.forward_and_log_det(x)[0], y, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(flow.forward_and_log_det(x)[1], log_det, rtol=1e-12, atol=1e-12)
  x_back, inverse_log_det = y, 0.0
  for block in blocks[::-1]:
    x_back, block_log_det = block.inverse_and_log_det(x_back)
    inverse_log_det += block_log_det
  np.testing.assert_allclose(flow.inverse_and_log_det(y)[0], x_back, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(flow.inverse_and_log_det(y)[1], inverse_log_det, rtol=1e-12,
                             atol=1e-12)


def test_stack_blocks_converts_the_per_block_layout_and_back():
  """Checkpoints from before the stacking keep {block_<k>: ...}: stack_blocks and unstack_blocks
  convert whole states (parameters, and Adam's moments of them, masked or not), leaving other
  subtrees alone."""
  x = _inputs(jax.random.PRNGKey(19), n=32)
  stacked = RealNVP(3, 8).init(jax.random.PRNGKey(20), x)["params"]
  params = {"flow": stacked, "decoder": {"block_0": {"kernel": jnp.ones(2)}}}
  # Post-hoc training's optimizer: each group's Adam moments hold MaskedNodes (no arrays) for
  # the other group's parameters, the flow's included.
  label = lambda p: {k: jax.tree_util.tree_map(lambda _, k=k: k, v) for k, v in p.items()}
  optimizer = optax.multi_transform({"flow": optax.adam(1e-3), "decoder": optax.adam(1e-3)},
                                    label)
  state = {**params, "adam": optimizer.init(params)}
  per_block = realnvp.unstack_blocks(state)
  assert set(per_block["flow"]) == {"block_0", "block_1", "block_2"}
  for group in ("flow", "decoder"):  # arrays in one group's moments, MaskedNodes in the other's
    assert set(per_block["adam"].inner_states[group].inner_state[0].mu["flow"]) == {
        "block_0", "block_1", "block_2"}
  assert per_block["decoder"] == state["decoder"]  # not a RealNVP: untouched
  np.testing.assert_array_equal(per_block["flow"]["block_2"]["actnorm"]["bias"],
                                stacked["blocks"]["actnorm"]["bias"][2])
  back = realnvp.stack_blocks(per_block)
  assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(state)
  for a, b in zip(jax.tree_util.tree_leaves(back), jax.tree_util.tree_leaves(state)):
    np.testing.assert_array_equal(a, b)


def test_actnorm_data_dependent_initialisation():
  x = _inputs(jax.random.PRNGKey(9), n=256)
  module = RealNVP(3, 8)
  y = module.apply(module.init(jax.random.PRNGKey(10), x), x).forward(x)
  np.testing.assert_allclose(y.mean(0), 0.0, atol=1e-4)
  np.testing.assert_allclose(y.std(0), 1.0, atol=1e-4)


def test_realnvp_prior_density_integrates_to_one_on_a_grid():
  prior = RealNVPPrior((2,), num_blocks=4, coupling_hidden=16)
  # A skewed, shifted cloud initialises ActNorm; then random parameters.
  init_z = jax.random.normal(jax.random.PRNGKey(11), (512, 2)) * jnp.array([0.5, 1.5]) + 0.7
  # Some draws have thin ridges far out in the tails (|z| > 100) that this grid aliases (key 13:
  # a mass of 2.74 here, 0.975 on a 4,001^2 grid); this one's tails it resolves.
  params = _perturb(prior.init(jax.random.PRNGKey(12), init_z, method=RealNVPPrior.log_prob),
                    jax.random.PRNGKey(15), scale=0.05)
  # Sigmoid couplings give heavy tails (the inverse divides by sigmoid(s)), so the grid covers
  # the whole plane: z = tan(u) on a uniform grid of u in (-pi/2, pi/2)^2, dz = sec^2(u) du.
  u = jnp.linspace(-jnp.pi / 2, jnp.pi / 2, 1403)[1:-1]
  du = u[1] - u[0]
  z_axis, dz_axis = jnp.tan(u), du / jnp.cos(u) ** 2
  grid = jnp.stack(jnp.meshgrid(z_axis, z_axis, indexing="ij"), -1).reshape(-1, 2)
  mass = jnp.exp(prior.apply(params, grid, method=RealNVPPrior.log_prob)) * jnp.outer(
      dz_axis, dz_axis).reshape(-1)
  np.testing.assert_allclose(jnp.sum(mass), 1.0, atol=0.02)
  # Samples land where the density is: P(z in [-1, 1]^2) by grid and by 20,000 samples.
  in_box = lambda z: jnp.all(jnp.abs(z) <= 1.0, axis=-1)
  samples = prior.apply(params, jax.random.PRNGKey(14), 20000, method=RealNVPPrior.sample)
  np.testing.assert_allclose(jnp.mean(in_box(samples)), jnp.sum(mass * in_box(grid)), atol=0.015)


@pytest.mark.usefixtures("float64")
def test_low_rank_affine_log_det_and_inverse_against_autodiff():
  """z = c + (diag(d) + u u^T) eps with per-example c, d, u (the SeRe-VAE bijector): the matrix
  determinant lemma against jacfwd and slogdet, Sherman-Morrison by the round trip, the map
  against the dense matrix."""
  keys = jax.random.split(jax.random.PRNGKey(15), 4)
  shift = jax.random.normal(keys[0], (6, DIM))
  diag = jnp.exp(jax.random.normal(keys[1], (6, DIM)))
  u = 1.5 * jax.random.normal(keys[2], (6, DIM))
  x = _inputs(keys[3])

  def one(i):
    return LowRankAffine(shift[i], diag[i], u[i])

  for i in range(6):  # each example's own parameters, checked as in _check_bijector
    _check_bijector(one(i), x[i:i + 1])
    matrix = np.diag(diag[i]) + np.outer(u[i], u[i])
    np.testing.assert_allclose(one(i).forward(x[i]), shift[i] + matrix @ x[i], rtol=1e-5,
                               atol=1e-5)
  batched = LowRankAffine(shift, diag, u)  # the same, batched; and broadcast over samples
  z, log_det = batched.forward_and_log_det(jnp.stack([x, -x]))
  assert z.shape == (2, 6, DIM) and log_det.shape == (2, 6)
  np.testing.assert_allclose(batched.inverse(z)[0], x, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("event_ndims, shape, looped", [(1, (4, 6), True), (3, (2, 4, 4, 4), False)])
def test_stacked_blocks_loop_over_dense_couplings_and_unroll_convolutional_ones(event_ndims, shape,
                                                                                looped):
  """A scan of K dense blocks is one loop in the compiled program; convolutional blocks are
  unrolled, since XLA:CPU runs convolutions inside loops many times slower (issue #17)."""
  module = RealNVP(3, coupling_hidden=8, event_ndims=event_ndims)
  x = jax.random.normal(jax.random.PRNGKey(0), shape)
  params = module.init(jax.random.PRNGKey(1), x)
  forward = jax.jit(lambda p, x: module.apply(p, x).forward_and_log_det(x))
  assert ("while" in forward.lower(params, x).as_text()) == looped
