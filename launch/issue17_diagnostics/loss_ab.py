"""B.5's first training losses at seed 0, batch 128, with and without the chunked kernel gradients."""
import os
import jax, jax.numpy as jnp
from vae_jax import config_files, train
from vae_jax.nets import conv

xu2020 = config_files.module("configs/xu2020.py")

config = xu2020.get_config("resnet,standard,cifar10")
config.data.data_dir = os.environ.get("VAE_JAX_DATA_DIR", "../shared/data")
chunked_threshold = conv._CHUNKED_MIN_ELEMENTS
for label, threshold in (("chunked", chunked_threshold), ("unchunked", float("inf"))):
  conv._CHUNKED_MIN_ELEMENTS = threshold
  run = train.setup_run(config)
  optimizer = train.make_optimizer(config.train, run.total_steps)
  state = train.create_train_state(run, optimizer)
  step = jax.jit(train.make_train_step(run, optimizer))
  order = jnp.arange(run.train_images.shape[0])
  losses = []
  for _ in range(4):
    state, metrics = step(state, run.train_images, order)
    losses.append(float(metrics["loss"]))
  print(label, losses, flush=True)
