"""Early training curves of B.5 variants on real CIFAR-10 (bits/dim of the training ELBO)."""
import os
import sys, math, time
import jax, jax.numpy as jnp, numpy as np
from vae_jax import config_files, train
from vae_jax.nets import conv

xu2020 = config_files.module("configs/xu2020.py")

overrides0 = dict(a.split("=") for a in sys.argv[4:])
if "nn_up" in overrides0:
  original = conv.strided_conv_transpose
  def patched(x, kernel, strides):
    if kernel.shape[0] == 1:
      up = jnp.repeat(jnp.repeat(x, strides, axis=-3), strides, axis=-2)
      return conv.conv2d(up, kernel, 1)
    return original(x, kernel, strides)
  conv.strided_conv_transpose = patched
if "pool_down" in overrides0:
  original2 = conv.conv2d
  def patched2(x, kernel, strides):
    if kernel.shape[0] == 1 and strides > 1:
      n, h, w, c = x.shape
      x = x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
      return original2(x, kernel, 1)
    return original2(x, kernel, strides)
  conv.conv2d = patched2

if "shortcut1x1" in overrides0:  # B.5's resampling shortcuts as they were before issue #17's fix
  full_rank_block = conv.ResidualBlock
  conv.ResidualBlock = lambda *args, full_rank_shortcut=False, **kwargs: full_rank_block(*args, **kwargs)

cell, steps, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
overrides = dict(a.split("=") for a in sys.argv[4:])
config = xu2020.get_config(cell)
config.data.data_dir = os.environ.get("VAE_JAX_DATA_DIR", "../shared/data")
config.train.batch_size = batch
config.train.num_epochs = 9
config.train.learning_rates, config.train.lr_boundaries = (1e-3, 1e-4), (0.75,)
if "lr" in overrides:
  config.train.learning_rates = (float(overrides["lr"]), float(overrides["lr"]) / 10)
if "warm" in overrides:
  config.train.kl_warmup_fraction = float(overrides["warm"])
if "opt" in overrides:
  config.train.optimizer = overrides["opt"]
if "clip" in overrides:
  config.train.grad_clip_norm = float(overrides["clip"])
run = train.setup_run(config)
optimizer = train.make_optimizer(config.train, run.total_steps)
state = train.create_train_state(run, optimizer)
if "alpha" in overrides:
  a = float(overrides["alpha"])
  params = jax.tree_util.tree_map_with_path(
      lambda p, v: jnp.full_like(v, a) if "branch_scale" in jax.tree_util.keystr(p) else v, state.params)
  state = state.replace(params=params)
def setp(state, key, value):
  params = jax.tree_util.tree_map_with_path(
      lambda p, v: jnp.full_like(v, value) if all(k in jax.tree_util.keystr(p) for k in key) else v, state.params)
  return state.replace(params=params)
if "ls" in overrides:
  state = setp(state, ("log_scale", "bias"), float(overrides["ls"]))
if "loc" in overrides:
  state = setp(state, ("'loc'", "bias"), float(overrides["loc"]))
print([jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(state.params)[0] if "log_scale" in jax.tree_util.keystr(p) or "'loc'" in jax.tree_util.keystr(p)])
step = jax.jit(train.make_train_step(run, optimizer))
rng = np.random.default_rng(0)
n = run.train_images.shape[0]
acc, t0 = [], time.time()
order = jnp.asarray(rng.permutation(n))
for i in range(1, steps + 1):
  state, m = step(state, run.train_images, order)
  acc.append(-float(m["elbo"]) / 3072 / math.log(2))
  if i % 50 == 0:
    print(overrides, i, round(np.mean(acc[-50:]), 3), "kl", round(float(m["kl"])), "gn", round(float(m["grad_norm"])), f"{time.time()-t0:.0f}s", flush=True)
