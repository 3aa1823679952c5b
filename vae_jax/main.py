"""Train and evaluate a VAE: python -m vae_jax.main --config=configs/mnist_realnvp.py --workdir=runs/x

Override any config key on the command line, e.g. --config.train.num_epochs=50. Re-running the
same command resumes from the latest checkpoint in --workdir. Several processes (hosts) join one
run with --coordinator_address/--num_processes/--process_id, or on their own under SLURM and on
TPU pods (vae_jax.parallel.distributed_settings; launch/ has the scripts).
"""
from absl import app, flags
import jax
from ml_collections import config_flags

from vae_jax import checkpoints, cli, parallel, train

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/*.py).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics, samples and results.")
parallel.define_flags()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  parallel.initialize_from_flags()
  checkpoints.quiet_orbax_logging()
  results = train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  if jax.process_index() == 0:
    print(f"test NLL {results['nll']:.3f} nats ({results['num_samples']} importance samples), "
          f"ELBO {results['elbo']:.3f}, KL {results['kl']:.3f}, bits/dim "
          f"{results['bits_per_dim']:.4f}, active units {results['active_units']}; "
          f"results in {FLAGS.workdir}/eval_test.json")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  cli.run(main)
