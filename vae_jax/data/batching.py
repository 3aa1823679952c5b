"""Device-side data handling: epoch orders and model inputs drawn with jax keys.

The whole dataset sits on the devices as uint8; a step gathers its batch by index and, for
dynamically binarized sets, draws fresh Bernoulli pixels (Xu et al. 2020, Appendix B.1), so no
batch ever crosses from the host.
"""
import jax
import jax.numpy as jnp


def epoch_order(key, epoch, num_examples: int):
  """The order of the training set in `epoch`: a function of (key, epoch) alone, for exact resume."""
  return jax.random.permutation(jax.random.fold_in(key, epoch), num_examples)


def model_input(key, images, encoding: str):
  """uint8 images -> float32 model input, by the dataset's `encoding`.

  dynamic: x ~ Bernoulli(intensity / 255) (B.1); binary: the {0, 1} values as they are;
  8bit: x = pixel / 255 in [0, 1], the grid of the discretized logistic likelihood.
  """
  if encoding == "dynamic":
    return jax.random.bernoulli(key, images.astype(jnp.float32) / 255.0).astype(jnp.float32)
  if encoding == "8bit":
    return images.astype(jnp.float32) / 255.0
  return images.astype(jnp.float32)
