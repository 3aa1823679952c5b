"""Speed of training and IS evaluation, as images/s and as a fraction of the measured matmul peak.

  python -m vae_jax.benchmark --output=results/benchmarks/cpu-2core.json
  python -m vae_jax.benchmark --render   # results/benchmarks.md from results/benchmarks/*.json

For each model family of Xu et al. (2020) (DenseVAE, ConvVAE, ResnetVAE, PixelVAE on MNIST,
Appendix B.2, with the RealNVP prior's K=20; the CIFAR-10 ResnetVAE of B.5 with K=50) with the
standard and the RealNVP prior, at the paper's batch size, it measures:
  - compile time of the training call that vae_jax.main runs (its first call less a steady one);
  - training images/s (steady state, the median over the rounds; config.train.steps_per_call
    steps per call, or --steps_per_call);
  - FLOPs per training step from XLA's cost analysis of one step (traced with its loops
    unrolled, which the analysis counts once, and without the dropout masks' integer hashing,
    which it counts as FLOPs), and the achieved FLOP/s as a fraction of the peak of a large
    float32 matmul, timed in alternating rounds: each round measures the peak and then the
    training call, the round's fraction is their ratio, and the row reports the median over
    rounds (on a shared machine the speed drifts by tens of percent within minutes, and the
    peak read 88-176 GFLOP/s over three sessions on our 2 cores; a step and a peak timed
    minutes apart can differ by that much);
  - memory the training step's executable needs (XLA's memory analysis: arguments, outputs and
    temporaries), and the device's peak in use where the runtime reports it (GPU/TPU);
  - the forward rate (one-sample log weights at the training batch, images/s) and importance
    samples/s of the IS-NLL evaluation (vae_jax.evaluate.DatasetEvaluator, the same code as the
    test-set evaluation), with its sample chunk.
With --reference=standard,vampprior it also times the library's step for the VampPrior paper's
VAE against a minimal hand-written step of the same model (vae_jax.reference_step), in
alternating rounds, and reports the ratio of their images/s.
"""
import glob
import json
import os
import platform
import time

from absl import app, flags, logging
import jax
import jax.numpy as jnp
import numpy as np

from vae_jax import config_files, evaluate, parallel, reference_step, train
from vae_jax.data import batching
from vae_jax.flows import realnvp
from vae_jax.metric_writer import write_json_atomically, write_text_atomically
from vae_jax.nets import dropout

# family -> (xu2020 architecture token, dataset token, K of its RealNVP prior)
FAMILIES = {"DenseVAE": ("dense", "mnist", 20), "ConvVAE": ("conv", "mnist", 20),
            "ResnetVAE": ("resnet", "mnist", 20), "PixelVAE": ("pixel", "mnist", 20),
            "CifarResnetVAE": ("resnet", "cifar10", 50)}
PRIORS = ("standard", "realnvp")


def family_cell(family: str, prior: str) -> str:
  """The xu2020 cell of a family with the standard or its RealNVP prior."""
  architecture, dataset, depth = FAMILIES[family]
  flow = "standard" if prior == "standard" else f"rnvp_prior,K={depth}"
  return f"{architecture},{flow},{dataset}"


def matmul_peak(size: int, seconds: float) -> dict:
  """FLOP/s of the fastest of repeated [size, size] float32 matmuls (default precision), timed
  for at least `seconds` and 3 calls."""
  a = jax.random.normal(jax.random.PRNGKey(0), (size, size), jnp.float32)
  matmul = jax.jit(lambda a, b: a @ b)
  jax.block_until_ready(matmul(a, a))
  times = []
  while sum(times) < seconds or len(times) < 3:
    start = time.perf_counter()
    jax.block_until_ready(matmul(a, a))
    times.append(time.perf_counter() - start)
  return {"matmul_size": size, "peak_flops_per_second": 2 * size**3 / min(times)}


def alternating_rounds(call, peak, rounds: int, seconds: float) -> list:
  """[(peak FLOP/s, seconds per call)] of `rounds` rounds, each measuring `peak()` and then
  repeating `call()` for seconds / rounds (at least once), after one warm-up call."""
  jax.block_until_ready(call())
  measured = []
  for _ in range(rounds):
    round_peak = peak()
    calls, start = 0, time.perf_counter()
    while calls < 1 or time.perf_counter() - start < seconds / rounds:
      jax.block_until_ready(call())
      calls += 1
    measured.append((round_peak, (time.perf_counter() - start) / calls))
  return measured


