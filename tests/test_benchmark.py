"""The benchmark's kernel count of an executable, the cells it measures, and its tables."""
import json
import time

import jax
import jax.numpy as jnp

from vae_jax import benchmark, config_files

xu2020 = config_files.module("configs/xu2020.py")


def test_kernels_are_the_entry_computations_data_moving_instructions():
  a = jnp.ones((64, 64))
  chain = lambda a: jnp.tanh(jnp.tanh(a @ a) @ a) @ a  # 3 matmuls, 2 tanh between them
  assert benchmark.entry_instructions(jax.jit(chain).lower(a).compile()) == 5
  assert benchmark.entry_instructions(jax.jit(lambda a: a @ a).lower(a).compile()) == 1


def test_each_round_times_the_call_right_after_its_own_peak():
  events, peaks = [], iter([100e9, 50e9, 80e9])

  def peak():
    events.append("peak")
    return next(peaks)

  def call():
    events.append("call")
    time.sleep(0.01)
    return jnp.zeros(())
  measured = benchmark.alternating_rounds(call, peak, rounds=3, seconds=0)
  assert events == ["call"] + ["peak", "call"] * 3  # one warm-up call, then the rounds
  assert [p for p, _ in measured] == [100e9, 50e9, 80e9]
  assert all(0.01 <= seconds < 1 for _, seconds in measured)


def test_the_fraction_of_peak_is_the_median_of_each_rounds_own_ratio():
  # The machine runs at half speed from the second round: calls take twice as long and the
  # peak halves. Against the first peak the step would read 25%; each round reads 50%.
  assert benchmark.fraction_of_peak(50, [(100, 1.0), (50, 2.0), (50, 2.0)]) == 0.5
  assert benchmark.fraction_of_peak(100, [(100, 1.0), (100, 2.0), (100, 4.0)]) == 0.5


def test_every_family_with_each_prior_is_a_paper_cell():
  for family in benchmark.FAMILIES:
    for prior in benchmark.PRIORS:
      xu2020.get_config(benchmark.family_cell(family, prior))
  # B.5: the CIFAR-10 ResnetVAE's RealNVP prior has 50 blocks; the MNIST families' have 20.
  assert benchmark.family_cell("CifarResnetVAE", "realnvp") == "resnet,rnvp_prior,K=50,cifar10"
  assert benchmark.family_cell("ConvVAE", "realnvp") == "conv,rnvp_prior,K=20,mnist"


def _result(row_peak=None, rounds=None):
  row = {"family": "ConvVAE", "cell": "conv,standard,mnist", "batch_size": 128,
         "compile_seconds": 4.2, "train_images_per_second": 335.5, "train_ms_per_step": 381.5,
         "flops_per_step": 29.5e9, "fraction_of_matmul_peak": 0.5,
         "train_step_memory_bytes": 2**28, "device_peak_bytes_in_use": None,
         "forward_images_per_second": 2000.0, "is_samples_per_second": 9000.0,
         "is_fraction_of_forward_rate": 0.5, "is_sample_chunk": 10, "is_eval_batch": 100,
         "train_step_kernels": 473}
  if row_peak is not None:
    row["peak_flops_per_second"] = row_peak
  if rounds is not None:
    row["rounds"] = rounds
  machine = {"devices": 1, "device_kind": "cpu", "platform": "cpu", "cpu_count": 2,
             "processes": 1, "jax": jax.__version__}
  return {"machine": machine, "peak_flops_per_second": 150e9, "matmul_size": 2048,
          "rows": [row]}


def test_rendered_rows_show_the_peak_their_fraction_is_against(tmp_path):
  """Each row's % of peak is the median over its rounds of the ratio to the peak measured just
  before it; files written before rounds had one peak per row, or the run's."""
  rounds = [{"peak_flops_per_second": 59e9, "seconds_per_call": 1.0}] * 3
  paths = []
  for name, result in (("a_rounds.json", _result(row_peak=59e9, rounds=rounds)),
                       ("b_row.json", _result(row_peak=60e9)), ("c_old.json", _result())):
    paths.append(tmp_path / name)
    paths[-1].write_text(json.dumps(result))
  rounds_part, rest = benchmark.render(paths).split("## b_row.json")
  row_part, old_part = rest.split("## c_old.json")
  assert "| 59.0 | 50.0 |" in rounds_part and "median over 3 alternating rounds" in rounds_part
  assert "| 60.0 | 50.0 |" in row_part and "measured just before it." in row_part
  assert "| 150.0 | 50.0 |" in old_part and "every row's % of peak" in old_part
