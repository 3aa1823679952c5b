"""Likelihoods p(x|z) over whole images, and over the channels of each pixel."""
import distrax
import jax
import jax.numpy as jnp


class _IndependentBernoulli(distrax.Independent):
  """Independent Bernoulli units over the event axes whose log_prob is x * l - softplus(l),
  summed over the event axes as one flattened axis. The same numbers as distrax's Bernoulli,
  about 4x faster with its gradient on XLA:CPU: distrax computes two softplus terms through
  multiply_no_nan, and XLA vectorises elementwise loops over the minor axis, which for gray
  images is the channel axis of size 1 (issue #18)."""

  def log_prob(self, value):
    event_ndims = self.reinterpreted_batch_ndims
    flat = lambda a: a.reshape(a.shape[:a.ndim - event_ndims] + (-1,))
    logits, value = flat(self.distribution.logits), flat(value)
    return jnp.sum(value * logits - jax.nn.softplus(logits), -1)


def bernoulli_image(logits) -> distrax.Distribution:
  """Independent Bernoulli pixels over [..., H, W, C]; log_prob sums the pixels (nats)."""
  return _IndependentBernoulli(distrax.Bernoulli(logits=logits), reinterpreted_batch_ndims=3)


def bernoulli_pixels(logits) -> distrax.Distribution:
  """Independent Bernoulli channels of each pixel, event [C]; samples in the logits' dtype."""
  return _IndependentBernoulli(distrax.Bernoulli(logits=logits, dtype=logits.dtype),
                               reinterpreted_batch_ndims=1)
