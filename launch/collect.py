"""Collects finished workdirs into a markdown table (stdout), one row per workdir.

  python launch/collect.py runs/mnist_standard_50ep runs/mnist_realnvp_50ep
"""
import json
import os
import sys


def _load(path):
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def row(workdir: str) -> str:
  config = _load(os.path.join(workdir, "config.json"))
  results = _load(os.path.join(workdir, "eval_test.json"))
  summary = _load(os.path.join(workdir, "train_summary.json"))
  model = config["model"]
  name = f"{model['architecture']}, {model['prior']} prior" + (
      f" K={model['flow_depth']}" if model["prior"] == "realnvp" else "")
  return (f"| {name} | {results['dataset']} | {summary['epochs']:g} | {results['nll']:.2f} | "
          f"{-results['elbo']:.2f} | {-results['reconstruction']:.2f} | {results['kl']:.2f} | "
          f"{results['active_units']} | {results['num_points']} x {results['num_samples']} | "
          f"{summary['train_images_per_second']:.0f} | "
          f"{results['importance_samples_per_second']:.0f} | {results['devices']} |")


def main(workdirs):
  print("| model | data | epochs | test NLL | -ELBO | -recons | KL | active units | "
        "test points x samples | train img/s | IS samples/s | devices |")
  print("|---|---|---|---|---|---|---|---|---|---|---|---|")
  for workdir in workdirs:
    print(row(workdir))


if __name__ == "__main__":
  main(sys.argv[1:])
