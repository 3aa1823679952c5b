"""The analyses of Xu et al. (2020) on one or more trained workdirs: JSON results plus PNG figures.

  python -m vae_jax.analyze --workdir=runs/standard --workdir=runs/realnvp \\
      --what=elbo,overlap,interpolation,samples --output_dir=results/analysis

`--what` takes any of: elbo, overlap, rate_distortion, interpolation, samples, low_posterior,
aggregate_kl, or all (see vae_jax/analysis/reports.py for what each computes and which table or
figure of the paper it reproduces). Each analysis writes <output_dir>/<what>.json, holding the
results per workdir label, and its figures; when all succeed, the exact command is appended to
<output_dir>/command.txt. Files are replaced only when their analysis succeeds. Per-workdir numbers that the paper's tables
print (Table B.5's aggregated-posterior KL) also go to <workdir>/analysis.json, which
`launch/xu2020.py collect` reads beside eval_test.json.
"""
import json
import os
import shlex
import sys

from absl import app, flags, logging
import numpy as np

from vae_jax import checkpoints
from vae_jax.analysis import reports
from vae_jax.metric_writer import write_json_atomically, write_text_atomically

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("workdir", None, "A training workdir; repeat for several.")
flags.DEFINE_multi_string("label", None, "A name per workdir in figures and JSON (default: the "
                          "workdir's base name); as many as --workdir.")
flags.DEFINE_list("what", ["elbo", "overlap"], f"Analyses: {', '.join(reports.WHATS)}, or all.")
flags.DEFINE_string("output_dir", None, "Where JSON and figures go (default, for one workdir: "
                    "<workdir>/analysis; required for several).")
flags.DEFINE_integer("test_binarizations", 1, "Binarizations of each test image for elbo "
                     "(dynamically binarized sets; 0: the workdir's config).")
_DEFAULTS = reports.Options(output_dir="")
flags.DEFINE_integer("seed", _DEFAULTS.seed, "Seed of every random draw of the analyses.")
flags.DEFINE_integer("num_samples", _DEFAULTS.num_samples, "Importance samples per test point.")
flags.DEFINE_integer("posterior_samples", _DEFAULTS.posterior_samples,
                     "Samples per Std[i; j] (B.4) and per E_q[z|x] of a flow posterior (B.3).")
flags.DEFINE_integer("overlap_points", _DEFAULTS.overlap_points,
                     "Training points whose closest pair is measured (0: all, as B.4).")
flags.DEFINE_integer("interpolation_pairs", _DEFAULTS.interpolation_pairs,
                     "Similar pairs, and as many dissimilar pairs, to interpolate between.")
flags.DEFINE_integer("interpolation_steps", _DEFAULTS.interpolation_steps,
                     "Interpolated z per pair, end points included.")
flags.DEFINE_integer("grid_rows", _DEFAULTS.grid_rows, "Rows of the samples grid.")
flags.DEFINE_integer("grid_columns", _DEFAULTS.grid_columns,
                     "Columns of the samples grid, the last one the nearest training images.")
flags.DEFINE_integer("low_posterior_candidates", _DEFAULTS.low_posterior_candidates,
                     "Prior samples ranked by q(z) (B.14: 10,000).")
flags.DEFINE_integer("low_posterior_kept", _DEFAULTS.low_posterior_kept,
                     "Lowest-q(z) samples kept (B.14: 100).")
flags.DEFINE_string("low_posterior_source", _DEFAULTS.low_posterior_source,
                    "Label of the workdir whose prior samples and q(z) rank the z for all "
                    "(B.14, Fig. B.7: the standard VAE's); default: each workdir its own.")
flags.DEFINE_integer("elbo_samples", _DEFAULTS.elbo_samples,
                     "Samples per ELBO of a decoded x (low_posterior).")
flags.DEFINE_integer("aggregate_images", _DEFAULTS.aggregate_images,
                     "Training images in Algorithm B.2 (0: all); cost grows with their square.")
flags.DEFINE_list("aggregate_nx", [str(n) for n in _DEFAULTS.aggregate_nx],
                  "n_x values of Algorithm B.2 (Table B.5: 1,2,3,5,8).")
flags.DEFINE_integer("aggregate_nz", _DEFAULTS.aggregate_nz, "n_z of Algorithm B.2.")


def _whats(requested) -> list:
  whats = list(reports.WHATS) if requested == ["all"] else requested
  unknown = sorted(set(whats) - set(reports.WHATS))
  if unknown:
    raise app.UsageError(f"--what: unknown {unknown}; valid: {', '.join(reports.WHATS)}, all.")
  return whats


def _labels(workdirs, labels) -> list:
  labels = labels or [os.path.basename(os.path.normpath(w)) for w in workdirs]
  if len(labels) != len(workdirs):
    raise app.UsageError(f"{len(labels)} --label for {len(workdirs)} --workdir.")
  if len(set(labels)) != len(labels):
    raise app.UsageError(f"Labels must differ: {labels}; name them with --label.")
  return labels