def fraction_of_peak(flops_per_call: float, measured) -> float:
  """The median over rounds of each round's FLOP/s over that round's own peak."""
  return float(np.median([flops_per_call / call_time / peak for peak, call_time in measured]))


def _timed(call, seconds: float, min_calls: int = 3):
  """(calls, seconds) of repeated `call()` after one warm-up call, for at least `seconds`."""
  jax.block_until_ready(call())
  calls, start = 0, time.perf_counter()
  while calls < min_calls or time.perf_counter() - start < seconds:
    jax.block_until_ready(call())
    calls += 1
  return calls, time.perf_counter() - start


def _executable_bytes(compiled) -> int:
  m = compiled.memory_analysis()
  return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
             - m.alias_size_in_bytes)


_NOT_KERNELS = (" parameter(", " constant(", " tuple(", " get-tuple-element(", " bitcast(")


def entry_instructions(compiled) -> int:
  """The kernels (fusions, matmuls, copies, ...) that one call of an executable runs one after
  another, each with its own launch overhead: its entry computation's instructions, less those
  that move no data (parameters, constants, tuples, bitcasts)."""
  text = compiled.as_text()
  entry = text[text.index("\nENTRY"):]
  lines = entry[:entry.index("\n}")].splitlines()[2:]
  return sum(not any(op in line for op in _NOT_KERNELS) for line in lines)


def prior_profile(run, params, batch_size: int, seconds: float) -> dict:
  """The prior's own share of a step: log p(z) and its gradient for a batch of z, alone."""
  z = jax.random.normal(jax.random.PRNGKey(4), (batch_size, run.config.model.latent_dim))
  log_prob = lambda p, z: jnp.sum(run.model.apply({"params": p}, z, method="prior_log_prob"))
  compiled = jax.jit(jax.value_and_grad(log_prob)).lower(params, z).compile()
  with realnvp.unrolled_scans():  # a function of its own: jit would reuse the rolled trace
    counted = jax.jit(jax.value_and_grad(lambda p, z: log_prob(p, z))).lower(params, z).compile()
  calls, elapsed = _timed(lambda: compiled(params, z), seconds)
  return {"prior_ms": 1000 * elapsed / calls,
          "prior_flops": float(counted.cost_analysis()["flops"]),
          "prior_kernels": entry_instructions(counted)}


def benchmark_cell(cell: str, seconds: float, is_images: int, is_samples: int,
                   sample_chunk: int, peak, rounds: int, batch_size=None, steps_per_call=None,
                   eval_batch_size=None) -> dict:
  """The measurements of one model (an xu2020 cell) on this process's devices; `peak()`
  measures the matmul peak for each of the training's alternating rounds."""
  config = config_files.load(f"configs/xu2020.py:{cell}")
  config.eval.batch_size = eval_batch_size or config.eval.batch_size
  config.train.batch_size = batch_size or config.train.batch_size
  config.train.steps_per_call = steps_per_call or config.train.steps_per_call
  config.eval.num_samples = is_samples
  if sample_chunk is not None:
    config.eval.sample_chunk = sample_chunk
  run = train.setup_run(config)
  optimizer = train.make_optimizer(config.train, run.total_steps)
  state = train.create_train_state(run, optimizer)
  order = parallel.replicate(np.arange(run.train_images.shape[0]), run.mesh)
  images = run.train_images
  batch_size, steps_per_call = config.train.batch_size, run.steps_per_call

  with realnvp.unrolled_scans(), dropout.masks_without_hash():
    one_step = jax.jit(train.make_train_step(run, optimizer)).lower(state, images, order).compile()
  flops_per_step = float(one_step.cost_analysis()["flops"])
  train_steps = train.make_train_steps(run, optimizer)
  holder = [state]

  def train_call():
    holder[0], sums = train_steps(holder[0], images, order, steps_per_call)
    return sums
  start = time.perf_counter()
  jax.block_until_ready(train_call())
  first_call_seconds = time.perf_counter() - start
  measured = alternating_rounds(train_call, peak, rounds, seconds)
  call_seconds = float(np.median([call_time for _, call_time in measured]))
  steps_per_second = steps_per_call / call_seconds
  compile_seconds = first_call_seconds - call_seconds

  params = holder[0].params
  x = batching.model_input(jax.random.PRNGKey(3), images[:batch_size], run.dataset.encoding)
  forward = jax.jit(lambda p, x, key: run.model.apply({"params": p}, x, key, 1,
                                                      method="log_weights").log_likelihood)
  key = jax.random.PRNGKey(1)
  forward_calls, forward_seconds = _timed(lambda: forward(params, x, key), seconds / 2)
  forward_rate = forward_calls * batch_size / forward_seconds

  evaluator = evaluate.DatasetEvaluator(run.model, run.mesh, is_samples,
                                        config.eval.sample_chunk, config.eval.batch_size)
  test_images = run.test_images[:is_images or config.eval.batch_size]
  results = evaluator(params, test_images, run.dataset.test_encoding, jax.random.PRNGKey(2))
  stats = jax.local_devices()[0].memory_stats() or {}
  return {
      "cell": cell, "batch_size": batch_size, "steps_per_call": steps_per_call,
      "compile_seconds": compile_seconds,
      "train_images_per_second": steps_per_second * batch_size,
      "train_ms_per_step": 1000 / steps_per_second,
      "flops_per_step": flops_per_step,
      "achieved_flops_per_second": flops_per_step * steps_per_second,
      "fraction_of_matmul_peak": fraction_of_peak(flops_per_step * steps_per_call, measured),
      "peak_flops_per_second": float(np.median([flops for flops, _ in measured])),
      "rounds": [{"peak_flops_per_second": flops, "seconds_per_call": call_time}
                 for flops, call_time in measured],
      "train_step_memory_bytes": _executable_bytes(one_step),
      "train_step_kernels": entry_instructions(one_step),
      "device_peak_bytes_in_use": stats.get("peak_bytes_in_use"),
      "forward_images_per_second": forward_rate,
      "is_images": int(test_images.shape[0]), "is_samples": is_samples,
      "is_sample_chunk": results["sample_chunk"], "is_eval_batch": config.eval.batch_size,
      "is_seconds": results["seconds"], "is_compile_seconds": results["compile_seconds"],
      "is_samples_per_second": results["importance_samples_per_second"],
      "is_fraction_of_forward_rate": results["importance_samples_per_second"] / forward_rate,
      "is_nll": results["nll"],
      **(prior_profile(run, params, batch_size, seconds / 2)
         if config.model.prior.name != "standard" and config.model.encoder.name == "dense"
         else {}),
  }


