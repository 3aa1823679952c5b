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


def model_input(key, images, dynamic_binarization: bool):
  """uint8 images -> float32 model input; dynamic: x ~ Bernoulli(intensity / 255)."""
  if dynamic_binarization:
    return jax.random.bernoulli(key, images.astype(jnp.float32) / 255.0).astype(jnp.float32)
  return images.astype(jnp.float32)
