"""Where one training step's time goes on one core (issue #17): the step profiled with
jax.profiler over 3 calls, its trace events summed per kind of kernel (the HLO name without its
number: convolution, transpose_copy_fusion, dot, call, ...), in ms per step. Run it on one core
with Eigen single-threaded, so that each kernel's event is its own time and the kinds add up:

  VAE_JAX_DATA_DIR=../shared/data PYTHONPATH=. XLA_FLAGS="--xla_cpu_multi_thread_eigen=false \\
      --xla_cpu_experimental_ynn_fusion_type=individual_dot,reduce" taskset -c 0 \\
      python launch/issue17_diagnostics/profile_step.py pixel,standard,mnist /tmp/profile
"""
import collections
import glob
import gzip
import json
import sys
import time

import jax
import numpy as np

from vae_jax import config_files, parallel, train


def main(cell: str, directory: str, calls: int = 3):
  run = train.setup_run(config_files.load(f"configs/xu2020.py:{cell}"))
  optimizer = train.make_optimizer(run.config.train, run.total_steps)
  state = train.create_train_state(run, optimizer)
  order = parallel.replicate(np.arange(run.train_images.shape[0]), run.mesh)
  step = jax.jit(train.make_train_step(run, optimizer)).lower(
      state, run.train_images, order).compile()
  call = lambda: jax.block_until_ready(step(state, run.train_images, order))
  call()
  start = time.perf_counter()
  call()
  print(f"{cell}: {1000 * (time.perf_counter() - start):.0f} ms per step unprofiled")
  jax.profiler.start_trace(directory, create_perfetto_trace=True)
  for _ in range(calls):
    call()
  jax.profiler.stop_trace()
  path = sorted(glob.glob(f"{directory}/**/perfetto_trace.json.gz", recursive=True))[-1]
  with gzip.open(path) as f:
    events = json.load(f)
  events = events["traceEvents"] if isinstance(events, dict) else events
  per_kind = collections.defaultdict(float)
  for event in events:
    if event.get("ph") == "X":
      kind = event["name"].split(".")[0].rstrip("0123456789_")
      per_kind[kind] += event.get("dur", 0) / 1000 / calls
  for kind, ms in sorted(per_kind.items(), key=lambda item: -item[1])[:30]:
    print(f"{ms:9.1f} ms  {kind}")


if __name__ == "__main__":
  main(*sys.argv[1:])
