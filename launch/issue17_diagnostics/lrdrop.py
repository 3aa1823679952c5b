"""Continue the width-0.25 standard run from its checkpoint at a lower learning rate."""
import os
import sys, math, numpy as np, jax, jax.numpy as jnp, orbax.checkpoint as ocp
from vae_jax import config_files, train

xu2020 = config_files.module("configs/xu2020.py")

lr, steps = float(sys.argv[1]), int(sys.argv[2])
config = xu2020.get_config("resnet,standard,cifar10,width=0.25,epochs=9")
config.data.data_dir = os.environ.get("VAE_JAX_DATA_DIR", "../shared/data")
config.train.learning_rates, config.train.lr_boundaries = (lr, lr / 10), (0.75,)
run = train.setup_run(config)
optimizer = train.make_optimizer(config.train, run.total_steps)
state = train.create_train_state(run, optimizer)
mgr = ocp.CheckpointManager("runs/cifar10_budget/resnet-standard-epochs9-width0.25-cifar10/checkpoints")
start = int(sys.argv[3])
saved = mgr.restore(start, args=ocp.args.StandardRestore())
state = state.replace(step=jnp.asarray(saved["step"]), params=saved["params"], rng=saved["rng"],
                      opt_state=jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(state.opt_state), jax.tree_util.tree_leaves(saved["opt_state"])))
step = jax.jit(train.make_train_step(run, optimizer))
rng = np.random.default_rng(start)
order = jnp.asarray(rng.permutation(run.train_images.shape[0]))
acc = []
for i in range(1, steps + 1):
  state, m = step(state, run.train_images, order)
  acc.append(-float(m["elbo"]) / 3072 / math.log(2))
  if i % 50 == 0:
    print("lr", lr, "step", start + i, round(np.mean(acc[-50:]), 3), "kl", round(float(m["kl"])), "gn", round(float(m["grad_norm"])), flush=True)