def reference_comparison(prior: str, seconds: float, is_images: int, is_samples: int,
                         rounds: int = 5) -> dict:
  """The library's training call for the VampPrior paper's VAE (configs/vampprior.py:
  static_mnist-vae-<prior>, its default steps per call) against vae_jax.reference_step's minimal
  step of the same model (50 steps per call), timed in alternating rounds in this process; the
  ratio of the median images/s; and the library's IS-NLL evaluation speed for that model."""
  config = config_files.load(f"configs/vampprior.py:static_mnist-vae-{prior}")
  config.eval.num_samples = is_samples
  run = train.setup_run(config)
  optimizer = train.make_optimizer(config.train, run.total_steps)
  train_steps = train.make_train_steps(run, optimizer)
  order = parallel.replicate(np.arange(run.train_images.shape[0]), run.mesh)
  holder, steps_per_call = [train.create_train_state(run, optimizer)], run.steps_per_call

  def library_call():
    holder[0], sums = train_steps(holder[0], run.train_images, order, steps_per_call)
    return sums
  reference_steps = 50
  components = config.model.prior.num_components if prior == "vampprior" else 0
  calls = {"library": (library_call, steps_per_call),
           "reference": (reference_step.make(components, reference_steps), reference_steps)}
  rates = {name: [] for name in calls}
  for _ in range(rounds):
    for name, (call, steps) in calls.items():
      n, elapsed = _timed(call, seconds / rounds)
      rates[name].append(n * steps * config.train.batch_size / elapsed)
  library, reference = (float(np.median(rates[name])) for name in calls)
  evaluator = evaluate.DatasetEvaluator(run.model, run.mesh, is_samples, config.eval.sample_chunk,
                                        config.eval.batch_size)
  test_images = run.test_images[:is_images or config.eval.batch_size]
  results = evaluator(holder[0].params, test_images, run.dataset.test_encoding,
                      jax.random.PRNGKey(2))
  return {"is_images": int(test_images.shape[0]), "is_samples": is_samples,
          "is_samples_per_second": results["importance_samples_per_second"],
          "prior": prior, "cell": f"static_mnist-vae-{prior}", "components": components,
          "batch_size": config.train.batch_size, "library_steps_per_call": steps_per_call,
          "reference_steps_per_call": reference_steps,
          "library_images_per_second": library, "reference_images_per_second": reference,
          "ratio": library / reference, "rounds": rates}


def machine() -> dict:
  device = jax.devices()[0]
  return {"platform": device.platform, "device_kind": device.device_kind,
          "devices": jax.device_count(), "processes": jax.process_count(),
          "host": platform.node(), "cpu_count": os.cpu_count(), "jax": jax.__version__}


