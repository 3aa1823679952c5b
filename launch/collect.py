"""Collects finished workdirs into a markdown table (stdout), one row per workdir.

  python launch/collect.py runs/mnist_standard_50ep runs/mnist_realnvp_50ep \
      [--eval_file=eval_test_10binarizations.json]
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from vae_jax.configuration import networks_label, upgrade_model  # pylint: disable=wrong-import-position


def _load(path):
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def row(workdir: str, eval_file: str) -> str:
  config = _load(os.path.join(workdir, "config.json"))
  results = _load(os.path.join(workdir, eval_file))
  summary = _load(os.path.join(workdir, "train_summary.json"))
  model = upgrade_model(config["model"])
  prior = model["prior"]
  name = f"{networks_label(config['model'])}, {prior['name']} prior" + (
      f" K={prior['num_blocks']}" if prior["name"] == "realnvp" else "")
  return (f"| {name} | {results['dataset']} | {summary['epochs']:g} | {results['nll']:.2f} | "
          f"{-results['elbo']:.2f} | {-results['reconstruction']:.2f} | {results['kl']:.2f} | "
          f"{results['active_units']} | {results['num_points']} x {results['num_samples']} | "
          f"{summary['train_images_per_second']:.0f} | "
          f"{results['importance_samples_per_second']:.0f} | {results['devices']} |")


def main(workdirs, eval_file):
  print("| model | data | epochs | test NLL | -ELBO | -recons | KL | active units | "
        "test points x samples | train img/s | IS samples/s | devices |")
  print("|---|---|---|---|---|---|---|---|---|---|---|---|")
  for workdir in workdirs:
    print(row(workdir, eval_file))


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("workdirs", nargs="+")
  parser.add_argument("--eval_file", default="eval_test.json",
                      help="results file inside each workdir (vae_jax.evaluate --output)")
  args = parser.parse_args()
  main(args.workdirs, args.eval_file)
