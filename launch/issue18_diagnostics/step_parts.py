"""Where the training step's time goes, for issue #18: the Bernoulli log-likelihood with its
gradient in three forms, and the loss gradient of the library's VampPrior-paper VAE against the
reference step's (vae_jax.reference_step), with XLA's bytes accessed and kernel counts; then a
histogram of a training step's kernels by where they come from (optimizer or model).

  VAE_JAX_DATA_DIR=../shared/data PYTHONPATH=. python launch/issue18_diagnostics/step_parts.py \
      [xu2020 cell for the histogram, default dense,rnvp_prior,K=20,mnist]
Times are medians of 5 alternating rounds, milliseconds. The reference step is loaded from this
file's checkout, so that PYTHONPATH=<an older checkout> measures that checkout's library.
"""
import collections
import functools
import importlib.util
import os
import re
import sys
import time

import distrax
import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import benchmark, config_files, parallel, train
from vae_jax.distributions import bernoulli_image

vampprior = config_files.module("configs/vampprior.py")
xu2020 = config_files.module("configs/xu2020.py")


_spec = importlib.util.spec_from_file_location("reference_step", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "vae_jax", "reference_step.py"))
reference_step = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference_step)


def medians(calls: dict, seconds: float = 0.5) -> dict:
  times = {name: [] for name in calls}
  for _ in range(5):
    for name, call in calls.items():
      jax.block_until_ready(call())
      n, start = 0, time.perf_counter()
      while n < 3 or time.perf_counter() - start < seconds:
        jax.block_until_ready(call())
        n += 1
      times[name].append(1000 * (time.perf_counter() - start) / n)
  return {name: float(np.median(t)) for name, t in times.items()}


logits = jax.random.normal(jax.random.PRNGKey(0), (1, 100, 28, 28, 1))
x = (jax.random.uniform(jax.random.PRNGKey(1), (100, 28, 28, 1)) < 0.2).astype(jnp.float32)
forms = {
    "distrax Bernoulli over [..., 28, 28, 1]": lambda l: distrax.Independent(
        distrax.Bernoulli(logits=l), 3).log_prob(x),
    "distrax Bernoulli over [..., 1, 1, 784]": lambda l: distrax.Independent(
        distrax.Bernoulli(logits=l.reshape(1, 100, 1, 1, 784)), 3).log_prob(
            x.reshape(100, 1, 1, 784)),
    "bernoulli_image (x*l - softplus(l), flattened)": lambda l: bernoulli_image(l).log_prob(x)}
grads = {name: jax.jit(jax.value_and_grad(lambda l, f=f: jnp.sum(f(l))))
         for name, f in forms.items()}
for name, ms in medians({n: (lambda g=g: g(logits)) for n, g in grads.items()}).items():
  print(f"log-likelihood and gradient, batch 100, {name}: {ms:.3f} ms")

config = vampprior.get_config("static_mnist-vae-standard")
run = train.setup_run(config)
state = train.create_train_state(run, train.make_optimizer(config.train, run.total_steps))
images = run.train_images[:100].astype(jnp.float32)
key = jax.random.PRNGKey(0)


def library_loss(params, x, key):
  parts = run.model.apply({"params": params}, x, key)
  return -jnp.mean(parts.log_likelihood[0] - (parts.log_posterior - parts.log_prior)[0])


reference_params = reference_step.init_params(0)
library = jax.jit(jax.value_and_grad(library_loss)).lower(state.params, images, key).compile()
reference = jax.jit(jax.value_and_grad(functools.partial(reference_step.loss, components=0))).lower(
    reference_params, images.reshape(100, -1), key, 1.0).compile()
times = medians({"library": lambda: library(state.params, images, key),
                 "reference": lambda: reference(reference_params, images.reshape(100, -1), key,
                                                1.0)})
for name, compiled in (("library", library), ("reference", reference)):
  cost = compiled.cost_analysis()
  print(f"loss gradient, batch 100, {name}: {times[name]:.3f} ms, "
        f"{cost['bytes accessed'] / 1e6:.1f} MB accessed, "
        f"{benchmark.entry_instructions(compiled)} kernels")

cell = sys.argv[1] if len(sys.argv) > 1 else "dense,rnvp_prior,K=20,mnist"
config = xu2020.get_config(cell)
run = train.setup_run(config)
optimizer = train.make_optimizer(config.train, run.total_steps)
state = train.create_train_state(run, optimizer)
order = parallel.replicate(np.arange(run.train_images.shape[0]), run.mesh)
text = jax.jit(train.make_train_step(run, optimizer)).lower(
    state, run.train_images, order).compile().as_text()
entry = text[text.index("\nENTRY"):]
counts = collections.Counter()
for line in entry[:entry.index("\n}")].splitlines()[2:]:
  op = re.search(r"= \S+ ([\w-]+)\(", line)
  if not op or op.group(1) in ("parameter", "constant", "tuple", "get-tuple-element", "bitcast"):
    continue
  name = re.search(r'op_name="([^"]*)"', line)
  source = ("model" if name and "VAE" in name.group(1) else "optimizer, clipping, L2 and metrics")
  counts[source] += 1
print(f"{cell}: {len(jax.tree_util.tree_leaves(state.params))} parameter arrays; kernels per "
      f"step by source: {dict(counts)}")
