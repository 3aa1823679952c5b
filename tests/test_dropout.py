"""vae_jax.nets.dropout draws exactly jax.random's bits and nn.Dropout's masks."""
import flax.linen as nn
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax.nets import dropout

SHAPES = [(), (1,), (7,), (3, 5), (2, 28, 28, 33), (4, 1, 3)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", [0, 1, 2**31 + 12345])
def test_bits_are_jax_randoms_for_raw_and_typed_keys(shape, seed):
  for key in (jax.random.PRNGKey(seed), jax.random.key(seed)):
    key = jax.random.fold_in(key, 7)
    np.testing.assert_array_equal(jax.jit(dropout.random_bits, static_argnums=1)(key, shape),
                                  jax.random.bits(key, shape))


def test_other_key_kinds_fall_back_to_jax_random():
  key = jax.random.key(3, impl="rbg")
  np.testing.assert_array_equal(dropout.random_bits(key, (5, 4)), jax.random.bits(key, (5, 4)))


@pytest.mark.parametrize("p", [0.5, 0.3, 0.999])
def test_bernoulli_is_jax_randoms(p):
  key = jax.random.PRNGKey(5)
  np.testing.assert_array_equal(dropout.bernoulli(key, p, (64, 9, 11)),
                                jax.random.bernoulli(key, p, (64, 9, 11)))


class _Net(nn.Module):
  """A Dense and a dropout layer, with our Dropout or Flax's."""
  flax_dropout: bool
  rate: float = 0.5
  broadcast_dims: tuple = ()

  @nn.compact
  def __call__(self, x, deterministic):
    layer = nn.Dropout if self.flax_dropout else dropout.Dropout
    return layer(self.rate, self.broadcast_dims)(nn.Dense(33)(x), deterministic=deterministic)


@pytest.mark.parametrize("rate, broadcast_dims", [(0.5, ()), (0.2, (1,)), (0.7, (-1,)),
                                                  (0.0, ()), (1.0, ())])
def test_masks_outputs_and_gradients_are_nn_dropouts(rate, broadcast_dims):
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 6, 5))
  ours, flax = (_Net(flax_dropout, rate, broadcast_dims) for flax_dropout in (False, True))
  params = flax.init(jax.random.PRNGKey(1), x, True)
  loss = lambda net, params: jnp.sum(jnp.sin(net.apply(params, x, False,
                                                       rngs={"dropout": jax.random.PRNGKey(2)})))
  for deterministic in (True, False):
    apply = lambda net: net.apply(params, x, deterministic, rngs={"dropout": jax.random.PRNGKey(2)})
    np.testing.assert_array_equal(apply(ours), apply(flax))
  np.testing.assert_array_equal(jax.flatten_util.ravel_pytree(jax.grad(loss, 1)(ours, params))[0],
                                jax.flatten_util.ravel_pytree(jax.grad(loss, 1)(flax, params))[0])
  if 0 < rate < 1:  # the mask is random: it drops some and keeps others
    out = np.asarray(ours.apply(params, x, False, rngs={"dropout": jax.random.PRNGKey(2)}))
    assert 0 < np.mean(out == 0) < 1


def test_cost_analysis_counts_the_hash_only_outside_masks_without_hash():
  """XLA's cost analysis counts the hash's integer operations as FLOPs; the benchmark traces its
  FLOP count inside masks_without_hash, where the bits are zeros."""
  size = 10_000
  flops = lambda: jax.jit(lambda key: jnp.sum(dropout.bernoulli(key, 0.5, (size,)))).lower(
      jax.random.PRNGKey(0)).compile().cost_analysis().get("flops", 0)
  assert flops() > 50 * size
  with dropout.masks_without_hash():
    assert flops() < 5 * size
    assert not np.any(dropout.random_bits(jax.random.PRNGKey(0), (size,)))
  assert np.any(dropout.random_bits(jax.random.PRNGKey(0), (size,)))
