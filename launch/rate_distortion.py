"""The beta sweep behind Xu et al. (2020) Fig. 4, 5 and B.6: beta-VAEs over beta and prior depth K.

  python launch/rate_distortion.py --runs_dir=DIR [--architecture=resnet] [--dataset=mnist]
      [--betas=0.25,0.5,1,2,4] [--depths=0,1,20,50] [--epochs=N] [--override=eval.num_samples=100]
      [--dry_run]

Trains one cell per (K, beta), `<architecture>,standard,beta=<b>,<dataset>` for K=0 and
`<architecture>,rnvp_prior,K=<K>,beta=<b>,<dataset>` otherwise, with the paper's settings
(launch/xu2020.py runs them; finished cells are skipped), then prints the command that draws the
rate-distortion plot from them. The paper's curves use K = 0, 1, 20, 50 (Section 5.5); its beta
values are not printed, so the default grid is ours: a factor of 2 apart around beta = 1.
"""
import argparse
import os
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xu2020 as xu2020_launch  # pylint: disable=wrong-import-position

DEFAULT_BETAS = (0.25, 0.5, 1.0, 2.0, 4.0)
DEFAULT_DEPTHS = (0, 1, 20, 50)  # Fig. 4


def sweep_cells(architecture: str, dataset: str, betas, depths) -> list[str]:
  cells = []
  for depth in depths:
    flow = "standard" if depth == 0 else f"rnvp_prior,K={depth}"
    cells += [f"{architecture},{flow},beta={beta:g},{dataset}" for beta in betas]
  return cells


def _numbers(text: str, kind):
  return tuple(kind(v) for v in text.split(",") if v.strip())


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--runs_dir", required=True)
  parser.add_argument("--architecture", default="resnet", help="dense | conv | resnet (Fig. 4)")
  parser.add_argument("--dataset", default="mnist")
  parser.add_argument("--betas", default=",".join(f"{b:g}" for b in DEFAULT_BETAS))
  parser.add_argument("--depths", default=",".join(str(k) for k in DEFAULT_DEPTHS))
  parser.add_argument("--epochs", type=int, help="reduced budget; part of the workdir name")
  parser.add_argument("--override", action="append", default=[],
                      help="extra config setting for every cell, e.g. eval.num_samples=100")
  parser.add_argument("--dry_run", action="store_true", help="print what would run")
  args = parser.parse_args(argv)
  betas, depths = _numbers(args.betas, float), _numbers(args.depths, int)
  if not betas or min(betas) <= 0 or not depths or min(depths) < 0:
    parser.error("--betas must be positive numbers and --depths non-negative integers")
  cells = sweep_cells(args.architecture, args.dataset, betas, depths)
  status = xu2020_launch.run_cells(cells, args.runs_dir, args.epochs, args.dry_run,
                                   args.override)
  if status == 0:
    workdirs = [os.path.join(os.path.abspath(args.runs_dir),
                             xu2020_launch.workdir_name(cell, args.epochs)) for cell in cells]
    print("rate-distortion plot:\n" + shlex.join(
        ["python", "-m", "vae_jax.analyze", "--what=rate_distortion",
         "--output_dir=" + os.path.join(args.runs_dir, "rate_distortion")]
        + [f"--workdir={w}" for w in workdirs]))
  return status


if __name__ == "__main__":
  sys.exit(main())