def run_benchmarks(families, priors, seconds: float, is_images: int, is_samples: int,
                   sample_chunk: int, matmul_size: int, rounds: int, batch_size=None,
                   steps_per_call=None, eval_batch_size=None, reference_priors=()) -> dict:
  peak = matmul_peak(matmul_size, seconds)
  logging.info("matmul peak %.1f GFLOP/s", peak["peak_flops_per_second"] / 1e9)
  reference = [reference_comparison(prior, 2 * seconds, is_images, is_samples)
               for prior in reference_priors]
  for row in reference:
    logging.info("%s", json.dumps(row))
  round_peak = lambda: matmul_peak(matmul_size, 0)["peak_flops_per_second"]
  rows = []
  for family in families:
    for prior in priors:
      row = benchmark_cell(family_cell(family, prior), seconds, is_images, is_samples,
                           sample_chunk, round_peak, rounds, batch_size, steps_per_call,
                           eval_batch_size)
      rows.append(dict(row, family=family, prior=prior))
      logging.info("%s", json.dumps(rows[-1]))
  return {"machine": machine(), **peak, "seconds_per_measurement": seconds,
          "xla_flags": os.environ.get("XLA_FLAGS", ""), "rows": rows, "reference": reference}


def _rate(per_second: float) -> str:
  """Images/s with three significant digits or more (B.5 trains at 10 images/s)."""
  return f"{per_second:,.0f}" if per_second >= 100 else f"{per_second:.3g}"


def _size(n_bytes) -> str:
  return "" if n_bytes is None else f"{n_bytes / 2**20:,.0f} MiB"


def _peak_note(rows) -> str:
  """How the rows' % of peak was taken, in the three forms benchmark files have had."""
  if any("rounds" in r for r in rows):
    rounds = max(len(r.get("rounds", ())) for r in rows)
    return (f"; each row's % of peak is the median over {rounds} alternating rounds of the "
            "training call's FLOP/s over the peak measured just before it in that round, and "
            "its peak GFLOP/s the median of those peaks.")
  if any("peak_flops_per_second" in r for r in rows):
    return "; each row's % of peak is against the peak measured just before it."
  return ", against which every row's % of peak is taken."


