"""Likelihoods p(x|z) over whole images."""
import distrax
import jax
import jax.numpy as jnp


class _BernoulliImage(distrax.Independent):
  """Independent Bernoulli pixels over [..., H, W, C] whose log_prob is x * l - softplus(l),
  summed over the pixels as one flattened axis. The same numbers as distrax's Bernoulli, about 4x
  faster with its gradient on XLA:CPU: distrax computes two softplus terms through
  multiply_no_nan, and XLA vectorises elementwise loops over the minor axis, which for gray
  images is the channel axis of size 1 (issue #18)."""

  def log_prob(self, value):
    flat = lambda a: a.reshape(a.shape[:a.ndim - 3] + (-1,))
    logits, value = flat(self.distribution.logits), flat(value)
    return jnp.sum(value * logits - jax.nn.softplus(logits), -1)


def bernoulli_image(logits) -> distrax.Distribution:
  """Independent Bernoulli pixels over [..., H, W, C]; log_prob sums the pixels (nats)."""
  return _BernoulliImage(distrax.Bernoulli(logits=logits), reinterpreted_batch_ndims=3)