def _options(output_dir: str) -> reports.Options:
  positive = {name: getattr(FLAGS, name) for name in (
      "num_samples", "posterior_samples", "interpolation_pairs", "interpolation_steps",
      "grid_rows", "low_posterior_candidates", "low_posterior_kept", "elbo_samples",
      "aggregate_nz")}
  bad = [f"--{name}={value}" for name, value in positive.items() if value < 1]
  if FLAGS.grid_columns < 2:
    bad.append(f"--grid_columns={FLAGS.grid_columns} (needs a sample and its neighbour)")
  nx = tuple(int(n) for n in FLAGS.aggregate_nx)
  if not nx or min(nx) < 1:
    bad.append(f"--aggregate_nx={FLAGS.aggregate_nx}")
  bad += [f"--{name}={getattr(FLAGS, name)} (0: all)" for name in ("overlap_points",
                                                                     "aggregate_images")
          if getattr(FLAGS, name) < 0]
  if FLAGS.low_posterior_kept > FLAGS.low_posterior_candidates:
    bad.append("--low_posterior_kept above --low_posterior_candidates")
  if FLAGS.elbo_samples > 100 and FLAGS.elbo_samples % 100:
    bad.append(f"--elbo_samples={FLAGS.elbo_samples} (above 100, a multiple of 100: the chunk)")
  if bad:
    raise app.UsageError("Invalid: " + ", ".join(bad))
  return reports.Options(
      output_dir=output_dir, seed=FLAGS.seed, overlap_points=FLAGS.overlap_points,
      grid_columns=FLAGS.grid_columns, low_posterior_source=FLAGS.low_posterior_source,
      aggregate_images=FLAGS.aggregate_images, aggregate_nx=nx, **positive)


def _per_workdir(fn, workdirs, options):
  return {w.label: fn(w, options) for w in workdirs}


def _update_workdir_summary(workdir: str, metrics: dict) -> None:
  """Merges `metrics` into <workdir>/analysis.json (read by launch/xu2020.py collect)."""
  path = os.path.join(workdir, "analysis.json")
  summary = {}
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      summary = json.load(f)
  summary.update(metrics)
  write_json_atomically(path, summary)


def run(workdirs, labels, whats, options: reports.Options, test_binarizations) -> dict:
  """Loads the workdirs, runs the analyses in turn and writes their files; returns the results."""
  loaded = [reports.load(path, label, test_binarizations) for path, label in zip(workdirs, labels)]
  os.makedirs(options.output_dir, exist_ok=True)
  everything = {}
  for what in whats:
    logging.info("analysis %s on %s", what, ", ".join(labels))
    if what == "elbo":
      results = _per_workdir(reports.elbo_decomposition, loaded, options)
      write_text_atomically(os.path.join(options.output_dir, "elbo.md"),
                            reports.elbo_markdown(results))
    elif what == "samples":
      results = _per_workdir(reports.samples_with_nearest, loaded, options)
    elif what == "aggregate_kl":
      results = _per_workdir(reports.aggregate_kl, loaded, options)
      for w in loaded:
        _update_workdir_summary(w.path, {
            f"aggregated_posterior_kl_nx{r['n_x']}": r["aggregated_posterior_kl"]
            for r in results[w.label].values()})
    else:
      results = getattr(reports, what)(loaded, options)
    write_json_atomically(os.path.join(options.output_dir, f"{what}.json"),
                          {"workdirs": dict(zip(labels, workdirs)), "results": results})
    everything[what] = results
  return everything


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  checkpoints.quiet_orbax_logging()
  workdirs = FLAGS.workdir
  if not workdirs:
    raise app.UsageError("Give at least one --workdir.")
  for workdir in workdirs:
    if not os.path.isfile(os.path.join(workdir, "config.json")):
      raise app.UsageError(f"--workdir={workdir} is not a vae_jax training workdir "
                           "(no config.json).")
  output_dir = FLAGS.output_dir
  if not output_dir:
    if len(workdirs) > 1:
      raise app.UsageError("Several workdirs: say where the comparison goes with --output_dir.")
    output_dir = os.path.join(workdirs[0], "analysis")
  whats, labels = _whats(FLAGS.what), _labels(workdirs, FLAGS.label)
  options = _options(output_dir)
  results = run(workdirs, labels, whats, options, FLAGS.test_binarizations or None)
  with open(os.path.join(output_dir, "command.txt"), "a", encoding="utf-8") as f:
    f.write(shlex.join(["python", "-m", "vae_jax.analyze"] + sys.argv[1:]) + "\n")
  logging.info("wrote %s: %s", output_dir, json.dumps(results, default=_round)[:2000])


def _round(value):
  return float(np.round(value, 4)) if isinstance(value, (np.floating, float)) else str(value)


if __name__ == "__main__":
  app.run(main)
