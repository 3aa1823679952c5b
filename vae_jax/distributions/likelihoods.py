"""Likelihoods p(x|z) over whole images."""
import distrax


def bernoulli_image(logits) -> distrax.Distribution:
  """Independent Bernoulli pixels over [..., H, W, C]; log_prob sums the pixels (nats)."""
  return distrax.Independent(distrax.Bernoulli(logits=logits), reinterpreted_batch_ndims=3)
