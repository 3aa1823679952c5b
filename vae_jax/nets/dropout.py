"""Dropout whose mask is nn.Dropout's, bit for bit, drawn faster on a CPU.

jax.random draws a threefry key's bits with the hash's 20 rounds in a device loop of 5 steps on
a CPU (jax._src.random.threefry2x32: `use_rolled_loops=True` there), each step a pass over two
uint32 arrays of the mask's size. With the rounds written out, XLA fuses the hash into one
pass, and the PixelVAE's training step (6 masks of 64 x 28 x 28 x 33) takes 4-6% less time on
our 2 cores (issue #17; results/issue17/dropout_unrolled_hash.txt). The bits are the same as
jax.random.bits's, so the masks, losses and gradients are too (tests/test_dropout.py).
"""
import contextlib
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax
import numpy as np

# Threefry-2x32 (Salmon et al. 2011) as jax.random computes it: rotations of the 4-round groups,
# and the key schedule's parity constant.
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)
_hash_traced = [True]  # False inside masks_without_hash


@contextlib.contextmanager
def masks_without_hash():
  """Traces `random_bits` as zeros while active, so that XLA's cost analysis of a step counts its
  floating-point operations only: it counts the hash's integer operations as FLOPs, 2.3 G of
  the PixelVAE step's 73.7 G (vae_jax.benchmark)."""
  _hash_traced[0] = False
  try:
    yield
  finally:
    _hash_traced[0] = True


def _rotate_left(x, distance: int):
  return lax.shift_left(x, np.uint32(distance)) | lax.shift_right_logical(
      x, np.uint32(32 - distance))


def _threefry_2x32(k1, k2, x1, x2):
  """The threefry-2x32 hash of the counter pairs (x1, x2) under key (k1, k2), unrolled."""
  keys = (k1, k2, k1 ^ k2 ^ _PARITY)
  x = [x1 + keys[0], x2 + keys[1]]
  for group in range(5):
    for rotation in _ROTATIONS[group % 2]:
      x[0] = x[0] + x[1]
      x[1] = x[0] ^ _rotate_left(x[1], rotation)
    x[0] = x[0] + keys[(group + 1) % 3]
    x[1] = x[1] + keys[(group + 2) % 3] + np.uint32(group + 1)
  return x


def _raw_threefry_key(key):
  """The uint32[2] data of a threefry key (raw or typed), or None for any other kind of key."""
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    return jax.random.key_data(key) if "threefry" in str(jax.random.key_impl(key)) else None
  return key if jax.config.jax_default_prng_impl == "threefry2x32" else None


def random_bits(key, shape):
  """jax.random.bits(key, shape) (uint32), computed with the hash unrolled where that gives the
  same bits: a threefry key under jax_threefry_partitionable (JAX's default) and fewer than
  2^32 numbers; otherwise jax.random.bits itself."""
  if not _hash_traced[0]:
    return jnp.zeros(shape, np.uint32)
  raw = _raw_threefry_key(key)
  size = math.prod(shape)
  if raw is None or not jax.config.jax_threefry_partitionable or size >= 2**32:
    return jax.random.bits(key, shape)
  # jax.random's counters: the flat index as a 64-bit number, split into two words.
  low = lax.iota(np.uint32, size).reshape(shape)
  high = jnp.zeros(shape, np.uint32)
  bits_1, bits_2 = _threefry_2x32(raw[0], raw[1], high, low)
  return bits_1 ^ bits_2


def bernoulli(key, p: float, shape):
  """jax.random.bernoulli(key, p, shape), bit for bit: uniform(key, shape) < p, the uniform
  numbers made from the bits as jax.random.uniform makes them (23 bits of mantissa in [1, 2),
  less one)."""
  bits = random_bits(key, shape)
  one = np.array(1.0, np.float32).view(np.uint32)
  uniform = lax.bitcast_convert_type(lax.shift_right_logical(bits, np.uint32(9)) | one,
                                     np.float32) - np.float32(1.0)
  return uniform < p


class Dropout(nn.Dropout):
  """nn.Dropout (the same attributes, key and mask) with the mask drawn by `bernoulli`. Its
  class name keeps nn.Dropout's automatic module names, and so its keys."""

  @nn.compact
  def __call__(self, inputs, deterministic: bool | None = None, rng=None):
    deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
    if self.rate == 0.0 or deterministic:
      return inputs
    if self.rate == 1.0:
      return jnp.zeros_like(inputs)
    keep_prob = 1.0 - self.rate
    rng = self.make_rng(self.rng_collection) if rng is None else rng
    shape = list(inputs.shape)
    for dim in self.broadcast_dims:
      shape[dim] = 1
    mask = jnp.broadcast_to(bernoulli(rng, keep_prob, tuple(shape)), inputs.shape)
    return lax.select(mask, inputs / keep_prob, jnp.zeros_like(inputs))