def render(paths) -> str:
  """results/benchmarks.md: one table per benchmark JSON."""
  lines = ["# Benchmarks", "",
           "Written by `python -m vae_jax.benchmark --render` from `results/benchmarks/*.json`; "
           "each JSON holds the command that produced it. Training: the jitted training call of "
           "`vae_jax.main` at the paper's batch size (MNIST; CifarResnetVAE: CIFAR-10); FLOPs "
           "per step from XLA's cost analysis; peak: the fastest float32 matmul measured in the "
           "same process. IS: importance samples/s of the test-set evaluation; forward: "
           "one-sample log weights at the training batch.", ""]
  for path in sorted(paths):
    with open(path, encoding="utf-8") as f:
      result = json.load(f)
    m = result["machine"]
    lines += [f"## {os.path.basename(path)}: {m['devices']}x {m['device_kind']} "
              f"({m['platform']}, {m['cpu_count']} CPU cores, {m['processes']} process(es), "
              f"jax {m['jax']})", "",
              f"`{result.get('command', '')}`", "",
              f"Measured matmul peak: {result['peak_flops_per_second'] / 1e9:,.1f} GFLOP/s "
              f"({result['matmul_size']}x{result['matmul_size']} float32) at the start"
              + _peak_note(result["rows"]), ""]
    if result.get("reference"):
      lines += ["Against a minimal hand-written step of the same model "
                "(`vae_jax.reference_step`), alternating rounds in one process:", "",
                "| cell | batch | library img/s (steps/call) | reference img/s (steps/call) | "
                "ratio | library IS samples/s (images x samples) |", "|---|---|---|---|---|---|"]
      lines += [f"| {r['cell']} | {r['batch_size']} | {r['library_images_per_second']:,.0f} "
                f"({r['library_steps_per_call']}) | {r['reference_images_per_second']:,.0f} "
                f"({r['reference_steps_per_call']}) | {r['ratio']:.2f} | "
                f"{r['is_samples_per_second']:,.0f} ({r['is_images']} x {r['is_samples']}) |"
                for r in result["reference"]]
      lines.append("")
    lines += ["| model | cell | batch | compile s | train img/s | ms/step | GFLOP/step | "
              "peak GFLOP/s | % of peak | step memory | device peak | forward img/s | "
              "IS samples/s | IS / forward | IS chunk x batch | kernels/step | "
              "prior ms (kernels) |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
      lines.append(
          f"| {r['family']} | {r['cell']} | {r['batch_size']} | {r['compile_seconds']:.1f} | "
          f"{_rate(r['train_images_per_second'])} | {r['train_ms_per_step']:.2f} | "
          f"{r['flops_per_step'] / 1e9:.3f} | "
          f"{r.get('peak_flops_per_second', result['peak_flops_per_second']) / 1e9:,.1f} | "
          f"{100 * r['fraction_of_matmul_peak']:.1f} | "
          f"{_size(r['train_step_memory_bytes'])} | {_size(r['device_peak_bytes_in_use'])} | "
          f"{r['forward_images_per_second']:,.0f} | {r['is_samples_per_second']:,.0f} | "
          f"{r['is_fraction_of_forward_rate']:.2f} | {r['is_sample_chunk']} x "
          f"{r['is_eval_batch']} | {r.get('train_step_kernels', '')} | "
          + (f"{r['prior_ms']:.2f} ({r['prior_kernels']})" if "prior_ms" in r else "") + " |")
    lines.append("")
  return "\n".join(lines)


FLAGS = flags.FLAGS
flags.DEFINE_string("output", None, "JSON file for the results (e.g. results/benchmarks/x.json).")
flags.DEFINE_list("families", list(FAMILIES), f"Model families: {', '.join(FAMILIES)}.")
flags.DEFINE_list("priors", list(PRIORS), f"Priors: {', '.join(PRIORS)}.")
flags.DEFINE_float("seconds", 5.0, "Minimum timed seconds per measurement.")
flags.DEFINE_integer("rounds", 5, "Alternating rounds of matmul peak and training call per row; "
                     "the row reports the median.")
flags.DEFINE_integer("is_images", 0, "Test images for the IS measurement (0: one evaluation "
                     "batch; 10000: all).")
flags.DEFINE_integer("is_samples", 1000, "Importance samples per test image.")
flags.DEFINE_integer("sample_chunk", None, "IS samples per chunk (default: the config's; 0: "
                     "sized to device memory).")
flags.DEFINE_integer("matmul_size", 0, "Side of the peak matmul; 0: 2048 on CPU, 8192 else.")
flags.DEFINE_integer("batch_size", None, "Training batch (default: the paper's).")
flags.DEFINE_integer("steps_per_call", None, "At most this many steps per jitted call "
                     "(default: the config's).")
flags.DEFINE_integer("eval_batch_size", None, "Test points per IS call (default: the config's).")
flags.DEFINE_list("reference", [], "Also compare the library's step with a minimal step of the "
                  "VampPrior paper's VAE (vae_jax.reference_step) for these priors: standard, "
                  "vampprior.")
flags.DEFINE_boolean("render", False, "Only write results/benchmarks.md from the JSON files.")
flags.DEFINE_string("results_dir", "results", "Where benchmarks.md and benchmarks/ live.")
parallel.define_flags()


def main(argv):
  import sys  # pylint: disable=import-outside-toplevel
  del argv
  directory = os.path.join(FLAGS.results_dir, "benchmarks")
  if not FLAGS.render:
    if not FLAGS.output:
      raise app.UsageError("--output=<file>.json is required (or --render).")
    unknown = (sorted(set(FLAGS.families) - set(FAMILIES)) + sorted(set(FLAGS.priors) - set(PRIORS))
               + sorted(set(FLAGS.reference) - {"standard", "vampprior"}))
    if unknown:
      raise app.UsageError(f"Unknown families or priors {unknown}; valid: {list(FAMILIES)}, "
                           f"{list(PRIORS)}.")
    parallel.initialize_from_flags()
    size = FLAGS.matmul_size or (2048 if jax.devices()[0].platform == "cpu" else 8192)
    result = run_benchmarks(FLAGS.families, FLAGS.priors, FLAGS.seconds, FLAGS.is_images,
                            FLAGS.is_samples, FLAGS.sample_chunk, size, FLAGS.rounds,
                            FLAGS.batch_size, FLAGS.steps_per_call, FLAGS.eval_batch_size,
                            FLAGS.reference)
    result["command"] = "python -m vae_jax.benchmark " + " ".join(sys.argv[1:])
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    write_json_atomically(FLAGS.output, result)
  write_text_atomically(os.path.join(FLAGS.results_dir, "benchmarks.md"),
                        render(glob.glob(os.path.join(directory, "*.json"))))


if __name__ == "__main__":
  app.run(main)
