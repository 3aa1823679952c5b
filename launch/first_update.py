"""Which parameters' first optimizer update destabilises a model? Applies the first update of a
config's own optimizer (its learning rate, clipping and warm-up) to one parameter group at a time,
on one training batch with fixed noise, and prints the loss and the scale (RMS) of the encoder's
output, the posterior log-std, the decoder's output and the likelihood's log-scale.

  python launch/first_update.py --config=configs/xu2020.py:resnet,standard,cifar10

results/README.md (issue #17, part 1) lists its output for the CIFAR-10 model of Xu et al. B.5.
"""
import jax
import jax.numpy as jnp
from absl import app, flags
from ml_collections import config_flags

from vae_jax import train
from vae_jax.data import batching

config_flags.DEFINE_config_file("config", None, "Model config (file.py:cell).", lock_config=True)
flags.DEFINE_integer("batch_size", 32, "Training images in the batch.")
FLAGS = flags.FLAGS

# Parameter groups by path prefix; "branch" are the resnet blocks' branch kernels (hidden_1) and
# scales (branch_scale).
GROUPS = {
    "nothing (initialisation)": lambda path: False,
    "all parameters": lambda path: True,
    "encoder": lambda path: path.startswith("encoder/"),
    "encoder branch ends": lambda path: path.startswith("encoder/") and _branch_end(path),
    "encoder, the rest": lambda path: path.startswith("encoder/") and not _branch_end(path),
    "posterior heads": lambda path: path.startswith("posterior_"),
    "decoder": lambda path: path.startswith("decoder/"),
    "decoder branch ends": lambda path: path.startswith("decoder/") and _branch_end(path),
    "decoder, the rest": lambda path: path.startswith("decoder/") and not _branch_end(path),
    "likelihood head": lambda path: path.startswith("head/"),
    "prior": lambda path: path.startswith("prior/"),
}


def _branch_end(path: str) -> bool:
  return "/hidden_1/" in path or path.endswith("/branch_scale")


def _path(key_path) -> str:
  return "/".join(str(getattr(k, "key", k)) for k in key_path)


def main(argv):
  del argv
  config = FLAGS.config
  config.train.batch_size = FLAGS.batch_size
  run = train.setup_run(config)
  optimizer = train.make_optimizer(config.train, run.total_steps)
  state = train.create_train_state(run, optimizer)
  x = batching.model_input(jax.random.PRNGKey(0), run.train_images[:FLAGS.batch_size],
                           run.dataset.encoding)
  key = jax.random.PRNGKey(1)
  beta = config.train.beta * train.kl_weight(config.train, 0, run.total_steps)

  def loss(params):
    parts = run.model.apply({"params": params}, x, key)
    kl = (parts.log_posterior - parts.log_prior)[0]
    return -jnp.mean(parts.log_likelihood[0]) + beta * jnp.mean(kl)

  updates, _ = optimizer.update(jax.grad(loss)(state.params), state.opt_state, state.params)

  @jax.jit
  def probe(params):
    _, captured = run.model.apply({"params": params}, x, key, capture_intermediates=True,
                                  mutable=["intermediates"])
    found = captured["intermediates"]
    rms = lambda module: jnp.sqrt(jnp.mean(jnp.square(module["__call__"][0])))
    log_scale = found.get("head", {}).get("log_scale")
    return {"loss": loss(params), "encoder": rms(found["encoder"]),
            "log-std": rms(found["posterior_logstd"]), "decoder": rms(found["decoder"]),
            "log-scale": rms(log_scale) if log_scale else jnp.nan}

  columns = ("loss", "encoder", "log-std", "decoder", "log-scale")
  print(f"{'first update applied to':28s}" + "".join(f"{k:>12s}" for k in columns))
  for name, selected in GROUPS.items():
    params = jax.tree_util.tree_map_with_path(
        lambda p, u, w, selected=selected: w + u if selected(_path(p)) else w,
        updates, state.params)
    row = jax.device_get(probe(params))
    print(f"{name:28s}" + "".join(f"{float(row[k]):12.4g}" for k in columns), flush=True)


if __name__ == "__main__":
  flags.mark_flag_as_required("config")
  app.run(main)
