import os
import math, numpy as np, jax, jax.numpy as jnp, orbax.checkpoint as ocp
from vae_jax import config_files, train
from vae_jax.data import batching

xu2020 = config_files.module("configs/xu2020.py")

config = xu2020.get_config("resnet,standard,cifar10,width=0.25,epochs=9")
config.data.data_dir = os.environ.get("VAE_JAX_DATA_DIR", "../shared/data")
run = train.setup_run(config)
mgr = ocp.CheckpointManager("runs/cifar10_budget/resnet-standard-epochs9-width0.25-cifar10/checkpoints")
params = mgr.restore(800, args=ocp.args.StandardRestore())["params"]
def loss_fn(params, x, key):
  parts = run.model.apply({"params": params}, x, key, deterministic=False, rngs={"dropout": key})
  ll = parts.log_likelihood[0]; kl = (parts.log_posterior - parts.log_prior)[0]
  return -jnp.mean(ll - kl)
grad = jax.jit(jax.value_and_grad(loss_fn))
rng = np.random.default_rng(1)
gs, losses = [], []
for i in range(16):
  idx = rng.choice(run.train_images.shape[0], 128, replace=False)
  x = batching.model_input(jax.random.PRNGKey(i), run.train_images[idx], run.dataset.encoding)
  l, g = grad(params, x, jax.random.PRNGKey(100 + i))
  losses.append(float(l) / 3072 / math.log(2)); gs.append(g)
print("bpd per batch", np.round(losses, 2))
flat = [jax.tree_util.tree_flatten_with_path(g)[0] for g in gs]
groups = {}
for j, (p, _) in enumerate(flat[0]):
  k = jax.tree_util.keystr(p)
  name = "/".join(s for s in k.replace("']['", "/").strip("[]'").split("/")[:3])
  groups.setdefault(name, []).append(j)
for name, js in groups.items():
  norms = [math.sqrt(sum(float(jnp.sum(f[j][1] ** 2)) for j in js)) for f in flat]
  stack = np.stack([np.concatenate([np.asarray(f[j][1]).ravel() for j in js]) for f in flat])
  consistency = np.mean(np.abs(stack.mean(0))) / np.mean(np.abs(stack).mean(0))
  print(f"{name:40s} median {np.median(norms):10.1f} max {max(norms):10.1f} sign-consistency {consistency:.2f}")
